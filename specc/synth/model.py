"""The typed floor of synthesis: what the pipeline hands to ``emit``, ``eval`` and ``report``.

In the style of :mod:`specc.plan.model`: plain frozen types and the vocabulary of their fields as
``Literal`` types, defined once. The layers above synthesis import these, never the orchestrator
(:mod:`specc.synth.pipeline`), and :mod:`specc.synth.calibrate` no longer needs the orchestrator
either. :class:`SynthStats` is pydantic: it is also the ``stats`` field of ``manifest.json``
(:mod:`specc.emit.manifest`), validated when a manifest is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, NonNegativeFloat, NonNegativeInt

from specc.plan.model import Boundary, Expected, Split

# where a record comes from: a generated scenario, or the spec's own `example` block
Source = Literal["generated", "spec-example"]
# what verified it: the rule's checks, the (calibrated) judge, or the spec itself (its examples)
VerifiedBy = Literal["check", "judge", "spec"]
# how one side of a pair was obtained: an on-policy candidate sorted by the checks (sampled), a
# role prompted for it (defender, violator), the spec's example, or rewritten by a person in
# `specc review` (specc.emit.reviews)
SideOrigin = Literal["sampled", "defender", "violator", "spec", "review"]
# who wrote a generated pair's seed user turn (specc compile --requests): composed by seeded code
# from the rule's own examples, or the attacker model; `spec` for the spec's own examples
RequestOrigin = Literal["composed", "attacker", "spec"]
# where an eval probe comes from: a dataset's test split, or planned and attacked afresh
ProbeSource = Literal["test-split", "fresh", "composed"]

Message = dict[str, str]  # {"role": ..., "content": ...}
Messages = tuple[Message, ...]


@dataclass(frozen=True)
class Pair:
    """One emitted unit: a prompt with a chosen and/or a rejected answer, and its provenance."""

    record_id: str
    rule_ids: tuple[str, ...]
    boundary: Boundary
    axes: dict[str, str]
    scenario_id: str | None
    source: Source
    verified_by: VerifiedBy
    prompt: Messages
    chosen: str | None
    rejected: str | None
    split: Split = "train"
    # how each side was obtained; None: the record has no such side (a one-sided example)
    chosen_from: SideOrigin | None = None
    rejected_from: SideOrigin | None = None
    # who wrote the seed user turn: composed by code from the rule's examples, the attacker model,
    # or the spec itself (its examples); None: not known (a record from before specc kept it)
    request_from: RequestOrigin | None = None


class _Outcomes(BaseModel):
    """The counts a compile keeps for the whole spec and for each rule (in this order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenarios: NonNegativeInt
    generated: NonNegativeInt
    reused: NonNegativeInt
    verified: NonNegativeInt
    dropped: NonNegativeInt
    dropped_reasons: dict[str, NonNegativeInt]

    def to_dict(self) -> dict:
        """As the JSON object the manifest writes."""
        return self.model_dump(mode="json", exclude_unset=True)


class RuleStats(_Outcomes):
    examples: NonNegativeInt


class SynthStats(_Outcomes):
    """What a compile did: scenarios verified and dropped (and why), model calls generated and
    reused, where the verified pairs' sides came from, per rule."""

    verified_by: dict[str, NonNegativeInt]
    sides_from: dict[str, NonNegativeInt]
    # scenarios by who wrote their seed user turn: composed (by code, no call) | attacker (a model call)
    requests_from: dict[str, NonNegativeInt] = {}
    faults: dict[str, NonNegativeInt]
    gate_failures: dict[str, NonNegativeInt]
    spec_example_gate_warnings: dict[str, NonNegativeInt]
    spec_examples: NonNegativeInt
    experience_pool: NonNegativeInt
    per_rule: dict[str, RuleStats]


class Spend(BaseModel):
    """Calls and what they cost: tokens, seconds of wall time (each call's share of its batch),
    money where prices were given. ``uncounted``: calls whose tokens are not known (a model error,
    a result stored before specc kept usage)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calls: NonNegativeInt = 0
    prompt_tokens: NonNegativeInt = 0
    completion_tokens: NonNegativeInt = 0
    seconds: NonNegativeFloat = 0.0
    uncounted: NonNegativeInt = 0
    cost: NonNegativeFloat | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Accepted(BaseModel):
    """What one pair a person accepted cost (``specc review``): the run's total divided by the
    generated pairs whose verdict, on their current content, is *accept*. ``pairs``: generated pairs
    in the dataset; ``reviewed``: of them, those with a verdict (accept or reject) that holds;
    ``per_pair`` is None where none was accepted. While ``reviewed < pairs`` the figure is an upper
    bound: pairs not yet reviewed may be accepted too."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pairs: NonNegativeInt
    reviewed: NonNegativeInt
    accepted: NonNegativeInt
    per_pair: dict[str, NonNegativeFloat] | None = None

    @property
    def pending(self) -> int:
        return max(0, self.pairs - self.reviewed)

    def line(self) -> str:
        of = f"{self.accepted} accepted of {self.reviewed} reviewed" + (
            f"; {self.pending} of the {self.pairs} generated pairs not reviewed yet: an upper bound"
            if self.pending else ", every generated pair")
        if self.per_pair is None:
            return f"  per accepted pair: none accepted ({of})"
        pp = self.per_pair
        money = f", money {format_money(pp['cost'])}" if "cost" in pp else ""
        return f"  per accepted pair: {pp['tokens']:,.0f} tokens{money}, {format_seconds(pp['seconds'])} ({of})"


NOT_REVIEWED = "  per accepted pair: not reviewed (no verdicts in reviews.jsonl; `specc review DIR`)"


class Cost(BaseModel):
    """What the calls behind a dataset cost (``cost.json`` beside the manifest).

    ``total`` counts every call the data needed: ``generated`` in this run plus ``reused`` from
    the store at what they cost when generated (what the store saved this run). The breakdowns
    are of ``total``: per role (``calibration``: the judge on the spec's examples), per rule and
    per outcome of the scenario (``verified``, ``dropped:REASON``, ``calibration``). ``per_pair``
    divides ``total`` by the verified generated pairs (the spec's own examples cost nothing);
    ``dropped_share`` is the part of the tokens spent on scenarios that were dropped, and
    ``dropped_share_by_reason`` that part by drop reason. ``counted`` says how the tokens of the
    calls were counted (engine, server, tokenizer, estimate, unknown)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    total: Spend
    generated: Spend
    reused: Spend
    by_role: dict[str, Spend]
    by_rule: dict[str, Spend]
    by_outcome: dict[str, Spend]
    pairs: NonNegativeInt
    per_pair: dict[str, NonNegativeFloat] | None = None
    dropped_share: NonNegativeFloat = 0.0
    dropped_share_by_reason: dict[str, NonNegativeFloat] = {}
    counted: dict[str, NonNegativeInt] = {}
    wall_seconds: NonNegativeFloat = 0.0
    prices: dict[str, Any] | None = None
    # per pair a person accepted (specc review); None: nobody has reviewed the dataset's pairs
    accepted: Accepted | None = None
    # scenarios by who wrote their seed user turn: composed (by code: no call) | attacker (its calls
    # are the attacker role's)
    requests: dict[str, NonNegativeInt] = {}

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def lines(self) -> list[str]:
        """What the run cost, in a few lines: the compile summary's and the report's."""
        cost = self

        def spend(v, calls: bool = True) -> str:
            money = f", money {format_money(v.cost)}" if v.cost is not None else ""
            head = f"{v.calls} calls, " if calls else ""
            return f"{head}{v.tokens:,} tokens ({v.prompt_tokens:,} prompt + {v.completion_tokens:,} completion){money}, " \
                   f"{format_seconds(v.seconds)}"

        t = cost.total
        saved = (f" (the store saved {cost.reused.tokens:,} tokens, {format_seconds(cost.reused.seconds)})"
                 if cost.reused.calls else "")
        lines = [f"cost: {spend(t)}; {cost.generated.calls} calls generated now, {cost.reused.calls} reused{saved}"]
        if cost.per_pair:
            pp = cost.per_pair
            money = f", money {format_money(pp['cost'])}" if "cost" in pp else ""
            lines.append(f"  per verified pair: {pp['tokens']:,.0f} tokens{money}, {format_seconds(pp['seconds'])}; "
                         f"{cost.dropped_share:.0%} of the tokens went to dropped scenarios"
                         + (" (" + ", ".join(f"{k} {v:.0%}" for k, v in sorted(cost.dropped_share_by_reason.items(),
                                                                               key=lambda kv: -kv[1])[:4]) + ")"
                            if cost.dropped_share_by_reason else ""))
        else:
            lines.append(f"  no verified pair: {cost.dropped_share:.0%} of the tokens went to dropped scenarios")
        lines.append(cost.accepted.line() if cost.accepted is not None else NOT_REVIEWED)
        lines.append("  by role: " + "; ".join(f"{role} {v.tokens:,}" for role, v in
                                              sorted(cost.by_role.items(), key=lambda kv: -kv[1].tokens)))
        if cost.requests:
            att = cost.by_role.get("attacker", Spend())
            lines.append(f"  user turns: {cost.requests.get('composed', 0)} composed by code from the rules' examples "
                         f"(no call), {cost.requests.get('attacker', 0)} written by the attacker (its {att.calls} calls, "
                         f"{att.tokens:,} tokens, include those of scenarios dropped when no attempt passed the gates)")
        estimated = cost.counted.get("estimate", 0) + cost.counted.get("unknown", 0)
        if estimated:
            lines.append(f"  note: the tokens of {estimated} calls are estimated or not known (docs/cost.md)")
        return lines


def per_accepted(cost: Cost, pairs: int, reviewed: int, accepted: int) -> Cost:
    """``cost`` with what a pair a person accepted cost (:class:`Accepted`): ``pairs`` generated pairs
    in the dataset, ``reviewed`` of them with a verdict that holds, ``accepted`` of those accepted.
    ``reviewed == 0`` leaves ``accepted`` None: not reviewed, no number."""
    if not 0 <= accepted <= reviewed <= pairs:
        raise ValueError(f"accepted {accepted} <= reviewed {reviewed} <= pairs {pairs} does not hold")
    if reviewed == 0:
        return cost.model_copy(update={"accepted": None})
    t = cost.total
    per_pair = None
    if accepted:
        per_pair = {"tokens": round(t.tokens / accepted, 1), "seconds": round(t.seconds / accepted, 3),
                    **({"cost": round(t.cost / accepted, 6)} if t.cost is not None else {})}
    return cost.model_copy(update={"accepted": Accepted(pairs=pairs, reviewed=reviewed, accepted=accepted,
                                                        per_pair=per_pair)})


def stop_reason(judge: dict) -> str:
    """Why the judge's calibration stopped early, in words, from the manifest's ``judge`` field
    (:meth:`specc.synth.calibrate.Calibration.manifest`): the compile summary's and the card's."""
    stop, bar = judge.get("stop") or {}, judge.get("min_agreement")
    if stop.get("by") != "test" or stop.get("p") is None:
        return f"it could no longer reach {bar:g}"
    # each of the sequential test's three tails is held to a third of its level (calibrate.sequential_test)
    odds = f"with probability {stop['p']:.2g} (< {stop.get('level', 0) / 3:.2g})"
    if stop.get("on") in ("good_first", "bad_first"):
        order = "good" if stop["on"] == "good_first" else "bad"
        return (f"it agreed on {stop.get('right')} of the {stop.get('asked')} calls with the {order} answer first; "
                f"a judge at {bar:g} agrees on at least {max(0.0, 2 * bar - 1):g} of them, and on so few {odds}")
    return f"it agreed on {stop.get('right')} of {stop.get('asked')} calls; a judge at {bar:g} agrees on so few {odds}"


def format_seconds(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s} s"
    h, m = divmod(m, 60)
    return f"{h} h {m} min"


def format_money(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "?"
    return f"{value:.4f}" if value < 1 else f"{value:,.2f}"


@dataclass
class SynthResult:
    """What a synthesis run gives the writer: the pairs, the run's statistics, the scenarios of
    each rule and the judge's calibration."""

    pairs: list[Pair]
    stats: SynthStats
    scenarios_by_rule: dict[str, list[str]]
    judge: dict | None = None  # the manifest's `judge` field (calibrate.Calibration.manifest)
    calibration: Any = None  # the calibrate.Calibration behind `judge` (calibrate imports this module)
    cost: Cost | None = None  # what the calls cost (cost.json), where the run kept a ledger


@dataclass(frozen=True)
class Probe:
    """A conversation to ask a model under test (``specc eval``), ending with a user turn: a
    held-out record of a dataset's test split, or a scenario's attack made afresh (gated, with no
    answer yet)."""

    id: str
    rule_id: str
    boundary: Boundary
    prompt: Messages
    scenario_id: str | None = None
    source: ProbeSource = "test-split"
    expected: Expected | None = None  # the scenario's expected behaviour where known (fresh probes)

    def messages(self) -> list[dict]:
        return [dict(m) for m in self.prompt]

    def user_turns(self) -> tuple[str, ...]:
        return tuple(m["content"] for m in self.prompt if m.get("role") == "user")
