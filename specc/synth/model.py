"""The typed floor of synthesis: what the pipeline hands to ``emit``, ``eval`` and ``report``.

In the style of :mod:`specc.plan.model`: plain frozen types and the vocabulary of their fields as
``Literal`` types, defined once. The layers above synthesis import these, never the orchestrator
(:mod:`specc.synth.pipeline`), and :mod:`specc.synth.calibrate` no longer needs the orchestrator
either. :class:`SynthStats` is pydantic: it is also the ``stats`` field of ``manifest.json``
(:mod:`specc.emit.manifest`), validated when a manifest is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, NonNegativeInt

from specc.plan.model import Boundary, Expected, Split

# where a record comes from: a generated scenario, or the spec's own `example` block
Source = Literal["generated", "spec-example"]
# what verified it: the rule's checks, the (calibrated) judge, or the spec itself (its examples)
VerifiedBy = Literal["check", "judge", "spec"]
# how one side of a pair was obtained: an on-policy candidate sorted by the checks (sampled), a
# role prompted for it (defender, violator), the spec's example, or rewritten by a person in
# `specc review` (specc.emit.reviews)
SideOrigin = Literal["sampled", "defender", "violator", "spec", "review"]
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
    faults: dict[str, NonNegativeInt]
    gate_failures: dict[str, NonNegativeInt]
    spec_example_gate_warnings: dict[str, NonNegativeInt]
    spec_examples: NonNegativeInt
    experience_pool: NonNegativeInt
    per_rule: dict[str, RuleStats]


@dataclass
class SynthResult:
    """What a synthesis run gives the writer: the pairs, the run's statistics, the scenarios of
    each rule and the judge's calibration."""

    pairs: list[Pair]
    stats: SynthStats
    scenarios_by_rule: dict[str, list[str]]
    judge: dict | None = None  # the manifest's `judge` field (calibrate.Calibration.manifest)
    calibration: Any = None  # the calibrate.Calibration behind `judge` (calibrate imports this module)


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
