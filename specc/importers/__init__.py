"""Importers: specs written in another format, turned into specc spec text.

One module per source format; each turns the text of one document into the text of one
``.spec`` file (canonical: ``specc fmt`` leaves it as it is) and a :class:`Summary` of what
was imported, merged and skipped. Because the result is ordinary spec text, ``check``,
``fmt``, ``diff`` and ``compile`` need no special case for it.

A format module provides ``NAME``, ``SUFFIXES`` (the file name endings it reads),
``default_id(path)``, ``default_version(path)`` and
``convert(text, file, spec_id, version) -> Imported``. Adding a format is one module and
one line in :data:`FORMATS`.
"""

from __future__ import annotations

import re
from pathlib import Path

from specc.importers import modelspec
from specc.importers.base import Imported, ImportProblem, Summary

FORMATS = (modelspec,)

# An import holds a few hundred bytes per line and over a hundred per character of a long line (the
# lines, their bodies and prose, then the spec text parsed, formatted and checked): 500,000 lines of
# "a" (1 MB) took 697 MB, one 1 MB line 131 MB (peaks traced by tracemalloc). The OpenAI Model Spec
# (2025-09-12) is 254 KB in 4,494 lines, its longest 1,073 characters: room eleven times over.
MAX_DOCUMENT_CHARS = 4_000_000
MAX_DOCUMENT_LINES = 50_000

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VERSION = re.compile(r"\d+\.\d+\.\d+\Z")


def format_for(path: Path | str):
    """The format module that reads ``path`` (by its file name ending), or None."""
    name = str(path).lower()
    for module in FORMATS:
        if name.endswith(module.SUFFIXES):
            return module
    return None


def is_importable(path: Path | str) -> bool:
    return format_for(path) is not None


def convert_text(text: str, file: str, spec_id: str | None = None, version: str | None = None) -> Imported:
    """Import a document given as text; ``file`` names it (for its format, defaults, messages)."""
    module = format_for(file)
    if module is None:
        suffixes = ", ".join(s for m in FORMATS for s in m.SUFFIXES)
        raise ImportProblem(file, None, f"no importer reads this kind of file (known: {suffixes})")
    spec_id = spec_id or module.default_id(Path(file))
    if not all(_NAME.match(part) for part in spec_id.split(".")):
        raise ImportProblem(file, None, f"--id {spec_id!r} is not a dotted name (letters, digits, `_`, "
                                        "parts joined by `.`)")
    version = version or module.default_version(Path(file))
    if not _VERSION.match(version):
        raise ImportProblem(file, None, f"--version {version!r} is not MAJOR.MINOR.PATCH")
    if len(text) > MAX_DOCUMENT_CHARS:
        raise ImportProblem(file, None, f"{len(text):,} characters: a document over {MAX_DOCUMENT_CHARS:,} is not "
                                        "imported (the Model Spec is 254,000)")
    lines = text.count("\n") + 1
    if lines > MAX_DOCUMENT_LINES:
        raise ImportProblem(file, None, f"{lines:,} lines: a document over {MAX_DOCUMENT_LINES:,} is not imported "
                                        "(the Model Spec has 4,494)")
    return module.convert(text, file, spec_id, version)


def convert_file(path: Path, spec_id: str | None = None, version: str | None = None,
                 shown: str | None = None) -> Imported:
    """Import the document at ``path``. Raises :class:`ImportProblem` (a missing or unreadable
    file included)."""
    from specc.files import read_spec  # regular files under the size limit, one decoder (BOM, CRLF)

    shown = shown or str(path)
    try:
        text = read_spec(path)
    except FileNotFoundError:
        raise ImportProblem(shown, None, "no such file") from None
    except IsADirectoryError:
        raise ImportProblem(shown, None, "a directory, not a document") from None
    except UnicodeDecodeError as e:
        raise ImportProblem(shown, None, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:  # a FIFO, a device, a file over the limit (SpecReadError) included
        raise ImportProblem(shown, None, f"cannot read: {e.strerror}") from None
    return convert_text(text, shown, spec_id, version)




# -- the command: import, write, check ---------------------------------------------------------


def import_to_dir(source: Path, out_dir: Path, spec_id: str | None = None, version: str | None = None,
                  *, force: bool = False):
    """``specc import``: convert ``source``, write the spec into ``out_dir`` and check it.

    Returns ``(imported, written path, LoadResult)``. Raises :class:`ImportProblem`, also where
    ``out_dir`` already holds the file with other content (edited by hand, or imported from
    another version) and not ``force``; an ``OSError`` when the output cannot be written.
    """
    from specc.files import write_atomic
    from specc.ir.resolve import load

    imported = convert_file(source, spec_id, version)
    target = out_dir / imported.name
    data = imported.text.encode("utf-8")
    if not force and (target.exists() or target.is_symlink()):
        try:
            same = target.is_file() and not target.is_symlink() and target.read_bytes() == data
        except OSError:
            same = False
        if not same:
            raise ImportProblem(str(target), None, "exists and differs from this import (edited by hand, or "
                                "imported from another version): refusing to replace it; give --force to "
                                "replace it, or another -o")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data, within=out_dir)
    return imported, target, load(target)


def _counts(counter, ordered: bool = False) -> str:
    items = counter.items() if ordered else sorted(counter.items())
    return "; ".join(f"{n:,} {what}" for what, n in items if n) or "none"


def summary_text(imported: Imported, source: str, target: str, checked) -> str:
    """The summary ``specc import`` prints: counts, then where things were skipped, then the check."""
    s = imported.summary
    out = [f"imported {source} -> {target} ({imported.format})",
           f"  imported: {_counts(s.imported, ordered=True)}",
           f"  merged:   {_counts(s.merged)}",
           f"  skipped:  {_counts(s.skipped)}"]
    out += [f"  {source}:{line}: {note}" for line, note in sorted(s.notes)]
    errors = [d for d in checked.diagnostics if d.level == "error"]
    warnings = [d for d in checked.diagnostics if d.level == "warning"]
    out.append(f"check: {len(errors)} error{'s' * (len(errors) != 1)}, "
               f"{len(warnings)} warning{'s' * (len(warnings) != 1)}")
    out += [f"  {d.span.file}:{d.span.start_line}: {d.level}[{d.code}]: {d.message}" for d in checked.diagnostics]
    return "\n".join(out) + "\n"


def summary_json(imported: Imported, source: str, target: str, checked) -> dict:
    return {"source": source, "spec": target, "format": imported.format, **imported.summary.to_json(),
            "check": [d.as_dict() for d in checked.diagnostics]}


__all__ = ["FORMATS", "ImportProblem", "Imported", "Summary", "convert_file", "convert_text", "format_for",
           "import_to_dir", "is_importable", "summary_json", "summary_text"]
