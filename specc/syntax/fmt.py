"""The canonical formatter behind ``specc fmt``: one layout for every spec, comments kept.

The layout: 2-space indentation; the header ``spec ID version "X"`` with the doc string on
the next line; then the imports/``extends`` block, the axes block, and the sections and rules,
a blank line between groups and between blocks. Inside a rule the fields come in a fixed
order (:data:`specc.language.FIELD_ORDER`: the statement first, the examples last); fields
of the same kind keep their written order, and so do the turns and answers of an
example. Strings, numbers and checks are written in one canonical form each
(:func:`encode_string`, :func:`format_number`, :func:`format_check`), which the IR's
``check_source`` shares.

Formatting never changes meaning (the IR hash of the spec and of every rule stays the same),
is idempotent, and keeps every comment exactly once: a comment on its own line leads the next
item, a comment after an item on the same line trails it, a comment after the last item of a
block stays inside the block, a comment at the end of the file stays at the end.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from specc.diagnostics import Diagnostic
from specc.language import BARE_CHECKS, FIELD, FIELD_ORDER
from specc.syntax import ast
from specc.syntax.parser import parse
from specc.syntax.strings import decode_string
from specc.syntax.text import encode_string, format_number  # noqa: F401 (re-exported)

INDENT = "  "

_FIELD_RANK = {k: i for i, k in enumerate(FIELD_ORDER)}

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# The grammar's STRING terminal (grammar/spec.lark).
_STRING_TOKEN = re.compile(r'r?"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""|r?"(?:[^"\\\n]|\\.)*"')
_QUOTE_RUN_RE = re.compile(r'"(?="")')  # a quote that would start `"""` inside a block


class FormatError(Exception):
    """The formatter produced text that does not parse back or lost a comment: a bug in specc."""


# -- values -------------------------------------------------------------------------------


def _block_string(value: str, content_indent: str, close_indent: str) -> str | None:
    """A triple-quoted block for a multi-line value, or None where it would not read back exactly."""
    if "\n" not in value:
        return None
    lines = value.split("\n")
    if any(line != line.rstrip() for line in lines):
        return None  # trailing blanks are invisible and editors strip them
    body = _QUOTE_RUN_RE.sub('\\\\"', value.replace("\\", "\\\\"))
    out = ['"""'] + [content_indent + line if line else "" for line in body.split("\n")] + [close_indent + '"""']
    literal = "\n".join(out)
    return literal if _reads_back(literal, value) else None  # cleandoc eats common indents, tabs, blank edges


def _reads_back(literal: str, value: str) -> bool:
    """Whether the lexer takes ``literal`` as one string token whose value is ``value``."""
    m = _STRING_TOKEN.match(literal)
    return m is not None and m.end() == len(literal) and decode_string(literal) == (value, None)


def _doc_string(value: str) -> str:
    """The spec's doc string: triple-quoted like a Python docstring wherever it reads back exactly."""
    block = _block_string(value, INDENT, INDENT)
    if block is not None:
        return block
    literal = '"""' + _QUOTE_RUN_RE.sub('\\\\"', value.replace("\\", "\\\\")) + '"""'
    if "\n" not in value and _reads_back(literal, value):
        return literal
    return encode_string(value)


def format_string(value: str, indent: str) -> str:
    """A string in the canonical form for a line indented by ``indent``: a block or one line."""
    return _block_string(value, indent + INDENT, indent) or encode_string(value)


def format_list(items: list[ast.Str | ast.Name], names: bool = True) -> str:
    """A value list. With ``names``, a value that is a name is written bare (``tags [pii]``);
    check arguments (``names=False``) are data and always written as strings."""
    out = []
    for v in items:
        out.append(v.value if names and _NAME_RE.match(v.value) else encode_string(v.value))
    return "[" + ", ".join(out) + "]"


# -- checks -------------------------------------------------------------------------------


def format_check(expr: ast.CheckExpr, _top: bool = True) -> str:
    """The canonical text of a check: `and`/`or` chains flattened, nested chains parenthesised."""
    if isinstance(expr, ast.CheckCall):
        name = expr.name.value
        if not expr.args and name in BARE_CHECKS:
            return name
        return f"{name}({', '.join(_format_arg(a) for a in expr.args)})"
    if isinstance(expr, ast.CheckNot):
        return "not " + format_check(expr.operand, False)
    body = f" {expr.op} ".join(format_check(o, False) for o in _flatten(expr))
    return body if _top else f"({body})"


def _flatten(expr: ast.CheckBin) -> list[ast.CheckExpr]:
    out: list[ast.CheckExpr] = []
    for o in expr.operands:
        if isinstance(o, ast.CheckBin) and o.op == expr.op:  # `a and (b and c)` is `a and b and c`
            out.extend(_flatten(o))
        else:
            out.append(o)
    return out


def _format_arg(a: ast.CheckArg) -> str:
    if isinstance(a, ast.Str):
        return encode_string(a.value)
    if isinstance(a, ast.Number):
        return format_number(a.value)
    return format_list(a.items, names=False)


# -- comment attachment -------------------------------------------------------------------


@dataclass
class _Notes:
    leading: list[ast.Comment] = field(default_factory=list)
    trailing: ast.Comment | None = None
    opening: ast.Comment | None = None  # after `{` on the block's first line
    dangling: list[ast.Comment] = field(default_factory=list)  # after the last child of a block
    header_line: ast.Comment | None = None  # the file header: after `version "X"` when a doc follows


_NO_NOTES = _Notes()


def _start(node) -> tuple[int, int]:
    return node.span.start_line, node.span.start_col


def _end(node) -> tuple[int, int]:
    return node.span.end_line, node.span.end_col


def _is_block(node) -> bool:
    return isinstance(node, (ast.Section, ast.RuleDecl)) or (isinstance(node, ast.Field) and node.key == "example")


def _children(node) -> list:
    if isinstance(node, ast.SpecFile):
        return [node.header, *node.items]
    if isinstance(node, ast.Section):
        return list(node.items)
    if isinstance(node, ast.RuleDecl):
        return list(node.fields)
    if isinstance(node, ast.Field) and node.key == "example":
        return list(node.value.items)
    return []


class _Source:
    """Line-level facts about the original text (blank lines, where a block's `{` is)."""

    _SKIP = re.compile(r"(?:\s+|#[^\n]*)*")

    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def blank(self, line: int) -> bool:
        return 1 <= line <= len(self.lines) and not self.lines[line - 1].strip()

    def brace_after(self, pos: tuple[int, int]) -> tuple[int, int]:
        """The position of the first `{` after ``pos`` (skipping blanks and comments)."""
        if not self.text:
            return pos
        line, col = pos
        offset = self._SKIP.match(self.text, self.starts[line - 1] + col - 1).end()
        bl = bisect_right(self.starts, offset)
        return bl, offset - self.starts[bl - 1] + 1


def _header_end(node) -> tuple[int, int]:
    """Where a block's header (`rule NAME`, `section NAME "title"`, `example "title"`) ends."""
    if isinstance(node, ast.Section):
        return _end(node.title or node.name)
    if isinstance(node, ast.RuleDecl):
        return _end(node.name)
    return _end(node.value.title)


class _Attacher:
    def __init__(self, src: _Source):
        self.src = src
        self.notes: dict[int, _Notes] = {}

    def of(self, node) -> _Notes:
        return self.notes.setdefault(id(node), _Notes())

    def block(self, node, comments: list[ast.Comment]) -> None:
        kids = _children(node)
        starts, ends = [_start(k) for k in kids], [_end(k) for k in kids]  # both ascending: kids do not overlap
        brace = None if isinstance(node, ast.SpecFile) else self.src.brace_after(_header_end(node))
        inner: dict[int, list[ast.Comment]] = {}
        for c in comments:
            pos = (c.line, c.col)
            if brace is not None and pos < brace:
                self.of(node).leading.append(c)  # between the keyword and `{`
                continue
            i = bisect_right(starts, pos) - 1  # the last child that starts before the comment
            owner = kids[i] if i >= 0 and pos < ends[i] else None
            if owner is not None:
                if _is_block(owner):
                    inner.setdefault(id(owner), []).append(c)
                elif isinstance(owner, ast.Header):
                    self.header(owner, c)
                else:
                    self.of(owner).leading.append(c)  # inside a one-line item: goes before it
                continue
            before = kids[i] if i >= 0 else None  # it ends before the comment
            if before is not None and before.span.end_line == c.line:
                self.of(before).trailing = c
            elif before is None and brace is not None and brace[0] == c.line:
                self.of(node).opening = c
            elif i + 1 < len(kids):
                self.of(kids[i + 1]).leading.append(c)
            else:
                self.of(node).dangling.append(c)
        for k in kids:
            if id(k) in inner:
                self.block(k, inner[id(k)])

    def header(self, head: ast.Header, c: ast.Comment) -> None:
        notes = self.of(head)
        if head.doc is not None and c.line == head.version.span.end_line and (c.line, c.col) < _start(head.doc):
            notes.header_line = c
        else:
            notes.leading.append(c)


# -- printing -----------------------------------------------------------------------------


class _Printer:
    def __init__(self, tree: ast.SpecFile):
        self.src = _Source(tree.text)
        self.att = _Attacher(self.src)
        self.att.block(tree, sorted(tree.comments, key=lambda c: (c.line, c.col)))
        self.tree = tree
        self.out: list[str] = []

    def notes(self, node) -> _Notes:
        return self.att.notes.get(id(node)) or _NO_NOTES

    # helpers
    def emit(self, text: str, indent: str, comment: ast.Comment | None = None) -> None:
        lines = text.split("\n")
        lines[0] = indent + lines[0]
        if comment is not None:
            lines[-1] += "  " + comment.text
        self.out.extend(lines)

    def blank(self) -> None:
        if self.out and self.out[-1] != "":
            self.out.append("")

    def leading(self, node, indent: str) -> None:
        comments = self.notes(node).leading
        start = node.span.start_line
        for i, c in enumerate(comments):
            self.out.append(indent + c.text)
            last = i == len(comments) - 1
            if self.src.blank(c.line + 1) and (not last or c.line < start):
                self.out.append("")

    def dangling(self, node, indent: str, has_children: bool) -> None:
        for i, c in enumerate(self.notes(node).dangling):
            if (i > 0 or has_children) and self.src.blank(c.line - 1):
                self.blank()
            self.out.append(indent + c.text)

    def grouped(self, items: list, indent: str, after_header: bool = False) -> None:
        """Items of the file or a section: imports, then axes, then blocks, blank lines between."""
        heads = [i for i in items if isinstance(i, (ast.Import, ast.Extends))]
        axes = [i for i in items if isinstance(i, ast.AxisDecl)]
        rest = [i for i in items if not isinstance(i, (ast.Import, ast.Extends, ast.AxisDecl))]
        first = not after_header
        for group in (heads, axes):
            if group:
                if not first:
                    self.blank()
                first = False
                for item in group:
                    self.item(item, indent)
        prev = None
        for item in rest:
            if not first and not (isinstance(item, ast.Remove) and isinstance(prev, ast.Remove)):
                self.blank()
            first = False
            self.item(item, indent)
            prev = item

    # nodes
    def file(self) -> str:
        head = self.tree.header
        notes = self.notes(head)
        self.leading(head, "")
        line = f"spec {head.id.value} version {encode_string(head.version.value)}"
        if head.doc is None:
            self.emit(line, "", notes.trailing)
        else:
            self.emit(line, "", notes.header_line)
            self.emit(_doc_string(head.doc.value), INDENT, notes.trailing)
        self.grouped(self.tree.items, "", after_header=True)
        self.dangling(self.tree, "", True)
        return "\n".join(self.out) + "\n"

    def item(self, node, indent: str) -> None:
        self.leading(node, indent)
        if isinstance(node, ast.Section):
            title = f" {format_string(node.title.value, indent)}" if node.title else ""
            self.block(node, f"section {node.name.value}{title}", node.items, indent, grouped=True)
        elif isinstance(node, ast.RuleDecl):
            fields = sorted(node.fields, key=lambda f: _FIELD_RANK[f.key])
            self.block(node, f"{node.kind} {node.name.value}", fields, indent)
        elif isinstance(node, ast.Field) and node.key == "example":
            ex: ast.Example = node.value
            self.block(node, f"example {format_string(ex.title.value, indent)}", ex.items, indent)
        else:
            self.emit(self.line(node, indent), indent, self.notes(node).trailing)

    def block(self, node, head: str, kids: list, indent: str, grouped: bool = False) -> None:
        """A `{ }` block: a section (its items grouped), a rule (its fields), an example (its turns)."""
        notes = self.notes(node)
        if not kids and notes.opening is None and not notes.dangling:
            self.emit(head + " {}", indent, notes.trailing)
            return
        self.emit(head + " {", indent, notes.opening)
        if grouped:
            self.grouped(kids, indent + INDENT)
        else:
            for kid in kids:
                self.item(kid, indent + INDENT)
        self.dangling(node, indent + INDENT, bool(kids))
        self.emit("}", indent, notes.trailing)

    def line(self, node, indent: str) -> str:
        """The text of a one-line item (a multi-line string may still break it)."""
        if isinstance(node, ast.Import):
            return "import " + (encode_string(node.target) if node.is_path else node.target)
        if isinstance(node, ast.Extends):
            return "extends " + (encode_string(node.target) if node.is_path else node.target)
        if isinstance(node, ast.AxisDecl):
            return f"axis {node.name.value} = {format_list(node.values)}"
        if isinstance(node, ast.Remove):
            return f"remove {node.name.value}"
        if isinstance(node, ast.Turn):
            return f"{node.role} {format_string(node.text.value, indent)}"
        if isinstance(node, ast.Answer):
            label = f" {node.label.value}" if node.label else ""
            reason = f" because {format_string(node.reason.value, indent)}" if node.reason else ""
            return f"{node.kind}{label} {format_string(node.text.value, indent)}{reason}"
        assert isinstance(node, ast.Field), node
        key, v = node.key, node.value
        if key == "statement":
            modality, text = v
            return f"{modality} {format_string(text.value, indent)}"
        kind = FIELD[key].value  # the keyword is the key; the value is written by its kind
        if kind == "name":
            return f"{key} {v.value}"
        if kind == "string":
            return f"{key} {format_string(v.value, indent)}"
        if kind == "list":
            return f"{key} {format_list(v.items)}"
        if kind == "number":
            return f"{key} {format_number(v.value)}"
        if kind == "check":
            return f"{key} {format_check(v)}"
        if kind == "axis":
            return self.line(v, indent)
        raise AssertionError(f"field {key} has a value of kind {kind}, which is printed as a block")


# -- entry points -------------------------------------------------------------------------


def format_spec(tree: ast.SpecFile) -> str:
    """The canonical text of a spec file parsed without errors.

    ``tree.text`` (the source) places the comments and the blank lines kept around them. A tree
    from a parse that recovered from errors lacks the broken rules: format only clean parses,
    as :func:`format_text` does.
    """
    return _Printer(tree).file()


def format_text(text: str, file: str = "<string>") -> tuple[str | None, list[Diagnostic]]:
    """Format spec text. Returns (formatted text, diagnostics); None where the text has errors.

    Raises :class:`FormatError` if the result would not parse back with the same comments,
    which would be a bug in the formatter, never in the spec.
    """
    tree, diags = parse(text, file)
    if tree is None or any(d.level == "error" for d in diags):
        return None, diags
    out = format_spec(tree)
    again, again_diags = parse(out, file)
    if again is None or any(d.level == "error" for d in again_diags):
        first = again_diags[0].message if again_diags else "no tree"
        raise FormatError(f"{file}: the formatted text does not parse back ({first})")
    if sorted(c.text for c in again.comments) != sorted(c.text for c in tree.comments):
        raise FormatError(f"{file}: formatting would lose or duplicate a comment")
    return out, diags


__all__ = [
    "FormatError",
    "encode_string",
    "format_check",
    "format_list",
    "format_number",
    "format_spec",
    "format_string",
    "format_text",
]
