"""``specc lsp``: the language server over stdio (pygls 2), wiring :mod:`specc.lsp.analysis`
to the protocol.

Every open spec is checked as ``specc check`` would check it from the workspace root, with the
editor's unsaved buffers in place of the files on disk. A change is checked after a short pause
(:data:`DEBOUNCE_S`), and so is every open spec that read the changed file. A file's published
diagnostics are those of every open spec's check that read it, each once.

Checks run in a worker thread, one at a time, and requests are answered on the event loop
meanwhile from the last finished check: a check that takes seconds (a syntax error in a large
file is parsed again with error recovery) delays no hover or completion. A check's result is
dropped, never published, if a file it read changed while it ran; the newer text is checked next.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from specc import __version__
from specc.diagnostics import CODES, Diagnostic, Span, anchor, dedupe
from specc.files import MAX_SPEC_BYTES
from specc.ir.model import Spec
from specc.ir.resolve import RuleCache
from specc.lsp import analysis
from specc.resources import diagnostics_doc

REQUEST_FAILED = -32803  # LSP's RequestFailed: the request was valid, and it could not be done
DEBOUNCE_S = 0.15  # a burst of keystrokes is checked once, after it
SWITCH_INTERVAL_S = 0.001
logger = logging.getLogger(__name__)

_SYMBOL_KINDS = {
    "section": types.SymbolKind.Namespace, "rule": types.SymbolKind.Function, "default": types.SymbolKind.Property,
    "override": types.SymbolKind.Method, "remove": types.SymbolKind.Null, "axis": types.SymbolKind.Enum,
}
_COMPLETION_KINDS = {
    "keyword": types.CompletionItemKind.Keyword, "predicate": types.CompletionItemKind.Function,
    "value": types.CompletionItemKind.EnumMember, "module": types.CompletionItemKind.Module,
    "axis": types.CompletionItemKind.Enum,
}


class SpecServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("specc", __version__)
        self.checked: dict[Path, analysis.Checked] = {}  # open spec -> its latest check
        self.good: dict[Path, Spec] = {}  # open spec -> its latest spec without errors (for hover)
        self.published: dict[Path, list[Diagnostic]] = {}  # file -> what the client shows
        self._pending: dict[Path, asyncio.TimerHandle] = {}  # changed file -> its check, after the pause
        self.caches: dict[Path, RuleCache] = {}  # open spec -> what its next check can reuse
        self.edits = 0  # how many times a file's text changed
        self._changed_at: dict[str, int] = {}  # real path -> ``edits`` when it last changed
        self._dirty: set[Path] = set()  # changed files whose readers are to be checked
        self._checking: asyncio.Future | None = None  # the loop of checks, while it runs
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="specc-check")

    # -- paths and positions ----------------------------------------------------------------
    @property
    def root(self) -> Path:
        root = self.workspace.root_path
        return Path(root) if root else Path.cwd()

    def text_of(self, path: Path) -> str | None:
        uri = from_fs_path(str(path))
        doc = self.workspace.text_documents.get(uri) if uri else None
        if doc is not None:
            return doc.source
        try:
            from specc.files import read_spec

            return read_spec(path)
        except (OSError, UnicodeDecodeError):
            return None

    def buffers(self) -> dict[str, str]:
        out = {}
        for uri, doc in self.workspace.text_documents.items():
            fs = to_fs_path(uri)
            if fs:
                out[os.path.realpath(fs)] = doc.source
        return out

    def to_client(self, text: str | None, line: int, col: int) -> types.Position:
        lines = _lines(text or "")
        if line >= len(lines):
            return types.Position(line=max(line, 0), character=max(col, 0))
        return self.workspace.position_codec.position_to_client_units(
            lines, types.Position(line=max(line, 0), character=max(col, 0)))

    def span_range(self, span: Span, text: str | None) -> types.Range:
        return types.Range(start=self.to_client(text, *analysis.span_start(span)),
                           end=self.to_client(text, *analysis.span_end(span)))

    def document(self, uri: str) -> tuple[Path, str]:
        """The file and text of a document a request names; an LSP error for one that cannot be read."""
        fs = to_fs_path(uri)
        if not fs:
            raise JsonRpcInvalidParams(f"not a file: {uri}")
        path = Path(fs)
        text = self.text_of(path)
        if text is None:
            raise JsonRpcInvalidParams(f"cannot read {uri}: not open and not a readable spec file")
        return path, text

    def server_position(self, text: str, pos: types.Position) -> tuple[int, int]:
        lines = _lines(text)
        if not lines or pos.line >= len(lines):
            return pos.line, pos.character
        p = self.workspace.position_codec.position_from_client_units(lines, pos)
        return p.line, p.character

    # -- checking ---------------------------------------------------------------------------
    # Checks run in one worker thread, one at a time, so that the loop goes on answering hovers
    # and completions from the last check meanwhile (an edit that breaks the syntax of a large
    # file takes seconds to check). A check reads a snapshot of the buffers taken on the loop;
    # its result is kept and published only if none of the files it read changed since, so
    # diagnostics of an older text never follow those of a newer one.
    def open_specs(self) -> set[Path]:
        return {Path(fs) for fs in map(to_fs_path, self.workspace.text_documents) if fs}

    def touched(self, path: Path) -> None:
        """A file's text changed (an edit, an open, a close, a change on disk): checks that read
        the text before are out of date."""
        self.edits += 1
        self._changed_at[os.path.realpath(path)] = self.edits

    def schedule(self, path: Path, delay: float = DEBOUNCE_S) -> None:
        old = self._pending.pop(path, None)
        if old is not None:
            old.cancel()
        self._pending[path] = asyncio.get_running_loop().call_later(delay, self._due, path)

    def _due(self, changed: Path) -> None:
        self._pending.pop(changed, None)
        self._dirty.add(changed)
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(self._check_dirty())

    def busy(self) -> bool:
        """Whether a check is waiting for its pause or running."""
        return bool(self._pending or self._dirty) or (self._checking is not None and not self._checking.done())

    async def _check_dirty(self) -> None:
        """Check the open specs that read a changed file (the file itself included), then publish;
        again while files changed meanwhile."""
        loop = asyncio.get_running_loop()
        while self._dirty:
            changed, self._dirty = self._dirty, set()
            real = {os.path.realpath(c) for c in changed}
            todo = sorted(p for p in self.open_specs()
                          if p in changed or any(os.path.realpath(f) in real for f in self.checked.get(p, _NONE).files))
            current = True
            for path in todo:
                buffers, seen = self.buffers(), self.edits
                cache = self.caches.setdefault(path, RuleCache())
                try:
                    checked = await loop.run_in_executor(self._worker, _check, path, self.root, buffers, cache)
                except Exception:  # a bug in the checker must not take the editor's server down
                    logger.exception("checking %s failed", path)
                    if self.caches.get(path) is cache:
                        del self.caches[path]  # whatever it holds, the next check starts afresh
                    continue
                if path not in self.open_specs():  # closed meanwhile: forget() saw to it
                    continue
                if any(self._changed_at.get(os.path.realpath(f), 0) > seen for f in checked.files):
                    current = False  # of a text that is no longer the buffer's: checked again,
                    if path not in self._pending:  # after the pause if the edit was to it
                        self._dirty.add(path)
                    continue
                self.checked[path] = checked
                if checked.result.spec is not None:
                    self.good[path] = checked.result.spec
            if current:
                try:
                    self.publish(changed)
                except Exception:  # a bug here must not stop the checks of later edits
                    logger.exception("publishing the diagnostics of %s failed", ", ".join(map(str, changed)))

    def publish(self, edited: set[Path] = frozenset()) -> None:
        """Publish what changed, and always the ``edited`` files' (their editor moved the old ones
        with the text)."""
        by_file: dict[Path, list[Diagnostic]] = {path: [] for path in self.checked}  # clean ones too
        for checked in self.checked.values():
            for path, diags in checked.by_file.items():
                by_file.setdefault(path, []).extend(diags)
        for path in set(self.published) - set(by_file):
            self._publish(path, [])
            del self.published[path]
        for path, diags in by_file.items():
            diags = dedupe(diags)
            if path in edited or self.published.get(path) != diags:
                self._publish(path, diags)
                self.published[path] = diags

    def _publish(self, path: Path, diags: list[Diagnostic]) -> None:
        uri = from_fs_path(str(path))
        if not uri:
            return
        text = self.text_of(path)
        texts: dict[Path, str | None] = {path: text}  # of the notes' files, each read once
        out = []
        for d in diags:
            related = []
            for msg, span in d.notes:
                if span is not None:
                    where = self._file_of(span.file)
                    if where not in texts:
                        texts[where] = self.text_of(where)
                    related.append(types.DiagnosticRelatedInformation(
                        location=types.Location(uri=from_fs_path(str(where)) or "",
                                                range=self.span_range(span, texts[where])),
                        message=msg))
            out.append(types.Diagnostic(
                range=self.span_range(d.span, text), message=d.message, code=d.code, source="specc",
                code_description=_code_description(d.code),
                severity=types.DiagnosticSeverity.Error if d.level == "error" else types.DiagnosticSeverity.Warning,
                related_information=related or None, data={"name": d.name}))
        doc = self.workspace.text_documents.get(uri)  # an open one: its version, the one that was checked
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, diagnostics=out, version=doc.version if doc is not None else None))

    def _file_of(self, display: str) -> Path:
        for checked in self.checked.values():
            if display in checked.paths:
                return checked.paths[display]
        return self.root / display

    def forget(self, path: Path) -> None:
        pending = self._pending.pop(path, None)
        if pending is not None:
            pending.cancel()
        self.checked.pop(path, None)
        self.good.pop(path, None)
        self.caches.pop(path, None)
        self.touched(path)
        self.schedule(path, 0)  # the specs that read its buffer read the file on disk now; publishes

    async def context(self, path: Path) -> analysis.Checked:
        """The latest check of ``path``; for an open spec not checked yet, its first check; for a
        spec not open, a check of it (in the worker, after the check that may be running)."""
        while path not in self.checked and path in self.open_specs() and self.busy():
            await asyncio.sleep(0.01)
        checked = self.checked.get(path)
        if checked is None:
            checked = await asyncio.get_running_loop().run_in_executor(
                self._worker, analysis.check, path, self.root, self.buffers())
        return checked


THAW_EVERY = 50  # checks between two chances for the collector to look at everything


def _check(path: Path, root: Path, buffers: dict[str, str], cache: RuleCache) -> analysis.Checked:
    """``analysis.check``, and then what is alive moved where the cyclic garbage collector does not
    look (``gc.freeze``). A 5,000-rule spec's check leaves ~500,000 objects alive (its trees,
    rules and caches); collected as young objects and again as old ones, they cost about as much
    as an incremental check itself (bench/README.md, lsp). They hold no reference cycles (a
    check leaves none; tests/test_lsp_incremental.py), so reference counting frees what the next
    checks drop; a cycle made elsewhere (the protocol's own objects) and frozen before it was
    collected would be kept, so every ``THAW_EVERY`` checks a full collection looks at all.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        checked = analysis.check(path, root, buffers, cache)
        if next(_CHECKS) % THAW_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()
        return checked
    finally:
        if enabled:
            gc.enable()


_CHECKS = itertools.count(1)


@functools.lru_cache(maxsize=None)
def _code_description(code: str) -> types.CodeDescription | None:
    """A link to the code's explanation: its heading in docs/diagnostics.md, as installed."""
    page = diagnostics_doc()
    if code not in CODES or not page.is_file():
        return None
    return types.CodeDescription(href=f"{page.as_uri()}#{anchor(CODES[code])}")


_lines = analysis.lines_of


class _Nothing:
    files: set = set()


_NONE = _Nothing()

server = SpecServer()


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: SpecServer, params: types.DidOpenTextDocumentParams) -> None:
    fs = to_fs_path(params.text_document.uri)
    if fs:
        ls.touched(Path(fs))
        ls.schedule(Path(fs), 0)  # at once: the first diagnostics should not wait


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: SpecServer, params: types.DidChangeTextDocumentParams) -> None:
    fs = to_fs_path(params.text_document.uri)
    if fs:
        ls.touched(Path(fs))
        ls.schedule(Path(fs))


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: SpecServer, params: types.DidSaveTextDocumentParams) -> None:
    fs = to_fs_path(params.text_document.uri)
    if fs:
        ls.schedule(Path(fs), 0)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: SpecServer, params: types.DidCloseTextDocumentParams) -> None:
    fs = to_fs_path(params.text_document.uri)
    if fs:
        ls.forget(Path(fs))


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched(ls: SpecServer, params: types.DidChangeWatchedFilesParams) -> None:
    for change in params.changes:  # a file created, changed or deleted on disk: recheck its readers
        fs = to_fs_path(change.uri)
        if fs:
            ls.touched(Path(fs))
            ls.schedule(Path(fs))


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: SpecServer, params: types.HoverParams) -> types.Hover | None:
    path, text = ls.document(params.text_document.uri)
    line, col = ls.server_position(text, params.position)
    checked = await ls.context(path)
    w = analysis.word_at(text, line, col)
    lines = _lines(text)
    value = None
    if w is not None:
        word, start, end = w
        value = analysis.code_hover(word) if _looks_like_code(word) else None
        if value is None and analysis.in_code(lines[line], start):
            tree = checked.tree(path)
            own = tree.header.id.value if tree is not None else None
            rule = analysis.rule_named(ls.good.get(path) or checked.result.spec, word, own)
            if rule is not None:
                value = analysis.rule_hover(rule, checked)
            else:
                value = analysis.keyword_hover(word)
    if value is None:  # on a diagnostic's span: what its code means
        here = [d for d in checked.by_file.get(path, []) if analysis.contains(d.span, line, col)]
        if here:
            value = "\n\n---\n\n".join(analysis.code_hover(c) or c for c in dict.fromkeys(d.code for d in here))
    if value is None:
        return None
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=value))


def _looks_like_code(word: str) -> bool:
    return len(word) == 4 and word[0] in "EWQewq" and word[1:].isdigit()


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
async def definition(ls: SpecServer, params: types.DefinitionParams) -> types.Location | None:
    path, text = ls.document(params.text_document.uri)
    line, col = ls.server_position(text, params.position)
    checked = await ls.context(path)
    found = analysis.definition(checked, path, text, line, col, ls.good.get(path) or checked.result.spec)
    if found is None:
        return None
    target, span = found
    start = types.Position(line=0, character=0)
    rng = types.Range(start=start, end=start) if span is None else ls.span_range(span, ls.text_of(target))
    return types.Location(uri=from_fs_path(str(target)) or "", range=rng)


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
async def references(ls: SpecServer, params: types.ReferenceParams) -> list[types.Location]:
    path, text = ls.document(params.text_document.uri)
    line, col = ls.server_position(text, params.position)
    checked = await ls.context(path)
    found = analysis.references(checked, path, text, line, col, ls.good.get(path) or checked.result.spec)
    texts = {file: ls.text_of(file) for file in {file for file, _ in found}}
    return [types.Location(uri=from_fs_path(str(file)) or "", range=ls.span_range(span, texts[file]))
            for file, span in found]


@server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=True))
async def code_lens(ls: SpecServer, params: types.CodeLensParams) -> list[types.CodeLens]:
    """A lens above each rule the file declares or overrides; its count is worked out when the
    editor shows it (codeLens/resolve), one rule's plan at a time."""
    path, text = ls.document(params.text_document.uri)
    checked = await ls.context(path)
    if checked.result.spec is None:  # a spec with errors has no plan
        return []
    return [types.CodeLens(range=ls.span_range(Span(span.file, span.start_line, span.start_col,
                                                    span.start_line, span.start_col), text),
                           data={"uri": params.text_document.uri, "rule": rule_id})
            for rule_id, span in analysis.lens_anchors(checked, path, checked.result.spec)]


@server.feature(types.CODE_LENS_RESOLVE)
async def code_lens_resolve(ls: SpecServer, lens: types.CodeLens) -> types.CodeLens:
    data = lens.data or {}
    path, _ = ls.document(data.get("uri", ""))
    spec = (await ls.context(path)).result.spec
    title = analysis.plan_lens(spec, data["rule"]) if spec is not None else "plan: fix the errors first"
    lens.command = types.Command(title=title, command="")
    return lens


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def document_symbols(ls: SpecServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
    path, text = ls.document(params.text_document.uri)
    tree = (await ls.context(path)).tree(path)  # the check's own parse, where it is of this text
    if tree is None or tree.text != text:
        from specc.syntax.parser import parse

        tree, _ = parse(text, str(path)) if len(text) <= MAX_SPEC_BYTES else (None, [])
    if tree is None:
        return []

    def convert(s: analysis.Symbol) -> types.DocumentSymbol:
        return types.DocumentSymbol(
            name=s.name, detail=s.detail or None, kind=_SYMBOL_KINDS[s.kind],
            range=ls.span_range(s.span, text), selection_range=ls.span_range(s.name_span, text),
            children=[convert(c) for c in s.children] or None)

    out = [convert(s) for s in analysis.symbols(tree.items)]
    del convert  # a function that calls itself is a reference cycle: free it now (see _check)
    return out


@server.feature(types.WORKSPACE_SYMBOL)
def workspace_symbols(ls: SpecServer, params: types.WorkspaceSymbolParams) -> list[types.SymbolInformation]:
    """The symbols of every file the open specs read (their imports and bases included)."""
    trees = {}
    for checked in ls.checked.values():
        for display, tree in checked.result.files.items():
            trees.setdefault(checked.paths.get(display, Path(display)), tree)
    return [types.SymbolInformation(
        name=sym.name, kind=_SYMBOL_KINDS[sym.kind], container_name=container,
        location=types.Location(uri=from_fs_path(str(path)) or "", range=ls.span_range(sym.name_span, tree_text)))
        for path, sym, container in analysis.workspace_symbols(trees, params.query)
        for tree_text in [trees[path].text]]


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: SpecServer, params: types.DocumentFormattingParams) -> list[types.TextEdit]:
    from specc.syntax.fmt import format_text

    path, text = ls.document(params.text_document.uri)
    out, diags = format_text(text, str(path))
    if out is None:
        errors = [d for d in diags if d.level == "error"]
        raise JsonRpcException(code=REQUEST_FAILED, message="not formatted: fix the syntax errors first "
                               f"({len(errors)} error{'s' if len(errors) != 1 else ''})")
    if out == text:
        return []
    lines = text.split("\n")
    end = types.Position(line=len(lines), character=0)
    return [types.TextEdit(range=types.Range(start=types.Position(line=0, character=0), end=end), new_text=out)]


@server.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=[" "]))
def completion(ls: SpecServer, params: types.CompletionParams) -> types.CompletionList:
    path, text = ls.document(params.text_document.uri)
    line, col = ls.server_position(text, params.position)
    items = []
    checked = ls.checked.get(path)
    spec = ls.good.get(path) or (checked.result.spec if checked else None)
    for c in analysis.completions(text, line, col, spec):
        items.append(types.CompletionItem(
            label=c.label, kind=_COMPLETION_KINDS[c.kind], detail=c.detail or None,
            documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=c.doc) if c.doc else None,
            insert_text=c.snippet, insert_text_format=types.InsertTextFormat.Snippet if c.snippet else None))
    return types.CompletionList(is_incomplete=False, items=items)


def serve() -> None:
    """Run the server on stdin and stdout until the client exits."""
    # a request that comes while a check runs waits for the worker to hand over the interpreter
    # lock, up to this long each time it asks (Python's default is 5 ms)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    server.start_io()
