"""The direct parser (specc/syntax/direct.py) must build exactly the AST lark builds.

It is an optimisation only: on every input it either returns lark's AST and comments or
declines (and `parse` falls back to lark, which reports the error). Checked on every spec in
the repository, on a generated benchmark spec, on deterministic random edits of them (most
of them syntax errors), and on hypothesis-generated specs in messy layouts and damaged specs.
"""

from __future__ import annotations

import hashlib
import random
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from specc.resources import grammar_path
from specc.syntax import direct
from specc.syntax import parser as P
from test_properties import SETTINGS, damaged, messy_specs

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in REPO.rglob("*.spec") if ".git" not in p.parts and ".venv" not in p.parts)


class _Declines:
    def parse(self, text, file, cache=None):
        raise direct.Decline


def _lark(text: str):
    """What `parse` returns without the direct parser: (AST items + comments) or None. Taken
    before the nesting limit (E502), which `parse` applies to the trees of both parsers alike."""
    saved = P._direct_parser
    P._direct_parser = lambda lark: _Declines()
    try:
        tree, diags = P._parse(text, "t.spec")
    finally:
        P._direct_parser = saved
    if tree is None or diags:
        return None
    return [tree.header, *tree.items], tree.comments


def _direct(text: str):
    try:
        return P._direct_parser(P._parser()).parse(text, "t.spec")
    except (direct.Decline, RecursionError):
        return None


def _same_or_declined(text: str, valid_must_pass: bool = False) -> None:
    expected, got = _lark(text), _direct(text)
    if expected is None:
        assert got is None, "the direct parser accepted text that lark rejects (or reports on)"
    elif got is not None:
        items, comments = got
        assert items == expected[0]
        assert comments == expected[1]
    elif valid_must_pass:
        pytest.fail("the direct parser declined a valid spec")


def _edits(text: str, rng: random.Random, n: int):
    pieces = ["x", "rule", "#", "# c\n", "\n", '"', "}", "{", " ", "not ", 'r"', "must", "123", "(", "]", "and",
              ",", ".", "-1", "because", "bad"]
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


@pytest.mark.parametrize("name,text", list(_texts()), ids=lambda x: x if len(x) < 60 else None)
def test_direct_parser_builds_larks_ast_or_declines(name, text):
    _same_or_declined(text, valid_must_pass=True)
    for candidate in _edits(text, random.Random(name), 30):
        _same_or_declined(candidate)


@given(messy_specs())
@SETTINGS
def test_messy_valid_specs_parse_directly_to_larks_ast(text):
    _same_or_declined(text, valid_must_pass=True)


@given(messy_specs())
@SETTINGS
def test_a_parse_from_the_cache_is_the_parse(text):
    """The editor's parse (blocks from a ParseCache) builds what a plain parse builds: parsed
    again, and with the text moved down a line (every cached block found a line lower)."""
    parser, cache = P._direct_parser(P._parser()), direct.ParseCache()
    moved = text.replace("\n", "\n\n", 1)
    for t in (text, text, moved, text):
        try:
            expected = parser.parse(t, "t.spec")
        except direct.Decline:
            return
        assert parser.parse(t, "t.spec", cache) == expected


@given(damaged())
@SETTINGS
def test_damaged_specs_parse_directly_to_larks_ast_or_decline(case):
    _same_or_declined(case[1])


def test_the_direct_parser_was_written_for_this_grammar():
    digest = hashlib.sha256(grammar_path().read_bytes()).hexdigest()
    assert digest == direct.GRAMMAR_SHA256, (
        "grammar/spec.lark changed: bring specc/syntax/direct.py in line with it (it mirrors the grammar's "
        "rules), then set GRAMMAR_SHA256 to the new digest")


def test_deep_nesting_falls_back_to_lark():
    depth = 2000
    text = 'spec a version "1.0.0"\nrule r {\n  must "x"\n  check ' + "(" * depth + "refuses" + ")" * depth + "\n}\n"
    tree, diags = P.parse(text, "t.spec")
    assert tree is not None and not diags


def test_long_whitespace_before_an_error_is_linear():
    # The skip pattern is possessive: a run of blanks before a bad character must not backtrack
    # (with a backtracking skip this input takes longer than the test suite).
    text = 'spec a version "1.0.0"\nrule r {\n' + " \t\n" * 20000 + "@\n}\n"
    tree, diags = P.parse(text, "t.spec")
    assert diags and diags[0].code == "E102"


STRINGY = st.tuples(st.sampled_from(['"', 'r"', '"""', 'r"""', "x"]),
                    st.text(alphabet=st.sampled_from(list('"\\\nrab #\t')), max_size=24)).map("".join)


@given(STRINGY)
@SETTINGS
def test_fast_string_pattern_matches_what_the_grammar_does(text):
    lark_match = re.compile(direct.LARK_STRING).match(text)
    fast_match = re.compile(direct.FAST_STRING).match(text)
    assert (lark_match and lark_match.group()) == (fast_match and fast_match.group())
