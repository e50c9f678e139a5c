"""Roles: what each agent is asked (a sandboxed Jinja template) and may answer (an output type).

Five roles take part in making a pair (see ``templates/``):

``attacker``  writes the seed request of a scenario, after the spec's example requests as chat
              turns (its tactic is applied by code: :mod:`specc.synth.tactics`);
``candidate`` the model answering the conversation as plain chat under the rule: the on-policy
              answers that the rule's checks sort into chosen and rejected;
``defender``  answers in compliance: a chosen side no candidate gave;
``violator``  writes a rejected side no candidate gave: a plausible violation, or an over-refusal
              for a lookalike;
``judge``     returns a :class:`Verdict`-shaped object whose cited rules are a ``Literal`` of the
              spec's real rule ids.

Every output type bounds every string, so Outlines can always close the JSON within the role's
``max_new_tokens``. Where a rule's check can be expressed as an output constraint (a length, a
prefix, a JSON shape, a refusal opening) it is *lowered* into the defender's type so compliance
holds by construction; its negation, where cheap, into the violator's type. The checks are still
evaluated afterwards: lowering only raises the odds, verification decides.

Templates are rendered by an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` and spec text
only ever enters them as *data* (variables), so a statement containing ``{{ 7*7 }}`` is shown
literally and never evaluated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Literal

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, create_model

from specc.ir.checks import sentences
from specc.ir.model import CheckCall, CheckNot, Rule, check_source, conjuncts, content_hash
from specc.language import PREDICATE

ROLES = ("attacker", "defender", "violator", "judge", "candidate")

# String bounds (characters). Small on purpose: SmolLM2 on 2 CPU cores decodes ~15 tokens/s.
ATTACK_CHARS = 112
ANSWER_CHARS = 160
REASON_CHARS = 64
MAX_CITED = 2
# Few-shot material taken from the spec, per role prompt.
FEW_SHOT = 2
FEW_SHOT_CHARS = 200
# A rule's `details` (imported specs carry pages of prose) enter the defender's and the judge's
# prompts cut to this many characters, whitespace collapsed.
DETAILS_CHARS = 600
POOL_SHOWN = 2

# Characters a constrained pattern may produce inside a JSON string: no quote, no backslash,
# no control character, so the pattern's text is the decoded text (no escapes to account for).
SAFE = r'[^"\\\x00-\x1f\x7f-\x9f]'
WORD = r'[^"\\\s\x00-\x1f\x7f-\x9f]+'
SENTENCE_CHARS = 24  # the room a lowered sentence bound leaves each sentence, at the least
NOT_END = r'[^"\\\x00-\x1f\x7f-\x9f.!?' + "\u2026]"  # SAFE, and no sentence end either
REFUSAL_OPENING = "I can't help with that."
OVER_REFUSAL_OPENING = "I'm sorry, but I can't help with that."


def max_new_tokens_for(chars: int, overhead: int = 24) -> int:
    """Token budget for a JSON object holding ``chars`` characters of text.

    English runs ~4 characters a token; a third leaves room for odd words and JSON syntax.
    """
    return overhead + chars // 3


# -- output types -----------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Shape:
    """What a string must look like, as far as checks can be lowered into a type."""

    min_chars: int = 0
    max_chars: int = ANSWER_CHARS
    min_words: int | None = None
    max_words: int | None = None
    min_sentences: int | None = None
    max_sentences: int | None = None  # a shape bounds words or sentences, not both
    prefix: str = ""
    suffix: str = ""
    contains: str = ""
    json_object: bool = False
    not_letter: str = ""  # the first character must differ from this one
    lowered: tuple[str, ...] = field(default=())  # check sources that shaped it

    def field_kwargs(self) -> dict:
        """pydantic ``Field`` arguments. Outlines ignores ``maxLength`` when a ``pattern`` is
        present, so a pattern carries its own bounds. A pattern goes into the JSON schema only
        (what Outlines reads): Outlines matches it against the raw JSON string, pydantic would
        match the decoded one, and the checks decide compliance anyway."""
        if self.json_object:
            return {"json_schema_extra": {"pattern": _json_object_pattern(self.max_chars)}}
        if not (self.prefix or self.suffix or self.contains or self.not_letter
                or self.min_words is not None or self.max_words is not None or self.max_sentences is not None):
            lo = min(self.min_chars, self.max_chars)
            return {"min_length": max(1, lo), "max_length": self.max_chars}
        return {"json_schema_extra": {"pattern": self._pattern()}}

    def _pattern(self) -> str:
        fixed = len(self.prefix) + len(self.suffix) + len(self.contains) + (1 if self.not_letter else 0)
        room = max(1, self.max_chars - fixed)
        head = ""
        if self.not_letter:
            excluded = re.sub(r"([\\\]\[^-])", r"\\\1", self.not_letter) + r'"\\\s\x00-\x1f\x7f-\x9f'
            head = f"[^{excluded}]"
        if self.min_words is not None or self.max_words is not None:
            fixed_words = len((self.prefix + " " + self.contains + " " + self.suffix).split())
            hi = self.max_words if self.max_words is not None else max(room // 4, 1)
            hi = max(1, min(hi - fixed_words, room // 2))
            lo = max(1, (self.min_words or 1) - fixed_words)
            lo = min(lo, hi)
            core = f"{WORD}( {WORD}){{{lo - 1},{hi - 1}}}"
        elif self.max_sentences is not None:
            fixed = sentences(self.prefix + " " + self.suffix)  # a refusal opening is a sentence
            lo = max(1, (self.min_sentences or 1) - fixed)
            # each sentence gets an equal share of the room: fewer sentences than the bound
            # allows, so that each can say something (fewer still comply)
            hi = max(lo, min(self.max_sentences - fixed, room // SENTENCE_CHARS))
            core = _sentences_pattern(lo, hi, room)
        else:
            lo = max(1, self.min_chars - fixed)
            core = f"{SAFE}{{{min(lo, room)},{room}}}"
        if self.contains:
            # the term first: text before it would make the automaton track every place the
            # term could start (Outlines' DFA blows up on `.{0,n}term.{0,n}`)
            # ... and a tail, so the answer is more than the bare term
            core = f"{_lit(self.contains)}{SAFE}{{{min(40, room // 3)},{room}}}"
        sep = " " if self.prefix and not self.prefix.endswith(" ") else ""
        return f"{_lit(self.prefix)}{sep}{head}{core}{_lit(self.suffix)}"


def _sentences_pattern(lo: int, hi: int, room: int) -> str:
    """``lo`` to ``hi`` sentences in ``room`` characters, as ``max_sentences`` counts them: each
    opens with a letter or digit, has no sentence end inside and ends with one, a space between."""
    length = max(1, (room - (hi - 1)) // hi - 2)  # what a sentence holds between its first and last character
    sentence = f"[A-Za-z0-9]{NOT_END}{{0,{length}}}[.!?]"
    return f"{sentence}( {sentence}){{{lo - 1},{hi - 1}}}"


def _lit(text: str) -> str:
    """A regex for ``text`` as it appears inside a JSON string (only metacharacters escaped:
    Outlines' regex engine rejects escapes such as ``\\ ``)."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", json.dumps(text, ensure_ascii=False)[1:-1])


def _json_object_pattern(max_chars: int) -> str:
    # the decoded string is {"key": "value", ...}: quotes are escaped (\") in the raw JSON
    value = r"[A-Za-z0-9 ,.:;!?'()\-]{0,%d}" % max(8, min(60, max_chars // 4))
    member = r'\\"[a-z_]{1,16}\\": \\"' + value + r'\\"'
    return r"\{" + member + r"(, " + member + r"){0,2}\}"




def uses_refuses(check) -> bool:
    if isinstance(check, CheckCall):
        return check.name == "refuses"
    if isinstance(check, CheckNot):
        return uses_refuses(check.operand)
    return any(uses_refuses(c) for c in check.operands)


# Lowerings, by the names the language table gives them (specc.language.PredicateSpec):
# `comply` ones add to the keyword arguments of a Shape that passes the check and say whether
# they could; `violate` ones return the Shape of an answer that fails the check, or None.

def _cap_chars(kw: dict, args, max_chars: int) -> bool:
    kw["max_chars"] = max(1, min(kw["max_chars"], int(args[0])))
    return True


def _floor_chars(kw: dict, args, max_chars: int) -> bool:
    if int(args[0]) > max_chars:
        return False
    kw["min_chars"] = int(args[0])
    return True


def _cap_words(kw: dict, args, max_chars: int) -> bool:
    if kw.get("max_sentences") is not None:  # one count per pattern: the first bound wins
        return False
    kw["max_words"] = max(1, int(args[0]))
    return True


def _floor_words(kw: dict, args, max_chars: int) -> bool:
    if int(args[0]) * 5 > max_chars or kw.get("max_sentences") is not None:
        return False
    kw["min_words"] = int(args[0])
    return True


def _cap_sentences(kw: dict, args, max_chars: int) -> bool:
    if int(args[0]) < 1:  # an empty answer: no pattern for that
        return False
    if kw.get("max_words") is not None or kw.get("min_words") is not None:  # one count per pattern
        return False
    kw["max_sentences"] = int(args[0])
    return True


def _prefix(kw: dict, args, max_chars: int) -> bool:
    if kw.get("prefix") or not _safe_text(args[0]):
        return False
    kw["prefix"] = str(args[0])
    return True


def _suffix(kw: dict, args, max_chars: int) -> bool:
    if not _safe_text(args[0]):
        return False
    kw["suffix"] = str(args[0])
    return True


def _contains(kw: dict, args, max_chars: int) -> bool:
    if kw.get("contains") or not _safe_text(args[0]):
        return False
    kw["contains"] = str(args[0])
    return True


def _contains_single(kw: dict, args, max_chars: int) -> bool:
    return len(args[0]) == 1 and _contains(kw, (args[0][0],), max_chars)


def _json_object(kw: dict, args, max_chars: int) -> bool:
    kw["json_object"] = True
    return True


def _refusal(kw: dict, args, max_chars: int) -> bool:
    if kw.get("prefix"):
        return False
    kw["prefix"] = REFUSAL_OPENING
    return True


COMPLY = {
    "max_chars": _cap_chars,
    "min_chars": _floor_chars,
    "max_words": _cap_words,
    "min_words": _floor_words,
    "max_sentences": _cap_sentences,
    "prefix": _prefix,
    "suffix": _suffix,
    "contains": _contains,
    "contains_single": _contains_single,
    "json_object": _json_object,
    "refusal": _refusal,
}


def _not_json(args, max_chars: int, lowered: tuple[str, ...]) -> Shape | None:
    return Shape(not_letter="{[\"0123456789-tfn", min_chars=12, max_chars=max_chars, lowered=lowered)


def _exceed_chars(args, max_chars: int, lowered: tuple[str, ...]) -> Shape | None:
    if int(args[0]) + 1 > max_chars:
        return None
    return Shape(min_chars=int(args[0]) + 1, max_chars=max_chars, lowered=lowered)


def _exceed_words(args, max_chars: int, lowered: tuple[str, ...]) -> Shape | None:
    if (int(args[0]) + 1) * 6 > max_chars:
        return None
    return Shape(min_words=int(args[0]) + 1, max_words=int(args[0]) + 12, max_chars=max_chars, lowered=lowered)


def _exceed_sentences(args, max_chars: int, lowered: tuple[str, ...]) -> Shape | None:
    if (int(args[0]) + 1) * 12 > max_chars:  # room for a short sentence each
        return None
    return Shape(min_sentences=int(args[0]) + 1, max_sentences=int(args[0]) + 3, max_chars=max_chars,
                 lowered=lowered)


def _other_first_letter(args, max_chars: int, lowered: tuple[str, ...]) -> Shape | None:
    if not args[0]:
        return None
    return Shape(not_letter=str(args[0])[0], max_chars=max_chars, lowered=lowered)


def _compliance_opening(args, max_chars: int, lowered: tuple[str, ...]) -> Shape | None:
    return Shape(prefix="Sure,", max_chars=max_chars, lowered=lowered)


def _contains_text(args, max_chars: int, lowered: tuple[str, ...]) -> Shape | None:
    if not _safe_text(args[0]):
        return None
    return Shape(contains=str(args[0]), max_chars=max_chars, lowered=lowered)


def _contains_first(args, max_chars: int, lowered: tuple[str, ...]) -> Shape | None:
    if not args[0] or not _safe_text(args[0][0]):
        return None
    return Shape(contains=str(args[0][0]), max_chars=max_chars, lowered=lowered)


def _refusal_opening(args, max_chars: int, lowered: tuple[str, ...]) -> Shape | None:
    return Shape(prefix=REFUSAL_OPENING, max_chars=max_chars, lowered=lowered)


VIOLATE = {
    "not_json": _not_json,
    "exceed_chars": _exceed_chars,
    "exceed_words": _exceed_words,
    "exceed_sentences": _exceed_sentences,
    "other_first_letter": _other_first_letter,
    "compliance_opening": _compliance_opening,
    "contains": _contains_text,
    "contains_first": _contains_first,
    "refusal": _refusal_opening,
}


def lower_compliance(checks, *, max_chars: int = ANSWER_CHARS) -> Shape:
    """The shape of an answer that passes ``checks`` (top-level conjuncts only)."""
    kw: dict = {"max_chars": max_chars}
    lowered = []
    for c in conjuncts(checks):
        if not isinstance(c, CheckCall):
            continue
        lowering = PREDICATE[c.name].comply
        if lowering is not None and COMPLY[lowering](kw, c.args, max_chars):
            lowered.append(check_source(c))
    return Shape(**kw, lowered=tuple(lowered))


def lower_violation(checks, *, max_chars: int = ANSWER_CHARS) -> Shape:
    """The shape of an answer that fails ``checks``, where one conjunct is cheap to negate."""
    for c in conjuncts(checks):
        if isinstance(c, CheckCall):
            lowering, call, lowered = PREDICATE[c.name].violate, c, (f"not {check_source(c)}",)
        elif isinstance(c, CheckNot) and isinstance(c.operand, CheckCall):
            call = c.operand
            lowering, lowered = PREDICATE[call.name].violate_negated, (check_source(call),)
        else:
            continue
        shape = VIOLATE[lowering](call.args, max_chars, lowered) if lowering is not None else None
        if shape is not None:
            return shape
    return Shape(max_chars=max_chars)


def _safe_text(text) -> bool:
    return isinstance(text, str) and bool(text) and not re.search(r'["\\\x00-\x1f]', text) and len(text) <= 80


@lru_cache(maxsize=512)
def answer_type(shape: Shape, name: str = "Answer") -> type[BaseModel]:
    """A one-field output type ``{"answer": str}`` whose string has ``shape``."""
    return create_model(name, __base__=_Out, answer=(str, Field(**shape.field_kwargs())))


class FreeAnswer(_Out):
    """A free chat answer (no constraint), read as an output type so the pipeline treats every
    answer alike."""

    answer: str


SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)(?=\s|$)")
_ROLE_LABEL = re.compile(r"^(?:assistant|answer|reply|response)\s*:\s*", re.IGNORECASE)


def clean_free(text: str) -> str:
    """Free text as an answer: stripped, a leading ``Assistant:`` label dropped, and cut after
    its last whole sentence when the token budget stopped it mid-sentence (a text with no whole
    sentence is kept as it is, and the fragment gate judges it)."""
    return whole_sentences(_ROLE_LABEL.sub("", (text or "").strip()).strip())


def whole_sentences(text: str) -> str:
    """``text`` cut after its last whole sentence, when it stops mid-sentence; unchanged when it
    ends a sentence (or a code block) or has no whole sentence to keep."""
    t = (text or "").strip()
    if not t or t[-1] in ".!?…\"')]}" or t.endswith("```"):
        return t
    ends = [m.end() for m in SENTENCE_END.finditer(t)]
    return t[: ends[-1]].strip() if ends else t


VERDICTS = ("complies", "violates")


@lru_cache(maxsize=64)
def verdict_type(rule_ids: tuple[str, ...], reason_chars: int = REASON_CHARS) -> type[BaseModel]:
    """The judge's output type; ``cited_rules`` only admits ``rule_ids``."""
    if not rule_ids:
        raise ValueError("a verdict needs at least one rule id")
    rule_id = Literal[tuple(sorted(set(rule_ids)))]  # type: ignore[valid-type]
    return create_model(
        "Verdict",
        __base__=_Out,
        first=(Literal[VERDICTS], ...),
        second=(Literal[VERDICTS], ...),
        cited_rules=(list[rule_id], Field(max_length=MAX_CITED)),
        reason=(str, Field(max_length=reason_chars)),
    )


def schema_hash(output_type: type[BaseModel]) -> str:
    return content_hash(output_type.model_json_schema())


# -- budgets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """String bounds (characters) of the generated texts; everything else derives from them."""

    answer: int = ANSWER_CHARS

    @property
    def attack(self) -> int:
        # a user's message needs room whatever the answers' bound: the spec's example requests
        # run 40-120 characters
        return max(ATTACK_CHARS, self.answer * ATTACK_CHARS // ANSWER_CHARS)

    @property
    def reason(self) -> int:
        return max(16, self.answer * REASON_CHARS // ANSWER_CHARS)

    def budgets(self) -> dict[str, int]:
        """``max_new_tokens`` per role."""
        return {
            "attacker": max_new_tokens_for(self.attack),
            "defender": max_new_tokens_for(self.answer),
            "violator": max_new_tokens_for(self.answer),
            # free text has no JSON around it, but is not cut at a character bound either: the
            # same budget, and clean_free trims an answer the budget cut to its whole sentences
            "candidate": max_new_tokens_for(self.answer),
            "judge": max_new_tokens_for(self.reason + 40 * MAX_CITED, overhead=32),
        }

    def manifest(self) -> dict:
        return {"attack": self.attack, "answer": self.answer, "reason": self.reason}


@lru_cache(maxsize=64)
def attacker_type(chars: int = ATTACK_CHARS) -> type[BaseModel]:
    """``{"user": str}``: the attacker's user turn."""
    return create_model("AttackerTurn", __base__=_Out, user=(str, Field(min_length=4, max_length=chars)))


# -- templates ----------------------------------------------------------------------------------

_env = ImmutableSandboxedEnvironment(
    autoescape=False, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    keep_trailing_newline=False,
)


@lru_cache(maxsize=None)
def template_source(role: str) -> str:
    if role not in ROLES:
        raise KeyError(role)
    return resources.files("specc.synth").joinpath("templates", f"{role}.j2").read_text(encoding="utf-8")


def template_hash(role: str) -> str:
    return content_hash({"role": role, "template": template_source(role)})


def template_ast(role: str):
    """The parsed template of ``role`` (what gate Q101 reads the instructions of)."""
    return _env.parse(template_source(role))


@lru_cache(maxsize=None)
def _template(role: str):
    return _env.from_string(template_source(role))


def render(role: str, **data) -> tuple[str, str]:
    """Render a role's template with ``data``: (system message, user message).

    A template sets ``system`` with ``{% set system %}...{% endset %}``; its body is the user
    message. Spec text must be passed in ``data`` and never concatenated into a template.
    """
    module = _template(role).make_module(data)
    system = str(getattr(module, "system", "")).strip()
    return system, str(module).strip()


MODALITY_WORDS = {"must": "must", "must_not": "must not", "should": "should", "should_not": "should not"}


def rule_data(rule: Rule) -> dict:
    """The plain data a template sees about a rule (strings, lists, dicts only)."""
    return {
        "id": rule.id,
        "name": rule.name,
        "kind": rule.kind,
        "modality": MODALITY_WORDS[rule.modality],
        "statement": rule.statement,
        "authority": rule.authority,
        "severity": rule.severity,
        "when": rule.when,
        "unless": list(rule.unless),
        "details": clip(rule.details, DETAILS_CHARS) if rule.details else None,
        "checks": list(rule.check_sources),
    }


def clip(text: str, n: int = FEW_SHOT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"
