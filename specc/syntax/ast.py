"""The syntax tree of one spec file, as written: every node keeps its source span.

The AST is what the parser produces and what the formatter prints; it is not resolved
(imports are names, fields may repeat, authorities are unchecked names). `specc.ir`
turns a set of these into the typed, validated rule IR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from specc.diagnostics import Span


@dataclass(slots=True)
class Comment:
    text: str  # including the leading '#'
    line: int
    col: int


@dataclass(slots=True)
class Str:
    value: str
    span: Span


@dataclass(slots=True)
class Name:
    value: str
    span: Span


@dataclass(slots=True)
class Header:
    id: Name
    version: Str
    doc: Str | None
    span: Span


@dataclass(slots=True)
class Import:
    target: str
    is_path: bool
    span: Span


@dataclass(slots=True)
class Extends:
    target: str
    is_path: bool
    span: Span


@dataclass(slots=True)
class AxisDecl:
    name: Name
    values: list[Str | Name]
    span: Span


# -- checks -----------------------------------------------------------------------------


@dataclass(slots=True)
class CheckCall:
    name: Name
    args: list["CheckArg"]
    bare: bool  # written without parentheses (`refuses`)
    span: Span


@dataclass(slots=True)
class CheckNot:
    operand: "CheckExpr"
    span: Span


@dataclass(slots=True)
class CheckBin:
    op: Literal["and", "or"]
    operands: list["CheckExpr"]
    span: Span


@dataclass(slots=True)
class Number:
    value: int | float
    text: str
    span: Span


@dataclass(slots=True)
class ValueList:
    items: list[Str | Name]
    span: Span


CheckArg = Union[Str, Number, ValueList]
CheckExpr = Union[CheckCall, CheckNot, CheckBin]


# -- examples ---------------------------------------------------------------------------


@dataclass(slots=True)
class Turn:
    role: Literal["system", "developer", "user", "assistant", "tool"]
    text: Str
    span: Span


@dataclass(slots=True)
class Answer:
    kind: Literal["good", "bad"]
    label: Name | None
    text: Str
    reason: Str | None
    span: Span


@dataclass(slots=True)
class Example:
    title: Str
    items: list[Turn | Answer]
    span: Span


# -- rule fields ------------------------------------------------------------------------

FieldKey = str  # a key of the language table, specc.language.FIELDS


@dataclass(slots=True)
class Field:
    """One line-level item of a rule body.

    ``value`` by the kind of value the language table gives the field: a statement is
    (modality, Str); name -> Name; string -> Str; list -> ValueList; number -> Number;
    check -> CheckExpr; axis -> AxisDecl; example -> Example.
    """

    key: FieldKey
    value: object
    span: Span


@dataclass(slots=True)
class RuleDecl:
    kind: Literal["rule", "default", "override"]
    name: Name
    fields: list[Field]
    span: Span


@dataclass(slots=True)
class Remove:
    name: Name
    span: Span


@dataclass(slots=True)
class Section:
    name: Name
    title: Str | None
    items: list["SectionItem"]
    span: Span


SectionItem = Union[AxisDecl, Section, RuleDecl]
Item = Union[Import, Extends, AxisDecl, Section, RuleDecl, Remove]


@dataclass(slots=True)
class SpecFile:
    path: str
    header: Header
    items: list[Item]
    comments: list[Comment] = field(default_factory=list)
    text: str = ""



def shifted(node, lines: int):
    """A copy of ``node`` (a node, a list or tuple of them, a span or a comment) moved down by
    ``lines`` lines (up, if negative); columns stay. Nothing is changed in place: the nodes of an
    earlier parse may still be in use."""
    t = type(node)
    if t is Span:
        return Span(node.file, node.start_line + lines, node.start_col, node.end_line + lines, node.end_col)
    move = _MOVES.get(t)
    if move is None:
        move = _MOVES[t] = _move_for(t)
    return move(node, lines)


def _move_for(t: type):
    """How ``shifted`` copies a value of type ``t`` (found once per type: an editor shifts
    thousands of rules after a line break)."""
    if t is list:
        return lambda xs, lines: [shifted(x, lines) for x in xs]
    if t is tuple:
        return lambda xs, lines: tuple(shifted(x, lines) for x in xs)
    if t is Comment:
        return lambda c, lines: Comment(c.text, c.line + lines, c.col)
    if hasattr(t, "__dataclass_fields__"):  # a node: its constructor called on its fields, moved
        # written out as source, as dataclasses writes __init__: a span is moved in line, a
        # field that is text or a flag is taken as it is, anything else is shifted in turn
        args = []
        for name in t.__slots__:
            kind = t.__dataclass_fields__[name].type
            if kind == "Span":
                args.append(f"_span(n.{name}, d)")
            elif kind in ("str", "bool") or kind.startswith("Literal["):
                args.append(f"n.{name}")
            else:
                args.append(f"shifted(n.{name}, d)")
        return eval(f"lambda n, d: T({', '.join(args)})", {"T": t, "_span": _span, "shifted": shifted})
    return lambda value, lines: value  # str, int, float, bool, None


def _span(s: Span, lines: int) -> Span:
    return Span(s.file, s.start_line + lines, s.start_col, s.end_line + lines, s.end_col)


_MOVES: dict[type, object] = {}
