"""Where specc's data files are: the grammar, the standard library and the page of diagnostic
codes that editors link to.

In an installed wheel they live in ``specc/_data`` (see ``pyproject.toml``); in a source
checkout they are the top-level ``grammar/`` and ``stdlib/`` folders (and ``docs/``).
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_root() -> Path:
    installed = _PKG / "_data"
    if (installed / "grammar").is_dir():
        return installed
    checkout = _PKG.parent
    if (checkout / "grammar").is_dir() and (checkout / "stdlib").is_dir():
        return checkout
    raise RuntimeError(
        f"specc's data files are missing: neither {installed} nor {checkout}/grammar exists; reinstall specc"
    )


def grammar_path() -> Path:
    return data_root() / "grammar" / "spec.lark"


def stdlib_dir() -> Path:
    return data_root() / "stdlib"


def diagnostics_doc() -> Path:
    """``docs/diagnostics.md`` (:func:`specc.diagnostics.catalogue`)."""
    return data_root() / "docs" / "diagnostics.md"
