"""The plan's data: a :class:`Scenario` is one controlled situation to generate a pair for.

Contract between ``plan`` (which makes them) and ``synth`` / ``emit`` (which use them).
A scenario's ``id`` is the content hash of everything that determines what is generated for
it, including the hash of its rule, so an edited rule gives new scenario ids (stale data)
and an untouched rule keeps them (reused data).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from specc.defaults import BOUNDARIES  # the one spelling of the boundaries

Boundary = Literal[BOUNDARIES]  # type: ignore[valid-type]  # violation | lookalike | conflict
Coverage = Literal["pairwise", "full", "random"]
SystemPromptMode = Literal["none", "rule", "instance"]
Split = Literal["train", "test"]
# What the chosen answer does: keep the rule (violation; conflict with a lower authority),
# follow a legitimate override of a `default` (conflict), or simply help (lookalike: the rule
# does not apply, so the over-cautious answer is the rejected one).
Expected = Literal["follow_rule", "follow_override", "help"]
ExceptionKind = Literal["unless", "near_miss"]


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Content hash of the fields below (not of `split`)")
    rule_id: str
    rule_hash: str
    boundary: Boundary
    axes: dict[str, str] = Field(default_factory=dict, description="Axis name -> value for this scenario")
    exception: str | None = Field(default=None, description="For lookalike: the `unless` clause or near miss used")
    conflict_with: str | None = Field(
        default=None, description="For conflict: the rule's authority, which `override_by` pushes against")
    exception_kind: ExceptionKind | None = Field(
        default=None, description="For lookalike: `unless` (an exception clause) or `near_miss` (of the trigger)")
    override_by: str | None = Field(
        default=None, description="For conflict: the authority of the party whose instruction is in tension with "
                                  "the rule (system, developer or user)")
    expected: Expected = Field(default="follow_rule", description="What the chosen answer does")
    system_prompt: SystemPromptMode = "none"
    instance_rules: tuple[str, ...] = Field(default=(), description="Rule ids rendered into the system prompt")
    index: int = Field(description="Position among the scenarios of this rule and boundary")
    seed: int
    split: Split = "train"


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spec_id: str
    spec_hash: str
    seed: int
    coverage: Coverage
    per_rule: int
    system_prompt: SystemPromptMode
    scenarios: tuple[Scenario, ...]
    spec_version: str = ""
    boundaries: tuple[Boundary, ...] = BOUNDARIES
    test_fraction: float = 0.2
    rules: tuple[str, ...] = Field(default=(), description="Ids of the planned rules, sorted")
    skipped: tuple["Skipped", ...] = Field(default=(), description="Rule x boundary cells planned empty, and why")


class Skipped(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule_id: str
    boundary: Boundary
    reason: str


Plan.model_rebuild()
