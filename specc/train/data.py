"""The training split of a dataset directory, in the columns a TRL trainer takes.

Which files: a specc dataset's ``manifest.json`` names its train split (``data/train.jsonl``);
without a manifest, ``train*.jsonl`` / ``train*.parquet`` in DIR or DIR/data/, else files named
after the method (``dpo*.jsonl``), else every ``*.jsonl`` / ``*.parquet`` under DIR. A test or
evaluation file (a name starting with ``test`` or ``eval``, or ending in ``_test`` / ``-test``,
or under a ``test`` / ``eval`` folder) is never picked up: training on held-out probes would make
``specc eval`` meaningless.

Columns (TRL's conversational conventions; plain strings work too):

- ``dpo``: ``prompt``, ``chosen``, ``rejected``
- ``kto``: ``prompt``, ``completion``, ``label`` (bool); paired DPO data is unpaired into it
- ``sft``: ``messages``; DPO data gives ``prompt + chosen``, KTO data its desirable rows
"""

from __future__ import annotations

from pathlib import Path

COLUMNS = {
    "dpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
    "sft": ("messages",),
}
METHODS = tuple(COLUMNS)
_TEST_NAMES = ("test", "eval", "validation", "valid", "heldout", "held_out", "held-out")


class TrainError(Exception):
    """A user-facing training error: a bad dataset dir, wrong columns, options (exit 1)."""


class TrainFailure(TrainError):
    """An operation failed for a reason outside the input: a model that cannot load, a disk (exit 3)."""


def is_test_file(path: Path, root: Path | None = None) -> bool:
    """Whether ``path`` looks like a held-out split by its name or a folder above it (under ``root``)."""
    stem = path.name.split(".", 1)[0].lower()
    if stem.startswith(_TEST_NAMES) or stem.endswith(tuple(f"{sep}{n}" for n in _TEST_NAMES for sep in "_-")):
        return True
    if root is not None:
        try:
            parts = path.relative_to(root).parts[:-1]
        except ValueError:
            parts = ()
        return any(p.lower() in _TEST_NAMES or p.lower() == "tests" for p in parts)
    return False


def find_data_files(dataset_dir: Path, fmt: str) -> tuple[str, list[str]]:
    """Return (``datasets`` builder name, files) of the **train** split for ``fmt`` in ``dataset_dir``."""
    dataset_dir = Path(dataset_dir)
    if dataset_dir.is_file():
        if is_test_file(dataset_dir):
            raise TrainError(f"{dataset_dir} is a test split: train on the train split (held-out probes are "
                             "for `specc eval`)")
        files = [dataset_dir]
    else:
        if not dataset_dir.is_dir():
            raise TrainError(f"dataset directory {dataset_dir} does not exist")
        man = dataset_dir / "manifest.json"
        if man.is_file():
            from specc.emit.manifest import ManifestError, read_manifest
            from specc.emit.read import RecordsError, inside_dataset

            try:
                path = read_manifest(inside_dataset(dataset_dir, man)).data_file(dataset_dir, "train")
            except RecordsError as e:
                raise TrainError(str(e)) from None
            except ManifestError as e:
                raise TrainError(str(e)) from None
            if path is None:
                raise TrainError(f"{dataset_dir} has no train split (its manifest lists none: every verified "
                                 "record went to the test split or none was verified)")
            if not path.is_file():
                raise TrainError(f"{path}: the train split named in {man} is missing")
            files = [path]
        else:
            files = []
            for pattern in ("train*.jsonl", "data/train*.jsonl", "train*.parquet", "data/train*.parquet",
                            f"{fmt}*.jsonl", f"**/{fmt}*.jsonl", f"{fmt}*.parquet", f"**/{fmt}*.parquet",
                            "*.jsonl", "**/*.jsonl", "*.parquet", "**/*.parquet"):
                files = sorted(p for p in dataset_dir.glob(pattern)
                               if p.is_file() and not is_test_file(p, dataset_dir))
                if files:
                    break
    if not files:
        raise TrainError(f"no train split in {dataset_dir}: no manifest.json, and no .jsonl or .parquet file "
                         "that is not a test split")
    from specc.emit.read import RecordsError, inside_dataset

    try:
        files = [inside_dataset(dataset_dir, f) for f in files]
    except RecordsError as e:
        raise TrainError(str(e)) from None
    builder = "parquet" if files[0].suffix == ".parquet" else "json"
    return builder, [str(f) for f in files]


def read_rows(path: Path) -> list[dict]:
    from specc.emit.read import RecordsError, read_records

    try:
        return read_records(path)
    except RecordsError as e:
        raise TrainError(str(e)) from None


def _msgs(value, role: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _convert(rows: list[dict], fmt: str) -> tuple[list[dict], str] | None:
    """Rows in ``fmt``'s columns, and what they were converted from; None when impossible."""
    have = set(rows[0]) if rows else set()
    need = COLUMNS[fmt]
    if set(need) <= have:
        return [{k: r[k] for k in need} for r in rows], fmt
    if fmt == "kto" and set(COLUMNS["dpo"]) <= have:
        out = []
        for r in rows:
            out.append({"prompt": r["prompt"], "completion": r["chosen"], "label": True})
            out.append({"prompt": r["prompt"], "completion": r["rejected"], "label": False})
        return out, "dpo"
    if fmt == "sft" and {"prompt", "chosen"} <= have:
        return [{"messages": _msgs(r["prompt"], "user") + _msgs(r["chosen"], "assistant")} for r in rows], "dpo"
    if fmt == "sft" and set(COLUMNS["kto"]) <= have:
        return [{"messages": _msgs(r["prompt"], "user") + _msgs(r["completion"], "assistant")}
                for r in rows if r["label"]], "kto"
    return None


def load_train_split(dataset_dir: Path, fmt: str):
    """The train split as a ``datasets.Dataset`` in ``fmt``'s columns, the files it came from, and
    the format the records were in."""
    fmt = fmt.lower()
    if fmt not in COLUMNS:
        raise TrainError(f"unknown method {fmt!r}: expected one of {', '.join(METHODS)}")
    _, files = find_data_files(Path(dataset_dir), fmt)
    rows: list[dict] = []
    for f in files:
        rows.extend(read_rows(Path(f)))
    if not rows:
        raise TrainError(f"the train split ({', '.join(files)}) has no records")
    keys = set(rows[0])
    for i, r in enumerate(rows):
        if set(r) != keys:
            keys &= set(r)
    rows = [{k: r[k] for k in keys} for r in rows]
    got = _convert(rows, fmt)
    if got is None:
        lacks = sorted(set(COLUMNS[fmt]) - keys)
        raise TrainError(f"{fmt} training needs the columns {list(COLUMNS[fmt])}; {files[0]} lacks {lacks} "
                         f"(it has {sorted(keys)})")
    converted, source = got
    if not converted:
        raise TrainError(f"no {fmt} record can be made from {files[0]}")
    for i, r in enumerate(converted):
        for col in COLUMNS[fmt]:
            v = r[col]
            ok = isinstance(v, bool) if col == "label" else (
                isinstance(v, str) or (isinstance(v, list) and v and all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in v)))
            if not ok:
                raise TrainError(f"{files[0]}: record {i + 1}: `{col}` must be "
                                 + ("a bool" if col == "label" else "a string or a list of {role, content} messages"))
    from datasets import Dataset

    return Dataset.from_list(converted), files, source
