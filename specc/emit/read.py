"""Reading a dataset's records back (``specc eval``, ``specc train``): one reader for JSONL and
Parquet, with messages that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

from specc.files import SURROGATE_MESSAGE, is_within, lone_surrogate


class RecordsError(ValueError):
    """A data file that cannot be read as records; the message names the file (and line)."""


def inside_dataset(root: Path, path: Path) -> Path:
    """``path``, where it lies inside the dataset directory ``root`` once symbolic links are
    followed; a :class:`RecordsError` naming it where a link leads out. Every reader of a dataset
    (audit, eval, train, merge, report, diff) asks this before it opens a data file: a dataset
    from a pull request must not make specc print, send to a model, train on or copy another
    file of the machine."""
    if not is_within(path, root):
        raise RecordsError(f"{path}: a symbolic link that leads outside the dataset directory {root}; "
                           "refusing to read it")
    return path


def read_records(path: Path) -> list[dict]:
    """The records of one ``.jsonl`` or ``.parquet`` file, each a JSON object."""
    path = Path(path)
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise RecordsError(f"{path}: reading Parquet needs pyarrow (pip install 'specc[compile]')") from e
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises its own error types
            raise RecordsError(f"{path}: not a readable Parquet file: {e}") from e
        for n, row in enumerate(rows, 1):
            if lone_surrogate(row):
                raise RecordsError(f"{path}: row {n}: {SURROGATE_MESSAGE}")
        return rows
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RecordsError(f"{path}: cannot read: {e}") from e
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise RecordsError(f"{path}:{n}: not a JSON record: {e}") from e
        if not isinstance(row, dict):
            raise RecordsError(f"{path}:{n}: a record must be a JSON object")
        if lone_surrogate(row):
            raise RecordsError(f"{path}:{n}: {SURROGATE_MESSAGE}")
        rows.append(row)
    return rows
