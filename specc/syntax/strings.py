"""The value of a STRING token: escapes, raw strings, triple-quoted blocks. One decoder for
the lark parser (``specc.syntax.parser``), the direct parser and the formatter."""

from __future__ import annotations

import inspect
import re

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}
_ESCAPE_RE = re.compile(r"\\(.)", re.S)


def decode_string(raw: str) -> tuple[str, str | None]:
    """Turn a STRING token into its value. Returns (value, error message or None)."""
    is_raw = raw.startswith("r")
    body = raw[1:] if is_raw else raw
    triple = body.startswith('"""')
    inner = body[3:-3] if triple else body[1:-1]
    error = None
    if not is_raw:
        def sub(m: re.Match) -> str:
            nonlocal error
            ch = m.group(1)
            if ch in _ESCAPES:
                return _ESCAPES[ch]
            if error is None:
                error = f"unknown escape `\\{ch}` in a string; use a raw string r\"...\" for regular expressions"
            return "\\" + ch

        inner = _ESCAPE_RE.sub(sub, inner)
    if triple:
        inner = inspect.cleandoc(inner)
    return inner, error
