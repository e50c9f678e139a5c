"""``manifest.json``: what a dataset was compiled from and what it holds, rule by rule.

``specc diff --data`` reads it: per rule, the rule hash and the record ids, so a spec change
maps to records added, removed or stale. No timestamps and no absolute paths: the same spec,
seed and model give the same bytes.

:class:`Manifest` is the one definition of the file (its ``stats`` are synthesis's own
:class:`specc.synth.model.SynthStats`): the writer builds one and dumps it, and every reader
(``diff``, ``merge``, ``train``, ``eval``, the check of an output directory) goes through
:func:`read_manifest`, which validates it. A hand-edited or corrupt manifest is a
:class:`ManifestError` naming the file, never a traceback: fields of the wrong type, absurd plan
numbers, data files outside the dataset directory. ``specc schema --manifest`` prints its JSON
Schema.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator

from specc import __version__
from specc.defaults import MAX_PER_RULE
from specc.files import load_json
from specc.plan.model import BOUNDARIES, Boundary
from specc.synth.model import SynthStats

# Bounds a compile never reaches, so that a tampered manifest cannot make `specc diff` re-plan
# a hundred million scenarios per rule.
MAX_BYTES = 256 * 1024 * 1024  # a manifest larger than this is not one specc wrote

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_dict(self) -> dict:
        """As the JSON object it is written as (absent optional fields left out)."""
        return self.model_dump(mode="json", exclude_unset=True)


class ManifestError(ValueError):
    """A manifest that cannot be read or is not one specc wrote; the message names the file."""


class SpecInfo(_Model):
    id: str
    version: str
    hash: str
    file: str
    doc: str | None = None  # the spec's doc string, the card's summary (absent when the spec has none)


class ModelInfo(_Model):
    name: str
    judge: str
    engine: str | None = None
    judge_engine: str | None = None
    engine_params: dict[str, Any] | None = None


class PlanInfo(_Model):
    per_rule: int = Field(ge=1, le=MAX_PER_RULE)
    coverage: Literal["pairwise", "full", "random"]
    system_prompt: Literal["none", "rule", "instance"]
    test_fraction: float = Field(ge=0.0, le=1.0)
    boundaries: list[Boundary] = Field(max_length=len(BOUNDARIES))


class RuleEntry(_Model):
    hash: str
    records: list[str]
    scenarios: list[str] = Field(max_length=3 * MAX_PER_RULE)


class ShardInfo(_Model):
    index: int = Field(ge=1)
    count: int = Field(ge=1)
    rules: list[str]
    planned_rules: list[str]
    plan: str


class ReviewInfo(_Model):
    """How far a person reviewed the dataset (``specc review``; specc.emit.reviews)."""

    file: str
    records: NonNegativeInt
    reviewed: NonNegativeInt
    accepted: NonNegativeInt
    rejected: NonNegativeInt
    edited: NonNegativeInt
    swapped: NonNegativeInt
    pending: NonNegativeInt
    outdated: NonNegativeInt
    reasons: dict[str, NonNegativeInt]
    reviewers: list[str]
    rejected_records: list[str] = []  # left out as rejected: `specc review` still counts them
    # record id -> the content hash it was generated with, for records written swapped or edited
    applied: dict[str, str] = {}
    exported: bool | None = None  # written by `specc review --export`: the accepted records only


class Manifest(_Model):
    """``manifest.json``. The fields in the order the file has them."""

    specc_version: str
    spec: SpecInfo
    format: Literal["dpo", "kto", "sft"]
    file_format: Literal["jsonl", "parquet"]
    seed: int
    model: ModelInfo
    generation: dict[str, Any]
    judge: dict[str, Any] | None = Field(None, description="The judge's agreement with the spec's labelled "
                                         "examples (specc.synth.calibrate)")
    plan: PlanInfo
    rules: dict[str, RuleEntry]
    files: dict[Literal["train", "test"], str | None]
    counts: dict[Literal["train", "test"], NonNegativeInt]
    stats: SynthStats
    shard: ShardInfo | None = Field(None, description="A shard of a compile (`--shard K/N`): which slice of "
                                    "which plan; `specc merge` reads it")
    review: ReviewInfo | None = Field(None, description="How far a person reviewed the records "
                                      "(`specc review`, reviews.jsonl beside the dataset); absent: not reviewed")

    @field_validator("files")
    @classmethod
    def _files_inside(cls, files: dict) -> dict:
        for split, rel in files.items():
            if rel is None:
                continue
            norm = posixpath.normpath(rel)
            if (not rel or rel.startswith(("/", "\\")) or "\\" in rel or ":" in rel or norm == ".."
                    or norm.startswith("../") or norm != rel):
                raise ValueError(f"the {split} file {rel!r} is not a plain path inside the dataset directory")
        return files

    def dumps(self) -> str:
        return dumps(self.to_dict())

    def data_file(self, root: Path, split: str) -> Path | None:
        """The path of a split's data file under the dataset directory ``root``; a
        :class:`ManifestError` where it leads outside ``root`` (a symbolic link included)."""
        rel = self.files.get(split)
        if rel is None:
            return None
        path = Path(root) / rel
        try:
            inside = path.resolve().is_relative_to(Path(root).resolve())
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise ManifestError(f"{Path(root) / 'manifest.json'}: the {split} file {rel!r} leads outside the "
                                "dataset directory; refusing to read it")
        return path


def read_manifest(path: Path) -> Manifest:
    """Read and validate a ``manifest.json`` (or the one in a dataset directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ManifestError(f"{path}: {path.stat().st_size} bytes is too large for a specc manifest")
        data = load_json(path.read_text(encoding="utf-8"))
    except ManifestError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read it: {e}") from None
    except ValueError as e:
        raise ManifestError(f"{path}: not valid JSON: {e}") from None
    return parse_manifest(data, str(path))


def parse_manifest(data: Any, where: str) -> Manifest:
    """Validate a manifest already read as JSON; :class:`ManifestError` names ``where``."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: not a specc manifest (expected a JSON object)")
    if "specc_version" not in data:
        raise ManifestError(f"{where}: not a specc manifest (no `specc_version`); was it written by `specc compile`?")
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(top)"
        more = f" (and {e.error_count() - 1} more problem{'s' if e.error_count() > 2 else ''})" \
            if e.error_count() > 1 else ""
        raise ManifestError(f"{where}: not a valid specc manifest: `{loc}`: {first['msg']}{more}") from None
    except RecursionError:
        raise ManifestError(f"{where}: nested too deeply to be a specc manifest") from None


def build_manifest(*, spec, spec_file: str, plan, fmt: str, file_format: str, seed: int, model: str,
                   judge: str, generation: dict, engines: dict | None = None, rows: dict[str, list[dict]],
                   files: dict[str, str | None], scenarios_by_rule: dict[str, list[str]], stats: SynthStats,
                   shard: dict | None = None, judge_calibration: dict | None = None,
                   review: dict | None = None) -> Manifest:
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
        "spec": {"id": spec.id, "version": spec.version, "hash": spec.hash, "file": spec_file,
                 **({"doc": spec.doc} if getattr(spec, "doc", None) else {})},
        "format": fmt,
        "file_format": file_format,
        "seed": seed,
        "model": {"name": model, "judge": judge, **({"engine": engines["model"], "judge_engine": engines["judge"],
                                                       "engine_params": engines["params"]} if engines else {})},
        "generation": generation,
        **({"judge": judge_calibration} if judge_calibration is not None else {}),
        "plan": {"per_rule": plan.per_rule, "coverage": plan.coverage, "system_prompt": plan.system_prompt,
                 "test_fraction": plan.test_fraction, "boundaries": list(plan.boundaries)},
        "rules": rules,
        "files": {k: files.get(k) for k in ("train", "test")},
        "counts": {k: len(v) for k, v in rows.items()},
        "stats": stats.to_dict(),
    }
    if shard is not None:
        # Last, so that the merged manifest (the unsharded one) is this one without the field.
        man["shard"] = shard
    if review is not None:
        man["review"] = review
    return Manifest.model_validate(man)


def dumps(manifest: "Manifest | dict") -> str:
    if isinstance(manifest, Manifest):
        manifest = manifest.to_dict()
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def manifest_schema() -> dict:
    """The JSON Schema of ``manifest.json`` (``specc schema --manifest``)."""
    return Manifest.model_json_schema()
