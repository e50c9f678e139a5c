"""The fast LALR driver (specc/syntax/lalr.py) must build exactly the tree lark builds.

It is an optimisation only: on every input it either returns lark's tree or returns None
(and the parser falls back to lark, which reports the error). Checked on every spec in the
repository, on a generated benchmark spec, and on deterministic random edits of them, most
of which are syntax errors.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from specc.syntax import parser as P
from specc.syntax.lalr import FastLALR

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in REPO.rglob("*.spec") if ".git" not in p.parts)


def _lark_tree(lark, text):
    builder = lark.options.transformer
    builder.file, builder.text, builder.diags = "t.spec", text, []
    try:
        return lark.parse(text)
    except Exception as e:  # noqa: BLE001 - any failure means "no tree"
        return e


def _fast_tree(fast, lark, text):
    builder = lark.options.transformer
    builder.file, builder.text, builder.diags = "t.spec", text, []
    return fast.parse(text)


def _edits(text: str, rng: random.Random, n: int):
    pieces = ["x", "rule", "#", "\n", '"', "}", "{", " ", "not ", 'r"', "must", "123", "(", "]", "and"]
    for _ in range(n):
        i = rng.randrange(len(text))
        j = i + rng.randrange(1, 12)
        op = rng.random()
        if op < 0.4:
            yield text[:i] + text[j:]
        elif op < 0.7:
            yield text[:i] + rng.choice(pieces) + text[i:]
        else:
            yield text[:i] + text[j:j + 5] + text[i:]


def _texts():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from frontend import generate
    finally:
        sys.path.pop(0)
    yield "bench:200", generate(200)
    for p in SPECS:
        yield str(p.relative_to(REPO)), p.read_text(encoding="utf-8-sig")


@pytest.fixture(scope="module")
def parsers():
    lark = P._parser()
    fast = FastLALR(lark)
    assert fast.usable, "the fast driver no longer understands lark's tables; see specc/syntax/lalr.py"
    return lark, fast


@pytest.mark.parametrize("name,text", list(_texts()), ids=lambda x: x if len(x) < 60 else None)
def test_fast_driver_builds_larks_tree_or_declines(parsers, name, text):
    lark, fast = parsers
    rng = random.Random(name)
    valid = _lark_tree(lark, text)
    for candidate in [text, *_edits(text, rng, 25)]:
        expected = _lark_tree(lark, candidate)
        got = _fast_tree(fast, lark, candidate)
        if isinstance(expected, Exception):
            assert got is None, f"fast driver accepted text lark rejects ({expected!r})"
        else:
            assert got == expected
    if not isinstance(valid, Exception):
        assert _fast_tree(fast, lark, text) is not None, "fast driver declined a valid spec"


class _Declines:
    def parse(self, text):
        return None


def test_parse_output_is_identical_with_and_without_fast_driver(monkeypatch):
    text = (REPO / "examples" / "support" / "assistant.spec").read_text(encoding="utf-8")
    broken = text.replace("severity critical", "severity", 1)  # an error: lark reports it
    with_fast = [P.parse(t, "a.spec") for t in (text, broken)]
    monkeypatch.setattr(P, "_fast_parser", lambda lark: _Declines())
    without = [P.parse(t, "a.spec") for t in (text, broken)]
    assert with_fast == without
    assert with_fast[0][0] is not None and not with_fast[0][1]
    assert with_fast[1][1] and with_fast[1][1][0].code == "E101"
