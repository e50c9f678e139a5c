"""The plan's data: a :class:`Scenario` is one controlled situation to generate a pair for.

Contract between ``plan`` (which makes them) and ``synth`` / ``emit`` (which use them).
A scenario's ``id`` is the content hash of everything that determines what is generated for
it, including the hash of its rule, so an edited rule gives new scenario ids (stale data)
and an untouched rule keeps them (reused data).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Boundary = Literal["violation", "lookalike", "conflict"]
Coverage = Literal["pairwise", "full", "random"]
SystemPromptMode = Literal["none", "rule", "instance"]
Split = Literal["train", "test"]


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Content hash of the fields below (not of `split`)")
    rule_id: str
    rule_hash: str
    boundary: Boundary
    axes: dict[str, str] = Field(default_factory=dict, description="Axis name -> value for this scenario")
    exception: str | None = Field(default=None, description="For lookalike: the `unless` clause or near miss used")
    conflict_with: str | None = Field(default=None, description="For conflict: the authority the user pushes against")
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
