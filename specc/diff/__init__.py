"""``specc diff``: what changed between two specs, rule by rule, and what that does to data.

* :func:`diff_specs` — spec vs spec on the resolved IR (added / removed / renamed / changed
  rules, field by field, each change classified: tightened, loosened, reworded ...);
* :func:`data_impact` — a spec change against a compiled dataset's manifest (stale,
  renamed, orphaned and fresh records; scenarios a recompile adds);
* :func:`diff_datasets` — two compiled datasets record by record, grouped by rule;
* :func:`compare` — the whole command: open both sides (file, ``REV:path``, dataset
  directory), diff them, and the impact on ``--data``;
* :func:`render` — text, json or markdown.
"""

from __future__ import annotations

from pathlib import Path

from specc.diff.data import data_impact, diff_datasets
from specc.diff.model import (
    CLASSES,
    GATES,
    KINDS,
    DataImpact,
    DatasetDiff,
    FieldChange,
    RuleChange,
    SideInfo,
    SpecDiff,
)
from specc.diff.render import render
from specc.diff.rules import diff_rule, diff_specs
from specc.diff.sources import DatasetSide, DiffError, document_id, open_dataset, open_side
from specc.files import name_too_long


def compare(old: str, new: str, data: str | None = None,
            cwd: Path | None = None) -> tuple[SpecDiff | DatasetDiff, DataImpact | None]:
    """Open ``old`` and ``new`` (and the dataset ``data``) and diff them. Raises DiffError."""
    # Two documents (Markdown) import under one spec id, NEW's, so that their rules compare by
    # id even when the file names differ (model_spec-2025-04-11.md, model_spec-2025-09-12.md).
    shared = document_id(new) if document_id(old) and document_id(new) else None
    a, b = open_side(old, cwd, shared), open_side(new, cwd, shared)
    if isinstance(a, DatasetSide) and isinstance(b, DatasetSide):
        if data is not None:
            raise DiffError("--data goes with two specs; two datasets are compared with each other")
        return diff_datasets(a, b), None
    if isinstance(a, DatasetSide) or isinstance(b, DatasetSide):
        ds, spec = (a, b) if isinstance(a, DatasetSide) else (b, a)
        raise DiffError(f"cannot diff a dataset ({ds.info.source}) with a spec ({spec.info.source}); "
                        f"to see what a spec change does to a dataset, run "
                        f"`specc diff OLD_SPEC NEW_SPEC --data {ds.info.source}`")
    diff = diff_specs(a.spec, b.spec, a.info, b.info)
    impact = None
    if data is not None:
        path = Path(cwd or Path.cwd()) / data
        if name_too_long(path / "manifest.json") or not (path / "manifest.json").is_file():
            raise DiffError(f"--data {data}: not a compiled dataset directory (no manifest.json)")
        impact = data_impact(open_dataset(path, data), b.spec, diff)
    return diff, impact


__all__ = [
    "CLASSES", "GATES", "KINDS", "DataImpact", "DatasetDiff", "DiffError", "FieldChange", "RuleChange",
    "SideInfo", "SpecDiff", "compare", "data_impact", "diff_datasets", "diff_rule", "diff_specs", "render",
]
