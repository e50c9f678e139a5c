"""Judge calibration: the judge is scored on the spec's own labelled examples before it is trusted.

The labelled material is every pair of the rules' ``example`` blocks that has both a good and a
bad answer (the pairs :func:`specc.synth.pipeline.spec_example_pairs` makes: every good against
every bad). Each pair is shown to the judge twice, good answer first and bad answer first, with
exactly the prompt the judge sees for a generated pair (:func:`specc.synth.prompts.judge_messages`
with the example's conversation). A pair whose bad answer is an over-refusal (a lookalike
example) gets the lookalike framing (``expected: help``: "an answer that refuses it violates").
A call *agrees* when its verdict is exactly right: the good answer "complies" and the bad one
"violates" (:func:`specc.synth.verify.by_verdict`). A call that gives no valid verdict (invalid
output, a model error) does not agree: a judge that cannot answer cannot verify either.

``agreement`` = agreeing calls / calls, over the examples of *all* the spec's rules: one number
for the judge, the same whichever rules a compile (or a shard) plans, so every shard of a compile
reports, and decides, the same. Per-rule numbers are recorded for the rules that have examples.
A judge that always answers "first complies, second violates" is right in exactly one of the two
orders of every pair: 0.5.

The calls run in fixed chunks of :data:`CHUNK`, in record-id order (record ids are content hashes:
an order that favours no rule). After each chunk the rest is not asked (``stopped_early``;
``agreement`` is then over the calls made, ``stop`` says why) when

* ``bound``: the judge could no longer reach ``min_agreement`` even by agreeing on every call left;
* ``test``: a judge that would reach ``min_agreement`` over all the planned calls would do this
  badly with probability under :data:`STOP_LEVEL` (:func:`sequential_test`). Three exact
  hypergeometric tails, each at a third of the level, had the labelled pairs been asked in a random
  order: the agreeing calls of all the pairs asked (counted by pair, as if both orders of a pair
  always agreed together: the most spread-out case, so it errs toward asking on), and those of each
  order alone: a judge at ``min_agreement`` overall agrees on at least ``2 * min_agreement - 1`` of
  the calls in each order, the other order giving at most all of its own. A position-biased judge
  (always "the first answer complies", the embedded 135M model) agrees on none of the calls with
  the bad answer first, and is stopped after one chunk.

Both can only stop a judge from being trusted, never make one trusted: the one error the test can
make (under :data:`STOP_LEVEL` at each chunk) is to drop the judge-only pairs of a judge that was
good enough, never to let a weak one verify a pair.

The calls go through the :class:`~specc.synth.calls.CallRunner` and its store like every other call
(scenario id ``calibration:<record id>``, role ``judge``, round 0, attempt 0, so the compile's
temperature and seed; keyed by the judge model, its parameters and the exact prompt), so they are
resumable and deterministic. They are counted apart from the scenarios' calls (a second runner on
the same store and judge model): ``stats.generated`` keeps describing the scenarios, and the
shards of a compile, which each calibrate the same judge, merge into the unsharded numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

from specc.ir.model import Spec
from specc.plan.model import Scenario
from specc.synth import prompts, roles, verify
from specc.synth.calls import CallRunner
from specc.synth.model import Pair, stop_reason

DEFAULT_MIN_AGREEMENT = 0.75
# calls are made in fixed chunks (the same for every shard); after each, a judge that could no
# longer reach min_agreement even by agreeing on every call left is not asked the rest
CHUNK = 16
# the sequential test's level at each chunk: how often, at most, it stops a judge that would have
# reached min_agreement over every labelled pair (sequential_test: three tails at a third each)
STOP_LEVEL = Fraction(1, 100)


@dataclass(frozen=True)
class Stop:
    """Why a calibration stopped early: ``bound`` (it could no longer reach the bar) or ``test``
    (:func:`sequential_test`: ``on`` which calls, ``all``, ``good_first`` or ``bad_first``, with
    ``right`` of ``asked`` agreeing and the tail ``p``)."""

    by: str
    after_calls: int
    on: str | None = None
    right: int | None = None
    asked: int | None = None
    p: float | None = None

    def manifest(self) -> dict:
        if self.by != "test":
            return {"by": self.by, "after_calls": self.after_calls}
        return {"by": self.by, "after_calls": self.after_calls, "on": self.on, "right": self.right,
                "asked": self.asked, "p": float(f"{self.p:.4g}"), "level": float(STOP_LEVEL)}
SCENARIO_PREFIX = "calibration:"
UNCALIBRATED = "judge-uncalibrated"  # the dropped reason of a judge-only scenario


@dataclass(frozen=True)
class Score:
    """Agreement counts of one group of calls."""

    examples: int = 0
    calls: int = 0
    correct: int = 0

    @property
    def agreement(self) -> float | None:
        return self.correct / self.calls if self.calls else None

    def add(self, correct: int, calls: int, examples: int = 0) -> "Score":
        return Score(self.examples + examples, self.calls + calls, self.correct + correct)


@dataclass(frozen=True)
class Calibration:
    total: Score
    min_agreement: float
    per_rule: dict[str, Score] = field(default_factory=dict)
    by_order: dict[str, Score] = field(default_factory=dict)  # good_first / bad_first
    invalid: int = 0  # calls without a valid verdict (counted as disagreeing)
    generated: int = 0  # calibration calls made in this run
    reused: int = 0  # ... and served from the store
    needed: bool = True  # False: no planned scenario needs the judge, so it was not measured
    stopped: bool = False  # True: the rest was not asked (stop says why)
    stop: Stop | None = None
    planned: int = 0  # calls the full calibration would make
    # the judge on pairs a person reviewed (specc review): reported apart, never part of `agreement`
    reviewer: Score | None = None
    reviewer_invalid: int = 0

    @property
    def agreement(self) -> float | None:
        return self.total.agreement

    @property
    def examples(self) -> int:
        return self.total.examples

    @property
    def calls(self) -> int:
        return self.total.calls

    @property
    def trusted(self) -> bool:
        if self.min_agreement <= 0:
            return True
        return self.agreement is not None and self.agreement >= self.min_agreement

    def manifest(self) -> dict:
        """The manifest's ``judge`` field (no run-dependent counts: the same for every shard)."""
        return {
            "needed": self.needed,
            "agreement": _round(self.agreement),
            "examples": self.examples,
            "calls": self.calls,
            "correct": self.total.correct,
            "invalid": self.invalid,
            "min_agreement": self.min_agreement,
            "trusted": self.trusted,
            "stopped_early": self.stopped,
            **({"stop": self.stop.manifest()} if self.stop is not None else {}),
            "planned_calls": self.planned,
            "by_order": {k: _round(v.agreement) for k, v in sorted(self.by_order.items())},
            "per_rule": {rid: {"agreement": _round(s.agreement), "examples": s.examples, "calls": s.calls}
                         for rid, s in sorted(self.per_rule.items())},
            **({"reviewer": {"agreement": _round(self.reviewer.agreement), "examples": self.reviewer.examples,
                             "calls": self.reviewer.calls, "correct": self.reviewer.correct,
                             "invalid": self.reviewer_invalid}} if self.reviewer is not None else {}),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def tail(right: int, seen: int, population: int, good: int) -> Fraction:
    """P(X <= right), X the agreeing draws among ``seen`` drawn without replacement from
    ``population`` of which ``good`` agree: the hypergeometric tail, exact."""
    if not 0 <= seen <= population or not 0 <= good <= population or right < 0:
        raise ValueError(f"{right} of {seen} drawn from {population} with {good} agreeing")
    return Fraction(sum(math.comb(good, i) * math.comb(population - good, seen - i)
                        for i in range(min(seen, right) + 1)), math.comb(population, seen))


def _at_least(share: float, n: int) -> int:
    return min(n, max(0, math.ceil(share * n - 1e-9)))


def stop_p_value(right: int, asked: int, planned: int, min_agreement: float) -> Fraction:
    """How likely a judge that agrees on ``min_agreement`` of all ``planned`` calls would be to agree
    on ``right`` or fewer of the first ``asked``, were the labelled pairs asked in a random order.
    Counted by pair (both orders of a pair are asked together, so ``asked`` and ``planned`` are
    even), as if the two calls of a pair always agreed together: the most spread-out case, in which
    a low count is least surprising (``right`` calls count as ``ceil(right / 2)`` agreeing pairs)."""
    if not 0 <= right <= asked:
        raise ValueError(f"{right} right of {asked} asked")
    pairs = planned // 2
    return tail((right + 1) // 2, asked // 2, pairs, _at_least(min_agreement, pairs))


def order_p_value(right: int, asked: int, pairs: int, min_agreement: float) -> Fraction:
    """How likely a judge that agrees on ``min_agreement`` of all ``2 * pairs`` calls would be to agree
    on ``right`` or fewer of the first ``asked`` calls of one order (one call per pair): overall
    ``min_agreement`` needs at least ``2 * min_agreement - 1`` of each order, the other order giving
    at most all of its ``pairs``."""
    if not 0 <= right <= asked:
        raise ValueError(f"{right} right of {asked} asked")
    return tail(right, asked, pairs, _at_least(2 * min_agreement - 1, pairs))


def sequential_test(owners: Sequence, agreed: Sequence[bool], planned: int, min_agreement: float) -> Stop | None:
    """The test's stop after the calls asked so far (``agreed``, in the order of ``owners``: (pair,
    good side first) per call), or None: the smallest of the three tails, where it is under a third
    of :data:`STOP_LEVEL` (a Bonferroni share, so the three together stay under the level)."""
    asked = len(agreed)
    found = [("all", sum(agreed), asked, stop_p_value(sum(agreed), asked, planned, min_agreement))]
    for order, good_first in (("good_first", True), ("bad_first", False)):
        calls = [a for (_, gf), a in zip(owners, agreed) if gf is good_first]
        found.append((order, sum(calls), len(calls), order_p_value(sum(calls), len(calls), planned // 2, min_agreement)))
    on, right, n, p = min(found, key=lambda f: f[3])
    if p < STOP_LEVEL / 3:
        return Stop("test", asked, on=on, right=right, asked=n, p=float(p))
    return None


def labelled_pairs(pairs: Sequence[Pair]) -> list[Pair]:
    """The spec-example pairs with both a good and a bad answer, in record-id order."""
    return sorted((p for p in pairs if p.chosen is not None and p.rejected is not None), key=lambda p: p.record_id)


def example_scenario(spec: Spec, pair: Pair, seed: int) -> Scenario:
    """The scenario a labelled pair is judged under: its rule at its boundary (a lookalike pair,
    whose bad answer over-refuses, with ``expected: help``, as the pipeline frames lookalikes)."""
    rule = spec.rule(pair.rule_ids[0])
    lookalike = pair.boundary == "lookalike"
    return Scenario(id=SCENARIO_PREFIX + pair.record_id, rule_id=rule.id, rule_hash=rule.hash,
                    boundary=pair.boundary, expected="help" if lookalike else "follow_rule", index=0, seed=seed)


def judge_calls(spec: Spec, runner: CallRunner, items: Sequence[Pair], scenario_of):
    """The judge's calls on labelled pairs, both orders of each, on a runner of their own (same
    store and judge model) whose calls are counted as ``calibration`` in the run's cost; with
    ``owners``: (pair, good side first) per call."""
    cal = CallRunner(runner.judge_model, runner.store, runner.settings, judge_model=runner.judge_model,
                     on_event=runner.on_event, ledger=runner.ledger, account_as="calibration")
    calls, owners = [], []
    for p in items:
        rule = spec.rule(p.rule_ids[0])
        scenario = scenario_of(p)
        for good_first in (True, False):
            a, b = (p.chosen, p.rejected) if good_first else (p.rejected, p.chosen)
            calls.append(cal.make(
                scenario=scenario.id, role="judge", round=0, attempt=0,
                messages=prompts.judge_messages(rule, scenario, [dict(t) for t in p.prompt], a, b),
                output_type=roles.verdict_type((rule.id,), runner.settings.bounds.reason), judge=True))
            owners.append((p, good_first))
    return cal, calls, owners


def calibrate(spec: Spec, runner: CallRunner, examples: Sequence[Pair], *,
              min_agreement: float = DEFAULT_MIN_AGREEMENT, needed: bool = True) -> Calibration:
    """Score ``runner``'s judge model on ``examples`` (spec-example pairs; the one-sided ones are
    skipped), both orders of each. Raises what the runner raises (an EngineFault stops the
    compile; the calls that finished are stored). ``needed=False`` (no scenario of the plan needs
    the judge) measures nothing: the calls would decide no pair."""
    items = labelled_pairs(examples)
    if not needed:
        return Calibration(total=Score(examples=len(items)), min_agreement=min_agreement, needed=False)
    if not items:
        return Calibration(total=Score(), min_agreement=min_agreement)
    # counted apart from the scenarios' calls, on the same store and judge model
    cal, calls, owners = judge_calls(spec, runner, items, lambda p: example_scenario(spec, p, runner.settings.seed))
    total, invalid = Score(), 0
    per_rule: dict[str, Score] = {}
    by_order = {"good_first": Score(), "bad_first": Score()}
    seen: set[str] = set()
    outcomes: list = []
    stop = None
    for start in range(0, len(calls), CHUNK):
        outcomes.extend(cal.run(calls[start : start + CHUNK]))
        agreed = [o.ok and verify.by_verdict(o.value, good_first).ok for (_, good_first), o in zip(owners, outcomes)]
        left = len(calls) - len(outcomes)
        if not left or min_agreement <= 0:
            continue
        if (sum(agreed) + left) / len(calls) < min_agreement:
            stop = Stop("bound", len(outcomes))  # even agreeing on every call left, the judge stays under the bar
        else:  # a judge at the bar would rarely do this badly
            stop = sequential_test(owners, agreed, len(calls), min_agreement)
        if stop is not None:
            break
    for (p, good_first), o in zip(owners, outcomes):
        rid = p.rule_ids[0]
        if o.ok:
            right = int(verify.by_verdict(o.value, good_first).ok)
        else:
            right = 0
            invalid += 1
        new = int(p.record_id not in seen)
        seen.add(p.record_id)
        total = total.add(right, 1, new)
        per_rule[rid] = per_rule.get(rid, Score()).add(right, 1, new)
        order = "good_first" if good_first else "bad_first"
        by_order[order] = by_order[order].add(right, 1, new)
    return Calibration(total=total, min_agreement=min_agreement, per_rule=per_rule, by_order=by_order,
                       invalid=invalid, generated=cal.generated, reused=cal.reused, stopped=stop is not None,
                       stop=stop, planned=len(calls))


REVIEW_PREFIX = "calibration-review:"


def with_reviewed(calibration: Calibration, spec: Spec, runner: CallRunner, reviewed: Sequence[Pair]) -> Calibration:
    """``calibration`` with the judge also scored on pairs a person reviewed (``specc review``),
    each oriented as the reviewer judged it (chosen: the better side), both orders. Reported apart
    (``reviewer``): whether the judge is trusted still rests on the spec's own examples alone, which
    are the same for every shard of a compile. Nothing is asked where the judge is not needed."""
    from dataclasses import replace

    items = [p for p in labelled_pairs(reviewed) if p.rule_ids and p.rule_ids[0] in {r.id for r in spec.rules}]
    if not items or not calibration.needed:
        return calibration
    cal, calls, owners = judge_calls(spec, runner, items, lambda p: example_scenario(spec, p, runner.settings.seed)
                                     .model_copy(update={"id": REVIEW_PREFIX + p.record_id}))
    outcomes = cal.run(calls)
    right = sum(1 for (_, good_first), o in zip(owners, outcomes) if o.ok and verify.by_verdict(o.value, good_first).ok)
    invalid = sum(1 for o in outcomes if not o.ok)
    return replace(calibration, reviewer=Score(examples=len(items), calls=len(calls), correct=right),
                   reviewer_invalid=invalid, generated=calibration.generated + cal.generated,
                   reused=calibration.reused + cal.reused)


def summary(calibration: Calibration | None, dropped: int) -> str | None:
    """The compile summary's judge line; ``dropped``: scenarios dropped as judge-uncalibrated."""
    c = calibration
    if c is None:
        return None
    if not c.needed:
        return "judge not measured: no planned scenario needs it (every pair is verified by checks)"
    lost = (f": {dropped} judge-only pair{'s' if dropped != 1 else ''} dropped as {UNCALIBRATED}"
            if dropped else ": no judge-only pairs to drop")
    if c.agreement is None:
        head = "judge not calibrated: the spec has no labelled examples (an example with a good and a bad answer)"
        if c.trusted:
            return f"{head}; trusted anyway (--min-judge-agreement 0)"
        return f"{head}{lost}; add examples, or trust the judge with --min-judge-agreement 0"
    head = f"judge agreement {c.agreement:.2f} on {c.calls} example call{'s' if c.calls != 1 else ''}"
    if c.invalid:
        head += f" ({c.invalid} without a valid verdict)"
    if c.reviewer is not None and c.reviewer.calls:
        head += (f"; {c.reviewer.agreement:.2f} with the reviewer on {c.reviewer.calls} calls over "
                 f"{c.reviewer.examples} reviewed pairs (reported apart)")
    if c.min_agreement <= 0:
        weak = ("" if c.agreement >= DEFAULT_MIN_AGREEMENT else
                f", below the default {DEFAULT_MIN_AGREEMENT:g}: name a stronger judge with --judge MODEL")
        return f"{head}: trusted by --min-judge-agreement 0{weak}"
    if c.trusted:
        return f"{head} (>= {c.min_agreement:g}): trusted"
    stopped = (f"; the other {c.planned - c.calls} of its {c.planned} calls were not asked: {stop_reason(c.manifest())}"
               if c.stopped else "")
    return f"{head} (< {c.min_agreement:g}){lost}; name a stronger judge with --judge MODEL{stopped}"
