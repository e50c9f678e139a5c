"""What every importer shares: the problem it raises and the summary it returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class ImportProblem(Exception):
    """The source document cannot be imported; the message names the file and line."""

    def __init__(self, file: str, line: int | None, message: str):
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file, self.line, self.message = file, line, message


@dataclass
class Summary:
    """What an import did, counted. ``imported``/``merged``/``skipped`` map a description to a
    count; ``notes`` are (line, text) pairs saying where something was merged or skipped."""

    imported: Counter = field(default_factory=Counter)
    merged: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    notes: list[tuple[int, str]] = field(default_factory=list)

    def skip(self, line: int, what: str, detail: str) -> None:
        """Count ``what`` (a kind of thing and why it is skipped) and note the instance."""
        self.skipped[what] += 1
        self.notes.append((line, f"skipped {what}: {detail}"))

    def merge(self, line: int | None, what: str, note: str | None = None) -> None:
        self.merged[what] += 1
        if note is not None and line is not None:
            self.notes.append((line, note))

    def to_json(self) -> dict:
        return {
            "imported": dict(self.imported),  # in the order the importer counts them
            "merged": dict(sorted(self.merged.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "notes": [{"line": line, "note": text} for line, text in sorted(self.notes)],
        }


@dataclass
class Imported:
    """One imported document: the spec's file name, its text and the summary."""

    name: str
    text: str
    summary: Summary
    format: str
