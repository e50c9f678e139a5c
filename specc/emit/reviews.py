"""A person's verdicts on a dataset's records: ``reviews.jsonl`` beside the dataset.

``specc review`` appends one line per verdict as it is made (opened with ``O_APPEND``, written in
one call, fsync'd), so a crash or a kill loses at most the verdict being typed. A line names the
record (``record_id``) *and* the content it judged (``content_hash``: the rule hashes, boundary,
prompt and both sides as generated), the verdict, the reviewer and the time. An edited side is
stored as an edit beside the verdict; the generated text is never overwritten. The last line for a
record and content wins (an undo is a line that puts the earlier state back).

This module is the one reader and writer of the file: the review server writes through
:class:`ReviewLog`, and the dataset writer (``compile``, ``merge``), ``specc review --export``,
``report`` and ``diff --data`` read it through :func:`read_reviews`. The file is hostile on read
(it lies in a directory anyone may have handed over): a malformed line is a :class:`ReviewsError`
naming the file and the line.

A verdict applies to a record only while the record is what was reviewed: a recompile that
regenerates a record, or changes its rule (a rule's hash is part of the content hash), leaves the
record pending again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specc.emit.read import RecordsError, inside_dataset
from specc.files import load_json
from specc.synth.model import Pair

REVIEWS_FILE = "reviews.jsonl"
# what a reviews file may weigh before it is refused unread (a verdict is a few hundred bytes; an
# edit can carry a whole answer)
MAX_REVIEWS_BYTES = 256 * 1024 * 1024
MAX_EDIT_CHARS = 1_000_000
MAX_NOTE_CHARS = 2_000

Verdict = Literal["accept", "reject", "pending"]
VERDICTS: tuple[str, ...] = ("accept", "reject", "pending")
# why a pair is rejected: the short list the page offers (docs/review.md)
Reason = Literal["incoherent", "wrong-side", "off-topic", "unsafe-chosen", "other"]
REASONS: tuple[str, ...] = ("incoherent", "wrong-side", "off-topic", "unsafe-chosen", "other")
Side = Literal["chosen", "rejected"]


class ReviewsError(ValueError):
    """A reviews file that cannot be read (or a verdict that cannot be recorded); the message names
    the file and line."""


class Review(BaseModel):
    """One line of ``reviews.jsonl``: the state of one record after a reviewer's action."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    record_id: str = Field(min_length=1, max_length=200)
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    # the rules the record was made for: `specc diff --data` names the reviewed records of a changed rule
    rule_ids: list[str] = Field(default_factory=list, max_length=64)
    # where the reviewed sides came from, as generated (`specc report`: acceptance by side origin)
    chosen_from: str | None = Field(None, max_length=32)
    rejected_from: str | None = Field(None, max_length=32)
    verdict: Verdict
    reason: Reason | None = None
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS)
    # the sides as the reviewer ordered them: True when the generated chosen side is the worse one
    swap: bool = False
    # a side's text as the reviewer rewrote it (after the swap); the generated text stays in the data
    edits: dict[Side, str] = Field(default_factory=dict)
    reviewer: str = Field(min_length=1, max_length=200)
    time: str = Field(max_length=64)

    def line(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False) + "\n"


def content_hash(pair: Pair, rule_hashes: dict[str, str]) -> str:
    """The hash of what a reviewer sees of ``pair``: its rules (by id and hash), boundary, prompt
    and both sides as generated. The same for a pair made by the pipeline and one read back from
    the rows it was written as (:func:`specc.emit.merge.pairs_of`)."""
    body = {
        "rules": [[rid, rule_hashes.get(rid)] for rid in pair.rule_ids],
        "boundary": pair.boundary,
        "prompt": [[m.get("role"), m.get("content")] for m in pair.prompt],
        "chosen": pair.chosen,
        "rejected": pair.rejected,
    }
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def reviews_path(directory: Path) -> Path:
    return Path(directory) / REVIEWS_FILE


def read_reviews(directory: Path) -> list[Review]:
    """Every verdict in ``directory``'s ``reviews.jsonl``, in the order written (none when there is
    no such file). A last line cut short by a kill (no newline, not JSON) is left out; any other
    malformed line is a :class:`ReviewsError` naming it."""
    path = reviews_path(directory)
    if not path.exists() and not path.is_symlink():
        return []
    try:
        inside_dataset(Path(directory), path)
    except RecordsError as e:
        raise ReviewsError(str(e)) from None
    try:
        if not path.is_file():
            raise ReviewsError(f"{path}: not a regular file")
        size = path.stat().st_size
        if size > MAX_REVIEWS_BYTES:
            raise ReviewsError(f"{path}: {size:,} bytes is larger than a reviews file may be "
                               f"({MAX_REVIEWS_BYTES // (1024 * 1024)} MiB)")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ReviewsError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ReviewsError(f"{path}: cannot read it: {e.strerror or e}") from None
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline, as every whole line does
    out = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            out.append(_parse(line, f"{path}:{n}"))
    if torn.strip():
        try:
            out.append(_parse(torn, f"{path}:{len(lines) + 1}"))
        except ReviewsError:
            pass  # the line being written when the process was killed: that verdict is lost
    return out


def _parse(line: str, where: str) -> Review:
    try:
        data = load_json(line)
    except ValueError as e:
        raise ReviewsError(f"{where}: not a JSON verdict: {e}") from None
    if not isinstance(data, dict):
        raise ReviewsError(f"{where}: a verdict must be a JSON object")
    try:
        review = Review.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(top)"
        raise ReviewsError(f"{where}: not a specc verdict: `{loc}`: {first['msg']}") from None
    if review.verdict == "reject" and review.reason is None:
        raise ReviewsError(f"{where}: a rejection without a reason")
    if any(len(t) > MAX_EDIT_CHARS for t in review.edits.values()):
        raise ReviewsError(f"{where}: an edit longer than {MAX_EDIT_CHARS:,} characters")
    return review


def reviewed_records(reviews: Iterable[Review]) -> dict[str, Review]:
    """record id -> its last verdict, where that is a verdict (accept or reject), whatever content
    it was on."""
    last: dict[str, Review] = {}
    for r in reviews:
        last[r.record_id] = r
    return {rid: r for rid, r in last.items() if r.verdict != "pending"}


def latest(reviews: Iterable[Review]) -> dict[tuple[str, str], Review]:
    """(record id, content hash) -> the last verdict written for it."""
    out: dict[tuple[str, str], Review] = {}
    for r in reviews:
        out[(r.record_id, r.content_hash)] = r
    return out


class ReviewLog:
    """Appends verdicts to ``reviews.jsonl``: one ``write`` of a whole line, then ``fsync``. A line
    cut short by an earlier kill is cut off first, so every line after it is whole."""

    def __init__(self, directory: Path):
        self.path = reviews_path(directory)
        self.directory = Path(directory)
        self._lock = threading.Lock()

    def append(self, review: Review) -> None:
        data = review.line().encode("utf-8")
        if self.path.is_symlink():
            raise ReviewsError(f"{self.path}: a symbolic link; refusing to write verdicts through it")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            try:
                size = os.fstat(fd).st_size
                if size:
                    with open(self.path, "rb") as f:
                        f.seek(size - 1)
                        if f.read(1) != b"\n":  # a torn last line: cut it back to the last whole one
                            f.seek(0)
                            whole = f.read().rfind(b"\n") + 1
                            os.ftruncate(fd, whole)
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


# -- applying verdicts to a dataset's pairs -----------------------------------------------------------


@dataclass
class ReviewSummary:
    """How far a dataset was reviewed, as its manifest (``review``) and card say it."""

    records: int = 0  # records of the dataset
    reviewed: int = 0  # with a verdict (accept or reject) on their current content
    accepted: int = 0
    rejected: int = 0
    edited: int = 0  # accepted with a side rewritten by the reviewer
    swapped: int = 0  # accepted with chosen and rejected swapped
    outdated: int = 0  # verdicts on records whose content (or rule) changed or that are gone: they lapsed
    rejected_ids: list[str] = field(default_factory=list)  # the records left out as rejected
    applied: dict[str, str] = field(default_factory=dict)  # record id -> generated hash, written swapped/edited
    reasons: dict[str, int] = field(default_factory=dict)
    reviewers: list[str] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return self.records - self.reviewed

    def manifest(self) -> dict:
        return {"file": REVIEWS_FILE, "records": self.records, "reviewed": self.reviewed,
                "accepted": self.accepted, "rejected": self.rejected, "edited": self.edited,
                "swapped": self.swapped, "pending": self.pending, "outdated": self.outdated,
                "reasons": dict(sorted(self.reasons.items())), "reviewers": sorted(set(self.reviewers)),
                "rejected_records": sorted(self.rejected_ids), "applied": dict(sorted(self.applied.items()))}


def reviewed_pair(pair: Pair, review: Review) -> Pair:
    """``pair`` as the reviewer accepted it: sides swapped, then edits in place of the generated
    text, an edited side's origin ``review``."""
    chosen, rejected = pair.chosen, pair.rejected
    chosen_from, rejected_from = pair.chosen_from, pair.rejected_from
    if review.swap:
        chosen, rejected, chosen_from, rejected_from = rejected, chosen, rejected_from, chosen_from
    if "chosen" in review.edits and chosen is not None:
        chosen, chosen_from = review.edits["chosen"], "review"
    if "rejected" in review.edits and rejected is not None:
        rejected, rejected_from = review.edits["rejected"], "review"
    return replace(pair, chosen=chosen, rejected=rejected, chosen_from=chosen_from, rejected_from=rejected_from)


def written_as_reviewed(review) -> dict[str, str]:
    """record id -> the content hash it was generated with, for the records a dataset's writer
    emitted swapped or edited as a reviewer accepted them (the manifest's ``review.applied``; the
    text on disk is the reviewed one, so its own hash matches no verdict)."""
    return dict(getattr(review, "applied", None) or {}) if review is not None else {}


def current_verdicts(pairs: list[Pair], rule_hashes: dict[str, str], reviews: list[Review],
                     left_out: Iterable[str] = (), applied: dict[str, str] | None = None) -> dict[str, Review]:
    """record id -> the verdict (accept or reject) that holds for it now: on the pair's current
    content (``applied``: the generated content of records written as reviewed), or a rejection of a
    record the writer left out (``left_out``) that still stands."""
    last = latest(reviews)
    applied = applied or {}
    out = {}
    for p in pairs:
        r = last.get((p.record_id, applied.get(p.record_id) or content_hash(p, rule_hashes)))
        if r is not None and r.verdict != "pending":
            out[p.record_id] = r
    by_record = reviewed_records(reviews)
    for rid in left_out:
        r = by_record.get(rid)
        if rid not in out and r is not None and r.verdict == "reject":
            out[rid] = r
    return out


def generated_verdicts(pairs: list[Pair], holds: dict[str, Review]) -> tuple[int, int, int]:
    """(generated pairs, those of them with a verdict that holds, those accepted): what a run's cost
    per accepted pair is divided by (:func:`specc.synth.model.per_accepted`). ``holds`` is
    :func:`current_verdicts`'s; a rejected record the writer left out is not among ``pairs`` and
    counts as generated unless the reviewed sides came from the spec (a spec example costs nothing)."""
    present = {p.record_id for p in pairs}
    ids = {p.record_id for p in pairs if p.source == "generated"}
    ids |= {rid for rid, r in holds.items() if rid not in present and "spec" not in (r.chosen_from, r.rejected_from)}
    verdicts = [holds[rid] for rid in ids if rid in holds]
    return len(ids), len(verdicts), sum(1 for r in verdicts if r.verdict == "accept")


def apply_reviews(pairs: list[Pair], rule_hashes: dict[str, str], reviews: list[Review], *,
                  accepted_only: bool = False, left_out: Iterable[str] = (),
                  applied: dict[str, str] | None = None) -> tuple[list[Pair], list[Pair], ReviewSummary]:
    """(pairs to emit, pairs rejected by the reviewer, summary). A pair with a verdict on its
    current content is dropped when rejected and emitted as reviewed when accepted; one without
    stays as generated (``accepted_only``: left out, as ``specc review --export`` does).

    ``left_out``: the records the dataset's writer already left out as rejected (the manifest's
    ``review.rejected_records``), counted as rejected while their last verdict still is.
    ``applied``: records already written as reviewed (:func:`written_as_reviewed`), matched by the
    hash they were generated with and, when accepted, kept as they are."""
    last = latest(reviews)
    applied = applied or {}
    summary = ReviewSummary(records=len(pairs))
    kept, rejected = [], []
    matched: set[str] = set()
    for p in pairs:
        generated = applied.get(p.record_id) or content_hash(p, rule_hashes)
        r = last.get((p.record_id, generated))
        if r is None or r.verdict == "pending":
            if r is not None:
                matched.add(p.record_id)
            if not accepted_only:
                kept.append(p)
            continue
        matched.add(p.record_id)
        summary.reviewed += 1
        summary.reviewers.append(r.reviewer)
        if r.verdict == "reject":
            summary.rejected += 1
            summary.rejected_ids.append(p.record_id)
            summary.reasons[r.reason] = summary.reasons.get(r.reason, 0) + 1
            rejected.append(p)
            continue
        summary.accepted += 1
        summary.edited += bool(r.edits)
        summary.swapped += r.swap
        if p.record_id in applied:
            kept.append(p)  # written as reviewed already
            summary.applied[p.record_id] = generated
            continue
        if r.swap or r.edits:
            summary.applied[p.record_id] = generated
        kept.append(reviewed_pair(p, r))
    by_record = reviewed_records(reviews)
    for rid in sorted(set(left_out) - matched):
        r = by_record.get(rid)
        if r is not None and r.verdict == "reject":
            matched.add(rid)
            summary.records += 1
            summary.reviewed += 1
            summary.rejected += 1
            summary.rejected_ids.append(rid)
            summary.reviewers.append(r.reviewer)
            summary.reasons[r.reason] = summary.reasons.get(r.reason, 0) + 1
    summary.outdated = len(set(by_record) - matched)
    return kept, rejected, summary

REJECTED = "review:rejected"  # the funnel's drop reason for a generated pair a reviewer rejected


def reviewed_result(result, spec, reviews: list[Review], left_out: Iterable[str] = (),
                    applied: dict[str, str] | None = None):
    """``result`` (a :class:`specc.synth.model.SynthResult`) with the verdicts applied, and the
    :class:`ReviewSummary`: rejected pairs left out (a generated one counted in the funnel as
    dropped, :data:`REJECTED`), accepted ones swapped and edited as reviewed; the sides' origins in
    the statistics follow."""
    from specc.synth.model import SynthStats

    rule_hashes = {r.id: r.hash for r in spec.rules}
    kept, rejected, summary = apply_reviews(list(result.pairs), rule_hashes, reviews, left_out=left_out,
                                            applied=applied)
    stats = result.stats.to_dict()
    per_rule = stats.get("per_rule", {})

    def bump(table: dict, key: str, n: int) -> None:
        table[key] = table.get(key, 0) + n
        if table[key] <= 0:
            del table[key]

    before = {p.record_id: p for p in result.pairs}
    for p in rejected:
        if p.source != "generated":
            stats["spec_examples"] = max(0, stats.get("spec_examples", 0) - 1)
            continue
        stats["verified"] -= 1
        stats["dropped"] += 1
        bump(stats["dropped_reasons"], REJECTED, 1)
        bump(stats["verified_by"], p.verified_by, -1)
        for side in ("chosen", "rejected"):
            bump(stats["sides_from"], f"{side}:{getattr(p, side + '_from')}", -1)
        rule = per_rule.get(p.rule_ids[0]) if p.rule_ids else None
        if rule is not None:
            rule["verified"] -= 1
            rule["dropped"] += 1
            bump(rule["dropped_reasons"], REJECTED, 1)
    for p in kept:
        old = before[p.record_id]
        if p.source != "generated" or p is old:
            continue
        for side in ("chosen", "rejected"):
            was, now = getattr(old, side + "_from"), getattr(p, side + "_from")
            if was != now:
                bump(stats["sides_from"], f"{side}:{was}", -1)
                bump(stats["sides_from"], f"{side}:{now}", 1)
    for key in ("dropped_reasons", "verified_by", "sides_from"):
        stats[key] = dict(sorted(stats[key].items()))
    for rule in per_rule.values():
        rule["dropped_reasons"] = dict(sorted(rule["dropped_reasons"].items()))
    return replace(result, pairs=kept, stats=SynthStats.model_validate(stats)), summary


def reviewed_examples(directory: Path, spec) -> list[Pair]:
    """The pairs of the dataset in ``directory`` that a person judged, as labelled examples for the
    judge's calibration: an accepted pair as accepted (swapped and edited), a pair rejected as
    ``wrong-side`` with its sides swapped; other rejections say nothing about which side is better.
    Only pairs whose rule is unchanged in ``spec``. None where the directory holds no reviewed
    dataset (or one that cannot be read: the compile that writes it will say why)."""
    from specc.emit.manifest import ManifestError, read_manifest
    from specc.emit.merge import MergeError, pairs_of
    from specc.emit.read import read_records

    directory = Path(directory)
    reviews = read_reviews(directory) if directory.is_dir() else []
    if not reviews:
        return []
    try:
        manifest = read_manifest(inside_dataset(directory, directory / "manifest.json"))
        rows = {}
        for split in ("train", "test"):
            path = manifest.data_file(directory, split)
            if path is not None:
                rows[split] = read_records(inside_dataset(directory, path), fmt=manifest.format)
        pairs = pairs_of(rows, manifest.format)
    except (OSError, ManifestError, RecordsError, MergeError, KeyError, TypeError, AttributeError, IndexError):
        return []
    hashes = {rid: e.hash for rid, e in manifest.rules.items()}
    now = {r.id: r.hash for r in spec.rules}
    applied = written_as_reviewed(manifest.review)
    holds = current_verdicts(pairs, hashes, reviews, applied=applied)
    out = []
    for p in pairs:
        r = holds.get(p.record_id)
        if r is None or not p.rule_ids or any(now.get(rid) != hashes.get(rid) for rid in p.rule_ids):
            continue
        if r.verdict == "accept":
            out.append(p if p.record_id in applied else reviewed_pair(p, r))
        elif r.reason == "wrong-side":
            out.append(replace(p, chosen=p.rejected, rejected=p.chosen))
    return [p for p in out if p.chosen is not None and p.rejected is not None]
