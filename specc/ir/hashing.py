"""The one hash of specc: sha256 over canonical JSON (sorted keys, no spaces, non-ASCII kept),
hex, 16 bytes shown. Rule and spec hashes, scenario ids, record ids and store keys all use it."""

from __future__ import annotations

import hashlib
import json

ENCODE = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode


def canonical_json(obj) -> str:
    """What ``json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))``
    returns, without building an encoder per call."""
    return ENCODE(obj)


def content_hash(obj) -> str:
    """sha256 over the canonical JSON of ``obj``, hex, 16 bytes shown."""
    return sha(canonical_json(obj))


def sha(canonical: str) -> str:
    """The hash of text that is already canonical JSON."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
