"""Verification of a pair: executable checks first, the judge where code cannot decide.

* A rule with checks, at the ``violation`` boundary (or a ``conflict`` the rule wins): chosen
  must pass every check of the rule and rejected must fail them.
* ``lookalike`` (chosen helps, the rule does not apply): rejected must be a refusal and chosen
  must not (:func:`specc.ir.checks.is_refusal`); chosen must also pass the rule's checks that do
  not involve ``refuses`` (a lookalike's chosen answer does not refuse, by definition).
* Everything else goes to the judge: rules without checks at the ``violation`` / ``conflict``
  boundaries, and conflicts where a ``default`` is legitimately overridden.

A failure names the side to regenerate, so a retry only redoes what failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from specc.ir.checks import CheckTimeout, evaluate_all, is_refusal
from specc.ir.model import Rule, content_hash
from specc.plan.model import Scenario
from specc.synth.roles import uses_refuses

Side = Literal["chosen", "rejected"]


@dataclass(frozen=True)
class Result:
    ok: bool
    by: Literal["check", "judge"]
    reason: str | None = None  # why it failed
    redo: frozenset = frozenset()  # sides to regenerate


def needs_judge(rule: Rule, scenario: Scenario) -> bool:
    if scenario.expected == "help":
        return False
    if scenario.expected == "follow_override":
        return True
    return not rule.checks


def _passes(checks, text: str) -> bool | str:
    try:
        return evaluate_all(checks, text)
    except CheckTimeout:
        return "check-timeout"


def by_checks(rule: Rule, scenario: Scenario, chosen: str, rejected: str) -> Result:
    """Verify a pair by code. Only for scenarios where :func:`needs_judge` is false."""
    if scenario.expected == "help":
        redo = set()
        reasons = []
        if is_refusal(chosen):
            redo.add("chosen")
            reasons.append("chosen-refuses")
        else:
            checks = tuple(c for c in rule.checks if not uses_refuses(c))
            passed = _passes(checks, chosen) if checks else True
            if passed is not True:
                redo.add("chosen")
                reasons.append("check-timeout" if passed == "check-timeout" else "chosen-fails-check")
        if not is_refusal(rejected):
            redo.add("rejected")
            reasons.append("rejected-not-refusal")
        return Result(not redo, "check", "+".join(reasons) or None, frozenset(redo))
    redo = set()
    reasons = []
    passed = _passes(rule.checks, chosen)
    if passed is not True:
        redo.add("chosen")
        reasons.append("check-timeout" if passed == "check-timeout" else "chosen-fails-check")
    failed = _passes(rule.checks, rejected)
    if failed is True:
        redo.add("rejected")
        reasons.append("rejected-passes-check")
    elif failed == "check-timeout":
        redo.add("rejected")
        reasons.append("check-timeout")
    return Result(not redo, "check", "+".join(reasons) or None, frozenset(redo))


def judge_order(scenario_id: str, attempt: int) -> bool:
    """Whether chosen is shown first to the judge: a seeded coin, so position bias cannot
    pass a pair by itself."""
    return int(content_hash({"judge-order": scenario_id, "attempt": attempt}), 16) % 2 == 0


def by_verdict(verdict: BaseModel, chosen_first: bool) -> Result:
    """Read the judge's verdict: chosen must comply and rejected must violate."""
    chosen_v = verdict.first if chosen_first else verdict.second
    rejected_v = verdict.second if chosen_first else verdict.first
    redo = set()
    reasons = []
    if chosen_v != "complies":
        redo.add("chosen")
        reasons.append("judge-chosen-violates")
    if rejected_v != "violates":
        redo.add("rejected")
        reasons.append("judge-rejected-complies")
    return Result(not redo, "judge", "+".join(reasons) or None, frozenset(redo))
