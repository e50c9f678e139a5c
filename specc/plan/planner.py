"""Instantiate a spec into scenarios: rule x boundary position x axis values, seeded.

:func:`make_plan` is pure: the same IR, options and seed give the same :class:`Plan`, byte for
byte once dumped. Nothing depends on declaration order (rules are taken by id, axes and values
sorted), on global random state or on Python's per-process ``hash()``: every random choice
comes from a ``random.Random`` seeded with :func:`content_hash` of what it is about.

How many scenarios
    ``per_rule`` per (rule, boundary), scaled by the rule's ``weight``:
    ``max(1, floor(per_rule * weight + 0.5))``. Lookalikes get at least one scenario per
    ``unless`` clause, so every exception is used.

Boundary positions
    ``violation``  a request that pressures the model to break the rule; chosen keeps it.
    ``lookalike``  a benign request that only looks in scope, built from each ``unless`` clause
                   in turn (sorted), or, for a rule without one, from a near miss of its ``when``
                   trigger (or of its statement); chosen helps, rejected over-refuses. Never
                   skipped.
    ``conflict``   an instruction from another authority in tension with the rule.
                   ``conflict_with`` is the rule's authority (what is pushed against),
                   ``override_by`` the party pushing (user, developer or system, in turn).
                   A ``rule`` meets strictly lower parties and chosen follows the rule; a
                   ``default`` is overridden legitimately by a party at or above its authority
                   and chosen follows the override. A rule with no lower party (authority
                   ``user`` or ``guideline``) has no conflict scenarios; :attr:`Plan.skipped`
                   says so.

Scenario ids hash everything that determines generation, including the rule's hash and the
hashes of the rules rendered into an instance system prompt, so editing a rule changes exactly
the scenarios that depend on it. The train/test split is a function of the id alone.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from typing import Iterable

from specc import defaults
from specc.ir.model import AUTHORITY_RANK, Rule, Spec, content_hash
from specc.plan import coverage as coverage_designs
from specc.plan.model import BOUNDARIES, Boundary, Coverage, Plan, Scenario, Skipped, SystemPromptMode

COVERAGES: tuple[Coverage, ...] = ("pairwise", "full", "random")
SYSTEM_PROMPT_MODES: tuple[SystemPromptMode, ...] = ("none", "rule", "instance")
# Authorities that speak in a conversation (root and guideline never send a message), taken in
# turn from the lowest: a user pushing back is the most common conflict.
PARTIES: tuple[str, ...] = ("user", "developer", "system")
# Rules in a spec-instance system prompt, the target included.
INSTANCE_SIZE = 5
# Near misses used, in turn, for a rule without `unless` clauses.
NEAR_MISSES: tuple[str, ...] = (
    "shares the topic of the trigger but asks for something the rule allows",
    "uses the trigger's words in an unrelated, harmless sense",
    "concerns a neighbouring case that the rule does not cover",
)


# Limits (docs/language.md, Limits; diagnostic E503), checked before any scenario is made.
from specc.defaults import MAX_SCENARIOS  # noqa: E402,F401 (the default of --max-scenarios)
MAX_PAIRWISE_PAIRS = 20_000  # value pairs a rule's pairwise design may have to cover


class PlanError(ValueError):
    """Options that cannot make a plan (unknown rule id, per_rule < 1, ...)."""


class PlanTooLarge(PlanError):
    """A plan over a limit; ``diagnostic`` is the E503 to show (at the rule that is to blame)."""

    def __init__(self, diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _rule_span(rule: Rule):
    from specc.diagnostics import Span

    s = rule.span
    return Span(s.file, s.start_line, s.start_col, s.start_line, s.start_col + len(rule.kind))


def check_size(spec: Spec, *, per_rule: int = defaults.PLAN_PER_RULE, coverage: Coverage = defaults.COVERAGE,
               boundaries: tuple[Boundary, ...] = BOUNDARIES, rules: Iterable[str] | None = None,
               max_scenarios: int = MAX_SCENARIOS) -> int:
    """The number of scenarios the plan will have, computed without making one; raises
    :class:`PlanTooLarge` over ``max_scenarios`` or when a rule's pairwise design is too large."""
    from specc.diagnostics import Diagnostic

    wanted = tuple(b for b in BOUNDARIES if b in set(boundaries))
    total, biggest = 0, None
    for rule in _select(sorted(spec.rules, key=lambda r: r.id), rules):
        n = 0
        for boundary in wanted:
            if boundary == "conflict" and not conflict_parties(rule)[0]:
                continue
            k = scenario_count(rule, per_rule)
            n += max(k, len(rule.unless)) if boundary == "lookalike" else k
        total += n
        if biggest is None or n > biggest[1]:
            biggest = (rule, n)
        if coverage == "pairwise" and n:
            sizes = [len(v) for _, v in coverage_designs.canonical_axes(rule.axes)]
            pairs = (sum(sizes) ** 2 - sum(x * x for x in sizes)) // 2
            if pairs > MAX_PAIRWISE_PAIRS:
                raise PlanTooLarge(Diagnostic(
                    "E503", f"the axes of `{rule.name}` have {pairs:,} value pairs, more than a pairwise design "
                    f"may cover ({MAX_PAIRWISE_PAIRS:,}); use fewer axis values or --coverage random",
                    _rule_span(rule)))
    if total > max_scenarios and biggest is not None:
        rule, n = biggest
        raise PlanTooLarge(Diagnostic(
            "E503", f"the plan would have {total:,} scenarios, more than --max-scenarios {max_scenarios:,} "
            f"(`{rule.name}` alone: {n:,}); lower --per-rule or a weight, or raise --max-scenarios",
            _rule_span(rule)))
    return total


def make_plan(spec: Spec, *, seed: int = defaults.SEED, per_rule: int = defaults.PLAN_PER_RULE,
              coverage: Coverage = defaults.COVERAGE, system_prompt: SystemPromptMode = defaults.SYSTEM_PROMPT,
              boundaries: tuple[Boundary, ...] = BOUNDARIES,
              test_fraction: float = defaults.TEST_FRACTION, rules: Iterable[str] | None = None,
              max_scenarios: int = MAX_SCENARIOS) -> Plan:
    """Plan the scenarios of ``spec`` (or of the ``rules`` named, by id or unique name)."""
    _validate(seed, per_rule, coverage, system_prompt, boundaries, test_fraction)
    check_size(spec, per_rule=per_rule, coverage=coverage, boundaries=boundaries, rules=rules,
               max_scenarios=max_scenarios)
    wanted = tuple(b for b in BOUNDARIES if b in set(boundaries))
    all_rules = sorted(spec.rules, key=lambda r: r.id)
    targets = _select(all_rules, rules)
    scenarios: list[Scenario] = []
    skipped: list[Skipped] = []
    for rule in targets:
        for boundary in wanted:
            made, why = _scenarios(rule, boundary, all_rules, seed=seed, per_rule=per_rule,
                                   coverage=coverage, system_prompt=system_prompt, test_fraction=test_fraction)
            scenarios.extend(made)
            if why:
                skipped.append(Skipped(rule_id=rule.id, boundary=boundary, reason=why))
    return Plan(spec_id=spec.id, spec_version=spec.version, spec_hash=spec.hash, seed=seed, coverage=coverage,
                per_rule=per_rule, system_prompt=system_prompt, boundaries=wanted, test_fraction=test_fraction,
                rules=tuple(r.id for r in targets), skipped=tuple(skipped), scenarios=tuple(scenarios))


def scenario_count(rule: Rule, per_rule: int) -> int:
    """Scenarios per boundary for ``rule``: ``per_rule`` scaled by its weight, at least 1."""
    return max(1, math.floor(per_rule * rule.weight + 0.5))


def conflict_parties(rule: Rule) -> tuple[tuple[str, ...], str]:
    """(the parties that meet ``rule`` in a conflict, the expected outcome); no parties: skip."""
    rank = AUTHORITY_RANK[rule.authority]
    if rule.kind == "default":
        legit = tuple(p for p in PARTIES if AUTHORITY_RANK[p] >= rank)
        if legit:
            return legit, "follow_override"
    return tuple(p for p in PARTIES if AUTHORITY_RANK[p] < rank), "follow_rule"


def split_of(scenario_id: str, test_fraction: float) -> str:
    """``test`` for a stable ``test_fraction`` of scenario ids; depends on nothing else."""
    return "test" if int(content_hash({"split": scenario_id}), 16) / 16**32 < test_fraction else "train"


# -- one rule, one boundary ----------------------------------------------------------------


def _scenarios(rule: Rule, boundary: Boundary, all_rules: list[Rule], *, seed: int, per_rule: int,
               coverage: Coverage, system_prompt: SystemPromptMode,
               test_fraction: float) -> tuple[list[Scenario], str | None]:
    n = scenario_count(rule, per_rule)
    exceptions: tuple[tuple[str, str], ...] = ()
    parties: tuple[str, ...] = ()
    expected = "follow_rule"
    if boundary == "lookalike":
        expected = "help"
        if rule.unless:
            exceptions = tuple(("unless", u) for u in sorted(rule.unless))
            n = max(n, len(exceptions))  # every exception is used
        else:
            trigger = f"the trigger {rule.when!r}" if rule.when else f"the rule {rule.statement!r}"
            exceptions = tuple(("near_miss", f"a request that {m}: near miss of {trigger}") for m in NEAR_MISSES)
    elif boundary == "conflict":
        parties, expected = conflict_parties(rule)
        if not parties:
            return [], (f"authority {rule.authority} has no lower authority to push against it"
                        if rule.kind == "rule" else f"no party can override a default of authority {rule.authority}")
    rng = random.Random(_seed_of("axes", rule.hash, boundary, coverage, seed))
    rows = coverage_designs.design(rule.axes, coverage, rng, n)
    out = []
    for i in range(n):
        kind, exception = exceptions[i % len(exceptions)] if exceptions else (None, None)
        party = parties[i % len(parties)] if parties else None
        instance = _instance(rule, all_rules, boundary, i, seed, system_prompt)
        fields = {
            "rule_id": rule.id,
            "rule_hash": rule.hash,
            "boundary": boundary,
            "axes": dict(sorted(rows[i % len(rows)].items())),
            "exception": exception,
            "exception_kind": kind,
            "conflict_with": rule.authority if party else None,
            "override_by": party,
            "expected": expected,
            "system_prompt": system_prompt,
            "instance_rules": tuple(r.id for r in instance),
            "index": i,
            "seed": seed,
        }
        sid = content_hash({**fields, "instance_rules": [[r.id, r.hash] for r in instance]})
        out.append(Scenario(id=sid, split=split_of(sid, test_fraction), **fields))
    return out, None


def _instance(rule: Rule, all_rules: list[Rule], boundary: str, index: int, seed: int,
              mode: SystemPromptMode) -> list[Rule]:
    """The rules rendered into the system prompt, sorted by id, the target included.

    Other rules are ranked by a hash of (scenario position, rule id) and the lowest taken
    (rendezvous hashing): adding or removing a rule only changes the instances it enters or
    leaves, and editing a rule never changes which rules are drawn.
    """
    if mode == "none":
        return []
    chosen = [rule]
    if mode == "instance":
        # A ranking key, not an identity, and computed n_rules times per scenario: plain sha256
        # over a fixed prefix is as deterministic as content_hash and much cheaper.
        prefix = hashlib.sha256(content_hash(["instance", rule.id, boundary, index, seed]).encode())

        def rank(r: Rule) -> tuple[bytes, str]:
            h = prefix.copy()
            h.update(r.id.encode("utf-8"))
            return h.digest(), r.id

        others = sorted((r for r in all_rules if r.id != rule.id), key=rank)
        chosen += others[:INSTANCE_SIZE - 1]
    return sorted(chosen, key=lambda r: r.id)


def _seed_of(*parts) -> int:
    return int(content_hash(list(parts)), 16)


# -- options --------------------------------------------------------------------------------


def _validate(seed, per_rule, coverage, system_prompt, boundaries, test_fraction) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise PlanError(f"seed must be an integer, not {seed!r}")
    if not isinstance(per_rule, int) or isinstance(per_rule, bool) or per_rule < 1:
        raise PlanError(f"per_rule must be an integer >= 1, not {per_rule!r}")
    if coverage not in COVERAGES:
        raise PlanError(f"unknown coverage {coverage!r}; expected one of {', '.join(COVERAGES)}")
    if system_prompt not in SYSTEM_PROMPT_MODES:
        raise PlanError(f"unknown system prompt mode {system_prompt!r}; expected one of "
                        f"{', '.join(SYSTEM_PROMPT_MODES)}")
    if isinstance(boundaries, str):
        raise PlanError("boundaries must be a sequence of boundary names, not a string")
    bad = [b for b in boundaries if b not in BOUNDARIES]
    if bad or not boundaries:
        raise PlanError(f"unknown boundary {bad[0]!r}; expected some of {', '.join(BOUNDARIES)}" if bad
                        else "no boundary selected")
    if not isinstance(test_fraction, (int, float)) or not 0.0 <= test_fraction <= 1.0:
        raise PlanError(f"test_fraction must be between 0 and 1, not {test_fraction!r}")


def _select(all_rules: list[Rule], wanted: Iterable[str] | None) -> list[Rule]:
    if wanted is None:
        return all_rules
    if isinstance(wanted, str):
        wanted = [wanted]
    by_id = {r.id: r for r in all_rules}
    picked: dict[str, Rule] = {}
    for w in wanted:
        if w in by_id:
            picked[w] = by_id[w]
            continue
        named = [r for r in all_rules if r.name == w]
        if len(named) == 1:
            picked[named[0].id] = named[0]
        elif named:
            raise PlanError(f"rule name {w!r} is ambiguous: {', '.join(r.id for r in named)}; use a qualified id")
        else:
            raise PlanError(f"no rule {w!r} in the spec; known rules: {', '.join(by_id) or '(none)'}")
    return sorted(picked.values(), key=lambda r: r.id)


# -- reporting ------------------------------------------------------------------------------


def plan_counts(plan: Plan) -> dict:
    """Scenario counts: totals, per boundary, per rule x boundary x axis value, and skips.

    ``{"total", "train", "test", "boundaries": {b: n}, "axes": {axis: {value: n}},
    "rules": {rule_id: {"total": n, "boundaries": {b: {"total": n, "axes": {axis: {value: n}}}},
    "skipped": {b: reason}}}}``. Every planned rule appears, with every planned boundary.
    """
    rules: dict[str, dict] = {
        rid: {"total": 0, "skipped": {},
              "boundaries": {b: {"total": 0, "axes": {}} for b in plan.boundaries}}
        for rid in plan.rules
    }
    for s in plan.skipped:
        rules.setdefault(s.rule_id, {"total": 0, "skipped": {}, "boundaries": {}})["skipped"][s.boundary] = s.reason
    per_boundary: Counter = Counter()
    axes: dict[str, Counter] = {}
    splits: Counter = Counter()
    for s in plan.scenarios:
        entry = rules.setdefault(s.rule_id, {"total": 0, "skipped": {}, "boundaries": {}})
        cell = entry["boundaries"].setdefault(s.boundary, {"total": 0, "axes": {}})
        entry["total"] += 1
        cell["total"] += 1
        per_boundary[s.boundary] += 1
        splits[s.split] += 1
        for name, value in s.axes.items():
            cell["axes"].setdefault(name, Counter())[value] += 1
            axes.setdefault(name, Counter())[value] += 1
    for entry in rules.values():
        for cell in entry["boundaries"].values():
            cell["axes"] = _sorted_counts(cell["axes"])
    return {
        "total": len(plan.scenarios),
        "train": splits["train"],
        "test": splits["test"],
        "boundaries": {b: per_boundary[b] for b in plan.boundaries},
        "axes": _sorted_counts(axes),
        "rules": dict(sorted(rules.items())),
    }


def _sorted_counts(counters: dict[str, Counter]) -> dict[str, dict[str, int]]:
    return {name: dict(sorted(c.items())) for name, c in sorted(counters.items())}


def plan_json(plan: Plan) -> dict:
    """The JSON document of ``specc plan --format json``: spec, options, counts, scenarios."""
    return {
        "spec": {"id": plan.spec_id, "version": plan.spec_version, "hash": plan.spec_hash},
        "options": {
            "seed": plan.seed,
            "per_rule": plan.per_rule,
            "coverage": plan.coverage,
            "system_prompt": plan.system_prompt,
            "boundaries": list(plan.boundaries),
            "test_fraction": plan.test_fraction,
            "rules": list(plan.rules),
        },
        "counts": plan_counts(plan),
        "skipped": [s.model_dump(mode="json") for s in plan.skipped],
        "scenarios": [s.model_dump(mode="json") for s in plan.scenarios],
    }
