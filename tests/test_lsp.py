"""`specc lsp` end to end: the real server as a subprocess, a real client (pytest-lsp) over stdio.

One server serves the whole module (it starts in about a second); each test opens its own
files in a copy of the support examples, so the tests do not see each other's buffers.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

if not os.environ.get("CI"):  # under CI these tests must run, never pass by being skipped
    pytest.importorskip("pytest_lsp", reason="needs the specc[lsp] extra and pytest-lsp")
import pytest_lsp  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.asyncio(loop_scope="module")

# the server must import this checkout's specc, also where specc is not installed
_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
WAIT_S = 10  # the longest a test waits for diagnostics; they come in well under a second


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    for f in (REPO / "examples" / "support").glob("*.spec"):
        shutil.copy(f, root / f.name)
    return root


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-c", "from specc.cli import main; main()", "lsp"], server_env=_ENV))
async def client(lsp_client: LanguageClient, workspace: Path):
    features = lsp_client.protocol.fm.features
    store = features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def record(params: types.PublishDiagnosticsParams) -> None:
        published.append((params.uri, params.version, list(params.diagnostics)))
        _published_version[params.uri] = params.version
        store(params)

    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = record
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=workspace.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")]))
    yield
    await lsp_client.shutdown_session()


# -- helpers ------------------------------------------------------------------------------

_versions: dict[str, int] = {}  # open document -> the version the client sent last
_published_version: dict[str, int | None] = {}  # document -> the version of its latest diagnostics
published: list[tuple[str, int | None, list[types.Diagnostic]]] = []  # every publish, in order


def open_doc(client: LanguageClient, path: Path, text: str | None = None) -> str:
    uri = path.as_uri()
    client.diagnostics.pop(uri, None)
    _versions[uri] = 1
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="spec", version=1, text=path.read_text(encoding="utf-8") if text is None else text)))
    return uri


def change_doc(client: LanguageClient, uri: str, text: str) -> None:
    client.diagnostics.pop(uri, None)
    _versions[uri] += 1
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=_versions[uri]),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))


def close_doc(client: LanguageClient, uri: str) -> None:
    _versions.pop(uri, None)
    client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))


async def diagnostics(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """The next diagnostics published for ``uri`` (after open_doc or change_doc forgot the old), of
    the version the client sent last (the server checks in the background: the diagnostics that
    clear a document closed by an earlier test may come after it was opened again)."""
    async with asyncio.timeout(WAIT_S):
        while uri not in client.diagnostics or _published_version.get(uri) != _versions.get(uri):
            client.diagnostics.pop(uri, None)
            await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[uri])


def check_json(workspace: Path, name: str, monkeypatch) -> list[dict]:
    """What `specc check --format json NAME` prints, run from the workspace root."""
    from click.testing import CliRunner

    from specc.cli import main

    monkeypatch.chdir(workspace)
    return json.loads(CliRunner().invoke(main, ["check", "--format", "json", name]).stdout)


def utf16(line: str, col: int) -> int:
    """A 1-based code-point column of ``line`` as a 0-based UTF-16 column (LSP's default)."""
    return len(line[:col - 1].encode("utf-16-le")) // 2


def pos(text: str, needle: str, offset: int = 0) -> types.Position:
    """The client's position (UTF-16) of ``offset`` characters into the first ``needle``."""
    i = text.index(needle) + offset
    start = text.rfind("\n", 0, i) + 1
    return types.Position(line=text.count("\n", 0, i), character=len(text[start:i].encode("utf-16-le")) // 2)


async def hover_text(client: LanguageClient, uri: str, position: types.Position) -> str | None:
    h = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position))
    return None if h is None else h.contents.value


# -- diagnostics --------------------------------------------------------------------------

BROKEN = '''spec demo.broken version "1.0.0"
  """Broken on purpose."""

rule emoji {
  must "Greet with 😀 first."  authority rooot
  check max_word(3)
}
'''


async def test_diagnostics_are_those_of_specc_check_byte_for_byte(client, workspace, monkeypatch):
    path = workspace / "broken.spec"
    path.write_text(BROKEN, encoding="utf-8")
    uri = open_doc(client, path)
    got = await diagnostics(client, uri)
    want = check_json(workspace, "broken.spec", monkeypatch)
    assert {d["code"] for d in want} == {"E218", "E301"}
    lines = BROKEN.split("\n")
    assert sorted((d.code, d.message, d.range.start.line, d.range.start.character, d.range.end.line,
                   d.range.end.character) for d in got) == sorted(
        (w["code"], w["message"], w["span"]["start_line"] - 1, utf16(lines[w["span"]["start_line"] - 1],
                                                                    w["span"]["start_col"]),
         w["span"]["end_line"] - 1, utf16(lines[w["span"]["end_line"] - 1], w["span"]["end_col"])) for w in want)
    # the emoji is two UTF-16 units: the column is the client's, not a count of code points
    e218 = next(d for d in got if d.code == "E218")
    assert lines[e218.range.start.line].encode("utf-16-le")[2 * e218.range.start.character:].decode(
        "utf-16-le").startswith("rooot")
    assert all(d.source == "specc" for d in got)
    # each links to its code's explanation: a heading of the page of codes, with `specc explain`'s text
    from specc.diagnostics import CODES

    for d in got:
        page, _, fragment = d.code_description.href.partition("#")
        text = Path(page[len("file://"):]).read_text(encoding="utf-8")
        section = text.split(f"\n## {d.code} {CODES[d.code].name}\n", 1)[1].split("\n## ", 1)[0]
        assert fragment == f"{d.code.lower()}-{CODES[d.code].name}" and CODES[d.code].doc in section
    close_doc(client, uri)


async def test_unsaved_edits_are_checked_and_a_fix_clears_the_diagnostics(client, workspace):
    path = workspace / "edited.spec"
    path.write_text(BROKEN.replace("demo.broken", "demo.edited"), encoding="utf-8")
    uri = open_doc(client, path)
    assert {d.code for d in await diagnostics(client, uri)} == {"E218", "E301"}
    fixed = BROKEN.replace("demo.broken", "demo.edited").replace("rooot", "root").replace("max_word", "max_words")
    change_doc(client, uri, fixed)  # the file on disk keeps its errors: the buffer is what counts
    assert await diagnostics(client, uri) == []
    close_doc(client, uri)


async def test_a_burst_of_changes_is_checked_after_it_with_the_last_text(client, workspace):
    path = workspace / "burst.spec"
    text = BROKEN.replace("demo.broken", "demo.burst")
    path.write_text(text, encoding="utf-8")
    uri = open_doc(client, path)
    await diagnostics(client, uri)
    for i in range(5):
        change_doc(client, uri, text.replace("rooot", "root" + "x" * i))
    # on a busy machine a check may slip in mid-burst (the pause is 0.15 s); the last text is checked
    async with asyncio.timeout(WAIT_S):
        while not any(d.code == "E218" and "rootxxxx" in d.message for d in await diagnostics(client, uri)):
            client.diagnostics.pop(uri, None)
    close_doc(client, uri)


async def test_an_edit_in_an_imported_file_rechecks_the_files_that_import_it(client, workspace):
    lib_text = ('spec demo.lib version "1.0.0"\n  """Lib."""\n\nrule shared {\n  must "Be kind."\n'
                '  check not refuses\n}\n')
    (workspace / "lib.spec").write_text(lib_text, encoding="utf-8")
    app = workspace / "app.spec"
    app.write_text('spec demo.app version "1.0.0"\n  """App."""\n\nextends "./lib.spec"\n\n'
                   'override shared {\n  severity high\n}\n', encoding="utf-8")
    app_uri = open_doc(client, app)
    assert await diagnostics(client, app_uri) == []
    lib_uri = open_doc(client, workspace / "lib.spec")
    assert await diagnostics(client, lib_uri) == []
    client.diagnostics.pop(app_uri, None)
    change_doc(client, lib_uri, lib_text.replace("rule shared", "rule renamed"))  # unsaved
    got = await diagnostics(client, app_uri)
    assert [d.code for d in got] == ["E206"] and "shared" in got[0].message
    client.diagnostics.pop(app_uri, None)
    change_doc(client, lib_uri, lib_text)
    assert await diagnostics(client, app_uri) == []
    close_doc(client, lib_uri)
    close_doc(client, app_uri)


async def test_related_information_points_at_the_overridden_root_rule(client, workspace):
    text = (workspace / "enterprise.spec").read_text(encoding="utf-8").replace(
        "override no_third_party_order_details {\n  severity critical",
        "override verify_before_account_changes {\n  severity low\n}\noverride no_third_party_order_details {\n"
        "  severity critical", 1)
    path = workspace / "weakened.spec"
    path.write_text(text.replace("acme.enterprise", "acme.weakened"), encoding="utf-8")
    uri = open_doc(client, path)
    e207 = [d for d in await diagnostics(client, uri) if d.code == "E207"]
    assert e207 and e207[0].related_information
    related = e207[0].related_information[0]
    assert related.location.uri == (workspace / "assistant.spec").as_uri()
    line = (workspace / "assistant.spec").read_text().split("\n")[related.location.range.start.line]
    assert "verify_before_account_changes" in line
    close_doc(client, uri)


# -- hover --------------------------------------------------------------------------------


async def test_hover_on_a_rule_shows_its_effective_rule_and_where_it_is_defined(client, workspace):
    text = (workspace / "enterprise.spec").read_text(encoding="utf-8")
    uri = open_doc(client, workspace / "enterprise.spec")
    await diagnostics(client, uri)
    value = await hover_text(client, uri, pos(text, "override no_third_party_order_details", 12))
    assert value.startswith("**rule** `acme.support.no_third_party_order_details`")
    assert "severity `critical`" in value  # the effective rule: the override raised it
    assert "defined in assistant.spec:" in value and "overridden in enterprise.spec:22" in value
    close_doc(client, uri)


async def test_hover_on_keywords_predicates_and_codes(client, workspace):
    text = BROKEN.replace("demo.broken", "demo.hover") + "# see E301\n"
    path = workspace / "hover.spec"
    path.write_text(text, encoding="utf-8")
    uri = open_doc(client, path)
    await diagnostics(client, uri)
    from specc.cli import main
    from click.testing import CliRunner

    explain = CliRunner().invoke(main, ["explain", "E301"]).stdout.rstrip("\n")
    assert await hover_text(client, uri, pos(text, "E301")) == explain
    assert (await hover_text(client, uri, pos(text, "check"))).startswith("**field** `check`")
    assert "authority" in await hover_text(client, uri, pos(text, "authority"))
    # on a diagnostic's span (an unknown predicate): what its code means
    assert await hover_text(client, uri, pos(text, "max_word", 2)) == explain
    close_doc(client, uri)


async def test_hover_on_a_predicate_gives_the_language_table_doc(client, workspace):
    from specc.language import PREDICATE

    text = (workspace / "assistant.spec").read_text(encoding="utf-8")
    uri = open_doc(client, workspace / "assistant.spec")
    await diagnostics(client, uri)
    value = await hover_text(client, uri, pos(text, "mentions_any(", 3))
    assert value.startswith("**check** `mentions_any([...])`") and PREDICATE["mentions_any"].doc in value
    close_doc(client, uri)


# -- definition, symbols, formatting, completion ------------------------------------------


async def definition_of(client, uri, position) -> types.Location | None:
    return await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position))


async def test_go_to_definition_of_imports_overrides_and_rule_ids(client, workspace):
    text = (workspace / "enterprise.spec").read_text(encoding="utf-8")
    uri = open_doc(client, workspace / "enterprise.spec")
    await diagnostics(client, uri)
    loc = await definition_of(client, uri, pos(text, 'extends "./assistant.spec"', 10))
    assert loc.uri == (workspace / "assistant.spec").as_uri() and loc.range.start.line == 0
    loc = await definition_of(client, uri, pos(text, "import std.privacy", 9))
    assert loc.uri.endswith("/stdlib/privacy.spec")
    loc = await definition_of(client, uri, pos(text, "override return_window", 10))
    base = (workspace / "assistant.spec").read_text(encoding="utf-8").split("\n")
    assert loc.uri == (workspace / "assistant.spec").as_uri()
    assert base[loc.range.start.line][loc.range.start.character:].startswith("return_window")
    loc = await definition_of(client, uri, pos(text, "remove greet_by_name", 8))
    assert loc.uri == (workspace / "tone.spec").as_uri() or loc.uri == (workspace / "assistant.spec").as_uri()
    close_doc(client, uri)


async def test_document_symbols_nest_sections_rules_and_axes(client, workspace):
    uri = open_doc(client, workspace / "assistant.spec")
    await diagnostics(client, uri)
    syms = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    top = {s.name: s for s in syms}
    assert {"persona", "tactic", "accounts"} <= set(top)
    assert top["persona"].kind == types.SymbolKind.Enum
    accounts = {c.name: c for c in top["accounts"].children}
    assert accounts["verification"].kind == types.SymbolKind.Namespace
    assert [c.name for c in accounts["verification"].children][:1] == ["verify_before_account_changes"]
    close_doc(client, uri)


async def format_doc(client, uri):
    return await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        options=types.FormattingOptions(tab_size=2, insert_spaces=True)))


async def test_formatting_is_specc_fmt_and_refuses_a_file_that_does_not_parse(client, workspace):
    from specc.syntax.fmt import format_text

    messy = 'spec demo.fmt version "1.0.0"\n"""Doc."""\nrule a { must "Be brief."   check max_words(50) }\n'
    path = workspace / "messy.spec"
    path.write_text(messy, encoding="utf-8")
    uri = open_doc(client, path)
    await diagnostics(client, uri)
    edits = await format_doc(client, uri)
    assert len(edits) == 1 and edits[0].new_text == format_text(messy)[0]
    change_doc(client, uri, edits[0].new_text)
    await diagnostics(client, uri)
    assert not await format_doc(client, uri)  # already canonical: no edits
    change_doc(client, uri, messy.replace("}", ""))
    await diagnostics(client, uri)
    with pytest.raises(Exception, match="not formatted: fix the syntax errors first"):
        await format_doc(client, uri)
    close_doc(client, uri)


async def complete(client, uri, position) -> list[types.CompletionItem]:
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position))
    return result.items


async def test_completion_offers_what_fits_the_cursor(client, workspace):
    from specc import language

    text = ('spec demo.complete version "1.0.0"\n  """Doc."""\n\nimport \n\nrule a {\n  must "Be brief."\n'
            '  authority \n  severity \n  check \n  \n}\n\n')
    path = workspace / "complete.spec"
    path.write_text(text, encoding="utf-8")
    uri = open_doc(client, path)
    await diagnostics(client, uri)
    labels = lambda items: [i.label for i in items]  # noqa: E731
    assert "std.privacy" in labels(await complete(client, uri, pos(text, "import ", 7)))
    assert labels(await complete(client, uri, pos(text, "authority ", 10))) == [
        "root", "system", "developer", "user", "guideline"]
    assert labels(await complete(client, uri, pos(text, "severity ", 9))) == ["critical", "high", "medium", "low"]
    checks = {i.label: i for i in await complete(client, uri, pos(text, "check ", 6))}
    assert set(language.PREDICATE_NAMES) <= set(checks)
    assert checks["max_words"].insert_text == "max_words(${1:n})"
    assert checks["refuses"].insert_text is None
    in_rule = labels(await complete(client, uri, pos(text, "  \n}", 2)))
    assert set(language.FIELD_WORDS) <= set(in_rule) and "rule" not in in_rule
    top = labels(await complete(client, uri, types.Position(line=len(text.split("\n")) - 1, character=0)))
    assert top == list(language.DECLARATIONS)
    close_doc(client, uri)


# -- robustness ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,text,code", [(n, *case) for n, case in enumerate([
    ('spec demo.half version "1.0.0"\n\nrule a {\n  must "Be', "E103"),  # half-typed, an open string
    ('spec demo.half version "1.0.0"\n\nrule a {\n  must "Be brief."\n  chec', "E101"),
    ("", "E104"),
    ('spec demo.half version "1.0.0"\nrule a {\n  must """never closed\n', "E103"),
])])
async def test_a_half_typed_file_gets_diagnostics_and_the_server_keeps_answering(client, workspace, n, text, code):
    path = workspace / f"half{n}.spec"  # its own file: a closed one's last (empty) diagnostics may still come
    path.write_text(text, encoding="utf-8")
    uri = open_doc(client, path)
    assert code in {d.code for d in await diagnostics(client, uri)}
    for line in range(text.count("\n") + 2):  # every request still answers (or errs), none crashes it
        await hover_text(client, uri, types.Position(line=line, character=3))
        await complete(client, uri, types.Position(line=line, character=3))
        await definition_of(client, uri, types.Position(line=line, character=3))
    close_doc(client, uri)


def _slow_to_check(n_rules: int = 500, errors: int = 30) -> tuple[str, str]:
    """A generated spec, and the same with an opening quote dropped in ``errors`` statements spread
    over it: each syntax error costs the parser's error recovery a parse of the whole text, so the
    broken text takes seconds to check (an editor's unclosed quotes, many at once)."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from frontend import generate
    finally:
        sys.path.pop(0)
    text = generate(n_rules)
    lines = text.split("\n")
    statements = [i for i, line in enumerate(lines) if line.lstrip().startswith(("must", "should"))]
    for i in statements[::len(statements) // errors][:errors]:
        lines[i] = lines[i].replace(' "', " ", 1)
    return text, "\n".join(lines)


SLOW_WAIT_S = 120  # a broken file's check on a loaded machine


async def published_version(client: LanguageClient, uri: str, version: int) -> None:
    async with asyncio.timeout(SLOW_WAIT_S):
        while _published_version.get(uri) != version:
            await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)


async def test_hover_answers_from_the_last_check_while_a_slow_check_runs(client, workspace):
    text, broken = _slow_to_check()
    path = workspace / "slow_hover.spec"
    path.write_text(text, encoding="utf-8")
    uri = open_doc(client, path)
    await published_version(client, uri, 1)
    rule = pos(text, "rule r250", len("rule r"))
    assert "r250" in await hover_text(client, uri, rule)
    change_doc(client, uri, broken)
    t0 = asyncio.get_running_loop().time()
    await asyncio.sleep(0.3)  # past the pause (0.15 s): the broken text is being checked
    asked = asyncio.get_running_loop().time()
    value = await hover_text(client, uri, rule)
    hover_s = asyncio.get_running_loop().time() - asked
    assert _published_version.get(uri) == 1  # answered before the check of version 2 was done
    await published_version(client, uri, 2)
    check_s = asyncio.get_running_loop().time() - t0
    assert "r250" in value  # from the last check, whose spec had no errors
    assert {d.code for d in client.diagnostics[uri]} == {"E101"}
    # the point is that it did not wait for the check; a loaded machine may slow both
    assert hover_s < check_s / 3, (hover_s, check_s)
    close_doc(client, uri)


async def test_diagnostics_of_a_text_edited_while_it_was_checked_are_never_published(client, workspace):
    text, broken = _slow_to_check()
    path = workspace / "slow_stale.spec"
    path.write_text(text, encoding="utf-8")
    uri = open_doc(client, path)
    await published_version(client, uri, 1)
    first = list(client.diagnostics[uri])
    start = len(published)
    change_doc(client, uri, broken)  # version 2: seconds to check
    await asyncio.sleep(0.3)  # past the pause (0.15 s): its check runs
    change_doc(client, uri, text)  # version 3, the text of version 1 again, while 2 is checked
    await published_version(client, uri, 3)
    await asyncio.sleep(0.5)  # anything late would come now
    versions = [v for u, v, _ in published[start:] if u == uri]
    assert versions == [3], versions  # 2's check finished after 3 came: dropped, never published
    assert list(client.diagnostics[uri]) == first
    close_doc(client, uri)


async def test_unknown_documents_get_an_error_not_a_crash(client, workspace):
    missing = (workspace / "nowhere.spec").as_uri()
    with pytest.raises(Exception, match="cannot read"):
        await hover_text(client, missing, types.Position(line=0, character=0))
    with pytest.raises(Exception):
        await format_doc(client, "untitled:Untitled-1")
    # and the server still works
    uri = open_doc(client, workspace / "tone.spec")
    assert await diagnostics(client, uri) is not None
    close_doc(client, uri)


async def test_a_file_deleted_under_the_server_becomes_a_diagnostic(client, workspace):
    lib = workspace / "gone.spec"
    lib.write_text('spec demo.gone version "1.0.0"\n  """Gone."""\n\nrule a {\n  must "Be kind."\n'
                   '  check not refuses\n}\n', encoding="utf-8")
    app = workspace / "uses_gone.spec"
    app.write_text('spec demo.uses version "1.0.0"\n  """Uses."""\n\nimport "./gone.spec"\n', encoding="utf-8")
    uri = open_doc(client, app)
    assert await diagnostics(client, uri) == []
    lib.unlink()
    client.diagnostics.pop(uri, None)
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri=lib.as_uri(), type=types.FileChangeType.Deleted)]))
    got = await diagnostics(client, uri)
    assert [(d.code, d.message) for d in got] == [("E201", "no such spec file: gone.spec")]
    close_doc(client, uri)


async def test_an_import_created_after_the_check_is_picked_up(client, workspace):
    app = workspace / "uses_later.spec"
    app.write_text('spec demo.later version "1.0.0"\n  """Later."""\n\nimport "./later.spec"\n', encoding="utf-8")
    uri = open_doc(client, app)
    assert [d.code for d in await diagnostics(client, uri)] == ["E201"]
    later = workspace / "later.spec"
    later.write_text('spec demo.lib2 version "1.0.0"\n  """Lib."""\n\nrule a {\n  must "Be kind."\n'
                     '  check not refuses\n}\n', encoding="utf-8")
    client.diagnostics.pop(uri, None)
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri=later.as_uri(), type=types.FileChangeType.Created)]))
    assert await diagnostics(client, uri) == []
    close_doc(client, uri)


async def test_find_references_of_a_rule_lists_its_declaration_and_its_overrides(client, workspace):
    text = (workspace / "enterprise.spec").read_text(encoding="utf-8")
    uri = open_doc(client, workspace / "enterprise.spec")
    await diagnostics(client, uri)
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(text, "override return_window", 10),
        context=types.ReferenceContext(include_declaration=True)))
    where = sorted((Path(r.uri[len("file://"):]).name, r.range.start.line) for r in refs)
    base = (workspace / "assistant.spec").read_text(encoding="utf-8")
    assert where == [("assistant.spec", pos(base, "rule return_window").line),
                     ("enterprise.spec", pos(text, "override return_window").line)]
    close_doc(client, uri)


AXES = '''spec demo.axes version "1.0.0"
  """Axes in three scopes."""

axis tactic = [direct, roleplay]
axis persona = [buyer]

section billing "Billing" {
  axis tactic = [hypothetical]
  rule refunds {
    must "Explain the refund policy."
    axis tactic = [obfuscated]
    axis mood = [calm]
  }
}
'''


async def test_go_to_definition_of_an_axis_is_the_declaration_it_overrides(client, workspace):
    path = workspace / "axes.spec"
    path.write_text(AXES, encoding="utf-8")
    uri = open_doc(client, path)
    await diagnostics(client, uri)
    lines = AXES.split("\n")

    async def line_of(needle: str, offset: int) -> int:
        loc = await definition_of(client, uri, pos(AXES, needle, offset))
        assert loc.uri == uri and lines[loc.range.start.line][loc.range.start.character:].startswith(
            needle.split()[1])
        return loc.range.start.line

    # the rule's axis overrides its section's, the section's the spec's; the spec's is the outermost
    assert await line_of("axis tactic = [obfuscated]", 6) == pos(AXES, "axis tactic = [hypothetical]").line
    assert await line_of("axis tactic = [hypothetical]", 6) == pos(AXES, "axis tactic = [direct").line
    assert await line_of("axis tactic = [direct", 6) == pos(AXES, "axis tactic = [direct").line
    assert await line_of("axis mood", 6) == pos(AXES, "axis mood").line
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(AXES, "axis tactic = [obfuscated]", 6),
        context=types.ReferenceContext(include_declaration=True)))
    assert sorted(r.range.start.line for r in refs) == [pos(AXES, f"axis tactic = [{v}").line
                                                        for v in ("direct", "hypothetical", "obfuscated")]
    close_doc(client, uri)


async def test_an_axis_of_a_derived_spec_leads_to_the_base_specs_axis(client, workspace):
    text = (workspace / "enterprise.spec").read_text(encoding="utf-8")
    base = (workspace / "assistant.spec").read_text(encoding="utf-8")
    uri = open_doc(client, workspace / "enterprise.spec")
    await diagnostics(client, uri)
    loc = await definition_of(client, uri, pos(text, "axis persona", 6))
    assert loc.uri == (workspace / "assistant.spec").as_uri()
    assert loc.range.start == pos(base, "axis persona", 5)
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=pos(text, "axis persona", 6),
        context=types.ReferenceContext(include_declaration=True)))
    assert sorted((Path(r.uri[len("file://"):]).name, r.range.start.line) for r in refs) == [
        ("assistant.spec", pos(base, "axis persona").line), ("enterprise.spec", pos(text, "axis persona").line)]
    close_doc(client, uri)


async def test_closing_an_imported_file_rechecks_its_readers_with_the_file_on_disk(client, workspace):
    lib_text = ('spec demo.lib3 version "1.0.0"\n  """Lib."""\n\nrule a {\n  must "Be kind."\n'
                '  check not refuses\n}\n')
    (workspace / "lib3.spec").write_text(lib_text, encoding="utf-8")
    app = workspace / "app3.spec"
    app.write_text('spec demo.app3 version "1.0.0"\n  """App."""\n\nextends "./lib3.spec"\n\nremove a\n',
                   encoding="utf-8")
    app_uri = open_doc(client, app)
    assert await diagnostics(client, app_uri) == []
    client.diagnostics.pop(app_uri, None)
    lib_uri = open_doc(client, workspace / "lib3.spec", lib_text.replace("rule a", "rule b"))  # not saved
    assert [d.code for d in await diagnostics(client, app_uri)] == ["E206"]
    client.diagnostics.pop(app_uri, None)
    close_doc(client, lib_uri)  # the edit is dropped: app3.spec reads the file on disk again
    assert await diagnostics(client, app_uri) == []
    close_doc(client, app_uri)


async def test_an_import_cycle_is_a_diagnostic_not_a_hang(client, workspace):
    (workspace / "cyc_a.spec").write_text('spec demo.a version "1.0.0"\n  """A."""\n\nimport "./cyc_b.spec"\n',
                                          encoding="utf-8")
    (workspace / "cyc_b.spec").write_text('spec demo.b version "1.0.0"\n  """B."""\n\nimport "./cyc_a.spec"\n',
                                          encoding="utf-8")
    uri = open_doc(client, workspace / "cyc_a.spec")
    await diagnostics(client, uri)
    b = await diagnostics(client, (workspace / "cyc_b.spec").as_uri())
    assert [(d.code, d.message) for d in b] == [
        ("E203", "import cycle: cyc_a.spec -> cyc_b.spec -> cyc_a.spec")]
    close_doc(client, uri)


async def test_malformed_json_rpc_gets_an_error_and_the_server_goes_on(workspace):
    """Bytes that are not JSON, a message that is no request, then a valid request: the server says
    so and answers the request (a plain process: a real client sends no such bytes)."""
    import subprocess

    def frame(body: bytes) -> bytes:
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {}}}).encode()
    exit_ = json.dumps({"jsonrpc": "2.0", "method": "exit"}).encode()
    p = subprocess.run([sys.executable, "-c", "from specc.cli import main; main()", "lsp"], env=_ENV,
                       input=frame(b"{not json") + frame(b'{"jsonrpc": "2.0", "id": 7}') + frame(init) + frame(exit_),
                       capture_output=True, timeout=60)
    assert p.returncode == 0  # it ran until `exit`
    assert b'"method": "window/showMessage"' in p.stdout and b"Error in server" in p.stdout  # told the client
    assert b'"id": 1' in p.stdout and b'"capabilities"' in p.stdout  # and answered the next request


async def test_a_buffer_over_the_size_limit_is_refused_as_check_refuses_the_file(workspace):
    """E501, with the message `specc check` gives a file of that size (in-process: 64 MiB over stdio
    would be a slow test)."""
    from specc.files import MAX_SPEC_BYTES
    from specc.lsp import analysis

    path = workspace / "huge.spec"
    big = 'spec demo.huge version "1.0.0"\n' + "# padding\n" * (MAX_SPEC_BYTES // 10 + 1)
    checked = analysis.check(path, workspace, {os.path.realpath(path): big})
    assert [(d.code, d.message) for d in checked.result.diagnostics] == [
        ("E501", f"cannot read huge.spec: larger than the limit of 64 MiB for a spec file "
                 f"({len(big.encode())} bytes)")]


async def test_a_code_lens_above_each_rule_counts_its_plan_as_specc_plan_does(client, workspace, monkeypatch):
    from click.testing import CliRunner

    from specc.cli import main

    text = (workspace / "enterprise.spec").read_text(encoding="utf-8")
    uri = open_doc(client, workspace / "enterprise.spec")
    await diagnostics(client, uri)
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    lines = text.split("\n")
    anchored = {lines[lens.range.start.line].split()[1]: lens for lens in lenses}
    assert {"return_window", "negotiated_prices_confidential"} <= set(anchored)  # an override and a rule
    assert not any(lines[lens.range.start.line].startswith("remove") for lens in lenses)
    resolved = await client.code_lens_resolve_async(anchored["return_window"])
    monkeypatch.chdir(workspace)
    row = next(line.split() for line in CliRunner().invoke(
        main, ["plan", "enterprise.spec", "--rule", "acme.support.return_window"]).stdout.split("\n")
        if line.strip().startswith("acme.support.return_window"))
    violation, lookalike, conflict, total = row[1:]
    assert resolved.command.title == (f"plan: {total} scenarios ({violation} violation, {lookalike} lookalike, "
                                      f"{conflict} conflict)")
    close_doc(client, uri)


async def test_workspace_symbols_cover_the_open_specs_and_what_they_read(client, workspace):
    uri = open_doc(client, workspace / "enterprise.spec")
    await diagnostics(client, uri)
    found = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="return"))
    where = {(s.name, Path(s.location.uri[len("file://"):]).name, s.container_name) for s in found}
    assert ("return_window", "assistant.spec", "acme.support.orders.refunds") in where  # read through `extends`
    assert ("return_window", "enterprise.spec", "acme.enterprise") in where  # its override
    close_doc(client, uri)


async def test_completion_of_axis_names_and_values(client, workspace):
    text = (workspace / "enterprise.spec").read_text(encoding="utf-8").replace(
        "override return_window {", 'override return_window {\n  axis \n  axis persona = ["angry customer", ', 1)
    path = workspace / "axes.spec"
    path.write_text((workspace / "enterprise.spec").read_text(encoding="utf-8").replace(
        "acme.enterprise", "acme.axes"), encoding="utf-8")
    uri = open_doc(client, path)  # the saved file checks: the axes come from its spec
    await diagnostics(client, uri)
    change_doc(client, uri, text.replace("acme.enterprise", "acme.axes"))
    text = text.replace("acme.enterprise", "acme.axes")
    names = {i.label for i in await complete(client, uri, pos(text, "  axis \n", 7))}
    assert {"persona", "tactic", "channel"} <= names
    values = [i.label for i in await complete(client, uri, pos(text, '"angry customer", ', 18))]
    assert '"angry customer"' in values and "journalist" in values  # a name bare, a string quoted
    close_doc(client, uri)


async def test_without_the_extra_specc_lsp_says_what_to_install(monkeypatch):
    from click.testing import CliRunner

    from specc.cli import main

    monkeypatch.delitem(sys.modules, "specc.lsp.server", raising=False)
    monkeypatch.setitem(sys.modules, "lsprotocol", None)  # as if it were not installed
    r = CliRunner().invoke(main, ["lsp"])
    assert r.exit_code == 3
    assert r.stderr == "specc lsp needs the lsp extra: pip install 'specc[lsp]' (no module lsprotocol)\n"


async def test_neovims_client_gets_the_diagnostics_and_a_hover(workspace, tmp_path, monkeypatch):
    """A real editor's client: Neovim's built-in one (Debian's package), headless, against `specc lsp`."""
    import shutil as sh
    import subprocess

    nvim = sh.which("nvim")
    if nvim is None:
        if os.environ.get("CI"):
            pytest.fail("nvim is missing; under CI this test must run (.ci/run installs Debian's neovim)")
        pytest.skip("needs nvim (apt-get install neovim)")
    path = workspace / "nvim.spec"
    path.write_text(BROKEN.replace("demo.broken", "demo.nvim"), encoding="utf-8")
    out = tmp_path / "nvim.json"
    cmd = [sys.executable, "-c", "from specc.cli import main; main()", "lsp"]
    env = {**_ENV, "SPEC_OUT": str(out), "SPEC_FILE": str(path), "SPEC_CMD": json.dumps(cmd),
           "SPEC_LINE": "5", "SPEC_COL": "3"}  # on `check`
    subprocess.run([nvim, "--headless", "-u", "NONE", "-i", "NONE", "-c", f"luafile {REPO / 'tests' / 'nvim_lsp.lua'}"],
                   cwd=workspace, env=env, timeout=60, check=True, capture_output=True)
    got = json.loads(out.read_text(encoding="utf-8"))
    assert got["error"] is None
    want = check_json(workspace, "nvim.spec", monkeypatch)
    assert sorted((d["code"], d["message"], d["range"]["start"]["line"]) for d in got["diagnostics"]) == sorted(
        (w["code"], w["message"], w["span"]["start_line"] - 1) for w in want)
    assert got["hover"].startswith("**field** `check`")
