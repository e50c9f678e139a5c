"""The fixed library of check predicates: signatures (checked at compile time) and evaluation.

A spec never runs code: a check is a tree of calls to the predicates below, combined with
``and`` / ``or`` / ``not``. Each predicate takes the answer text and returns a bool.

Regular expressions use the ``regex`` module with a time limit per evaluation
(:data:`REGEX_TIMEOUT_S`), so a pathological pattern cannot hang a compile: a timeout raises
:class:`CheckTimeout`, which the verifier counts as a failed check with that reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Literal

import regex

from specc.ir.model import Check, CheckAnd, CheckCall, CheckNot, CheckOr

REGEX_TIMEOUT_S = 0.25

ArgType = Literal["str", "regex", "int", "strlist"]


class CheckTimeout(Exception):
    pass


@dataclass(frozen=True)
class Predicate:
    name: str
    params: tuple[ArgType, ...]
    doc: str
    fn: Callable[..., bool]


# Phrases that open a refusal. Matched case-insensitively within the first 300 characters,
# where assistants put them; a refusal buried after a long answer is not a refusal.
REFUSAL_PATTERNS = (
    r"\bI\s*(?:can(?:no|')t|cannot|won'?t|will not|am not able to|'m not able to|am unable to|'m unable to)\s+"
    r"(?:help|assist|provide|share|do|comply|give|answer|disclose|reveal|support|create|write|fulfil)",
    r"\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can(?:no|')t|cannot|won'?t)",
    r"\bI (?:must|have to|need to) (?:decline|refuse)",
    r"\b(?:can(?:no|')t|cannot|won'?t) (?:help|assist) (?:you )?with (?:that|this)",
    r"\bI(?:'m| am) not (?:able|allowed|permitted) to",
    r"\bnot (?:something|a request) I can (?:help|assist) with",
    r"\bI (?:do not|don't) (?:feel comfortable|provide|share)",
)
_REFUSAL_RE = regex.compile("|".join(f"(?:{p})" for p in REFUSAL_PATTERNS), regex.IGNORECASE)
REFUSAL_WINDOW = 300


def is_refusal(text: str) -> bool:
    """The documented heuristic behind ``refuses``: a refusal phrase near the start."""
    window = text[:REFUSAL_WINDOW].replace("\u2019", "'").replace("\u02bc", "'")  # curly apostrophes
    return _REFUSAL_RE.search(window) is not None


@lru_cache(maxsize=4096)
def compile_regex(pattern: str):
    """Compile a spec regex; raises ``regex.error`` (with ``.pos``) on a bad pattern."""
    return regex.compile(pattern, regex.VERSION0)


def _matches(text: str, pattern: str) -> bool:
    try:
        return compile_regex(pattern).search(text, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError as e:
        raise CheckTimeout(f"regular expression {pattern!r} took longer than {REGEX_TIMEOUT_S}s") from e


def _words(text: str) -> int:
    return len(text.split())


def _is_json(text: str) -> bool:
    try:
        json.loads(text.strip())
    except ValueError:
        return False
    return True


def _mention(text: str, term: str) -> bool:
    return regex.search(r"(?<!\w)" + regex.escape(term) + r"(?!\w)", text, regex.IGNORECASE) is not None


PREDICATES: dict[str, Predicate] = {
    p.name: p
    for p in [
        Predicate("matches", ("regex",), "the answer contains a match of the regular expression", _matches),
        Predicate("contains", ("str",), "the answer contains the text (case-insensitive)",
                  lambda t, s: s.casefold() in t.casefold()),
        Predicate("max_words", ("int",), "the answer has at most N words", lambda t, n: _words(t) <= n),
        Predicate("min_words", ("int",), "the answer has at least N words", lambda t, n: _words(t) >= n),
        Predicate("max_chars", ("int",), "the answer has at most N characters", lambda t, n: len(t) <= n),
        Predicate("min_chars", ("int",), "the answer has at least N characters", lambda t, n: len(t) >= n),
        Predicate("starts_with", ("str",), "the answer (leading space ignored) starts with the text",
                  lambda t, s: t.lstrip().startswith(s)),
        Predicate("ends_with", ("str",), "the answer (trailing space ignored) ends with the text",
                  lambda t, s: t.rstrip().endswith(s)),
        Predicate("is_json", (), "the whole answer is a JSON value", _is_json),
        Predicate("refuses", (), "the answer opens with a refusal (see REFUSAL_PATTERNS)", is_refusal),
        Predicate("mentions_any", ("strlist",), "the answer mentions at least one of the terms (whole words, "
                  "case-insensitive)", lambda t, xs: any(_mention(t, x) for x in xs)),
        Predicate("mentions_all", ("strlist",), "the answer mentions every one of the terms (whole words, "
                  "case-insensitive)", lambda t, xs: all(_mention(t, x) for x in xs)),
    ]
}


def evaluate(check: Check, text: str) -> bool:
    """Evaluate a check on an answer. May raise :class:`CheckTimeout`."""
    if isinstance(check, CheckCall):
        return bool(PREDICATES[check.name].fn(text, *check.args))
    if isinstance(check, CheckNot):
        return not evaluate(check.operand, text)
    if isinstance(check, CheckAnd):
        return all(evaluate(c, text) for c in check.operands)
    if isinstance(check, CheckOr):
        return any(evaluate(c, text) for c in check.operands)
    raise TypeError(f"not a check: {check!r}")


def evaluate_all(checks, text: str) -> bool:
    """A rule's checks hold together: every one must pass."""
    return all(evaluate(c, text) for c in checks)
