"""Canonical literals, shared by the formatter (``specc fmt``) and the IR's check printer
(:func:`specc.ir.model.check_source`): one form for a string, one for a number (the predicates
written without parentheses are the language table's ``BARE_CHECKS``). No parser here, so the
IR can print without lark.
"""

from __future__ import annotations

import re
from decimal import Decimal

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def encode_string(value: str) -> str:
    """The canonical one-line literal for a string value.

    A value with a backslash and no quote or control character is written raw (``r"\\d+"``),
    everything else in double quotes with ``\\\\``, ``\\"``, ``\\n`` and ``\\t`` escaped.
    """
    if "\\" in value and '"' not in value and not _CONTROL_RE.search(value):
        trailing = len(value) - len(value.rstrip("\\"))
        if trailing % 2 == 0:  # an odd run would escape the closing quote
            return f'r"{value}"'
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def format_number(value: int | float) -> str:
    """A number as the grammar's NUMBER: no exponent, floats keep a decimal point."""
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)), "f")
    if "." not in text:
        text += ".0"
    return text
