"""``manifest.json``: what a dataset was compiled from and what it holds, rule by rule.

``specc diff --data`` reads it: per rule, the rule hash and the record ids, so a spec change
maps to records added, removed or stale. No timestamps and no absolute paths: the same spec,
seed and model give the same bytes.
"""

from __future__ import annotations

import json

from specc import __version__


def build_manifest(*, spec, spec_file: str, plan, fmt: str, file_format: str, seed: int, model: str,
                   judge: str, generation: dict, engines: dict | None = None, rows: dict[str, list[dict]], files: dict[str, str | None],
                   scenarios_by_rule: dict[str, list[str]], stats: dict, shard: dict | None = None,
                   judge_calibration: dict | None = None) -> dict:
    records: dict[str, list[str]] = {}
    for split_rows in rows.values():
        for row in split_rows:
            for rid in row["rule_ids"]:
                records.setdefault(rid, []).append(row["record_id"])
    rules = {}
    for rule in sorted(spec.rules, key=lambda r: r.id):
        rules[rule.id] = {
            "hash": rule.hash,
            "records": sorted(set(records.get(rule.id, []))),
            "scenarios": sorted(scenarios_by_rule.get(rule.id, [])),
        }
    man = {
        "specc_version": __version__,
        "spec": {"id": spec.id, "version": spec.version, "hash": spec.hash, "file": spec_file},
        "format": fmt,
        "file_format": file_format,
        "seed": seed,
        "model": {"name": model, "judge": judge, **({"engine": engines["model"], "judge_engine": engines["judge"],
                                                       "engine_params": engines["params"]} if engines else {})},
        "generation": generation,
        # the judge's agreement with the spec's labelled examples (specc.synth.calibrate)
        **({"judge": judge_calibration} if judge_calibration is not None else {}),
        "plan": {"per_rule": plan.per_rule, "coverage": plan.coverage, "system_prompt": plan.system_prompt,
                 "test_fraction": plan.test_fraction, "boundaries": list(plan.boundaries)},
        "rules": rules,
        "files": {k: files.get(k) for k in ("train", "test")},
        "counts": {k: len(v) for k, v in rows.items()},
        "stats": stats,
    }
    if shard is not None:
        # a shard of a compile (`--shard K/N`): which slice of which plan; `specc merge` reads it.
        # Last, so that the merged manifest (the unsharded one) is this one without the field.
        man["shard"] = shard
    return man


def dumps(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
