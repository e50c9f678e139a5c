"""The content-addressed store of role calls: what makes compiles resumable and incremental.

One SQLite file (WAL journal) under the store directory. A *result* is the raw text a model
returned for one role call, keyed by :func:`call_key`: the content hash of the scenario id, the
role, the round and attempt, the template hash, the output type's schema hash, the model name,
the generation parameters, the seed and the hash of the exact prompt. A key therefore names the
output of a deterministic computation; when any input changes the key changes, and an
unchanged input is never generated twice.

Every call's outcome (ok, invalid output, model error, timeout) is appended to ``attempts``.
Raw outputs are cached even when they fail validation (the same call would return them
again); exceptions and timeouts are not, so a rerun tries those calls again.

Each result also keeps what generating it cost (``prompt_tokens``, ``completion_tokens``,
``seconds``, and how the tokens were ``counted``): a rerun that reuses it knows what the store
saved, and ``specc plan --estimate`` reads measured means per role from it. A store written
before these columns existed is given them on opening (NULL: not known); nothing else changes.

Writes happen in one transaction per finished batch: a process killed at any moment leaves
every finished batch stored and no partial one.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

from specc.ir.hashing import content_hash

STORE_FILE = "store.sqlite"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    role TEXT NOT NULL,
    model TEXT NOT NULL,
    output TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    scenario TEXT NOT NULL,
    role TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS results_scenario ON results(scenario);
"""

# columns added to `results` after its first version: (name, type); added where missing
USAGE_COLUMNS = (("prompt_tokens", "INTEGER"), ("completion_tokens", "INTEGER"), ("seconds", "REAL"),
                 ("counted", "TEXT"))


class StoreError(Exception):
    """The store cannot be opened or written (message meant for the user)."""


_SQLITE_FULL, _SQLITE_IOERR, _SQLITE_CANTOPEN = 13, 10, 14
LOW_SPACE = 1024 * 1024  # free bytes under which an I/O error at opening is taken for a full disk


def _cannot_open(path: Path, e: sqlite3.DatabaseError) -> str:
    """Why the store at ``path`` did not open, and what to do. Only a store that SQLite read and
    found wrong is called damaged: on a full disk SQLite says "database or disk is full", or
    "disk I/O error" when it cannot extend its shared-memory file, and moving the store away
    there would throw every stored call away for nothing (freeing space is the cure)."""
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    try:
        st = os.statvfs(path.parent)
        free = st.f_bavail * st.f_frsize
    except (OSError, AttributeError):
        free = None
    if primary == _SQLITE_FULL or (primary in (_SQLITE_IOERR, _SQLITE_CANTOPEN) and free is not None
                                   and free < LOW_SPACE):
        return (f"cannot open the store {path}: no space left on the device ({e}); free some space and run "
                "again: the store keeps every finished call")
    if primary in (_SQLITE_IOERR, _SQLITE_CANTOPEN):
        return (f"cannot open the store {path}: {e}, an error of the disk or file system rather than of the "
                "store: check them and run again")
    return (f"cannot open the store {path}: {e}; it is damaged or not a specc store: move it away (or give "
            "another --store) and run again")


def call_key(*, scenario: str, role: str, round: int, attempt: int, template: str, schema: str,
             model: str, params: dict, seed: int, prompt: Sequence[dict]) -> str:
    return content_hash({
        "scenario": scenario, "role": role, "round": round, "attempt": attempt,
        "template": template, "schema": schema, "model": model, "params": params, "seed": seed,
        "prompt": content_hash(list(prompt)),
    })


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class Store:
    """A store directory; use as a context manager or call :meth:`close`."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.path = self.dir / STORE_FILE
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
            have = {r[1] for r in self.conn.execute("PRAGMA table_info(results)").fetchall()}
            for name, kind in USAGE_COLUMNS:
                if name not in have:  # a store from before the accounting: keep it, add the column
                    self.conn.execute(f"ALTER TABLE results ADD COLUMN {name} {kind}")
            # a damaged file (a page overwritten, a truncated copy) is refused here, with its path,
            # rather than failing as a traceback in the middle of a compile
            problems = [r[0] for r in self.conn.execute("PRAGMA quick_check(3)").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(map(str, problems)))
            row = self.conn.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
            if row is None:
                self.conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by another store version ({row[0]}); "
                                 "use another --store directory")
        except sqlite3.DatabaseError as e:
            raise StoreError(_cannot_open(self.path, e)) from e
        except OSError as e:
            raise StoreError(f"cannot create the store directory {self.dir}: {e.strerror or e}") from e

    def _read(self, query: str, args: Sequence = ()) -> list:
        try:
            return self.conn.execute(query, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot read the store {self.path}: {e}; it is damaged: move it away (or give "
                             "another --store) and run again") from e

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        out: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            rows = self._read(f"SELECT key, output FROM results WHERE key IN ({','.join('?' * len(part))})", part)
            for key, output in rows:
                if not isinstance(output, str):
                    raise StoreError(f"the store {self.path} holds a result that is not text (key {key}): it is "
                                     "damaged: move it away (or give another --store) and run again")
                out[key] = output
        return out

    def usage_of(self, keys: Iterable[str]) -> dict[str, tuple]:
        """Key -> (prompt_tokens, completion_tokens, seconds, counted) as stored with the result
        (None where the store does not know: a result stored before the accounting)."""
        keys = list(keys)
        out: dict[str, tuple] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            rows = self._read("SELECT key, prompt_tokens, completion_tokens, seconds, counted FROM results "
                              f"WHERE key IN ({','.join('?' * len(part))})", part)
            for key, p, c, sec, counted in rows:
                out[key] = (_count(p), _count(c), float(sec) if isinstance(sec, (int, float)) and sec >= 0 else None,
                            counted if isinstance(counted, str) else None)
        return out

    def role_means(self, model: str | None = None) -> dict[str, dict]:
        """Per role: the results with known usage, and their mean prompt and completion tokens
        and seconds (``model``: only that model's)."""
        where = "prompt_tokens IS NOT NULL AND completion_tokens IS NOT NULL"
        args: tuple = ()
        if model is not None:
            where += " AND model = ?"
            args = (model,)
        rows = self._read("SELECT role, COUNT(*), AVG(prompt_tokens), AVG(completion_tokens), AVG(seconds) "
                          f"FROM results WHERE {where} GROUP BY role ORDER BY role", args)
        return {role: {"calls": n, "prompt_tokens": p, "completion_tokens": c, "seconds": sec}
                for role, n, p, c, sec in rows}

    def commit(self, results: Sequence[tuple], attempts: Sequence[tuple[str, str, str, str, str | None]]) -> None:
        """Store ``results`` (key, scenario, role, model, output, and optionally prompt_tokens,
        completion_tokens, seconds, counted) and ``attempts`` (key, scenario, role, outcome,
        detail) in one transaction."""
        rows = [tuple(r) + (None,) * (9 - len(r)) for r in results]
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    "INSERT OR IGNORE INTO results (key, scenario, role, model, output, prompt_tokens, "
                    "completion_tokens, seconds, counted) VALUES (?,?,?,?,?,?,?,?,?)", rows)
                self.conn.executemany(
                    "INSERT INTO attempts (key, scenario, role, outcome, detail) VALUES (?,?,?,?,?)", attempts)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if "full" in str(e).lower():
                raise OSError(28, f"no space left on device while writing the store {self.path}",
                              str(self.path)) from e
            raise StoreError(f"cannot write the store {self.path}: {e}") from e

    def count(self) -> int:
        return self._read("SELECT COUNT(*) FROM results")[0][0]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
