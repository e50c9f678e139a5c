"""Reading a dataset's records back (``audit``, ``eval``, ``train``, ``merge``, ``report``): one
reader for JSONL and Parquet, with messages that name the file and line.

A dataset may come from someone else (a pull request, a download), so every record is checked
before any command uses it: JSON no deeper than :data:`specc.files.MAX_JSON_DEPTH`, no integer
over Python's digit limit, no lone surrogate, and the fields specc writes (and TRL reads) of
the types they are written with (:func:`record_problem`)."""

from __future__ import annotations

from pathlib import Path

from specc.files import SURROGATE_MESSAGE, is_within, load_json, lone_surrogate


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


# the fields of a record (specc/emit/formats.py writes them) and the type each must have
_TEXT_FIELDS = ("record_id", "boundary")
_OPTIONAL_TEXT_FIELDS = ("scenario_id", "source", "verified_by", "chosen_from", "rejected_from",
                         "request_from")
_CONVERSATION_FIELDS = ("prompt", "chosen", "rejected", "completion", "messages")


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _content_problem(content) -> str | None:
    if isinstance(content, str):
        return None
    if isinstance(content, list):  # OpenAI's content parts: [{"type": "text", "text": ...}]
        for part in content:
            if not isinstance(part, dict):
                return f"a content part is {_kind(part)}, not an object"
            for key in ("type", "text"):
                if key in part and not isinstance(part[key], str):
                    return f"a content part's `{key}` is {_kind(part[key])}, not a string"
        return None
    return f"a message's `content` is {_kind(content)}, not a string"


def record_problem(row: dict) -> str | None:
    """What is wrong with the types of ``row``'s known fields, or None. Fields may be absent
    (a dataset made elsewhere has other columns), and but for the ids null (Parquet has a null
    where a row does not use a column); present ones must have the types specc writes, so no
    command meets a list where it expects an id or a number where it expects text."""
    for key in _TEXT_FIELDS:
        if key in row and not isinstance(row[key], str):
            return f"`{key}` is {_kind(row[key])}, not a string"
    for key in _OPTIONAL_TEXT_FIELDS:
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"`{key}` is {_kind(row[key])}, not a string"
    if row.get("rule_ids") is not None:
        ids = row["rule_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return "`rule_ids` must be a list of strings"
    axes = row.get("axes")
    if axes is not None and not (isinstance(axes, dict)
                                 and all(v is None or isinstance(v, str) for v in axes.values())):
        return "`axes` must be an object of strings"
    if row.get("label") is not None and not isinstance(row["label"], bool):
        return f"`label` is {_kind(row['label'])}, not true or false"
    for key in _CONVERSATION_FIELDS:
        if row.get(key) is None or isinstance(row[key], str):
            continue
        value = row[key]
        if not isinstance(value, list):
            return f"`{key}` is {_kind(value)}: expected a string or a list of {{role, content}} messages"
        for m in value:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                return f"`{key}` holds {_kind(m)} that is not a {{role, content}} message"
            problem = _content_problem(m.get("content"))
            if problem:
                return f"`{key}`: {problem}"
    return None


# what specc's writer puts in every row of each format (formats.rows_for), beyond the types above
_SPECC_COLUMNS = {"dpo": ("prompt", "chosen", "rejected"), "kto": ("prompt", "completion", "label"),
                  "sft": ("messages",)}
_SPECC_META = ("record_id", "rule_ids", "boundary", "scenario_id", "source", "verified_by")


def specc_record_problem(row: dict, fmt: str) -> str | None:
    """What keeps ``row`` from being a row specc writes in ``fmt``, or None: every column
    there, and every conversation a list of messages with text content."""
    missing = [k for k in (*_SPECC_COLUMNS[fmt], *_SPECC_META) if k not in row]
    if missing:
        return f"not a specc {fmt} record: it has no `{missing[0]}`"
    for key in _SPECC_COLUMNS[fmt]:
        if key == "label":
            if not isinstance(row[key], bool):
                return "`label` must be true or false"
        elif not (isinstance(row[key], list) and row[key]
                  and all(isinstance(m.get("content"), str) for m in row[key])):
            return f"`{key}` must be a list of messages whose content is text"
    if not isinstance(row["rule_ids"], list):
        return "`rule_ids` must be a list of strings"
    return None


def parse_record(line: str, where: str, fmt: str | None = None) -> dict:
    """One JSONL line as a checked record; :class:`RecordsError` naming ``where`` otherwise."""
    try:
        row = load_json(line)
    except ValueError as e:
        raise RecordsError(f"{where}: not a JSON record: {e}") from None
    return check_record(row, where, fmt)


def check_record(row, where: str, fmt: str | None = None) -> dict:
    """``row``, when it is a record (of specc's ``fmt``, when given); :class:`RecordsError`."""
    if not isinstance(row, dict):
        raise RecordsError(f"{where}: a record must be a JSON object")
    problem = record_problem(row) or (specc_record_problem(row, fmt) if fmt else None)
    if problem:
        raise RecordsError(f"{where}: {problem}")
    return row


def read_records(path: Path, *, blank_lines: bool = True, fmt: str | None = None) -> list[dict]:
    """The records of one ``.jsonl`` or ``.parquet`` file, each a checked JSON object. With
    ``blank_lines=False`` a blank line is an error, and with ``fmt`` every row must be one that
    specc writes in that format (``merge``: it reads specc's own shards)."""
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
            check_record(row, f"{path}: row {n}", fmt)
        return rows
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RecordsError(f"{path}: cannot read: {e}") from e
    # lines end at "\n" only: a text may hold U+2028 or U+0085, which the writer keeps as they are
    # and str.splitlines() would split at
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = []
    for n, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if not line.strip() and blank_lines:
            continue
        rows.append(parse_record(line, f"{path}:{n}", fmt))
    return rows
