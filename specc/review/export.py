"""``specc review DIR --export OUT``: the records a reviewer accepted, and only those, written as a
dataset of their own by the compile's writer (TRL files, card, manifest), with swaps and edits
applied and the card and manifest saying how many records were reviewed and accepted."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from specc.emit.merge import RuleRef, SpecRef
from specc.emit.reviews import apply_reviews, reviewed_result, written_as_reviewed
from specc.emit.writer import OutDirError, Written, check_out_dir, write_dataset
from specc.plan.model import Plan
from specc.review.data import ReviewError, load_review_set
from specc.synth.model import SynthResult


def export_accepted(directory: Path, out: Path) -> tuple[Written, dict]:
    """Write the accepted records of the dataset in ``directory`` into ``out``; (what was written,
    the manifest's ``review``)."""
    directory, out = Path(directory), Path(out)
    if os.path.realpath(out) == os.path.realpath(directory):
        raise ReviewError("--export OUT must be another directory than the dataset reviewed")
    try:
        check_out_dir(out)
    except OutDirError as e:
        raise ReviewError(f"--export {e}") from None
    rs = load_review_set(directory)
    m = rs.manifest
    spec = SpecRef(id=m.spec.id, version=m.spec.version, hash=m.spec.hash, doc=m.spec.doc,
                   rules=tuple(RuleRef(rid, e.hash) for rid, e in m.rules.items()))
    result = SynthResult(pairs=list(rs.pairs), stats=m.stats,
                         scenarios_by_rule={rid: list(e.scenarios) for rid, e in m.rules.items() if e.scenarios},
                         judge=m.judge)
    left_out = m.review.rejected_records if m.review is not None else []
    applied = written_as_reviewed(m.review)
    reviewed, summary = reviewed_result(result, spec, rs.reviews, left_out=left_out, applied=applied)
    accepted, _, _ = apply_reviews(list(rs.pairs), {r.id: r.hash for r in spec.rules}, rs.reviews, accepted_only=True,
                                   applied=applied)
    review = {**summary.manifest(), "exported": True}
    p = m.plan
    plan = Plan(spec_id=spec.id, spec_version=spec.version, spec_hash=spec.hash, seed=m.seed, coverage=p.coverage,
                per_rule=p.per_rule, system_prompt=p.system_prompt, test_fraction=p.test_fraction,
                boundaries=tuple(p.boundaries), scenarios=(), rules=tuple(sorted(m.rules)))
    mi = m.model
    engines = ({"model": mi.engine, "judge": mi.judge_engine, "params": mi.engine_params or {}}
               if mi.engine is not None else None)
    written = write_dataset(out, result=replace(reviewed, pairs=accepted), spec=spec, spec_file=m.spec.file, plan=plan,
                            fmt=m.format, file_format=m.file_format, seed=m.seed, model=mi.name, judge=mi.judge,
                            generation=m.generation, engines=engines, review=review)
    return written, review
