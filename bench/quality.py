"""Quality benchmark: what the pairs of a compile with the embedded model are worth.

For each spec (default: ``examples/support/assistant.spec``, whose rules mix checks and
judge-only ones, and ``examples/bank/bank.spec``, whose rules all have checks) it compiles with
the embedded SmolLM2 into a fresh store and reports:

- emitted generated pairs (the spec's own example pairs are counted apart);
- the ``specc audit`` flag rate over the emitted *generated* records (target <= 10 %);
- the judge's agreement with the spec's labelled examples, and whether any pair that only the
  judge could verify was emitted under an uncalibrated judge (target: none);
- verified generated pairs per rule, and the share of the rules with checks that got at least one
  (target >= 80 %);
- where each side came from (``sampled`` on-policy candidates, ``defender`` / ``violator`` roles);
- wall time and model calls.

``--sample N`` prints N emitted generated pairs chosen at random (seeded), in full, for a person
to read: the numbers say what the gates and checks let through, only reading says whether a
reviewer would accept it.

    python bench/quality.py                                     # both specs, README settings
    python bench/quality.py --spec examples/bank/bank.spec --sample 20
    python bench/quality.py --format json

Exit 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

REPO = Path(__file__).resolve().parent.parent
SPECS = ["examples/support/assistant.spec", "examples/bank/bank.spec"]
TARGET_FLAGGED = 0.10
TARGET_RULE_COVERAGE = 0.80


def rows_of(out: Path, files: dict) -> list[dict]:
    rows = []
    for split in ("train", "test"):
        if files.get(split):
            rows.extend(json.loads(line) for line in (out / files[split]).read_text(encoding="utf-8").splitlines())
    return rows


def measure(spec_path: Path, args, handle) -> dict:
    from specc.audit import audit_dataset
    from specc.compile import CompileOptions, compile_spec
    from specc.ir.resolve import load

    res = load(spec_path)
    if res.spec is None:
        raise SystemExit(f"{spec_path}: does not load")
    spec = res.spec
    work = Path(tempfile.mkdtemp(prefix="specc-quality-"))
    store = Path(args.store) / spec_path.stem if args.store else work / "store"
    opts = CompileOptions(out_dir=work / "out", store=store, per_rule=args.per_rule, seed=args.seed,
                          rounds=args.rounds, retries=args.retries, answer_chars=args.max_chars,
                          candidates=args.candidates, batch_size=args.batch_size)
    t = time.perf_counter()
    rep = compile_spec(spec, spec_path, opts, model=handle)
    wall = time.perf_counter() - t
    rows = rows_of(work / "out", rep.files)
    gen = [r for r in rows if r["source"] == "generated"]
    # the audit over the generated records alone
    only = work / "generated"
    (only / "data").mkdir(parents=True)
    (only / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gen), encoding="utf-8")
    shutil.copy(work / "out" / "manifest.json", only / "manifest.json")
    audit = audit_dataset(only)
    s = rep.stats
    checked = [r.id for r in spec.rules if r.checks]
    per_rule = {rid: sum(1 for r in gen if r["rule_ids"] == [rid]) for rid in sorted(r.id for r in spec.rules)}
    covered = [rid for rid in checked if per_rule.get(rid)]
    judge = rep.manifest.judge or {}
    judged_untrusted = sum(1 for r in gen if r["verified_by"] == "judge") if not judge.get("trusted") else 0
    out = {
        "spec": str(spec_path),
        "rules": len(spec.rules),
        "rules_with_checks": len(checked),
        "scenarios": s.scenarios,
        "verified": s.verified,
        "emitted_generated": len(gen),
        "emitted_spec_examples": s.spec_examples,
        "audit_flagged": audit.flagged,
        "audit_rate": round(audit.rate, 4),
        "audit_by_gate": {k: v for k, v in audit.counts.items() if v},
        "judge_agreement": judge.get("agreement"),
        "judge_trusted": judge.get("trusted"),
        "judge_only_emitted_untrusted": judged_untrusted,
        "checked_rules_covered": len(covered),
        "checked_rule_coverage": round(len(covered) / len(checked), 4) if checked else None,
        "verified_generated_per_rule": per_rule,
        "sides_from": s.get("sides_from", {}),
        "dropped_reasons": s.dropped_reasons,
        "model_calls_generated": s.generated,
        "calibration_calls": (judge.get("calls") or 0),
        "wall_s": round(wall, 1),
        "out": str(work / "out"),
    }
    if args.sample:
        rng = random.Random(args.seed)
        out["sample"] = rng.sample(gen, min(args.sample, len(gen)))
    return out


def targets(m: dict) -> list[str]:
    missed = []
    if m["emitted_generated"] and m["audit_rate"] > TARGET_FLAGGED:
        missed.append(f"{m['spec']}: {m['audit_rate']:.0%} of the generated pairs flagged (target <= 10%)")
    if m["checked_rule_coverage"] is not None and m["checked_rule_coverage"] < TARGET_RULE_COVERAGE:
        missed.append(f"{m['spec']}: {m['checked_rules_covered']}/{m['rules_with_checks']} rules with checks got a "
                      "verified generated pair (target >= 80%)")
    if m["judge_only_emitted_untrusted"]:
        missed.append(f"{m['spec']}: {m['judge_only_emitted_untrusted']} judge-only pairs emitted under an "
                      "uncalibrated judge (target 0)")
    return missed


def show(m: dict) -> None:
    print(f"== {m['spec']}  ({m['rules']} rules, {m['rules_with_checks']} with checks)")
    print(f"  scenarios {m['scenarios']}, verified {m['verified']}; emitted generated pairs {m['emitted_generated']}, "
          f"spec-example pairs {m['emitted_spec_examples']}")
    print(f"  audit of the generated pairs: {m['audit_flagged']} flagged ({m['audit_rate']:.1%}) {m['audit_by_gate']}")
    print(f"  judge agreement {m['judge_agreement']} (trusted: {m['judge_trusted']}); judge-only pairs emitted "
          f"untrusted: {m['judge_only_emitted_untrusted']}")
    print(f"  rules with checks covered: {m['checked_rules_covered']}/{m['rules_with_checks']}")
    print(f"  sides: {m['sides_from']}")
    print(f"  per rule: {m['verified_generated_per_rule']}")
    print(f"  dropped: {m['dropped_reasons']}")
    print(f"  wall {m['wall_s']} s, model calls {m['model_calls_generated']} (calibration {m['calibration_calls']})")
    for i, r in enumerate(m.get("sample", []), 1):
        print(f"\n  --- sample {i}: {r['rule_ids'][0]} / {r['boundary']} / {r['axes']}")
        for t in r["prompt"]:
            print(f"  [{t['role']}] {t['content']}")
        print(f"  [chosen, {r['chosen_from']}] {r['chosen'][0]['content']}")
        print(f"  [rejected, {r['rejected_from']}] {r['rejected'][0]['content']}")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", action="append", help="spec file (repeatable); default: " + ", ".join(SPECS))
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--engine", default="transformers")
    ap.add_argument("--per-rule", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument("--max-chars", type=int, default=96)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--store", default=None, help="keep stores here (reruns reuse them); default: fresh")
    ap.add_argument("--sample", type=int, default=0, help="print N random emitted generated pairs")
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args()
    from specc.engines import resolve_model

    handle = resolve_model(args.model, engine=args.engine, batch_size=args.batch_size)
    results = [measure(REPO / s if not Path(s).is_absolute() else Path(s), args, handle)
               for s in (args.spec or SPECS)]
    missed = [x for m in results for x in targets(m)]
    if args.format == "json":
        print(json.dumps({"results": results, "missed": missed}, indent=2, ensure_ascii=False))
    else:
        for m in results:
            show(m)
        print("targets: " + ("all met" if not missed else "MISSED\n  " + "\n  ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
