"""Datasets in a diff: what a spec change does to a compiled dataset, and dataset vs dataset.

Both work on the manifests (``rules: {rule id: {hash, records, scenarios}}``) with set
operations, so a million records diff in seconds; the data files are read only to compare
the contents of records that both datasets have, and then without parsing a line unless its
bytes differ.

Record statuses in :func:`data_impact`:

* *fresh*: the rule is in the new spec with the hash its records were made from;
* *stale*: the rule's hash changed (or it was renamed and its content changed too);
* *renamed*: the rule was renamed and nothing else changed: the records say the right thing
  but carry the old rule id, and a recompile regenerates them (a rule's hash covers its id);
* *replanned*: the rule is unchanged but the new plan has no scenario the record was generated
  for (the dataset was planned by another version of specc); a recompile regenerates it;
* *orphaned*: the rule is gone from the new spec.

A scenario's model calls depend only on its rule, its plan (axes, seed, plan parameters), the
model and the settings, so a recompile regenerates exactly the scenarios that are not fresh here.
The one spec-wide input is the judge's calibration, on every rule's labelled examples; a note
says when a change touches it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from specc.diff.model import AXES_CHANGED, DataImpact, DatasetDiff, RuleImpact, RuleRecords, SpecDiff
from specc.diff.sources import DatasetSide, DiffError
from specc.emit.manifest import Manifest, ManifestError
from specc.files import load_json
from specc.ir.model import Spec


def manifest_records(manifest: Manifest) -> int:
    """Distinct records of a manifest (a record may serve several rules)."""
    rules = manifest.rules.values()
    total = sum(len(e.records) for e in rules)
    if len(manifest.rules) <= 1:
        return total
    return len(set().union(*(e.records for e in rules)))


# -- spec change -> dataset ------------------------------------------------------------------


def data_impact(ds: DatasetSide, new: Spec, diff: SpecDiff | None = None) -> DataImpact:
    m = ds.manifest
    new_rules = {r.id: r for r in new.rules}
    renames = {}
    if diff is not None:
        for c in diff.rules:
            if c.kind == "renamed":
                renames[c.old_id] = (c.new_id, bool(c.fields), c.old.hash if c.old else None)
    notes = []
    compiled_from = m.spec.hash
    if diff is not None and compiled_from and diff.old.hash and compiled_from != diff.old.hash:
        notes.append(f"the dataset was compiled from spec hash {compiled_from[:12]}, not from the old side "
                     f"({diff.old.hash[:12]}); its records are compared with the new spec directly")
    planned, note = plan_scenarios(new, m)
    if note:
        notes.append(note)
    planned_ids = {sid for sid, _ in planned} if planned is not None else None
    impacts: list[RuleImpact] = []
    claimed: set[str] = set()
    for rid in sorted(m.rules):
        entry = m.rules[rid]
        n_rec = len(entry.records)
        rule = new_rules.get(rid)
        if rule is not None:
            claimed.add(rid)
            if rule.hash != entry.hash:
                impacts.append(RuleImpact(rid, "stale", n_rec))
                continue
            # the rule is unchanged, but a generated record whose scenario the new plan lacks (a
            # dataset planned by another version of specc) is regenerated all the same
            gone = 0
            if planned_ids is not None:
                scenarios = set(entry.scenarios)
                gone = sum(1 for r in entry.records if r in scenarios and r not in planned_ids)
            if gone:
                impacts.append(RuleImpact(rid, "replanned", gone))
            if n_rec - gone or not gone:
                impacts.append(RuleImpact(rid, "fresh", n_rec - gone))
        elif rid in renames:
            new_id, content_changed, old_hash = renames[rid]
            claimed.add(new_id)
            same = not content_changed and old_hash == entry.hash
            impacts.append(RuleImpact(rid, "renamed" if same else "stale", n_rec, new_id))
        else:
            impacts.append(RuleImpact(rid, "orphaned", n_rec))
    s_new = s_reused = s_planned = None
    if planned is not None:
        existing = _manifest_scenarios(m)
        s_planned = len(planned)
        if existing is not None:
            s_reused = sum(1 for sid, _ in planned if sid in existing)
        else:  # no scenario ids in the manifest: a scenario is reused when its rule is fresh
            fresh = {i.rule_id for i in impacts if i.status == "fresh"}
            s_reused = sum(1 for _, rid in planned if rid in fresh)
        s_new = s_planned - s_reused
    records = manifest_records(m)
    spec_level = sorted({f.field for f in diff.spec_fields if AXES_CHANGED in f.classes}) if diff is not None else []
    if spec_level:
        stale = sum(i.records for i in impacts if i.status in ("stale", "replanned"))
        notes.append(f"spec-level change ({', '.join(spec_level)}): it reaches every rule's scenarios; "
                     f"{f'all {records}' if stale == records else f'{stale} of {records}'} records stale")
    if diff is not None and m.judge is not None and m.judge.get("needed", True):
        changed = sorted(c.new_id or c.old_id for c in diff.rules
                         if c.kind in ("added", "removed") or any(f.field.startswith("example ") for f in c.fields))
        if changed:
            notes.append("the judge is calibrated on every rule's examples, and the examples of "
                         f"{', '.join(changed)} changed (or the rule came or went): where that changes whether the "
                         "judge is trusted, judge-verified records of any rule change too")
    return DataImpact(
        review_again=_review_again(ds, impacts),
        dataset=ds.info,
        records=records,
        rules=tuple(impacts),
        new_rules=tuple(sorted(set(new_rules) - claimed)),
        scenarios_new=s_new,
        scenarios_reused=s_reused,
        scenarios_planned=s_planned,
        note="; ".join(notes) or None,
    )


def _review_again(ds: DatasetSide, impacts: list[RuleImpact]) -> tuple[tuple[str, str, str], ...]:
    """The records with a reviewer's verdict (reviews.jsonl beside the dataset) whose rule is not
    fresh: their verdicts no longer hold once the dataset is recompiled."""
    from specc.emit.reviews import ReviewsError, read_reviews, reviewed_records

    directory = Path(ds.path)
    try:
        reviewed = reviewed_records(read_reviews(directory if directory.is_dir() else directory.parent))
    except ReviewsError as e:
        raise DiffError(str(e)) from None
    not_fresh = {i.rule_id for i in impacts if i.status != "fresh"}
    out = []
    for rid, review in sorted(reviewed.items()):
        for rule in review.rule_ids:
            if rule in not_fresh:
                out.append((rid, rule, review.verdict))
                break
    return tuple(out)


def _manifest_scenarios(m: Manifest) -> set[str] | None:
    lists = [e.scenarios for e in m.rules.values()]
    if not lists:
        return None
    return set().union(*lists)


def plan_scenarios(spec: Spec, manifest: Manifest) -> tuple[list[tuple[str, str]] | None, str | None]:
    """(scenario id, rule id) of the plan the new spec gets with the dataset's plan parameters
    (the manifest holds every one of them), or (None, why not)."""
    from specc.plan.planner import make_plan

    p = manifest.plan
    try:
        plan = make_plan(spec, seed=manifest.seed, per_rule=p.per_rule, coverage=p.coverage,
                         system_prompt=p.system_prompt, boundaries=tuple(p.boundaries),
                         test_fraction=p.test_fraction)
    except ValueError as e:
        return None, f"cannot plan the new spec with the dataset's plan parameters ({e})"
    return [(s.id, s.rule_id) for s in plan.scenarios], None


# -- dataset vs dataset ----------------------------------------------------------------------


def diff_datasets(a: DatasetSide, b: DatasetSide, compare_contents: bool = True) -> DatasetDiff:
    ra, rb = a.manifest.rules, b.manifest.rules
    ids_a = set().union(*(e.records for e in ra.values())) if ra else set()
    ids_b = set().union(*(e.records for e in rb.values())) if rb else set()
    common = ids_a & ids_b
    changed_ids: set[str] | None = None
    note = None
    if compare_contents and common:
        try:
            files_a, files_b = data_files(a), data_files(b)
            if files_a is None or files_b is None:
                note = "record contents not compared: a dataset has no JSONL data files listed in its manifest"
            else:
                changed_ids = changed_records(files_a, files_b, common)
        except ManifestError as e:  # a data file outside the dataset directory: refused
            raise DiffError(str(e)) from None
        except (OSError, ValueError) as e:
            note = f"record contents not compared: {e}"
    elif compare_contents:
        changed_ids = set()
    rules = []
    for rid in sorted(ra.keys() | rb.keys()):
        ea, eb = ra.get(rid), rb.get(rid)
        sa = set(ea.records) if ea else set()
        sb = set(eb.records) if eb else set()
        both = sa & sb
        if ea is None:
            status = "added"
        elif eb is None:
            status = "removed"
        else:
            status = "same" if ea.hash == eb.hash else "changed"
        n_changed = None if changed_ids is None else len(both & changed_ids) if changed_ids else 0
        rules.append(RuleRecords(rid, status, len(sb - sa), len(sa - sb), n_changed,
                                 len(both) - (n_changed or 0), ea.hash if ea else None,
                                 eb.hash if eb else None))
    n_changed = None if changed_ids is None else len(changed_ids)
    return DatasetDiff(
        old=a.info, new=b.info, old_records=len(ids_a), new_records=len(ids_b),
        added=len(ids_b - ids_a), removed=len(ids_a - ids_b), changed=n_changed,
        unchanged=len(common) - (n_changed or 0), rules=tuple(rules), note=note,
    )


def data_files(ds: DatasetSide) -> list[Path] | None:
    """The dataset's JSONL data files, or None where it has none (or one is missing). A
    :class:`ManifestError` where the manifest names a file outside the dataset directory."""
    paths = [p for split in ds.manifest.files if (p := ds.manifest.data_file(ds.path, split)) is not None
             and p.suffix == ".jsonl"]
    if not paths or not all(p.is_file() for p in paths):
        return None
    return paths


_RECORD_ID = re.compile(rb'"record_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _records(paths: list[Path]):
    """(record id, line digest, file index, offset) for each line of JSONL files, fast."""
    for i, p in enumerate(paths):
        with open(p, "rb") as f:
            offset = 0
            for line in f:
                start, offset = offset, offset + len(line)
                line = line.strip()
                if not line:
                    continue
                ids = _RECORD_ID.findall(line)
                if len(ids) == 1 and b"\\" not in ids[0]:
                    rid = ids[0].decode("utf-8")
                else:  # the key also occurs inside a text, or the id has escapes: parse the line
                    try:
                        rid = load_json(line.decode("utf-8"))["record_id"]
                    except (ValueError, KeyError, TypeError):
                        rid = None
                    if not isinstance(rid, str):
                        raise ValueError(f"{p}: a line at byte {start} is not a JSON record with a record_id")
                yield rid, hashlib.blake2b(line, digest_size=16).digest(), i, start


def _line_at(paths: list[Path], i: int, offset: int) -> dict:
    with open(paths[i], "rb") as f:
        f.seek(offset)
        return load_json(f.readline().decode("utf-8"))


def changed_records(files_a: list[Path], files_b: list[Path], common: set[str]) -> set[str]:
    """Ids among ``common`` whose records differ. Equal bytes are equal records; lines whose
    bytes differ are parsed and compared as JSON, so key order or spacing does not count."""
    seen_a: dict[str, tuple[bytes, int, int]] = {}
    for rid, digest, i, off in _records(files_a):
        if rid in common:
            seen_a[rid] = (digest, i, off)
    changed: set[str] = set()
    for rid, digest, i, off in _records(files_b):
        got = seen_a.get(rid)
        if got is None or got[0] == digest:
            continue
        if _line_at(files_a, got[1], got[2]) != _line_at(files_b, i, off):
            changed.add(rid)
    return changed
