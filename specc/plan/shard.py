"""Shards of a plan: the deterministic slice of a compile that one client of a fleet runs.

The unit of a slice is the **rule**: all scenarios of a rule (every boundary) and the pairs of
its ``example`` blocks go to shard ``int(content_hash(rule_id), 16) % N + 1`` (1-based). Why a
rule and not a scenario: scenarios of one rule depend on each other through the experience pool
(``synth.pipeline``: attacks that gave a verified pair in wave ``w`` are shown to the rule's
attackers of later waves), so splitting a rule's scenarios would change later prompts and the
merged dataset would no longer be the unsharded one. Rules never depend on each other (the pool,
the per-rule stats and the rule's records are all per rule), so a rule is the smallest unit
whose output is independent of the others.

The hash is of the rule *id*, not of its content hash: editing a rule keeps it on its shard, so a
shard's own store still serves the rule's unchanged calls after the edit. Shards are therefore
balanced only on average: with few rules per shard some get more, and a shard may get none (an
empty shard is a valid shard and merges). Use N well below the number of rules.
"""

from __future__ import annotations

from specc.ir.hashing import content_hash
from specc.plan.model import Plan


class ShardError(ValueError):
    """A shard index or count that cannot slice a plan."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``1 <= K <= N``; :class:`ShardError` otherwise."""
    head, sep, tail = str(text).strip().partition("/")
    try:
        if not sep:
            raise ValueError
        k, n = int(head), int(tail)
    except ValueError:
        raise ShardError(f"{text!r} is not K/N (for example 2/4: the second of four shards)") from None
    check_shard(k, n)
    return k, n


def check_shard(k: int, n: int) -> None:
    if n < 1:
        raise ShardError(f"the shard count must be >= 1, not {n}")
    if not 1 <= k <= n:
        raise ShardError(f"shard {k}/{n}: the index must be between 1 and {n} (shards are numbered from 1)")


def shard_of(rule_id: str, n: int) -> int:
    """The 1-based shard that owns ``rule_id`` among ``n`` shards."""
    return int(content_hash(rule_id), 16) % n + 1


def shard_rules(rule_ids, k: int, n: int) -> tuple[str, ...]:
    """The ids among ``rule_ids`` that shard ``k`` of ``n`` owns, sorted."""
    check_shard(k, n)
    return tuple(sorted(r for r in rule_ids if shard_of(r, n) == k))


def shard(plan: Plan, k: int, n: int) -> Plan:
    """The plan of shard ``k`` of ``n``: its rules, their scenarios (in plan order) and skips.

    Every field that is not per rule (seed, coverage, ...) is kept, so the slices of a plan are
    disjoint, cover it, and each scenario keeps its id and split.
    """
    owned = shard_rules(plan.rules or sorted({s.rule_id for s in plan.scenarios}), k, n)
    mine = set(owned)
    return plan.model_copy(update={
        "rules": owned,
        "scenarios": tuple(s for s in plan.scenarios if s.rule_id in mine),
        "skipped": tuple(s for s in plan.skipped if s.rule_id in mine),
    })


def plan_fingerprint(plan: Plan) -> str:
    """One hash of a whole plan (its options, rules and every scenario id and split): shards of
    the same plan have the same fingerprint, whatever slice they ran."""
    return content_hash({
        "spec": plan.spec_hash, "seed": plan.seed, "coverage": plan.coverage, "per_rule": plan.per_rule,
        "system_prompt": plan.system_prompt, "boundaries": list(plan.boundaries),
        "test_fraction": plan.test_fraction, "rules": list(plan.rules),
        "scenarios": [[s.id, s.split] for s in plan.scenarios],
    })


def shard_manifest(full: Plan, k: int, n: int) -> dict:
    """The ``shard`` field of a shard's manifest: which slice it is, and of which plan."""
    return {"index": k, "count": n, "rules": list(shard(full, k, n).rules),
            "planned_rules": list(full.rules), "plan": plan_fingerprint(full)}
