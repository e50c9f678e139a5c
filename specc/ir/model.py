"""The resolved rule IR: frozen pydantic v2 models, the contract between the front end and
everything after it (plan, synth, emit, diff).

A :class:`Spec` holds the *effective* rules after imports, ``extends`` and overrides, each
with a qualified id (``<defining spec id>.<rule name>``) and a content hash. The hash covers
every meaning-bearing field and nothing else: not spans, not comments, not the section a rule
sits in, not the order of declarations, of ``unless`` clauses, tags or examples.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from specc.diagnostics import Span
from specc.syntax import ast
from specc.syntax.fmt import format_check, format_number

Authority = Literal["root", "system", "developer", "user", "guideline"]
Severity = Literal["critical", "high", "medium", "low"]
Modality = Literal["must", "must_not", "should", "should_not"]
Role = Literal["system", "developer", "user", "assistant"]

AUTHORITIES: tuple[str, ...] = ("root", "system", "developer", "user", "guideline")
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
MODALITIES: tuple[str, ...] = ("must", "must_not", "should", "should_not")

# Higher number = stronger. root > system > developer > user > guideline.
AUTHORITY_RANK = {a: len(AUTHORITIES) - i for i, a in enumerate(AUTHORITIES)}
SEVERITY_RANK = {s: len(SEVERITIES) - i for i, s in enumerate(SEVERITIES)}
# must / must_not are binding; should / should_not are recommendations.
MODALITY_STRENGTH = {"must": 2, "must_not": 2, "should": 1, "should_not": 1}
MODALITY_POLARITY = {"must": "do", "should": "do", "must_not": "avoid", "should_not": "avoid"}

DEFAULT_AUTHORITY = {"rule": "system", "default": "user"}
DEFAULT_SEVERITY = "medium"
DEFAULT_WEIGHT = 1.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSpan(_Frozen):
    file: str
    start_line: int
    start_col: int
    end_line: int
    end_col: int


# -- checks -------------------------------------------------------------------------------

CheckArgValue = Union[str, int, float, tuple[str, ...]]


class CheckCall(_Frozen):
    op: Literal["call"] = "call"
    name: str
    args: tuple[CheckArgValue, ...] = ()


class CheckNot(_Frozen):
    op: Literal["not"] = "not"
    operand: "Check"


class CheckAnd(_Frozen):
    op: Literal["and"] = "and"
    operands: tuple["Check", ...]


class CheckOr(_Frozen):
    op: Literal["or"] = "or"
    operands: tuple["Check", ...]


Check = Annotated[Union[CheckCall, CheckNot, CheckAnd, CheckOr], Field(discriminator="op")]
CheckNot.model_rebuild()
CheckAnd.model_rebuild()
CheckOr.model_rebuild()


def check_source(check: Check) -> str:
    """The canonical text of a check, as the formatter writes it (one printer: `specc.syntax.fmt`)."""
    return format_check(_check_ast(check))


_NOWHERE = Span("", 0, 0, 0, 0)


def _check_ast(check: Check) -> ast.CheckExpr:
    if isinstance(check, CheckCall):
        args = [_arg_ast(a) for a in check.args]
        return ast.CheckCall(ast.Name(check.name, _NOWHERE), args, not args, _NOWHERE)
    if isinstance(check, CheckNot):
        return ast.CheckNot(_check_ast(check.operand), _NOWHERE)
    return ast.CheckBin(check.op, [_check_ast(o) for o in check.operands], _NOWHERE)


def _arg_ast(a: CheckArgValue) -> ast.CheckArg:
    if isinstance(a, tuple):
        return ast.ValueList([ast.Str(x, _NOWHERE) for x in a], _NOWHERE)
    if isinstance(a, str):
        return ast.Str(a, _NOWHERE)
    return ast.Number(a, format_number(a), _NOWHERE)


# -- examples, axes ---------------------------------------------------------------------


class Turn(_Frozen):
    role: Role
    text: str


class Answer(_Frozen):
    text: str
    label: str | None = None
    reason: str | None = None


class Example(_Frozen):
    title: str
    turns: tuple[Turn, ...]
    good: tuple[Answer, ...] = ()
    bad: tuple[Answer, ...] = ()
    span: SourceSpan | None = None


class Axis(_Frozen):
    name: str
    values: tuple[str, ...]


# -- rules and specs --------------------------------------------------------------------


class Rule(_Frozen):
    id: str = Field(description="Qualified id: <defining spec id>.<rule name>")
    name: str
    spec: str = Field(description="Id of the spec that declares the rule")
    kind: Literal["rule", "default"] = "rule"
    modality: Modality
    statement: str
    authority: Authority
    severity: Severity
    when: str | None = None
    unless: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    weight: float = DEFAULT_WEIGHT
    checks: tuple[Check, ...] = ()
    examples: tuple[Example, ...] = ()
    axes: tuple[Axis, ...] = Field(default=(), description="Effective axes: spec, section and rule scope merged")
    section: tuple[str, ...] = Field(default=(), description="Path of section names, outermost first")
    hash: str = ""
    span: SourceSpan

    def meaning(self) -> dict:
        """The meaning-bearing fields, canonically ordered: what the hash covers."""
        return {
            "id": self.id,
            "kind": self.kind,
            "modality": self.modality,
            "statement": self.statement,
            "authority": self.authority,
            "severity": self.severity,
            "when": self.when,
            "unless": sorted(self.unless),
            "tags": sorted(self.tags),
            "weight": self.weight,
            "checks": canonical_checks(self.checks),
            "examples": sorted(
                canonical_json(e.model_dump(mode="json", exclude={"span"})) for e in self.examples
            ),
            "axes": sorted(canonical_json({"name": a.name, "values": sorted(a.values)}) for a in self.axes),
        }

    def with_hash(self) -> "Rule":
        return self.model_copy(update={"hash": content_hash(self.meaning())})

    @property
    def check_sources(self) -> tuple[str, ...]:
        return tuple(check_source(c) for c in self.checks)


class Spec(_Frozen):
    id: str
    version: str
    doc: str | None = None
    file: str
    extends: str | None = None
    imports: tuple[str, ...] = ()
    axes: tuple[Axis, ...] = ()
    rules: tuple[Rule, ...] = ()
    hash: str = ""

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def with_hash(self) -> "Spec":
        meaning = {
            "id": self.id,
            "axes": sorted(canonical_json({"name": a.name, "values": sorted(a.values)}) for a in self.axes),
            "rules": sorted(r.hash for r in self.rules),
        }
        return self.model_copy(update={"hash": content_hash(meaning)})


def _canon(check) -> object:
    """A check as JSON with meaning-neutral differences removed: nested `and`/`or` flattened
    and their operands sorted (`a and b` == `b and a`)."""
    if isinstance(check, CheckCall):
        return {"call": check.name, "args": [list(a) if isinstance(a, tuple) else a for a in check.args]}
    if isinstance(check, CheckNot):
        return {"not": _canon(check.operand)}
    cls = type(check)
    flat: list = []
    for o in check.operands:
        flat.extend(o.operands if isinstance(o, cls) else [o])
    return {check.op: sorted({canonical_json(_canon(o)) for o in flat})}


def canonical_checks(checks) -> list[str]:
    """A rule's checks all must hold, so two `check` lines mean the same as one `and`: the
    hash sees the set of top-level conjuncts, each in canonical form."""
    conjuncts: set[str] = set()
    for c in checks:
        for part in (c.operands if isinstance(c, CheckAnd) else (c,)):
            conjuncts.add(canonical_json(_canon(part)))
    return sorted(conjuncts)


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(obj) -> str:
    """The one hash of specc: sha256 over canonical JSON, hex, 16 bytes shown."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:32]
