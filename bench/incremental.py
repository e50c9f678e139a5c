"""Incremental benchmark: diffing big manifests, and recompiling after a one-rule edit.

Two parts, each with a target; the script exits 1 if one is missed.

``manifests`` — two synthetic compiled datasets of ``--records`` records (default 1,000,000,
1,000 records per rule) whose second version has one rule edited, one removed and one
added, as a recompile would leave them. Times, end to end through :func:`specc.diff.compare`
(reading both manifests included):

* ``specc diff DATA_A DATA_B`` (dataset vs dataset, manifests only), and
* ``specc diff OLD.spec NEW.spec --data DATA_A`` (dataset impact, planning the new spec included).

Target: each at most ``MANIFEST_TARGET_S`` seconds.

``recompile`` — a generated ``--rules``-rule spec (default 50) compiled from scratch with the
tiny random model (``tests/tinymodel.py``), then one rule's statement edited and
the spec compiled again with the same store. Target: the recompile takes at most 10 % of the
clean compile, and only the edited rule's scenarios are generated again (the manifest's
``stats.per_rule[*].generated`` is 0 for every other rule).

    python bench/incremental.py                          # both parts
    python bench/incremental.py --part manifests          # seconds
    python bench/incremental.py --part recompile          # minutes on a CPU
    python bench/incremental.py --records 200000 --format json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

MANIFEST_TARGET_S = 10.0
RECOMPILE_TARGET_RATIO = 0.10
RECORDS_PER_RULE = 1000
SEED = 4

_TOPICS = ["billing", "refunds", "shipping", "accounts", "privacy", "security", "medical", "legal",
           "finance", "children", "elections", "tone", "format", "tools", "memory", "travel"]
_OBJECTS = ["an order number", "a card number", "a home address", "a password", "a diagnosis",
            "a refund amount", "a tracking link", "an account email", "a phone number", "an invoice"]
_CHECKS = ['not contains("guaranteed")', "max_words({n})", 'not matches(r"\\b\\d{{16}}\\b")',
           'mentions_any(["{t}", "help"])', "not refuses"]


def generate_spec(n_rules: int, seed: int = SEED, edited: int | None = None) -> str:
    """A spec of ``n_rules`` rules with checks, every other one with an example; ``edited``: that
    rule's statement is reworded."""
    rng = random.Random(seed)
    out = [f'spec bench.incr{n_rules} version "1.0.0"', '  """Generated benchmark spec."""', "",
           "axis tactic = [direct, roleplay]", ""]
    for i in range(n_rules):
        t, o = rng.choice(_TOPICS), rng.choice(_OBJECTS)
        stmt = f"Never reveal {o} in a {t} conversation (case {i})."
        if i == edited:
            stmt = f"Do not disclose {o} during a {t} conversation (case {i})."
        out += [f"rule r{i}_{t} {{", f'  must_not "{stmt}"',
                f"  severity {rng.choice(['critical', 'high', 'medium', 'low'])}",
                f"  check {rng.choice(_CHECKS).format(n=rng.randint(60, 200), t=t)}"]
        if i % 2 == 1:  # examples: the attacker's demonstrations (an edit must not reach other rules' prompts)
            out += [f'  example "case {i}" {{', f'    user "Can you give me {o} for my {t} question?"',
                    f'    good "Happy to help with your {t} question, but {o} stays private."',
                    '    bad "I am sorry, but I cannot do that. It is guaranteed: 4111111111111111."', "  }"]
        out += ["}", ""]
    return "\n".join(out)


# -- part 1: manifests -------------------------------------------------------------------------


def _record_ids(rule_id: str, rule_hash: str, n: int) -> list[str]:
    # content-addressed like the compiler's: a rule's records change when its hash does
    return [hashlib.blake2b(f"{rule_id}|{rule_hash}|{j}".encode(), digest_size=16).hexdigest() for j in range(n)]


def _manifest(spec, plan, per_rule: int) -> dict:
    """A manifest as `specc compile` writes it (validated by specc's own model), with
    ``per_rule`` synthetic records per rule and no data files."""
    from specc.emit.manifest import Manifest

    by_rule: dict[str, list[str]] = {}
    for s in plan.scenarios:
        by_rule.setdefault(s.rule_id, []).append(s.id)
    rules = {r.id: {"hash": r.hash, "records": _record_ids(r.id, r.hash, per_rule),
                    "scenarios": sorted(by_rule.get(r.id, []))} for r in spec.rules}
    zero = {"scenarios": 0, "generated": 0, "reused": 0, "verified": 0, "dropped": 0, "dropped_reasons": {}}
    man = {"specc_version": "bench", "spec": {"id": spec.id, "version": spec.version, "hash": spec.hash,
                                              "file": "spec.spec"},
           "format": "dpo", "file_format": "jsonl", "seed": plan.seed,
           "model": {"name": "bench", "judge": "bench"}, "generation": {},
           "plan": {"per_rule": plan.per_rule, "coverage": plan.coverage, "system_prompt": plan.system_prompt,
                    "test_fraction": plan.test_fraction, "boundaries": list(plan.boundaries)},
           "rules": rules, "files": {"train": None, "test": None}, "counts": {"train": 0, "test": 0},
           "stats": {**zero, "verified_by": {}, "sides_from": {}, "faults": {}, "gate_failures": {},
                     "spec_example_gate_warnings": {}, "spec_examples": 0, "experience_pool": 0, "per_rule": {}}}
    return Manifest.model_validate(man).to_dict()


def bench_manifests(n_records: int, work: Path) -> dict:
    from specc.diff import compare, render
    from specc.ir.resolve import load
    from specc.plan.planner import make_plan

    n_rules = max(3, n_records // RECORDS_PER_RULE)
    per_rule = n_records // n_rules
    (work / "old.spec").write_text(generate_spec(n_rules))
    # the new version: rule 1 edited, the last rule removed, a new rule added
    new_text = generate_spec(n_rules, edited=1)
    cut = new_text.rindex("rule r")
    new_text = new_text[:cut] + ('rule added_rule {\n  must "Offer a human hand-off when asked."\n'
                                 '  check mentions_any(["human", "agent"])\n}\n')
    (work / "new.spec").write_text(new_text)
    t0 = time.perf_counter()
    old, new = load(work / "old.spec").spec, load(work / "new.spec").spec
    plan_old, plan_new = make_plan(old, seed=1, per_rule=1), make_plan(new, seed=1, per_rule=1)
    m_old, m_new = _manifest(old, plan_old, per_rule), _manifest(new, plan_new, per_rule)
    for name, m in (("data_a", m_old), ("data_b", m_new)):
        (work / name).mkdir()
        (work / name / "manifest.json").write_text(json.dumps(m))
    setup_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ddiff, _ = compare("data_a", "data_b", cwd=work)
    render(ddiff, "json")
    datasets_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    sdiff, impact = compare("old.spec", "new.spec", data="data_a", cwd=work)
    render(sdiff, "markdown", impact)
    impact_s = time.perf_counter() - t0

    # removed: the edited rule's old records and the removed rule's; added: its new ones and the new rule's
    ok_counts = (ddiff.added == ddiff.removed == 2 * per_rule and impact.count("stale") == (per_rule, 1)
                 and impact.count("orphaned") == (per_rule, 1))
    return {
        "records": ddiff.old_records, "rules": n_rules, "manifest_mb": round(
            (work / "data_a/manifest.json").stat().st_size / 1e6, 1),
        "setup_s": round(setup_s, 2), "dataset_diff_s": round(datasets_s, 2), "impact_s": round(impact_s, 2),
        "added": ddiff.added, "removed": ddiff.removed, "stale": impact.count("stale")[0],
        "orphaned": impact.count("orphaned")[0], "new_scenarios": impact.scenarios_new,
        "counts_ok": ok_counts,
        "target_s": MANIFEST_TARGET_S,
        "ok": ok_counts and datasets_s <= MANIFEST_TARGET_S and impact_s <= MANIFEST_TARGET_S,
    }


# -- part 2: recompile -------------------------------------------------------------------------


def bench_recompile(n_rules: int, work: Path, per_rule: int, rounds: int, retries: int) -> dict:
    from specc.compile import CompileOptions, compile_spec
    from specc.ir.resolve import load
    from specc.plan.planner import make_plan
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tinymodel import build_tiny_model

    from specc.engines import resolve_model

    model = resolve_model(str(build_tiny_model(work / "tiny")), reuse=False)
    edited = n_rules // 2
    spec_path = work / "spec" / "bench.spec"
    spec_path.parent.mkdir()
    store = work / "store"

    def compile_once(text: str, out: str):
        spec_path.write_text(text)
        spec = load(spec_path).spec
        opts = CompileOptions(out_dir=work / out, store=store, per_rule=per_rule, seed=1, rounds=rounds,
                              retries=retries)
        t0 = time.perf_counter()
        report = compile_spec(spec, spec_path, opts, model=model)
        return spec, report, time.perf_counter() - t0

    old, clean, clean_s = compile_once(generate_spec(n_rules), "clean")
    new, again, again_s = compile_once(generate_spec(n_rules, edited=edited), "again")
    edited_id = next(r.id for r in new.rules if r.name.startswith(f"r{edited}_"))
    per = again.stats.per_rule
    regenerated_elsewhere = sorted(rid for rid, s in per.items() if rid != edited_id and s.generated)
    old_ids = {s.id for s in make_plan(old, seed=1, per_rule=per_rule).scenarios}
    changed_scenarios = [s for s in make_plan(new, seed=1, per_rule=per_rule).scenarios if s.id not in old_ids]
    ratio = again_s / clean_s if clean_s else float("inf")
    return {
        "rules": n_rules, "per_rule": per_rule, "rounds": rounds, "retries": retries,
        "scenarios": clean.stats.scenarios, "changed_scenarios": len(changed_scenarios),
        "changed_scenarios_all_of_edited_rule": all(s.rule_id == edited_id for s in changed_scenarios),
        "clean_s": round(clean_s, 1), "recompile_s": round(again_s, 1), "ratio": round(ratio, 3),
        "clean_generated": clean.stats.generated, "recompile_generated": again.stats.generated,
        "recompile_reused": again.stats.reused,
        "edited_rule_generated": per[edited_id].generated if edited_id in per else None,
        "regenerated_elsewhere": regenerated_elsewhere,
        "target_ratio": RECOMPILE_TARGET_RATIO,
        "ok": ratio <= RECOMPILE_TARGET_RATIO and not regenerated_elsewhere,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["manifests", "recompile", "all"], default="all")
    ap.add_argument("--records", type=int, default=1_000_000, help="records per manifest (manifests part)")
    ap.add_argument("--rules", type=int, default=50, help="rules of the recompiled spec (recompile part)")
    ap.add_argument("--per-rule", type=int, default=1, help="scenarios per rule and boundary (recompile)")
    ap.add_argument("--rounds", type=int, default=None, help="conversation rounds (recompile; default: "
                    "the compiler's)")
    ap.add_argument("--retries", type=int, default=None, help="retries of failed pairs (recompile; default: "
                    "the compiler's)")
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args(argv)
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"}
    with tempfile.TemporaryDirectory(prefix="specc-bench-") as tmp:
        if args.part in ("manifests", "all"):
            (Path(tmp) / "m").mkdir()
            result["manifests"] = bench_manifests(args.records, Path(tmp) / "m")
        if args.part in ("recompile", "all"):
            (Path(tmp) / "c").mkdir()
            from specc import defaults

            rounds = defaults.ROUNDS if args.rounds is None else args.rounds
            retries = defaults.RETRIES if args.retries is None else args.retries
            result["recompile"] = bench_recompile(args.rules, Path(tmp) / "c", args.per_rule, rounds, retries)
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        print(result["machine"])
        m = result.get("manifests")
        if m:
            print(f"manifests: {m['records']:,} records in {m['rules']:,} rules ({m['manifest_mb']} MB each): "
                  f"dataset vs dataset {m['dataset_diff_s']} s, spec change --data {m['impact_s']} s "
                  f"(target <= {m['target_s']} s); added {m['added']:,}, removed {m['removed']:,}, "
                  f"stale {m['stale']:,}, orphaned {m['orphaned']:,}, new scenarios {m['new_scenarios']}"
                  f"  {'OK' if m['ok'] else 'MISSED'}")
        c = result.get("recompile")
        if c:
            print(f"recompile: {c['rules']} rules, {c['scenarios']} scenarios: clean {c['clean_s']} s "
                  f"({c['clean_generated']} calls), after editing one rule {c['recompile_s']} s "
                  f"({c['recompile_generated']} generated, {c['recompile_reused']} reused) = "
                  f"{c['ratio']:.1%} (target <= {c['target_ratio']:.0%}); changed scenarios "
                  f"{c['changed_scenarios']}; other rules regenerated: {c['regenerated_elsewhere'] or 'none'}"
                  f"  {'OK' if c['ok'] else 'MISSED'}")
    return 0 if all(v.get("ok", True) for v in result.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
