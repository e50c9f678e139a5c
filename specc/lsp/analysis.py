"""What the language server knows about spec files, without any protocol: checking with unsaved
buffers, and the answers to hover, definition, symbols, completion and formatting.

Positions here are the server's own: 0-based lines and 0-based columns in code points (a
:class:`~specc.diagnostics.Span` is 1-based; :func:`span_start`/:func:`span_end` convert).
``server.py`` turns them into the client's units and into LSP types.
"""

from __future__ import annotations

import errno
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from specc import language
from specc.diagnostics import CODES, Diagnostic, Span, explanation
from specc.files import MAX_SPEC_BYTES, SpecReadError, read_spec
from specc.ir import checks as checklib
from specc.ir.model import AUTHORITIES, SEVERITIES, Rule, Spec, check_source
from specc.ir.resolve import STDLIB_PREFIX, LoadResult, Reader, RuleCache, load
from specc.resources import stdlib_dir
from specc.syntax import ast
from specc.syntax.text import encode_string

# -- checking with unsaved buffers --------------------------------------------------------


class BufferReader(Reader):
    """The file system as the editor sees it: an open buffer's text instead of the file on disk.

    Files are named (``display``) relative to the workspace root, as ``specc check`` run from
    that root names them, so messages read the same byte for byte. ``paths`` maps each name back
    to the file, for the diagnostics' and definitions' locations.
    """

    def __init__(self, root: Path, buffers: dict[str, str]):
        self.root = root
        self.buffers = buffers  # real path -> text
        self.paths: dict[str, Path] = {}

    def read(self, path: Path) -> str:
        text = self.buffers.get(os.path.realpath(path))
        if text is None:
            return read_spec(path)
        if len(text) > MAX_SPEC_BYTES // 4 and len(text.encode("utf-8")) > MAX_SPEC_BYTES:  # as read_spec refuses it
            raise SpecReadError(errno.EFBIG, f"larger than the limit of {MAX_SPEC_BYTES // (1024 * 1024)} MiB for a "
                                f"spec file ({len(text.encode('utf-8'))} bytes)", str(path))
        return text

    def display(self, path: Path) -> str:
        try:
            rel = os.path.relpath(path, self.root)
        except ValueError:
            rel = ".."
        name = str(path) if rel.startswith("..") else rel
        self.paths[name] = Path(path)
        return name

    def resolve(self, path: Path) -> Path:
        return Path(os.path.normpath(path if path.is_absolute() else self.root / path))


@dataclass
class Checked:
    """One spec checked as ``specc check PATH`` would: its diagnostics by file, the files it read."""

    path: Path
    result: LoadResult
    paths: dict[str, Path]  # display name -> file
    by_file: dict[Path, list[Diagnostic]] = field(default_factory=dict)

    @property
    def files(self) -> set[Path]:
        """Every file the check read or tried to (a missing import too: creating it changes the check)."""
        return set(self.paths.values()) | {self.path}

    def display(self, path: Path) -> str | None:
        return next((d for d, p in self.paths.items() if p == path), None)

    def tree(self, path: Path) -> ast.SpecFile | None:
        d = self.display(path)
        return self.result.files.get(d) if d is not None else None


def check(path: Path, root: Path, buffers: dict[str, str], cache: RuleCache | None = None) -> Checked:
    """``specc check PATH`` run from ``root``, with ``buffers`` in place of the files on disk.
    ``cache``: the same spec's earlier checks, so that only the rules an edit changed are parsed
    and lowered again (the diagnostics are the same with or without it)."""
    reader = BufferReader(root, buffers)
    # each check its own regex time budget, as each `specc check` command has: a server that runs
    # for a day must not spend the budget of its first minute
    with checklib.regex_budget(checklib.REGEX_BUDGET_S, allowance=checklib.REGEX_ALLOWANCE_S, own=True):
        result = load(path, reader, cache=cache)
    checked = Checked(path, result, reader.paths)
    for d in result.diagnostics:
        file = reader.paths.get(d.span.file, Path(d.span.file))
        checked.by_file.setdefault(file, []).append(d)
    return checked


def span_start(span: Span) -> tuple[int, int]:
    return span.start_line - 1, span.start_col - 1


def span_end(span: Span) -> tuple[int, int]:
    return span.end_line - 1, span.end_col - 1


def contains(span: Span, line: int, col: int) -> bool:
    return span_start(span) <= (line, col) <= span_end(span)


# -- what is under the cursor -------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def word_at(text: str, line: int, col: int) -> tuple[str, int, int] | None:
    """The name (dots included) at the position, with its start and end column."""
    lines = lines_of(text)
    if not 0 <= line < len(lines):
        return None
    for m in _WORD.finditer(lines[line]):
        if m.start() <= col <= m.end():
            return m.group().rstrip("."), m.start(), m.start() + len(m.group().rstrip("."))
    return None


def in_code(text_line: str, col: int) -> bool:
    """Whether ``col`` of a line is outside strings and comments (block strings are not
    followed across lines: good enough for the keywords a hover or completion is about)."""
    quote = False
    i = 0
    while i < min(col, len(text_line)):
        ch = text_line[i]
        if quote and ch == "\\":
            i += 2
            continue
        if ch == '"':
            quote = not quote
        elif ch == "#" and not quote:
            return False
        i += 1
    return not quote


def rule_named(spec: Spec | None, word: str, own_spec: str | None) -> Rule | None:
    """The rule a word names: a qualified id, or a bare name (the file's own spec first)."""
    if spec is None:
        return None
    by_name = [r for r in spec.rules if r.id == word or r.name == word]
    exact = [r for r in by_name if r.id == word]
    if exact:
        return exact[0]
    own = [r for r in by_name if r.spec == own_spec]
    return (own or by_name or [None])[0]


# -- hover --------------------------------------------------------------------------------


def rule_hover(rule: Rule, checked: Checked) -> str:
    lines = [f"**{rule.kind}** `{rule.id}`", "", f"{rule.modality} {_quote(rule.statement)}", "",
             f"authority `{rule.authority}` · severity `{rule.severity}`"
             + (f" · weight {rule.weight:g}" if rule.weight != 1 else "")]
    if rule.when:
        lines += ["", f"when {_quote(rule.when)}"]
    for u in rule.unless:
        lines += [f"unless {_quote(u)}"]
    if rule.checks:
        lines += ["", "checks:"] + [f"- `{check_source(c)}`" for c in rule.checks]
    lines += ["", f"defined in {rule.span.file}:{rule.span.start_line}"]
    for display, tree in checked.result.files.items():
        for decl in _decls(tree.items):
            if decl.kind == "override" and decl.name.value == rule.name and tree.header.id.value != rule.spec:
                lines.append(f"overridden in {display}:{decl.span.start_line}")
    return "\n".join(lines)


def _quote(s: str) -> str:
    return '"' + s.replace("\n", " ") + '"'


def keyword_hover(word: str) -> str | None:
    if word in language.PREDICATE:
        p = language.PREDICATE[word]
        args = ", ".join(language.ARG_KINDS[t].doc for t in p.params) or "no argument"
        return f"**check** `{p.form}` ({args})\n\n{p.doc}"
    for f in language.FIELDS:
        if word in f.keywords:
            return (f"**field** `{word}` ({f.times}; default {f.default})\n\n{f.doc}")
    if word == "authority" or word in AUTHORITIES:
        return f"authority, strongest first: {', '.join(f'`{a}`' for a in AUTHORITIES)}"
    if word in SEVERITIES:
        return f"severity, worst first: {', '.join(f'`{s}`' for s in SEVERITIES)}"
    return None


def code_hover(word: str) -> str | None:
    """``specc explain CODE`` for a diagnostic code or a quality gate's code."""
    from specc.synth.gates import GATES

    match = CODES.get(word.upper()) or next((g for g in GATES if g.code == word.upper()), None)
    return explanation(match) if match is not None else None


# -- definitions --------------------------------------------------------------------------


def _decls(items) -> list[ast.RuleDecl]:
    out: list[ast.RuleDecl] = []
    for it in items:
        if isinstance(it, ast.RuleDecl):
            out.append(it)
        elif isinstance(it, ast.Section):
            out.extend(_decls(it.items))
    return out


def import_target(path: Path, item: ast.Import | ast.Extends) -> Path | None:
    if item.is_path:
        return Path(os.path.normpath(path.parent / item.target))
    if not item.target.startswith(STDLIB_PREFIX):
        return None
    target = stdlib_dir() / (item.target[len(STDLIB_PREFIX):].replace(".", "/") + ".spec")
    return target if target.is_file() else None


def definition(checked: Checked, path: Path, text: str, line: int, col: int,
               spec: Spec | None) -> tuple[Path, Span | None] | None:
    """Where the thing at the position is declared: an import's file, the base rule that an
    ``override`` or ``remove`` changes, the rule a name or id names."""
    tree = checked.tree(path)
    if tree is not None:
        for item in tree.items:
            if isinstance(item, (ast.Import, ast.Extends)) and contains(item.span, line, col):
                target = import_target(path, item)
                return (target, None) if target is not None else None
    axis = _axis_at(checked, path, line, col)
    if axis is not None:
        decl, outer = axis
        return next(((file, d.name.span) for file, d in outer if d.name.value == decl.name.value),
                    (path, decl.name.span))
    w = word_at(text, line, col)
    if w is None:
        return None
    word = w[0]
    own = tree.header.id.value if tree is not None else None
    if tree is not None:  # `override NAME` / `remove NAME`: the rule of the base spec
        for it in tree.items:
            if isinstance(it, (ast.RuleDecl, ast.Remove)) and getattr(it, "kind", "remove") in ("override", "remove") \
                    and contains(it.name.span, line, col):
                base = _base_decl(checked, path, it.name.value)
                if base is not None:
                    return base
    rule = rule_named(spec, word, own)
    if rule is not None:
        return checked.paths.get(rule.span.file, Path(rule.span.file)), rule.span
    return None


def references(checked: Checked, path: Path, text: str, line: int, col: int,
               spec: Spec | None) -> list[tuple[Path, Span]]:
    """Every place that names the rule at the position, in the files the check read: its
    declaration, and the ``override`` and ``remove`` of it in specs that extend its spec. On an
    axis's name: every declaration of an axis of that name (one axis, scoped by name)."""
    axis = _axis_at(checked, path, line, col)
    if axis is not None:
        name = axis[0].name.value
        out = [(checked.paths.get(display, Path(display)), d.name.span)
               for display, t in checked.result.files.items() for d in _axis_decls(t.items) if d.name.value == name]
        return sorted(out, key=lambda r: (str(r[0]), r[1].start_line, r[1].start_col))
    w = word_at(text, line, col)
    if w is None or spec is None:
        return []
    tree = checked.tree(path)
    rule = rule_named(spec, w[0], tree.header.id.value if tree is not None else None)
    if rule is None:
        return []
    out = []
    for display, t in checked.result.files.items():
        file = checked.paths.get(display, Path(display))
        own = t.header.id.value == rule.spec
        for it in [*_decls(t.items), *(i for i in t.items if isinstance(i, ast.Remove))]:
            kind = getattr(it, "kind", "remove")
            if it.name.value == rule.name and (own if kind in ("rule", "default") else not own):
                out.append((file, it.name.span))
    return sorted(out, key=lambda r: (str(r[0]), r[1].start_line, r[1].start_col))


def _axis_decls(items) -> list[ast.AxisDecl]:
    """Every axis declared in ``items``: at the top, in sections, in rules."""
    out: list[ast.AxisDecl] = []
    for it in items:
        if isinstance(it, ast.AxisDecl):
            out.append(it)
        elif isinstance(it, ast.Section):
            out.extend(_axis_decls(it.items))
        elif isinstance(it, ast.RuleDecl):
            out.extend(f.value for f in it.fields if f.key == "axis")
    return out


Scoped = list[tuple[Path, ast.AxisDecl]]  # axis declarations, the innermost scope first


def _axis_scopes(checked: Checked, path: Path, seen: frozenset = frozenset()
                 ) -> tuple[Scoped, dict[str, Scoped], list[tuple[ast.AxisDecl, Scoped]]]:
    """The axis scopes of a file, as resolution merges them (docs/language.md, axis): the chain
    of declarations at its top (its own, then its base spec's, up the ``extends``), the chain each
    of its rules sees by name (the rule's own ``axis`` fields first; an ``override``'s then the
    base rule's), and each axis the file declares with the chain outside its scope, whose
    declaration of the same name it overrides."""
    tree = checked.tree(path)
    if tree is None or path in seen:
        return [], {}, []
    extends = next((it for it in tree.items if isinstance(it, ast.Extends)), None)
    base = import_target(path, extends) if extends is not None else None
    base_top, rules, _ = _axis_scopes(checked, base, seen | {path}) if base is not None else ([], {}, [])
    rules = dict(rules)
    out: list[tuple[ast.AxisDecl, Scoped]] = []

    def walk(items, outer: Scoped) -> Scoped:
        here = [(path, it) for it in items if isinstance(it, ast.AxisDecl)]
        out.extend((d, outer) for _, d in here)
        chain = here + outer
        for it in items:
            if isinstance(it, ast.Section):
                walk(it.items, chain)
            elif isinstance(it, ast.RuleDecl):
                name = it.name.value.rsplit(".", 1)[-1]
                rule_outer = rules.get(name, chain) if it.kind == "override" else chain
                own = [(path, f.value) for f in it.fields if f.key == "axis"]
                out.extend((d, rule_outer) for _, d in own)
                rules[name] = own + rule_outer
        return chain

    top = walk(tree.items, base_top)
    del walk  # a function that calls itself is a reference cycle: free it now (server.py: gc.freeze)
    return top, rules, out


def _axis_at(checked: Checked, path: Path, line: int, col: int) -> tuple[ast.AxisDecl, Scoped] | None:
    """The axis whose name is at the position, and the chain of scopes outside it (the root
    spec's top last: its axes are the outermost of every rule)."""
    for decl, outer in _axis_scopes(checked, path)[2]:
        if contains(decl.name.span, line, col):
            if path != checked.path:
                outer = outer + _axis_scopes(checked, checked.path)[0]
            return decl, outer
    return None


def _base_decl(checked: Checked, path: Path, name: str) -> tuple[Path, Span] | None:
    """The declaration of ``name`` that an override in ``path`` changes: the nearest one up the
    chain of ``extends``."""
    seen: set[Path] = set()
    tree = checked.tree(path)
    while tree is not None and path not in seen:
        seen.add(path)
        base = next((it for it in tree.items if isinstance(it, ast.Extends)), None)
        if base is None:
            return None
        target = import_target(path, base)
        if target is None:
            return None
        path, tree = target, checked.tree(target)
        for decl in _decls(tree.items if tree is not None else []):
            if decl.kind in ("rule", "default") and decl.name.value == name:
                return path, decl.name.span
    return None


# -- code lenses: what `specc plan` would make ----------------------------------------------


def lens_anchors(checked: Checked, path: Path, spec: Spec | None) -> list[tuple[str, Span]]:
    """(rule id, where its lens goes) for every rule this file declares or overrides."""
    tree = checked.tree(path)
    if tree is None or spec is None:
        return []
    own = tree.header.id.value
    by_name = {r.name: r for r in spec.rules if r.spec != own}
    by_id = {r.id: r for r in spec.rules}
    out = []
    for decl in _decls(tree.items):
        rule = by_id.get(f"{own}.{decl.name.value}") if decl.kind != "override" else by_name.get(decl.name.value)
        if rule is not None:
            out.append((rule.id, decl.span))
    return out


def plan_lens(spec: Spec, rule_id: str) -> str:
    """The scenarios ``specc plan`` (its defaults) makes for one rule, per boundary."""
    from collections import Counter

    from specc.plan.model import BOUNDARIES
    from specc.plan.planner import PlanError, make_plan

    try:
        plan = make_plan(spec, rules=[rule_id])
    except PlanError as e:
        return f"plan: {e}"
    counts = Counter(s.boundary for s in plan.scenarios)
    skipped = {s.boundary for s in plan.skipped}
    parts = [f"{b} skipped" if b in skipped else f"{counts[b]} {b}" for b in BOUNDARIES]
    return f"plan: {sum(counts.values())} scenarios ({', '.join(parts)})"


# -- document symbols ---------------------------------------------------------------------


@dataclass
class Symbol:
    name: str
    kind: str  # section, rule, default, override, remove, axis, import
    span: Span
    name_span: Span
    detail: str = ""
    children: list["Symbol"] = field(default_factory=list)


def symbols(items) -> list[Symbol]:
    out: list[Symbol] = []
    for it in items:
        if isinstance(it, ast.Section):
            out.append(Symbol(it.name.value, "section", it.span, it.name.span,
                              it.title.value if it.title else "", symbols(it.items)))
        elif isinstance(it, ast.RuleDecl):
            statement = next((f.value for f in it.fields if f.key == "statement"), None)
            detail = f"{statement[0]} {statement[1].value}" if statement else ""
            out.append(Symbol(it.name.value, it.kind, it.span, it.name.span, detail))
        elif isinstance(it, ast.Remove):
            out.append(Symbol(it.name.value, "remove", it.span, it.name.span))
        elif isinstance(it, ast.AxisDecl):
            values = ", ".join(v.value for v in it.values)
            out.append(Symbol(it.name.value, "axis", it.span, it.name.span, values))
    return out


def workspace_symbols(trees: dict[Path, ast.SpecFile], query: str) -> list[tuple[Path, Symbol, str]]:
    """(file, symbol, its container) for every symbol of ``trees`` whose name contains ``query``
    (ignoring case), in file and source order."""
    q = query.lower()
    out = []

    def walk(path: Path, syms: list[Symbol], container: str) -> None:
        for sym in syms:
            if q in sym.name.lower():
                out.append((path, sym, container))
            walk(path, sym.children, f"{container}.{sym.name}" if sym.kind == "section" else container)

    for path in sorted(trees, key=str):
        walk(path, symbols(trees[path].items), trees[path].header.id.value)
    del walk  # a function that calls itself is a reference cycle: free it now (server.py: gc.freeze)
    return out


# -- completion ---------------------------------------------------------------------------


@dataclass
class Completion:
    label: str
    kind: str  # keyword, predicate, value, module, axis
    detail: str = ""
    snippet: str | None = None  # with ${1:placeholders}
    doc: str = ""


def stdlib_modules() -> list[str]:
    base = stdlib_dir()
    return sorted(STDLIB_PREFIX + p.relative_to(base).with_suffix("").as_posix().replace("/", ".")
                  for p in base.rglob("*.spec"))


# what moves the block depth: a comment, a block string, a one-line string (to its line's end
# when open), a brace, skipped as one token each
_BLOCK_TOKEN = re.compile(r'#[^\n]*|r?"""[\s\S]*?(?:"""|\Z)|r"[^"\n]*"?|"(?:\\.|[^"\\\n])*"?|[{}]')


# The same scan, a match per brace: the text up to it (what _BLOCK_TOKEN skips a character at a
# time, and its comments and strings) is consumed inside the regex engine, four times faster.
# Every character is taken by the alternative _BLOCK_TOKEN would take it by, in the same order
# (an `r` that starts no raw string is plain text); the tests compare the two scans.
_BRACE = re.compile(r'(?:[^"#{}r]++|r(?!")|#[^\n]*+|r?"""[\s\S]*?(?:"""|\Z)|r"[^"\n]*+"?'
                    r'|"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"?)*+(?:(?P<brace>[{}])|\Z)')


def _open_blocks(text: str) -> list[str]:
    """The blocks open at the end of ``text``, outermost first, each by the first word of the line
    that opened it (``section``, ``rule``, ``example`` ...)."""
    return _BLOCKS.open_at_end(text)


class _BlockScan:
    """:func:`_open_blocks`, resumed where the text it last scanned differs: a completion in a
    5,000-rule file scans about 1 MB before the cursor (tens of milliseconds), and the next one
    is usually asked of the same text, or of one edited near the cursor.

    ``marks`` are (position, blocks open there) at token ends every :attr:`step` characters of
    the last text. A scan of another text starts at the last mark before the first character the
    two texts differ in (each token, and the gap before it, is decided by the text up to one
    character past its end, and the pattern looks at nothing before where it starts).
    """

    step = 1 << 16

    def __init__(self) -> None:
        self.text = ""
        self.marks: list[tuple[int, tuple[str, ...]]] = [(0, ())]

    def open_at_end(self, text: str) -> list[str]:
        same = _common_prefix(self.text, text)
        marks = self.marks
        while marks[-1][0] >= same and len(marks) > 1:  # a mark needs the character after it too
            marks.pop()
        start, blocks = marks[-1]
        stack = list(blocks)
        next_mark = start + self.step
        for m in _BRACE.finditer(text, start):
            tok = m.group("brace")
            if tok is None:  # the end of the text
                break
            if tok == "{":
                at = m.start("brace")
                words = text[text.rfind("\n", 0, at) + 1:at].split()
                stack.append(words[0] if words else "")
            elif stack:
                stack.pop()
            if m.end() >= next_mark:
                marks.append((m.end(), tuple(stack)))
                next_mark = m.end() + self.step
        self.text = text
        return stack


def _common_prefix(a: str, b: str, chunk: int = 1 << 16) -> int:
    """The length of the longest common prefix of two strings (compared a chunk at a time)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i:i + chunk] == b[i:i + chunk]:
        i += chunk
    if i >= n:
        return n
    lo, hi = i, min(i + chunk, n)  # a[lo:hi] and b[lo:hi] differ; find where
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo if a[lo] != b[lo] else hi


_BLOCKS = _BlockScan()  # the server answers requests on one thread


def lines_of(text: str) -> list[str]:
    """A text's lines, split once: requests and publishes of a large file ask for them often
    (a 5,000-rule spec is 2.4 MB; splitting it takes milliseconds). Not to be changed."""
    last = _LAST_LINES
    if last[0] is not text:
        # the same object as the last call's first: a text equal to a cached one but not the
        # same object (an edit undone) costs the cache a comparison of the whole text per call,
        # and a publish asks for its lines twice per diagnostic
        last[:] = [text, _split_lines(text)]
    return last[1]


_LAST_LINES: list = [None, None]  # requests and publishes run on the server's one loop


@functools.lru_cache(maxsize=4)
def _split_lines(text: str) -> list[str]:
    return text.split("\n")


def completions(text: str, line: int, col: int, spec: Spec | None = None) -> list[Completion]:
    lines = lines_of(text)
    if not 0 <= line < len(lines):
        return []
    before = lines[line][:col]
    if not in_code(lines[line], col):
        return []
    values = _AXIS_VALUES.match(before)
    if values:  # inside `axis NAME = [...`: the values that axis has elsewhere in the spec
        return [Completion(v if _NAME.fullmatch(v) else encode_string(v), "value",
                           f"a value of axis {values.group(1)}")
                for v in _axes(spec).get(values.group(1), ())]
    words = before.split()
    partial = "" if before.endswith((" ", "\t")) or not words else words[-1]
    head = words[:-1] if partial else words
    if head[:1] and head[0] in ("import", "extends") and len(head) == 1:
        return [Completion(m, "module", "standard library module") for m in stdlib_modules()]
    if head == ["authority"]:
        return [Completion(a, "value", "authority") for a in AUTHORITIES]
    if head == ["severity"]:
        return [Completion(s, "value", "severity") for s in SEVERITIES]
    if head == ["axis"]:
        return [Completion(name, "axis", ", ".join(vs)) for name, vs in _axes(spec).items()]
    if head[:1] == ["check"]:
        out = [Completion(p.name, "predicate", p.form, _snippet(p), p.doc) for p in language.PREDICATES]
        return out + [Completion(w, "keyword", "check operator") for w in ("not", "and", "or")]
    if head:
        return []
    blocks = _open_blocks("\n".join(lines[:line] + [before]))
    inner = blocks[-1] if blocks else None
    if inner in ("rule", "default", "override"):
        return [Completion(w, "keyword", f"field: {f.key}", doc=f.doc) for f in language.FIELDS for w in f.keywords]
    if inner == "section":
        return [Completion(w, "keyword", "declaration") for w in language.SECTION_ITEMS]
    if inner is None:
        return [Completion(w, "keyword", "declaration") for w in language.DECLARATIONS]
    return []


_AXIS_VALUES = re.compile(r"^\s*axis\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\[[^\]]*$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _axes(spec: Spec | None) -> dict[str, tuple[str, ...]]:
    """Every axis of the spec by name (the spec's own and its rules'), its values in first-seen order."""
    out: dict[str, dict[str, None]] = {}
    for axis in [*(spec.axes if spec else ()), *(a for r in (spec.rules if spec else ()) for a in r.axes)]:
        out.setdefault(axis.name, {}).update(dict.fromkeys(axis.values))
    return {name: tuple(vs) for name, vs in sorted(out.items())}


def _snippet(p: language.PredicateSpec) -> str | None:
    if p.bare:
        return None
    holes = {"str": '"${%d:text}"', "regex": 'r"${%d:pattern}"', "int": "${%d:n}", "strlist": '[${%d:"term"}]'}
    return f"{p.name}({', '.join(holes[t] % (i + 1) for i, t in enumerate(p.params))})"
