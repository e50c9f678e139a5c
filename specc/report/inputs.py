"""What ``specc report`` reads, and the only place that reads it: a dataset's ``manifest.json`` and
records, ``specc eval -o`` files, a ``specc diff --format json`` file, and (optionally) the spec.

Everything else in :mod:`specc.report` works on the :class:`Inputs` this module returns, so a
change in how the manifest is stored touches this module alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from specc.diff.model import RuleSummary
from specc.emit.manifest import Manifest
from specc.emit.read import RecordsError, read_records
from specc.synth.model import Cost

MAX_COST_BYTES = 16 * 1024 * 1024  # a cost.json larger than this is not one specc wrote


class ReportError(Exception):
    """An input that cannot be read or does not fit the dataset (exit 1)."""


@dataclass(frozen=True)
class Planned:
    """One planned scenario (only with ``--spec``): its rule, boundary and axis values."""

    id: str
    rule_id: str
    boundary: str
    axes: dict


@dataclass
class Inputs:
    dir: Path
    typed: Manifest  # the manifest as validated
    manifest: dict  # the same, as the JSON object it is written as
    records: list[dict]  # every record of every split, each with its "split"
    evals: list = field(default_factory=list)  # specc.eval.EvalReport, in the order given
    eval_files: list[str] = field(default_factory=list)
    diff: dict | None = None
    diff_file: str | None = None
    rules: dict[str, RuleSummary] | None = None  # rule id -> what the spec says (with --spec)
    planned: list[Planned] | None = None  # the compile's scenarios, re-planned from the spec (with --spec)
    cost: Cost | None = None  # the compile's cost.json, where it wrote one
    review: dict | None = None  # a reviewer's verdicts (reviews.jsonl beside the dataset), counted: review_stats

    # -- the manifest's parts, read in one place

    @property
    def spec(self) -> dict:
        return self.manifest.get("spec") or {}

    @property
    def model(self) -> dict:
        return self.manifest.get("model") or {}

    @property
    def stats(self) -> dict:
        return self.manifest.get("stats") or {}

    @property
    def judge(self) -> dict | None:
        return self.manifest.get("judge")

    @property
    def rule_ids(self) -> list[str]:
        return sorted(self.manifest.get("rules") or {})

    def rule_record_ids(self, rid: str) -> set[str]:
        return set(((self.manifest.get("rules") or {}).get(rid) or {}).get("records") or [])


def read_manifest(directory: Path) -> Manifest:
    """The dataset's manifest, validated (:func:`specc.emit.manifest.read_manifest`)."""
    from specc.emit.manifest import ManifestError, read_manifest as read_validated

    if not Path(directory).is_dir():
        raise ReportError(f"{directory}: not a directory")
    if not (Path(directory) / "manifest.json").exists():
        raise ReportError(f"{directory}: no manifest.json; is it a dataset written by `specc compile`?")
    try:
        return read_validated(Path(directory))
    except ManifestError as e:
        raise ReportError(str(e)) from None


def read_dataset_records(directory: Path, manifest: Manifest) -> list[dict]:
    from specc.emit.manifest import ManifestError

    out = []
    for split in sorted(manifest.files):
        try:
            path = manifest.data_file(Path(directory), split)
        except ManifestError as e:
            raise ReportError(str(e)) from None
        if path is None:
            continue
        try:
            rows = read_records(path)
        except RecordsError as e:
            raise ReportError(str(e)) from None
        out.extend({**r, "split": split} for r in rows)
    return out


def read_evals(paths: list[Path]) -> list:
    from specc.eval.report import ReportError as EvalFileError, read_report

    out = []
    for p in paths:
        try:
            out.append(read_report(p))
        except EvalFileError as e:
            raise ReportError(f"--eval: {e}") from None
    return out


# -- the parts of a `specc diff --format json` file that the report shows (specc/diff/model.py
# writes them); checked before any is shown, so a file made by hand cannot crash a rendering


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Side(_Part):
    source: str | None = None
    id: str | None = None
    version: str | None = None


class _FieldChange(_Part):
    field: str


class _RuleChange(_Part):
    change: str
    old_id: str | None = None
    new_id: str | None = None
    classes: list[str] = []
    fields: list[_FieldChange] = []


class _Count(_Part):
    records: int
    rules: int


class _RuleImpact(_Part):
    rule_id: str
    status: str
    records: int
    new_id: str | None = None


class _DataImpact(_Part):
    stale: _Count
    replanned: _Count = None  # type: ignore[assignment]  # absent, or counts: never null
    renamed: _Count
    orphaned: _Count
    fresh: _Count
    by_rule: list[_RuleImpact] = []
    note: str | None = None


class _SpecDiffFile(_Part):
    old: _Side
    new: _Side
    summary: dict
    rules: list[_RuleChange]
    data: _DataImpact | None = None


class _RecordCounts(_Part):
    added: int = 0
    removed: int = 0
    changed: int | None = None


class _RuleRecords(_Part):
    rule_id: str
    status: str
    added: int
    removed: int
    changed: int | None = None
    unchanged: int


class _DatasetDiffFile(_Part):
    old: _Side
    new: _Side
    records: _RecordCounts
    rules: list[_RuleRecords]


def read_diff(path: Path) -> dict:
    from specc.files import load_json, validation_problem

    try:
        data = load_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"--diff: cannot read {path}: {e}") from None
    except ValueError as e:
        raise ReportError(f"--diff: {path} is not JSON that specc reads ({e}); write it with "
                          "`specc diff … --format json`") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list) or "old" not in data:
        raise ReportError(f"--diff: {path} is not the output of `specc diff … --format json`")
    try:
        (_SpecDiffFile if "summary" in data else _DatasetDiffFile).model_validate(data)
    except ValidationError as e:
        raise ReportError(f"--diff: {path} is not the output of `specc diff … --format json` "
                          f"({validation_problem(e)})") from None
    return data


def read_spec(path: Path, manifest: dict) -> tuple[dict[str, RuleSummary], list[Planned] | None]:
    """The rules of the spec the dataset was compiled from, and its planned scenarios (the plan
    remade with the manifest's parameters, kept to the scenario ids the manifest lists)."""
    from specc.diff.rules import summary as rule_summary
    from specc.ir.resolve import load

    result = load(Path(path))
    if not result.ok:
        raise ReportError(f"--spec {path}: {len(result.errors)} error(s); see `specc check {path}`")
    spec = result.spec
    want = (manifest.get("spec") or {}).get("hash")
    if want and spec.hash != want:
        raise ReportError(f"--spec {path}: its hash {spec.hash[:12]} is not the dataset's {want[:12]} "
                          "(the dataset was compiled from another version of the spec)")
    rules = {r.id: rule_summary(r) for r in spec.rules}
    return rules, _planned(spec, manifest)


def _planned(spec, manifest: dict) -> list[Planned] | None:
    from specc.plan.planner import PlanError, make_plan

    params = dict(manifest.get("plan") or {})
    try:
        plan = make_plan(spec, seed=manifest.get("seed", 0), per_rule=params["per_rule"],
                         coverage=params["coverage"], system_prompt=params["system_prompt"],
                         boundaries=tuple(params["boundaries"]), test_fraction=params["test_fraction"])
    except (KeyError, TypeError, ValueError, PlanError):
        return None
    listed = set().union(*(set(e.get("scenarios") or []) for e in manifest["rules"].values()))
    out = [Planned(s.id, s.rule_id, s.boundary, dict(s.axes)) for s in plan.scenarios if s.id in listed]
    # a plan that does not give the manifest's scenarios is not the compile's: show none
    return out if len(out) == len(listed) else None


def read_inputs(directory: Path, *, evals: list[Path] = (), diff: Path | None = None,
                spec: Path | None = None) -> Inputs:
    typed = read_manifest(directory)
    man = typed.to_dict()
    inp = Inputs(dir=Path(directory), typed=typed, manifest=man, records=read_dataset_records(directory, typed),
                 evals=read_evals(list(evals)), eval_files=[str(p) for p in evals],
                 diff=read_diff(diff) if diff else None, diff_file=str(diff) if diff else None)
    if spec is not None:
        inp.rules, inp.planned = read_spec(spec, man)
    inp.cost = read_cost(Path(directory))
    inp.review = review_stats(Path(directory), typed, inp.records)
    if inp.cost is not None:
        # the verdicts as they stand now (a review after the compile that wrote cost.json counts);
        # none: "not reviewed", whatever cost.json said when it was written
        from specc.synth.model import per_accepted

        counts = (inp.review or {}).get("generated") or (0, 0, 0)
        try:
            inp.cost = per_accepted(inp.cost, *counts)
        except ValueError as e:
            raise ReportError(f"{directory}: {e}") from None
    return inp


def read_cost(directory: Path) -> Cost | None:
    """The dataset's ``cost.json`` (what its compile spent), validated; None where there is none (a
    dataset from before the accounting, or merged from shards)."""
    from specc.files import load_json

    path = directory / "cost.json"
    if not path.is_file():
        return None
    try:
        if path.stat().st_size > MAX_COST_BYTES:
            raise ReportError(f"{path}: too large for a specc cost.json")
        return Cost.model_validate(load_json(path.read_text(encoding="utf-8")))
    except ReportError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read it: {e}") from None
    except (ValueError, RecursionError) as e:  # pydantic's ValidationError is a ValueError
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ReportError(f"{path}: not a specc cost.json ({first})") from None


def review_stats(directory: Path, manifest: Manifest, records: list[dict]) -> dict | None:
    """The verdicts that hold for the dataset's records now (``specc review``), counted per rule,
    by the origin of each side and by reason; None where nobody reviewed it."""
    from specc.emit.merge import MergeError, pairs_of
    from specc.emit.reviews import (ReviewsError, current_verdicts, generated_verdicts, read_reviews,
                                    reviewed_records, written_as_reviewed)

    try:
        reviews = read_reviews(directory)
    except ReviewsError as e:
        raise ReportError(str(e)) from None
    if not reviews:
        return None
    by_split: dict[str, list[dict]] = {}
    for r in records:
        by_split.setdefault(r["split"], []).append(r)
    try:
        pairs = pairs_of(by_split, manifest.format)
    except (MergeError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise ReportError(f"{directory}: a record is not a specc {manifest.format} row, so verdicts cannot be "
                          f"matched to it: {e}") from None
    hashes = {rid: e.hash for rid, e in manifest.rules.items()}
    left_out = manifest.review.rejected_records if manifest.review is not None else []
    holds = current_verdicts(pairs, hashes, reviews, left_out, applied=written_as_reviewed(manifest.review))
    out = {"records": len(pairs) + sum(1 for rid in left_out if rid in holds), "reviewed": len(holds),
           "generated": list(generated_verdicts(pairs, holds)),
           "accepted": 0, "edited": 0, "swapped": 0, "per_rule": {}, "by_origin": {}, "reasons": {},
           "notes": [], "outdated": len(set(reviewed_records(reviews)) - set(holds)),
           "reviewers": sorted({r.reviewer for r in holds.values()})}

    def count(table: dict, key: str, accepted: bool) -> None:
        cell = table.setdefault(key, [0, 0])
        cell[0] += 1
        cell[1] += accepted

    for r in holds.values():
        ok = r.verdict == "accept"
        out["accepted"] += ok
        out["edited"] += ok and bool(r.edits)
        out["swapped"] += ok and r.swap
        for rid in r.rule_ids or ["?"]:
            count(out["per_rule"], rid, ok)
        for side in ("chosen", "rejected"):
            origin = getattr(r, f"{side}_from")
            if origin is not None:
                count(out["by_origin"], f"{side}:{origin}", ok)
        if not ok:
            out["reasons"][r.reason] = out["reasons"].get(r.reason, 0) + 1
            if r.note:
                out["notes"].append(r.note)
    out["per_rule"] = dict(sorted(out["per_rule"].items()))
    out["by_origin"] = dict(sorted(out["by_origin"].items()))
    out["reasons"] = dict(sorted(out["reasons"].items(), key=lambda kv: (-kv[1], kv[0])))
    out["notes"] = out["notes"][:20]
    return out
