"""Language-server benchmark: `specc lsp` as a subprocess, driven by a real client (pygls's) over stdio.

A generated spec of ``--rules`` rules (default 5,000; ``bench/frontend.py``'s generator) is opened;
then one character is typed in a statement in the middle of the file and the time until the
server publishes that version's diagnostics is measured (the 0.15 s pause after a keystroke
included), ``--edits`` times; then as many line breaks before that statement (each moves every
later rule down a line); then a quote typed that is never closed (a syntax error: the file is
parsed again with error recovery, seconds), with a hover asked every 0.1 s while it is checked,
and the quote deleted again. Hover on a rule's name and completion at the start of a line inside
a rule, in the middle of the file, are timed ``--requests`` times each.

    python bench/lsp.py                    # 5,000 rules
    python bench/lsp.py --rules 500 --format json

Then, in this process, the check behind those diagnostics is timed both ways on the same edits:
from scratch (as ``specc check`` does) and incrementally (with the ``RuleCache`` the server keeps
per open spec, which parses and lowers only the rule blocks that changed), alternating, the median
of ``--repeats`` for each kind of edit: a character typed in a statement, and a line break typed
before a field (every later rule moves down a line). The ratio of the two is what a loaded
machine changes least.

    python bench/lsp.py --no-client        # the in-process comparison only

Targets: diagnostics after an edit within 1 s; hover and completion within 100 ms (the slowest of
the runs). Exit 1 if one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frontend import generate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TARGET_EDIT_S = 1.0
TARGET_REQUEST_S = 0.1


async def run(n_rules: int, edits: int, requests: int) -> dict:
    text = generate(n_rules)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "big.spec"
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        lines = text.split("\n")
        middle = len(lines) // 2
        rule_line = next(i for i in range(middle, len(lines)) if lines[i].lstrip().startswith("rule "))
        stmt_line = next(i for i in range(rule_line, len(lines)) if lines[i].lstrip().startswith(("must", "should")))
        name_col = lines[rule_line].index("rule ") + 6
        quote_col = lines[stmt_line].index('"') + 1

        published: dict[int | None, float] = {}
        client = LanguageClient("bench", "1")

        @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            if params.uri == uri:
                published[params.version] = time.perf_counter()

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        await client.start_io(sys.executable, "-c", "from specc.cli import main; main()", "lsp", env=env)
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(),
                                                             root_uri=root.as_uri()))
        client.initialized(types.InitializedParams())

        async def wait_for(version: int) -> float:
            while version not in published:
                await asyncio.sleep(0.002)
            return published[version]

        t0 = time.perf_counter()
        client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri=uri, language_id="spec", version=1, text=text)))
        # the open publishes without a version: wait for any publish
        while not published:
            await asyncio.sleep(0.002)
        open_s = time.perf_counter() - t0

        edit_s = []
        for k in range(edits):
            version = k + 2
            at = types.Position(line=stmt_line, character=quote_col + k)
            t0 = time.perf_counter()
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text="x")]))
            edit_s.append(await wait_for(version) - t0)
        line_s = []  # a line break typed before a field: every later rule moves down a line
        for k in range(edits):
            version = edits + k + 2
            at = types.Position(line=stmt_line, character=0)
            t0 = time.perf_counter()
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text="\n")]))
            line_s.append(await wait_for(version) - t0)

        # a quote typed at the start of the statement's line (a blank line, after the line breaks
        # above): the string it opens is never closed, so
        # the whole file is parsed again with error recovery (seconds); hovers asked meanwhile, one
        # after another, a tenth of a second apart (as a user moves the mouse), from the pause's end
        # until that version's diagnostics come; then the quote deleted again
        doc = types.TextDocumentIdentifier(uri=uri)
        end = types.Position(line=stmt_line, character=0)
        hover_at = types.Position(line=rule_line, character=name_col)
        version = 2 * edits + 2
        t0 = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=end, end=end), text='"')]))
        await asyncio.sleep(0.2)
        hover_while_s = []
        while version not in published:
            t1 = time.perf_counter()
            await client.text_document_hover_async(types.HoverParams(text_document=doc, position=hover_at))
            hover_while_s.append(time.perf_counter() - t1)
            if len(hover_while_s) >= 1000:
                break
            await asyncio.sleep(0.1)
        broken_s = await wait_for(version) - t0
        hover_while_s = hover_while_s[:-1] or hover_while_s  # the last may have come after the publish
        after = types.Position(line=stmt_line, character=end.character + 1)
        t0 = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version + 1),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=end, end=after), text="")]))
        fixed_s = await wait_for(version + 1) - t0

        async def timed(call) -> list[float]:
            out = []
            for _ in range(requests):
                t0 = time.perf_counter()
                result = await call()
                out.append(time.perf_counter() - t0)
                assert result, "the request answered nothing"
            return out

        hover_s = await timed(lambda: client.text_document_hover_async(types.HoverParams(
            text_document=doc, position=types.Position(line=rule_line, character=name_col))))
        completion_s = await timed(lambda: client.text_document_completion_async(types.CompletionParams(
            text_document=doc, position=types.Position(line=stmt_line + 1, character=0))))
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    return {"rules": n_rules, "bytes": len(text.encode()), "open_s": open_s,
            "edit_s": edit_s, "line_edit_s": line_s, "broken_edit_s": broken_s, "hover_while_checking_s": hover_while_s,
            "fixed_edit_s": fixed_s, "hover_s": hover_s, "completion_s": completion_s}


def compare(n_rules: int, repeats: int) -> dict:
    """Seconds of ``analysis.check`` after an edit, from scratch and with the server's cache."""
    from specc.ir.resolve import RuleCache
    from specc.lsp import analysis

    text = generate(n_rules)
    lines = text.split("\n")
    rule_line = next(i for i in range(len(lines) // 2, len(lines)) if lines[i].lstrip().startswith("rule "))
    stmt_line = next(i for i in range(rule_line, len(lines)) if lines[i].lstrip().startswith(("must", "should")))
    quote_col = lines[stmt_line].index('"') + 1

    def typed(text: str, k: int, kind: str) -> str:
        ls = text.split("\n")
        line = ls[stmt_line]
        ls[stmt_line] = line[:quote_col + k] + "x" + line[quote_col + k:] if kind == "char" else "\n" + line
        return "\n".join(ls)

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "big.spec"
        path.write_text(text, encoding="utf-8")
        key = os.path.realpath(path)
        analysis.check(path, root, {key: text})  # the grammar compiled, the regexes cached
        for kind in ("char", "line"):
            cache = RuleCache()
            analysis.check(path, root, {key: text}, cache)  # the open
            current = text
            scratch, cached = [], []
            for k in range(repeats):
                current = typed(current, k, kind)
                diagnostics = {}
                for c in (None, cache) if k % 2 == 0 else (cache, None):  # alternate which goes first
                    t0 = time.perf_counter()
                    checked = analysis.check(path, root, {key: current}, c)
                    (scratch if c is None else cached).append(time.perf_counter() - t0)
                    diagnostics[c is None] = checked.result.diagnostics
                if diagnostics[True] != diagnostics[False]:
                    raise AssertionError("the incremental check's diagnostics differ from the check from scratch")
            out[kind] = {"scratch_s": scratch, "cached_s": cached, "diagnostics": len(diagnostics[True]),
                         "ratio": statistics.median(scratch) / statistics.median(cached)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=int, default=5_000)
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=7, help="edits of each kind in the in-process comparison")
    ap.add_argument("--no-client", action="store_true", help="only the in-process comparison")
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args(argv)
    r = {} if args.no_client else asyncio.run(run(args.rules, args.edits, args.requests))
    cmp = compare(args.rules, args.repeats)
    ok = {} if args.no_client else {
        "edit": max(r["edit_s"] + r["line_edit_s"] + [r["fixed_edit_s"]]) <= TARGET_EDIT_S,
        "hover": max(r["hover_s"] + r["hover_while_checking_s"]) <= TARGET_REQUEST_S,
        "completion": max(r["completion_s"]) <= TARGET_REQUEST_S}
    if args.format == "json":
        print(json.dumps({**r, "check": cmp, "ok": ok, "python": platform.python_version(),
                          "cpus": os.cpu_count(), "load": os.getloadavg()}, indent=2))
        return 0 if all(ok.values()) else 1
    print(f"specc lsp, {args.rules:,} rules, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if not args.no_client:
        print(f"  real client over stdio ({r['bytes'] / 1e6:.1f} MB)")
        print(f"  open -> diagnostics        {r['open_s']:.3f} s")
        print(f"  unclosed quote -> diagnostics {r['broken_edit_s']:.3f} s (a check from scratch; no target)")
        xs = r["hover_while_checking_s"]
        print(f"  hover during that check    median {statistics.median(xs) * 1000:7.1f} ms, max {max(xs) * 1000:7.1f} ms, "
              f"{len(xs)} hovers (target {TARGET_REQUEST_S * 1000:.0f} ms){'' if max(xs) <= TARGET_REQUEST_S else '  MISSED'}")
        print(f"  quote deleted -> diagnostics {r['fixed_edit_s'] * 1000:7.1f} ms (target {TARGET_EDIT_S * 1000:.0f} ms)"
              f"{'' if r['fixed_edit_s'] <= TARGET_EDIT_S else '  MISSED'}")
        for name, key, target in (("edit -> diagnostics", "edit_s", TARGET_EDIT_S),
                                  ("line break -> diagnostics", "line_edit_s", TARGET_EDIT_S),
                                  ("hover", "hover_s", TARGET_REQUEST_S),
                                  ("completion", "completion_s", TARGET_REQUEST_S)):
            xs = r[key]
            print(f"  {name:<26} median {statistics.median(xs) * 1000:7.1f} ms, max {max(xs) * 1000:7.1f} ms "
                  f"(target {target * 1000:.0f} ms){'' if max(xs) <= target else '  MISSED'}")
    print(f"  the check after an edit, in process ({args.repeats} edits of each kind, medians)")
    for kind, label in (("char", "a character in a statement"), ("line", "a line break before a field")):
        c = cmp[kind]
        print(f"  {label:<30} from scratch {statistics.median(c['scratch_s']) * 1000:6.0f} ms, "
              f"incremental {statistics.median(c['cached_s']) * 1000:6.0f} ms, {c['ratio']:.1f}x "
              f"({c['diagnostics']} diagnostics, the same both ways)")
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
