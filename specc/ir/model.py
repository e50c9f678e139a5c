"""The resolved rule IR: frozen pydantic v2 models, the contract between the front end and
everything after it (plan, synth, emit, diff).

A :class:`Spec` holds the *effective* rules after imports, ``extends`` and overrides, each
with a qualified id (``<defining spec id>.<rule name>``) and a content hash. The hash covers
every meaning-bearing field and nothing else: not spans, not comments, not the section a rule
sits in, not the order of declarations, of ``unless`` clauses, tags or examples.
"""

from __future__ import annotations

import functools
import json
from types import SimpleNamespace
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from specc.diagnostics import Span
from specc.ir.hashing import ENCODE, canonical_json, content_hash  # noqa: F401 (re-exported)
from specc.ir.hashing import sha as _sha
from specc import language
from specc.language import BARE_CHECKS
from specc.syntax.text import encode_string, format_number

Authority = Literal["root", "system", "developer", "user", "guideline"]
Severity = Literal["critical", "high", "medium", "low"]
Modality = Literal["must", "must_not", "should", "should_not"]
Role = Literal["system", "developer", "user", "assistant", "tool"]

AUTHORITIES: tuple[str, ...] = ("root", "system", "developer", "user", "guideline")
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
MODALITIES: tuple[str, ...] = language.MODALITIES

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


# `and` / `or` are associative: `a and (b and c)` means `a and b and c`, and a rule's `check`
# lines all must hold, so they are one `and`. The one flattening of specc (the resolver builds
# flat chains with `chain`; the hash, the printer, the lowering and the diff read them with
# `operands_of` / `conjuncts`).

def _flat(cls: type, checks) -> list:
    out: list = []
    for c in checks:
        if type(c) is cls:
            out.extend(_flat(cls, c.operands))
        else:
            out.append(c)
    return out


def operands_of(check: "CheckAnd | CheckOr") -> list:
    """The operands of an `and` / `or`, nested chains of the same operator flattened."""
    return _flat(type(check), check.operands)


def chain(op: str, operands) -> "CheckAnd | CheckOr":
    """An `and` / `or` of ``operands``, flat (an operand that is the same chain is spliced in)."""
    cls = CheckAnd if op == "and" else CheckOr
    return cls(operands=tuple(_flat(cls, operands)))


def conjuncts(checks) -> list:
    """A rule's checks as the list of what must hold: ``check a and b`` is ``check a`` plus
    ``check b``."""
    return _flat(CheckAnd, checks)


def check_source(check: Check, _top: bool = True) -> str:
    """The canonical text of a check, as ``specc fmt`` writes it (the same literals,
    :mod:`specc.syntax.text`): `and`/`or` chains flattened, nested chains parenthesised."""
    if isinstance(check, CheckCall):
        if not check.args and check.name in BARE_CHECKS:
            return check.name
        return f"{check.name}({', '.join(map(_arg_source, check.args))})"
    if isinstance(check, CheckNot):
        return "not " + check_source(check.operand, False)
    body = f" {check.op} ".join(check_source(o, False) for o in operands_of(check))
    return body if _top else f"({body})"


def _arg_source(a: CheckArgValue) -> str:
    if isinstance(a, tuple):
        return "[" + ", ".join(map(encode_string, a)) + "]"  # check arguments are data: always strings
    if isinstance(a, str):
        return encode_string(a)
    return format_number(a)


# -- examples, axes ---------------------------------------------------------------------


class Turn(_Frozen):
    role: Role
    text: str


# The labels of a `bad` answer that mean over-refusal: the answer is wrong because it is too
# cautious (refuses or hedges on a request the rule allows). Case does not matter. Such an
# example is a lookalike pair (helpful chosen, over-cautious rejected), and lint W408 does not
# expect its bad answer to fail the rule's check. Any other label only names the failure.
OVERREFUSAL_LABELS: frozenset[str] = frozenset({"overrefusal", "over_refusal", "refusal", "lookalike"})


def means_overrefusal(label: str | None) -> bool:
    """Whether a `bad` answer's label marks it as an over-refusal (see OVERREFUSAL_LABELS)."""
    return label is not None and label.lower() in OVERREFUSAL_LABELS


class Answer(_Frozen):
    text: str
    label: str | None = None
    reason: str | None = None

    @property
    def overrefusal(self) -> bool:
        return means_overrefusal(self.label)


class Example(_Frozen):
    title: str
    turns: tuple[Turn, ...]
    good: tuple[Answer, ...] = ()
    bad: tuple[Answer, ...] = ()
    span: Span | None = None


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
    details: str | None = Field(default=None, description="The rule's long text: what a judge and a defender "
                                "need to know beyond the statement")
    tags: tuple[str, ...] = ()
    weight: float = DEFAULT_WEIGHT
    checks: tuple[Check, ...] = ()
    examples: tuple[Example, ...] = ()
    axes: tuple[Axis, ...] = Field(default=(), description="Effective axes: spec, section and rule scope merged")
    section: tuple[str, ...] = Field(default=(), description="Path of section names, outermost first")
    hash: str = ""
    span: Span = Field(description="Where the rule is declared (the one span type of specc, "
                       "specc.diagnostics.Span)")

    def meaning(self) -> dict:
        """The meaning-bearing fields, canonically ordered: what the hash covers."""
        return _rule_meaning(self)

    def with_hash(self) -> "Rule":
        return self.model_copy(update={"hash": _sha(_rule_meaning_json(self))})

    @classmethod
    def hashed(cls, **fields) -> "Rule":
        """``Rule(**fields).with_hash()`` built in one go (the resolver makes thousands). Every
        meaning-bearing field must be given, already of its final type."""
        return cls(**fields, hash=_sha(_rule_meaning_json(SimpleNamespace(**fields))))

    @property
    def check_sources(self) -> tuple[str, ...]:
        return tuple(check_source(c) for c in self.checks)

    def example_texts(self) -> tuple[str, ...]:
        """Every text of the rule's examples: their turns, good and bad answers."""
        return tuple(t for ex in self.examples
                     for t in (*(x.text for x in ex.turns), *(a.text for a in ex.good), *(a.text for a in ex.bad)))


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
            "axes": sorted(_axis_json(a.name, a.values) for a in self.axes),
            "rules": sorted(r.hash for r in self.rules),
        }
        return self.model_copy(update={"hash": content_hash(meaning)})


def _rule_meaning(r) -> dict:
    meaning = {
        "id": r.id,
        "kind": r.kind,
        "modality": r.modality,
        "statement": r.statement,
        "authority": r.authority,
        "severity": r.severity,
        "when": r.when,
        "unless": sorted(r.unless),
        "tags": sorted(r.tags),
        "weight": r.weight,
        "checks": canonical_checks(r.checks),
        "examples": sorted(canonical_json(_example_meaning(e)) for e in r.examples),
        "axes": sorted(_axis_json(a.name, a.values) for a in r.axes),
    }
    if r.details is not None:  # absent from the meaning when not given: older hashes stay valid
        meaning["details"] = r.details
    return meaning


_STR = json.encoder.encode_basestring  # a str as a JSON string literal, non-ASCII kept (C)


def _strs_json(items) -> str:
    """canonical_json of a list of strings."""
    return "[" + ",".join(map(_STR, items)) + "]"


def _rule_meaning_json(r) -> str:
    """``canonical_json(_rule_meaning(r))``, assembled by hand: the keys in sorted order, the
    nested JSON strings made once. The same text (tests/test_resolve.py compares them), three
    times faster, and a 5,000-rule spec hashes 5,000 of these on every load."""
    return "".join((
        '{"authority":', _STR(r.authority),
        ',"axes":', _axes_json(r.axes),
        ',"checks":', _strs_json(canonical_checks(r.checks)),
        "" if r.details is None else ',"details":' + _STR(r.details),
        ',"examples":', _strs_json(sorted(_example_json(e) for e in r.examples)) if r.examples else "[]",
        ',"id":', _STR(r.id),
        ',"kind":', _STR(r.kind),
        ',"modality":', _STR(r.modality),
        ',"severity":', _STR(r.severity),
        ',"statement":', _STR(r.statement),
        ',"tags":', _strs_json(sorted(r.tags)),
        ',"unless":', _strs_json(sorted(r.unless)),
        ',"weight":', _value_json(r.weight),
        ',"when":', "null" if r.when is None else _STR(r.when),
        "}",
    ))


_AXES_JSON: dict[int, tuple[tuple, str]] = {}


def _axes_json(axes: tuple["Axis", ...]) -> str:
    """The rules of a section share one axes tuple: its JSON is made once (kept by identity)."""
    hit = _AXES_JSON.get(id(axes))
    if hit is not None and hit[0] is axes:
        return hit[1]
    text = _strs_json(sorted(_axis_json(a.name, a.values) for a in axes))
    if len(_AXES_JSON) > 4096:
        _AXES_JSON.clear()
    _AXES_JSON[id(axes)] = (axes, text)
    return text


def _value_json(v) -> str:
    """canonical_json of a check argument or a weight, without an encoder call for the usual
    types (a string, a whole number, a finite float, a list of strings)."""
    t = type(v)
    if t is str:
        return _STR(v)
    if t is int or (t is float and v - v == 0):  # finite: json writes repr(); nan and inf differ
        return repr(v)
    if (t is tuple or t is list) and all(type(x) is str for x in v):
        return _strs_json(v)
    return ENCODE(v)


def _example_json(e: "Example") -> str:
    """``canonical_json(_example_meaning(e))``, written out."""
    def answers(items) -> str:
        return "[" + ",".join(
            '{"label":' + ("null" if a.label is None else _STR(a.label))
            + ',"reason":' + ("null" if a.reason is None else _STR(a.reason))
            + ',"text":' + _STR(a.text) + "}"
            for a in items) + "]"

    turns = ",".join('{"role":' + _STR(t.role) + ',"text":' + _STR(t.text) + "}" for t in e.turns)
    return ('{"bad":' + answers(e.bad) + ',"good":' + answers(e.good) + ',"title":' + _STR(e.title)
            + ',"turns":[' + turns + "]}")


def _example_meaning(e: Example) -> dict:
    """``e.model_dump(mode="json", exclude={"span"})``, written out: the same dict, 10x faster."""
    return {
        "title": e.title,
        "turns": [{"role": t.role, "text": t.text} for t in e.turns],
        "good": [{"text": a.text, "label": a.label, "reason": a.reason} for a in e.good],
        "bad": [{"text": a.text, "label": a.label, "reason": a.reason} for a in e.bad],
    }


@functools.lru_cache(maxsize=4096)
def _axis_json(name: str, values: tuple[str, ...]) -> str:
    """An axis as canonical JSON (cached: every rule in a section carries the same axes)."""
    return canonical_json({"name": name, "values": sorted(values)})


def _canon_json(check) -> str:
    """A check as canonical JSON text, meaning-neutral differences removed: nested `and`/`or`
    flattened and their operands sorted (`a and b` == `b and a`). The JSON of
    ``{"call": name, "args": [...]}``, ``{"not": operand}`` or ``{op: [operand JSON, ...]}``,
    written out (tests/test_resolve.py builds the dicts and compares)."""
    if isinstance(check, CheckCall):
        args = "[" + ",".join(map(_value_json, check.args)) + "]"
        return '{"args":' + args + ',"call":' + _STR(check.name) + "}"
    if isinstance(check, CheckNot):
        return '{"not":' + _canon_json(check.operand) + "}"
    return "{" + _STR(check.op) + ":" + _strs_json(sorted({_canon_json(o) for o in operands_of(check)})) + "}"


def canonical_checks(checks) -> list[str]:
    """A rule's checks all must hold, so two `check` lines mean the same as one `and`: the
    hash sees the set of top-level conjuncts, each in canonical form."""
    return sorted({_canon_json(part) for part in conjuncts(checks)})


