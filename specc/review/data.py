"""What the review page shows: a dataset's records as pairs (one per record id, whatever the
format), each with its content hash, its rules and the verdict already made on it.

Everything here is read through the hardened readers (:func:`specc.emit.manifest.read_manifest`,
:func:`specc.emit.read.read_records`, :func:`specc.emit.reviews.read_reviews`); a file that cannot be
read is a :class:`ReviewError` naming it (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from specc.emit.manifest import Manifest, ManifestError, read_manifest
from specc.emit.read import RecordsError, inside_dataset, read_records
from specc.emit.reviews import Review, ReviewsError, content_hash, latest, read_reviews, written_as_reviewed
from specc.synth.model import Pair


class ReviewError(Exception):
    """A dataset that cannot be reviewed, or options that do not fit it (exit 1)."""


@dataclass
class ReviewSet:
    dir: Path
    manifest: Manifest
    pairs: list[Pair]  # sorted by record id
    hashes: dict[str, str]  # record id -> content hash (as generated)
    rules: dict[str, dict]  # rule id -> what the page shows of it
    reviews: list[Review]
    spec_note: str | None = None  # why --spec was not used for a rule's text, where it was not
    # records whose text on disk is already as a reviewer accepted it (swapped or edited by a recompile)
    as_reviewed: frozenset[str] = frozenset()

    def current(self) -> dict[str, Review]:
        """record id -> its verdict on the current content (pending records have none)."""
        last = latest(self.reviews)
        out = {}
        for p in self.pairs:
            r = last.get((p.record_id, self.hashes[p.record_id]))
            if r is not None:
                out[p.record_id] = r
        return out


def read_pairs(directory: Path, manifest: Manifest) -> list[Pair]:
    """The dataset's pairs, read back from its rows (:func:`specc.emit.merge.pairs_of`)."""
    from specc.emit.merge import MergeError, pairs_of

    rows: dict[str, list[dict]] = {}
    for split in ("train", "test"):
        try:
            path = manifest.data_file(directory, split)
        except ManifestError as e:
            raise ReviewError(str(e)) from None
        if path is None:
            continue
        try:
            rows[split] = read_records(inside_dataset(directory, path), fmt=manifest.format)
        except RecordsError as e:
            raise ReviewError(str(e)) from None
    try:
        pairs = pairs_of(rows, manifest.format)
    except (MergeError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise ReviewError(f"{directory}: a record is not a specc {manifest.format} row: {e}") from None
    return sorted(pairs, key=lambda p: p.record_id)


def rule_view(rule) -> dict:
    return {"id": rule.id, "modality": rule.modality, "statement": rule.statement, "authority": rule.authority,
            "severity": rule.severity, "when": rule.when, "unless": list(rule.unless),
            "checks": list(rule.check_sources)}


def load_review_set(directory: Path, spec=None) -> ReviewSet:
    """The dataset in ``directory`` ready to review; ``spec`` (the resolved spec it was compiled
    from) adds each rule's statement, authority and checks where the rule's hash matches."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReviewError(f"{directory}: not a directory")
    if not (directory / "manifest.json").is_file():
        raise ReviewError(f"{directory}: no manifest.json; is it a dataset written by `specc compile`?")
    try:
        manifest = read_manifest(inside_dataset(directory, directory / "manifest.json"))
    except (ManifestError, RecordsError) as e:
        raise ReviewError(str(e)) from None
    if manifest.review is not None and manifest.review.exported:
        raise ReviewError(f"{directory}: an export of reviewed records (`specc review --export`); review the "
                          "dataset it was exported from")
    pairs = read_pairs(directory, manifest)
    rule_hashes = {rid: e.hash for rid, e in manifest.rules.items()}
    applied = written_as_reviewed(manifest.review)
    hashes = {p.record_id: applied.get(p.record_id) or content_hash(p, rule_hashes) for p in pairs}
    try:
        reviews = read_reviews(directory)
    except ReviewsError as e:
        raise ReviewError(str(e)) from None
    rules = {rid: {"id": rid, "hash": e.hash} for rid, e in manifest.rules.items()}
    note = None
    if spec is not None:
        changed = []
        for rule in spec.rules:
            if rule.id in rules:
                if rule.hash == rules[rule.id]["hash"]:
                    rules[rule.id].update(rule_view(rule))
                else:
                    changed.append(rule.id)
        if changed:
            note = (f"{len(changed)} rule(s) changed in the spec since the compile ({', '.join(sorted(changed))}): "
                    "their text is not shown; recompile, then review")
    return ReviewSet(dir=directory, manifest=manifest, pairs=pairs, hashes=hashes, rules=rules, reviews=reviews,
                     spec_note=note, as_reviewed=frozenset(applied) & set(hashes))


def record_view(p: Pair, h: str, as_reviewed: bool = False) -> dict:
    """One record as the page receives it (JSON; the page sets it as text, never as markup)."""
    return {"record_id": p.record_id, "content_hash": h, "rule_ids": list(p.rule_ids), "boundary": p.boundary,
            "axes": dict(p.axes), "source": p.source, "verified_by": p.verified_by, "split": p.split,
            "prompt": [{"role": m.get("role"), "content": m.get("content")} for m in p.prompt],
            "chosen": p.chosen, "rejected": p.rejected, "chosen_from": p.chosen_from,
            "rejected_from": p.rejected_from, "scenario_id": p.scenario_id, "as_reviewed": as_reviewed}
