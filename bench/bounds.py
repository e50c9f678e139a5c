"""Inputs for measuring specc's bounds (docs/bounds.md): a dataset whose one record holds a long
text, for ``specc audit``; a dataset and an eval of a spec with many rules, for ``specc report``.

    python bench/bounds.py audit-text 10 /tmp/a10        # one record, a 10 MB chosen answer
    python bench/bounds.py report-world 6000 /tmp/r6000  # spec, dataset and EVAL.json, 6,000 rules
    python bench/bounds.py measure /tmp/bounds           # both, then each cheap command timed: a table

then time the command, e.g. ``/usr/bin/time -v specc audit /tmp/a10 --format json >/dev/null`` or
``/usr/bin/time -v specc report /tmp/r6000/data --spec /tmp/r6000/spec/bench.spec --eval
/tmp/r6000/eval.json -o /tmp/r6000/report.html --no-open``. The texts are words of a fixed list,
seeded; the dataset goes through specc's own writer from the spec's real plan, with outcomes
(verified by a check, dropped at a gate, dropped by the judge) taken in turn instead of a model.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

_WORDS = "the quick brown fox jumps over lazy dog and then some more words here please".split()


def audit_text(megabytes: float, out: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    n = int(megabytes * 1_000_000)
    text = " ".join(rng.choice(_WORDS) for _ in range(n // 5 + 1))[:n]
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text(json.dumps({"prompt": "Tell me about foxes.", "chosen": text,
                                                 "rejected": "No."}) + "\n", encoding="utf-8")
    return out


_OUTCOMES = ("verified:check", "gate:loop:violator", "verified:judge", "judge-chosen-violates")


def report_world(n_rules: int, out: Path, seed: int = 0) -> Path:
    from frontend import generate

    from specc.emit.writer import write_dataset
    from specc.eval.report import EvalReport, ProbeResult, aggregate
    from specc.ir.resolve import load
    from specc.plan.planner import make_plan
    from specc.synth.model import Pair, SynthResult, SynthStats

    spec_path = out / "spec" / "bench.spec"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(generate(n_rules), encoding="utf-8")
    spec = load(spec_path).spec
    plan = make_plan(spec, seed=seed, per_rule=1)
    pairs, per_rule, reasons, by = [], {}, {}, {}
    for i, s in enumerate(plan.scenarios):
        outcome = _OUTCOMES[i % len(_OUTCOMES)]
        e = per_rule.setdefault(s.rule_id, {"scenarios": 0, "generated": 0, "reused": 0, "verified": 0,
                                            "dropped": 0, "dropped_reasons": {}, "examples": 0})
        e["scenarios"] += 1
        e["generated"] += 3
        if outcome.startswith("verified:"):
            e["verified"] += 1
            by[outcome[9:]] = by.get(outcome[9:], 0) + 1
            pairs.append(Pair(record_id=s.id, rule_ids=(s.rule_id,), boundary=s.boundary, axes=dict(s.axes),
                              scenario_id=s.id, source="generated", verified_by=outcome[9:],
                              prompt=({"role": "user", "content": f"Request {i} of {s.rule_id}"},),
                              chosen=f"A careful answer {i}.", rejected=f"A careless answer {i}.", split=s.split,
                              chosen_from="sampled", rejected_from="violator"))
        else:
            e["dropped"] += 1
            e["dropped_reasons"][outcome] = e["dropped_reasons"].get(outcome, 0) + 1
            reasons[outcome] = reasons.get(outcome, 0) + 1
    verified = sum(e["verified"] for e in per_rule.values())
    stats = {"scenarios": len(plan.scenarios), "generated": 3 * len(plan.scenarios), "reused": 0,
             "verified": verified, "dropped": len(plan.scenarios) - verified,
             "dropped_reasons": dict(sorted(reasons.items())), "verified_by": dict(sorted(by.items())),
             "sides_from": {"chosen:sampled": verified, "rejected:violator": verified}, "faults": {},
             "gate_failures": {}, "spec_example_gate_warnings": {}, "spec_examples": 0, "experience_pool": 0,
             "per_rule": dict(sorted(per_rule.items()))}
    by_rule: dict[str, list[str]] = {}
    for s in plan.scenarios:
        by_rule.setdefault(s.rule_id, []).append(s.id)
    result = SynthResult(pairs=sorted(pairs, key=lambda p: p.record_id), stats=SynthStats.model_validate(stats),
                         scenarios_by_rule=by_rule, judge=None)
    write_dataset(out / "data", result=result, spec=spec, spec_file=spec_path.name, plan=plan, fmt="dpo",
                  file_format="jsonl", seed=seed, model="bench/model", judge="bench/judge", generation={},
                  engines={"model": "openai", "judge": "openai", "params": {}})
    rng = random.Random(seed)
    results = []
    for rule in spec.rules:
        for j in range(3):
            boundary = "lookalike" if j == 2 else "violation"
            results.append(ProbeResult(id=f"{rule.id}-{j}", rule_id=rule.id, boundary=boundary, source="test-split",
                                       metric="overrefusal" if boundary == "lookalike" else "compliance",
                                       score=float(rng.random() < 0.7), outcome="n/a"))
    rules, overall = aggregate(results, [r.id for r in spec.rules])
    rep = EvalReport(specc_version="0.1.0", model="bench/model", engine="transformers",
                     spec={"id": spec.id, "version": spec.version, "hash": spec.hash}, source="test-split",
                     probes=len(results), max_new_tokens=64, per_rule=rules, results=results, **overall)
    (out / "eval.json").write_text(rep.dumps(), encoding="utf-8")
    return out


def _timed(args: list[str], cwd: Path) -> tuple[float, float, int, int]:
    """(wall s, CPU s, max RSS in MiB, exit code) of ``specc ARGS`` under /usr/bin/time."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", sys.executable, "-c", "from specc.cli import main; main()",
           *map(str, args)]
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall, user, system, rss = r.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(rss) // 1024, r.returncode


def measure(work: Path, rules: int, megabytes: float) -> list[str]:
    """Each cheap command on the largest inputs made here: one table row each (docs/bounds.md)."""
    import shutil

    repo = Path(__file__).resolve().parent.parent
    world = work / f"r{rules}"
    if not (world / "eval.json").is_file():
        report_world(rules, world)
    text = work / f"a{megabytes:g}"
    if not (text / "train.jsonl").is_file():
        audit_text(megabytes, text)
    spec = world / "spec" / "bench.spec"
    changed = work / "changed.spec"
    changed.write_text(spec.read_text(encoding="utf-8").replace("must_not", "must", 1), encoding="utf-8")
    shutil.rmtree(work / "imported", ignore_errors=True)
    md = repo / "tests" / "data" / "modelspec" / "model_spec-2025-09-12.md"
    size = f"{rules:,} rules ({spec.stat().st_size / 1e6:.1f} MB)"
    records = sum(1 for f in (world / "data" / "data").glob("*.jsonl") for _ in f.open(encoding="utf-8"))
    runs = [
        ("check", size, ["check", spec]),
        ("fmt --check", size, ["fmt", "--check", spec]),
        ("inspect --format json", size, ["inspect", spec, "--format", "json"]),
        ("plan (default 6 per rule)", size, ["plan", spec]),
        ("diff (one rule changed)", size, ["diff", spec, changed]),
        ("diff --data", f"{size}, {records:,} records", ["diff", spec, changed, "--data", world / "data"]),
        ("import", f"the Model Spec 2025-09-12 ({md.stat().st_size / 1e3:.0f} KB)", ["import", md, "-o",
                                                                                      work / "imported"]),
        ("audit", f"{records:,} records of {rules:,} rules", ["audit", world / "data", "--format", "json"]),
        ("audit", f"one record, a {megabytes:g} MB answer", ["audit", text, "--format", "json"]),
        ("report --format markdown", f"{size}, {records:,} records, one eval",
         ["report", world / "data", "--spec", spec, "--eval", world / "eval.json", "--format", "markdown"]),
        ("report (HTML)", f"{size}, {records:,} records", ["report", world / "data", "--spec", spec, "-o",
                                                          work / "report.html"]),
        ("report (HTML) --eval", f"{size}, {records:,} records, one eval",
         ["report", world / "data", "--spec", spec, "--eval", world / "eval.json", "-o", work / "report.html"]),
    ]
    rows = []
    for name, what, args in runs:
        wall, cpu, rss, code = _timed(args, work)
        rows.append(f"| `{name}` | {what} | {wall:.1f} | {cpu:.1f} | {rss} | {code} |")
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("audit-text")
    a.add_argument("megabytes", type=float)
    a.add_argument("out", type=Path)
    r = sub.add_parser("report-world")
    r.add_argument("rules", type=int)
    r.add_argument("out", type=Path)
    m = sub.add_parser("measure", help="time each cheap command on inputs made in WORK (a markdown table)")
    m.add_argument("work", type=Path)
    m.add_argument("--rules", type=int, default=6000)
    m.add_argument("--megabytes", type=float, default=10)
    args = ap.parse_args(argv)
    if args.what == "measure":
        args.work.mkdir(parents=True, exist_ok=True)
        print("| command | input | wall s | CPU s | max RSS MiB | exit |\n|---|---|---:|---:|---:|---:|")
        measure(args.work, args.rules, args.megabytes)
    else:
        print(audit_text(args.megabytes, args.out) if args.what == "audit-text" else report_world(args.rules, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
