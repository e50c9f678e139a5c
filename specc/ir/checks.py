"""The fixed library of check predicates: their evaluation, and their signatures (checked at
compile time) as the language table declares them (:mod:`specc.language`).

A spec never runs code: a check is a tree of calls to the predicates of the table, combined
with ``and`` / ``or`` / ``not``. Each evaluator below takes the answer text and returns a bool.

Regular expressions use the ``regex`` module with a time limit per evaluation
(:data:`REGEX_TIMEOUT_S`) and a time budget for all evaluations of one run
(:data:`REGEX_BUDGET_S`, see :func:`regex_budget`), so a pathological pattern cannot hang a
compile nor, repeated over many examples, a ``check``: a timeout raises :class:`CheckTimeout`,
which the verifier counts as a failed check with that reason. A pattern is refused before it
is compiled when its bounded repeats would expand it beyond :data:`MAX_REGEX_UNITS`
(:class:`RegexTooLarge`): the ``regex`` module compiles ``a{10000000}`` into gigabytes.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import time
import traceback
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import regex

from specc import language
from specc.ir.model import Check, CheckAnd, CheckCall, CheckNot, CheckOr

REGEX_TIMEOUT_S = 0.25
# Time for all regex evaluation: the lints of one loaded spec get REGEX_BUDGET_S; a command's
# other evaluations (verifying generated answers) share REGEX_BUDGET_S plus REGEX_ALLOWANCE_S per
# evaluation, since a compile runs a sound pattern millions of times (microseconds each, with a
# few milliseconds now and then on a busy machine) and only a backtracking one uses it up.
REGEX_BUDGET_S = 2.0
REGEX_ALLOWANCE_S = 0.001
MAX_REGEX_UNITS = 100_000  # what a pattern may expand to, its bounded repeats multiplied out
MAX_JSON_DEPTH = 100  # `is_json`: text nested deeper is not counted as JSON (and never parsed)

ArgType = language.ArgType


class CheckTimeout(Exception):
    pass


class BudgetSpent(CheckTimeout):
    """The run's regex time budget is spent: the check was not run."""


class RegexTooLarge(ValueError):
    """A pattern whose bounded repeats expand beyond :data:`MAX_REGEX_UNITS`."""


class _Budget:
    def __init__(self, seconds: float, allowance: float):
        self.left = seconds
        self.seconds = seconds
        self.allowance = allowance


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("specc_regex_budget", default=None)


@contextlib.contextmanager
def regex_budget(seconds: float = REGEX_BUDGET_S, allowance: float = 0.0, own: bool = False):
    """Share one time budget among all regex evaluations inside the block, growing by
    ``allowance`` per evaluation. Inside another budget's block it is that budget, unless
    ``own`` (the lints of one spec have their own)."""
    if _BUDGET.get() is not None and not own:
        yield _BUDGET.get()
        return
    token = _BUDGET.set(_Budget(seconds, allowance))
    try:
        yield _BUDGET.get()
    finally:
        _BUDGET.reset(token)


# One unit of a pattern: an escape (with a braced argument such as \p{L} or \x{41}), a class,
# a group opening or closing, a bounded repeat, or any other character.
_UNIT = re.compile(r"\\[pPNxXuUg]\{[^}]*\}|\\.|\[\^?\]?(?:\\.|\[:[^\]]*:\]|[^\]])*\]|\((?:\?[^)(:|]*[:)|])?"
                   r"|\)|\{(\d*)(?:,(\d*))?\}|.", re.S)


def regex_units(pattern: str) -> int:
    """An upper bound of the size of ``pattern`` once its bounded repeats are expanded, which
    is how the ``regex`` module compiles them (memory grows with it)."""
    frames: list[list[int]] = [[]]  # per open group: the units of its items
    for m in _UNIT.finditer(pattern):
        tok = m.group()
        if tok.startswith("(") and not tok.startswith("(?#"):
            frames.append([])
        elif tok == ")" and len(frames) > 1:
            inner = frames.pop()
            frames[-1].append(sum(inner) or 1)
        elif tok.startswith("{") and m.group(1) is not None and (m.group(1) or m.group(2)):
            low = int(m.group(1) or 0)
            high = int(m.group(2)) if m.group(2) else low
            items = frames[-1]
            last = items.pop() if items else 1
            items.append(last * max(low, high, 1))
        else:
            frames[-1].append(1)
        if frames[-1] and frames[-1][-1] > MAX_REGEX_UNITS:
            return frames[-1][-1]
    return sum(sum(f) for f in frames)


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
    r"\bI(?:'m| am) not (?:able|allowed|permitted|equipped|authori[sz]ed) to",
    r"\bI (?:do not|don't) have the (?:ability|capability|capacity|authority) to",
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
    """Compile a spec regex; raises ``regex.error`` (with ``.pos``) on a bad pattern and
    :class:`RegexTooLarge` on one that would expand too far."""
    units = regex_units(pattern)
    if units > MAX_REGEX_UNITS:
        raise RegexTooLarge(f"its bounded repeats expand it to {units:,} units, more than the limit of "
                            f"{MAX_REGEX_UNITS:,}")
    try:
        return regex.compile(pattern, regex.VERSION0)
    except regex.error as e:
        # the regex module's parser leaves its frames in a reference cycle with the error; cleared,
        # they do not keep the caller's frames (a whole check, in specc lsp) alive until a collection
        traceback.clear_frames(e.__traceback__)
        raise
    except (MemoryError, OverflowError, RecursionError) as e:
        raise RegexTooLarge(f"too large to compile ({type(e).__name__})") from None


def _matches(text: str, pattern: str) -> bool:
    budget = _BUDGET.get()
    timeout = REGEX_TIMEOUT_S
    if budget is not None:
        budget.left += budget.allowance
        if budget.left <= 0:
            raise BudgetSpent(f"the {budget.seconds:g} s budget for regular expressions in this run is spent")
        timeout = min(timeout, budget.left)
    compiled = compile_regex(pattern)  # once per pattern, and not what the budget is for
    start = time.perf_counter()
    try:
        return compiled.search(text, timeout=timeout) is not None
    except TimeoutError as e:
        raise CheckTimeout(f"regular expression {pattern!r} took longer than {timeout:g}s") from e
    finally:
        if budget is not None:
            budget.left -= time.perf_counter() - start


def _words(text: str) -> int:
    return len(text.split())


# The end of a sentence: a run of terminators, perhaps closing quotes or brackets, then
# whitespace or the end of the text (so `3.5` and `example.com` end nothing).
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s|\Z)")
_HAS_WORD = re.compile(r"\w")


def sentences(text: str) -> int:
    """How many sentences ``text`` has, as ``max_sentences`` counts them (docs/language.md):
    the stretches between sentence ends, and after the last one, that hold a letter or digit."""
    return sum(1 for part in _SENTENCE_END.split(text) if _HAS_WORD.search(part))


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_depth_ok(text: str) -> bool:
    depth = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif c in "]}":
            depth -= 1
    return True


def _is_json(text: str) -> bool:
    if not _json_depth_ok(text):  # the json module parses by recursion
        return False
    try:
        json.loads(text.strip())
    except ValueError:
        return False
    return True


def _mention(text: str, term: str) -> bool:
    return regex.search(r"(?<!\w)" + regex.escape(term) + r"(?!\w)", text, regex.IGNORECASE) is not None


# The evaluators, by predicate name; which predicates exist, and their parameters, is the
# language table's to say (specc.language.PREDICATES).
EVALUATORS: dict[str, Callable[..., bool]] = {
    "matches": _matches,
    "contains": lambda t, s: s.casefold() in t.casefold(),
    "max_words": lambda t, n: _words(t) <= n,
    "min_words": lambda t, n: _words(t) >= n,
    "max_chars": lambda t, n: len(t) <= n,
    "min_chars": lambda t, n: len(t) >= n,
    "starts_with": lambda t, s: t.lstrip().startswith(s),
    "ends_with": lambda t, s: t.rstrip().endswith(s),
    "is_json": _is_json,
    "refuses": is_refusal,
    "mentions_any": lambda t, xs: any(_mention(t, x) for x in xs),
    "mentions_all": lambda t, xs: all(_mention(t, x) for x in xs),
    "max_sentences": lambda t, n: sentences(t) <= n,
}


def _library() -> dict[str, Predicate]:
    missing = set(language.PREDICATE_NAMES) ^ set(EVALUATORS)
    if missing:  # a predicate without an evaluator, or an evaluator for no predicate
        raise AssertionError(f"specc.language.PREDICATES and EVALUATORS disagree on {sorted(missing)}")
    return {p.name: Predicate(p.name, p.params, p.summary, EVALUATORS[p.name]) for p in language.PREDICATES}


PREDICATES: dict[str, Predicate] = _library()


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
