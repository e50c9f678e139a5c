"""Write a dataset directory: data files, ``README.md`` card, ``manifest.json``.

A new directory, or one that holds only a dataset, is replaced as a whole: the dataset is
written into a directory beside it and renamed into its place once every file is ready.
Otherwise (``--force`` into a directory with other files, another file system) every file is
written to a temporary name beside it and moved into place with ``os.replace``, so a crash
leaves each file either old or new, never half written; the manifest goes last.

A compile killed while it writes (SIGKILL, a power cut) leaves its staging directory
``.OUT.tmp-XXXXXXXX`` beside OUT; the next write to OUT removes it (:func:`remove_stale_staging`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass, replace as dc_replace
from pathlib import Path
from typing import Callable

from specc.emit import card, formats, manifest
from specc.emit.manifest import Manifest
from specc.emit.reviews import current_verdicts, generated_verdicts, read_reviews, reviewed_result
from specc.files import UnsafeWrite, exchange, is_within, load_json, short_name, write_atomic
from specc.plan.model import Split
from specc.synth.model import per_accepted

FILE_FORMATS = ("jsonl", "parquet")
COST_FILE = "cost.json"  # what the run that wrote the dataset spent (specc.synth.model.Cost)


@dataclass(frozen=True)
class Written:
    dir: Path
    files: dict[Split, str | None]  # split -> path relative to dir
    counts: dict[Split, int]
    manifest: Manifest
    cost: object = None  # the specc.synth.model.Cost written as cost.json (per accepted pair where reviewed)


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _parquet(rows: list[dict], fmt: str, axes: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = formats.arrow_schema(fmt, axes)
    if not axes:
        rows = [{**r, "axes": None} for r in rows]
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


class OutDirError(Exception):
    """An output directory that a dataset must not be written into (exit 1)."""


def is_dataset_dir(out: Path) -> bool:
    """Whether ``out`` holds a specc dataset (a ``manifest.json`` written by specc)."""
    man = Path(out) / "manifest.json"
    try:
        if man.is_symlink():
            return False
        data = load_json(man.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and "specc_version" in data


_DATA_NAMES = {f"{split}.{ext}" for split in ("train", "test") for ext in FILE_FORMATS}


def _only_partial_output(out: Path) -> bool:
    """Whether ``out`` holds nothing but what an interrupted compile writes first: a ``data/``
    directory with (some of) its data files, and no README or anything else."""
    entries = list(out.iterdir())
    if [e.name for e in entries] != ["data"] or not entries[0].is_dir() or entries[0].is_symlink():
        return False
    return all(f.name in _DATA_NAMES or f.name.startswith(".") and ".tmp-" in f.name
               for f in entries[0].iterdir())


def check_out_dir(out: Path, *, force: bool = False) -> None:
    """Refuse an OUT that is a file, or a non-empty directory that is not a specc dataset (its
    files would be overwritten or deleted), unless ``force``. Checked before any work."""
    out = Path(out)
    if out.is_symlink() and not force:
        raise OutDirError(f"{out} is a symlink: give the directory itself (or --force)")
    if not out.exists():
        return
    if not out.is_dir():
        raise OutDirError(f"{out} exists and is not a directory")
    if force or not any(out.iterdir()) or is_dataset_dir(out) or _only_partial_output(out):
        return
    raise OutDirError(f"{out} is not empty and is not a specc dataset (no specc manifest.json): refusing to "
                      "write into it, its files could be replaced or deleted; give a new or empty directory, "
                      "or --force")


def write_dataset(out_dir: Path, *, result, spec, spec_file: str, plan, fmt: str, file_format: str,
                  seed: int, model: str, judge: str, generation: dict, engines: dict | None = None,
                  shard: dict | None = None, verify: Callable[[dict], None] | None = None,
                  review: dict | None = None) -> Written:
    """Write the dataset of ``result`` into ``out_dir``: as a whole directory put in place once
    every file is written where it can (:func:`_write_whole`), else file by file, the manifest
    last. ``verify(manifest)`` is called once the manifest is made and before any file is
    written; an exception from it leaves ``out_dir`` as it was (``specc merge`` checks there that
    it reproduces the shards' manifest).

    A ``reviews.jsonl`` in ``out_dir`` (``specc review``) is applied first: rejected pairs are left
    out, accepted ones written as reviewed (:func:`specc.emit.reviews.reviewed_result`), and the card
    and manifest say how far the dataset was reviewed. ``review`` (``specc review --export``, whose
    pairs are already the reviewed ones) is written as the manifest's ``review`` instead."""
    if fmt not in formats.FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if file_format not in FILE_FORMATS:
        raise ValueError(f"unknown file format {file_format!r}")
    out_dir = Path(out_dir)
    # a person's verdicts beside the dataset (`specc review`) carry over to what is written now:
    # reviews.jsonl is not a dataset file, so a reviewed directory is written file by file and keeps it
    reviews = read_reviews(out_dir) if out_dir.is_dir() and review is None else []
    if reviews:
        # the records of the dataset: pairs that give rows in this format (a one-sided example gives
        # no DPO row), as `specc review` and a merge of the rows count them
        records = sum(1 for p in result.pairs if formats.rows_for(p, fmt, []))
        if getattr(result, "cost", None) is not None:  # what a pair the person accepted cost
            holds = current_verdicts(list(result.pairs), {r.id: r.hash for r in spec.rules}, reviews)
            result = dc_replace(result, cost=per_accepted(result.cost, *generated_verdicts(result.pairs, holds)))
        result, summary = reviewed_result(result, spec, reviews)
        summary.records = records
        review = summary.manifest()
    args = dict(review=review, result=result, spec=spec, spec_file=spec_file, plan=plan, fmt=fmt, file_format=file_format,
                seed=seed, model=model, judge=judge, generation=generation, engines=engines, shard=shard,
                verify=verify)
    if _replaceable(out_dir):
        written = _write_whole(out_dir, args)
        if written is not None:
            return written
    data_dir = out_dir / "data"
    created = [d for d in (out_dir, data_dir) if not d.exists()]
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _write(out_dir, data_dir, **args)
    except BaseException:
        for d in reversed(created):  # a failed first write leaves no empty directory behind
            try:
                d.rmdir()
            except OSError:
                pass
        raise


_DATASET_ENTRIES = {"data", "README.md", "manifest.json", COST_FILE}


def _replaceable(out: Path) -> bool:
    """Whether ``out`` can be replaced as a whole: missing, or a plain directory holding nothing
    but what a dataset holds (anything else in it is kept, so it is written file by file)."""
    out = Path(os.path.abspath(out))
    if out.is_symlink() or out == Path.cwd() or Path.cwd().is_relative_to(out):
        return False
    if not out.exists():
        return True
    if not out.is_dir() or os.path.ismount(out):
        return False
    entries = list(out.iterdir())
    if any(e.name not in _DATASET_ENTRIES for e in entries):
        return False
    data = out / "data"
    if not data.exists():
        return True
    return not data.is_symlink() and data.is_dir() and all(
        f.name in _DATA_NAMES or f.name.startswith(".") and ".tmp-" in f.name for f in data.iterdir())


_STAGING_MARK = ".specc-staging"  # inside a staging directory until it is renamed into place


def _hold(directory: Path) -> int | None:
    """A descriptor of ``directory`` holding an exclusive lock on it, or None where it is taken
    (or the system has no ``flock``). The kernel drops the lock when its process dies, however."""
    try:
        import fcntl
    except ImportError:  # not POSIX: stale staging directories are left alone
        return None
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging directories beside ``out`` that a killed write left, and return them.
    Only what specc made: the name it gives them (``.OUT.tmp-`` and 8 characters), its mark
    inside, owned by this user; and only what no running write holds (its lock is free), so a
    compile still writing into the same OUT keeps its own."""
    out = Path(os.path.abspath(out))
    pattern = re.compile(re.escape(f".{short_name(out.name)}.tmp-") + "[a-z0-9_]{8}")
    removed = []
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return removed
    for entry in entries:
        try:
            if (not pattern.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False)
                    or entry.stat(follow_symlinks=False).st_uid != os.geteuid()
                    or not stat.S_ISREG(os.lstat(os.path.join(entry.path, _STAGING_MARK)).st_mode)):
                continue
        except OSError:  # no mark: not a staging directory of this version, or it went meanwhile
            continue
        fd = _hold(Path(entry.path))
        if fd is None:
            continue  # a write in progress
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


def leftovers(out: Path) -> list[Path]:
    """Directories beside ``out`` named as a write names them that :func:`remove_stale_staging`
    leaves: a staging directory without the mark (made by a specc from before the mark, or by
    something else) and a previous dataset a write killed between its two renames left
    (``.OUT.old-`` and 8 characters). specc cannot tell they are its own and no longer used, so
    it names them (``compile`` and ``merge`` print a note) instead of removing them."""
    out = Path(os.path.abspath(out))
    short = re.escape(f".{short_name(out.name)}.")
    pattern = re.compile(short + r"(?:tmp-[a-z0-9_]{8}|old-[0-9a-f]{8})")
    found = []
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return found
    for entry in entries:
        try:
            if (pattern.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
                    and not os.path.lexists(os.path.join(entry.path, _STAGING_MARK))):
                found.append(Path(entry.path))
        except OSError:
            continue
    return sorted(found)


def _write_whole(out_dir: Path, args: dict) -> Written | None:
    """Write the dataset into a new directory beside ``out_dir`` and put it in ``out_dir``'s place
    only once every file is written: a failure leaves ``out_dir`` as it was. None when the
    directory cannot be renamed there (another file system, in use): then it is written file
    by file."""
    out = Path(os.path.abspath(out_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{short_name(out.name)}.tmp-", dir=out.parent))
    held = _hold(staging)  # before the mark: a marked directory is always locked while in use
    try:
        (staging / _STAGING_MARK).touch()
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(staging, stat.S_IMODE(out.stat().st_mode) if out.exists() else 0o777 & ~mask)
        (staging / "data").mkdir()
        written = _write(staging, staging / "data", **args)
        (staging / _STAGING_MARK).unlink()  # what is renamed into place is a dataset, unmarked
        if not out.exists():
            os.rename(staging, out)
        else:
            try:
                swapped = exchange(staging, out)  # one step: `out` is never missing, not even briefly
            except OSError:
                return None  # another file system, in use: file by file
            if not swapped:  # no renameat2 here: two renames, `out` missing between them
                old = out.with_name(f".{short_name(out.name)}.old-{uuid.uuid4().hex[:8]}")
                try:
                    os.rename(out, old)
                except OSError:
                    return None
                try:
                    os.rename(staging, out)
                except BaseException:
                    os.rename(old, out)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            # after an exchange the old dataset is in `staging`, removed below
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if held is not None:
            os.close(held)
    return Written(Path(out_dir), written.files, written.counts, written.manifest, written.cost)


def _write(out_dir: Path, data_dir: Path, *, review: dict | None = None, result, spec, spec_file: str, plan, fmt: str, file_format: str,
           seed: int, model: str, judge: str, generation: dict, engines: dict | None,
           shard: dict | None, verify: Callable[[dict], None] | None = None) -> Written:
    if data_dir.is_symlink() or not is_within(data_dir, out_dir):
        raise UnsafeWrite(errno.EPERM, "refusing to write the dataset through a symlinked data directory",
                          str(data_dir))
    rows = formats.split_rows(result.pairs, fmt)
    axes = formats.axis_names(result.pairs)
    # Every file is made in memory first and written only once all are ready: a failure while
    # making one (an encoding error, a bad value) leaves the directory as it was, not half new.
    files: dict[str, str | None] = {}
    blobs: dict[str, bytes] = {}
    for split in ("train", "test"):
        rel = f"data/{split}.{file_format}"
        # an empty split is left out: `datasets` refuses a split with no data
        if rows[split]:
            blobs[rel] = _jsonl(rows[split]) if file_format == "jsonl" else _parquet(rows[split], fmt, axes)
            files[split] = rel
        else:
            files[split] = None
    counts = {k: len(v) for k, v in rows.items()}
    text = card.render_card(spec_id=spec.id, version=spec.version, spec_hash=spec.hash, fmt=fmt, files=files,
                            counts=counts, stats=result.stats, model=model, seed=seed, shard=shard,
                            judge=getattr(result, "judge", None), judge_model=judge, doc=getattr(spec, "doc", None),
                            review=review)
    blobs["README.md"] = text.encode("utf-8")
    cost = getattr(result, "cost", None)
    if cost is not None:  # run by run (its seconds are measured): kept out of the reproducible manifest
        blobs[COST_FILE] = (json.dumps(cost.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    man = manifest.build_manifest(spec=spec, spec_file=spec_file, plan=plan, fmt=fmt, file_format=file_format,
                                  seed=seed, model=model, judge=judge, engines=engines, generation=generation, rows=rows,
                                  files=files, scenarios_by_rule=result.scenarios_by_rule, stats=result.stats,
                                  shard=shard, judge_calibration=getattr(result, "judge", None), review=review)
    blobs["manifest.json"] = manifest.dumps(man).encode("utf-8")  # written last: it marks a dataset
    if verify is not None:
        verify(man.to_dict())
    for rel in [r for r in blobs if r.startswith("data/")]:
        write_atomic(out_dir / rel, blobs[rel], within=out_dir)
    for split in ("train", "test"):
        for ext in FILE_FORMATS:  # files of an earlier compile that this one does not write
            stale = data_dir / f"{split}.{ext}"
            if f"data/{split}.{ext}" != files[split] and (stale.exists() or stale.is_symlink()):
                stale.unlink()  # a symlink is removed itself, never what it points at
    write_atomic(out_dir / "README.md", blobs["README.md"], within=out_dir)
    if COST_FILE in blobs:
        write_atomic(out_dir / COST_FILE, blobs[COST_FILE], within=out_dir)
    elif (out_dir / COST_FILE).is_file() and not (out_dir / COST_FILE).is_symlink():
        (out_dir / COST_FILE).unlink()  # an earlier compile's: it does not describe this data
    write_atomic(out_dir / "manifest.json", blobs["manifest.json"], within=out_dir)
    return Written(out_dir, files, counts, man, cost)
