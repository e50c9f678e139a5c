"""Properties of the front end, checked on generated input (hypothesis).

1. Random valid specs, written in a random messy layout (odd spacing, comments between any two
   tokens, strings in every legal spelling): `specc fmt` output parses, keeps the meaning (the
   IR hash of the spec and of every rule), keeps every comment exactly once, and is idempotent.
2. Random damage to real specs (deleted and inserted characters, truncation, swapped or
   repeated lines): the parser and the resolver never raise, and every diagnostic has a known
   code and a location inside the text. Where the damaged text still parses, formatting it
   keeps all the properties of (1).
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specc.diagnostics import CODES
from specc.ir.resolve import load_text
from specc.syntax.fmt import format_text
from specc.syntax.parser import decode_string, parse

REPO = Path(__file__).resolve().parent.parent
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- a generator of valid specs in messy layouts ------------------------------------------

NAME = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True)
# Text that stresses the string syntax: quotes, backslashes, newlines, tabs, `#`, braces, unicode.
TEXT = st.text(alphabet=st.sampled_from(list('ab Z"\\\n\t#{}r\'é✓日\u2028\x0b')) | st.characters(
    blacklist_categories=("Cs",)), max_size=16)
LINE = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=20)
NONBLANK = TEXT.filter(lambda s: s.strip() != "")

# What goes between two tokens; "#" stands for a trailing comment, "\n#" for one on its own line.
# The grammar's STRING terminal: a spelling must lex as one token.
STRING_TOKEN = re.compile(r'r?"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""|r?"(?:[^"\\\n]|\\.)*"')
GAPS = [" ", " ", "  ", "\n", "\n", "\n\n    ", "\t", "#", "\n#"]


def _literal(draw, value: str) -> str:
    """A legal spelling of ``value``, chosen at random and written without the formatter."""
    escaped = '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    forms = [escaped, escaped.replace("\t", "\\t"), 'r"' + value + '"', '"""' + value.replace("\\", "\\\\") + '"""']
    pick = draw(st.sampled_from(forms))
    m = STRING_TOKEN.match(pick)
    if m and m.end() == len(pick) and decode_string(pick) == (value, None):
        return pick
    return escaped


class _Writer:
    """Collects tokens; between two tokens it puts random whitespace or a comment."""

    def __init__(self, draw):
        self.draw = draw
        self.parts: list[str] = []

    def gap(self) -> None:
        gap = self.draw(st.sampled_from(GAPS))
        if gap.endswith("#"):
            gap = ("  #" if gap == "#" else gap) + self.draw(LINE) + "\n"
        self.parts.append(gap)

    def tok(self, *tokens: str) -> None:
        for t in tokens:
            if self.parts:
                self.gap()
            self.parts.append(t)

    def string(self, value: str) -> None:
        self.tok(_literal(self.draw, value))

    def number(self, n: int) -> None:
        self.tok("0" * self.draw(st.integers(0, 2)) + str(n))

    def values(self, items: list[str]) -> None:
        self.tok("[")
        for i, v in enumerate(items):
            if i:
                self.tok(",")
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) and self.draw(st.booleans()):
                self.tok(v)
            else:
                self.string(v)
        if items and self.draw(st.booleans()):
            self.tok(",")
        self.tok("]")

    def text(self) -> str:
        tail = self.draw(st.sampled_from(["", "\n", "\n# the end\n", "  # trailing end"]))
        return "".join(self.parts) + tail


def _regex(draw) -> str:
    return re.escape(draw(TEXT)) or "x"


def _check(draw, w: _Writer, depth: int, prec: int = 0) -> None:
    """Write a random valid check; ``prec`` is the binding of the context (0 or, 1 and, 2 not)."""
    kind = draw(st.integers(0, 5 if depth < 3 else 2))
    paren = draw(st.integers(0, 5)) == 0
    if paren:
        w.tok("(")
    if kind == 0:
        w.tok(draw(st.sampled_from(["is_json", "refuses"])))
        if draw(st.booleans()):
            w.tok("(", ")")
    elif kind == 1:
        fn = draw(st.sampled_from(["matches", "contains", "starts_with", "ends_with", "max_words", "min_words",
                                   "max_chars", "min_chars", "mentions_any", "mentions_all"]))
        w.tok(fn, "(")
        if fn == "matches":
            w.string(_regex(draw))
        elif fn in ("contains", "starts_with", "ends_with"):
            w.string(draw(TEXT))
        elif fn.startswith("mentions"):
            w.values(draw(st.lists(NONBLANK, min_size=1, max_size=3)))
        else:
            w.number(draw(st.integers(0, 500)))
        w.tok(")")
    elif kind == 2:
        w.tok(draw(st.sampled_from(["refuses", "is_json"])))
    elif kind == 3:  # `not` binds tightest: it never needs parentheses of its own
        w.tok("not")
        _check(draw, w, depth + 1, 2)
    else:
        op, mine = ("or", 0) if kind == 4 else ("and", 1)
        need = prec > mine and not paren
        if need:
            w.tok("(")
        for i in range(draw(st.integers(2, 3))):
            if i:
                w.tok(op)
            _check(draw, w, depth + 1, mine + 1)
        if need:
            w.tok(")")
    if paren:
        w.tok(")")


def _axis(draw, w: _Writer, name: str) -> None:
    values = draw(st.lists(NONBLANK, min_size=1, max_size=3, unique=True))
    w.tok("axis", name, "=")
    w.values(values)


def _example(draw, w: _Writer) -> None:
    w.tok("example")
    w.string(draw(TEXT))
    w.tok("{")
    turns = draw(st.lists(st.sampled_from(["system", "developer", "assistant", "tool", "user"]), max_size=3))
    turns.insert(draw(st.integers(0, len(turns))), "user")
    items = [("turn", r) for r in turns] + [("answer", None)] * draw(st.integers(1, 3))
    for kind, role in draw(st.permutations(items)):
        if kind == "turn":
            w.tok(role)
            w.string(draw(TEXT))
            continue
        good = draw(st.booleans())
        w.tok("good" if good else "bad")
        if not good and draw(st.booleans()):
            w.tok(draw(st.sampled_from(["overrefusal", "subtle", "harmful"])))
        w.string(draw(TEXT))
        if draw(st.booleans()):
            w.tok("because")
            w.string(draw(TEXT))
    w.tok("}")


def _rule(draw, w: _Writer, name: str) -> None:
    kind = draw(st.sampled_from(["rule", "rule", "default"]))
    parts = [("statement", None)]
    for key in ("authority", "severity", "when", "details", "weight"):
        if draw(st.booleans()):
            parts.append((key, None))
    parts += [("unless", u) for u in draw(st.lists(NONBLANK, max_size=2, unique=True))]
    parts += [("tags", None)] * draw(st.integers(0, 2))
    parts += [("check", None)] * draw(st.integers(0, 2))
    parts += [("axis", a) for a in draw(st.lists(NAME, max_size=2, unique=True))]
    parts += [("example", None)] * draw(st.integers(0, 1))
    w.tok(kind, name, "{")
    for key, arg in draw(st.permutations(parts)):
        if key == "statement":
            w.tok(draw(st.sampled_from(["must", "must_not", "should", "should_not"])))
            w.string(draw(NONBLANK))
        elif key == "authority":
            w.tok("authority", draw(st.sampled_from(["root", "system", "developer", "user", "guideline"])))
        elif key == "severity":
            w.tok("severity", draw(st.sampled_from(["critical", "high", "medium", "low"])))
        elif key in ("when", "unless", "details"):
            w.tok(key)
            w.string(arg if key == "unless" else draw(NONBLANK))
        elif key == "weight":
            n = draw(st.integers(1, 99))
            w.tok("weight", draw(st.sampled_from([str(n), f"{n}.0", f"0{n}.50", f"0.{n}"])))
        elif key == "tags":
            w.tok("tags")
            w.values(draw(st.lists(NONBLANK, max_size=3)))
        elif key == "check":
            w.tok("check")
            _check(draw, w, 0)
        elif key == "axis":
            _axis(draw, w, arg)
        else:
            _example(draw, w)
    w.tok("}")


def _items(draw, w: _Writer, names: list[str], depth: int) -> None:
    """Axes, rules and sections of the file or a section, in random order."""
    kinds = ["axis"] * draw(st.integers(0, 2)) + ["rule"] * draw(st.integers(0, 2))
    kinds += ["section"] * draw(st.integers(0, 2 if depth < 2 else 0))
    axis_names = iter(draw(st.lists(NAME, min_size=2, max_size=2, unique=True)))
    for kind in draw(st.permutations(kinds)):
        if kind == "axis":
            _axis(draw, w, next(axis_names))
        elif kind == "rule":
            name = draw(NAME.filter(lambda n: n not in names))
            names.append(name)
            _rule(draw, w, name)
        else:
            w.tok("section", draw(NAME))
            if draw(st.booleans()):
                w.string(draw(TEXT))
            w.tok("{")
            _items(draw, w, names, depth + 1)
            w.tok("}")


@st.composite
def messy_specs(draw) -> str:
    w = _Writer(draw)
    if draw(st.booleans()):
        w.parts.append("# " + draw(LINE) + "\n" + draw(st.sampled_from(["", "\n"])))
    w.tok("spec", ".".join(draw(st.lists(NAME, min_size=1, max_size=3))), "version")
    w.string(f"{draw(st.integers(0, 9))}.{draw(st.integers(0, 20))}.{draw(st.integers(0, 99))}")
    if draw(st.booleans()):
        w.string(draw(TEXT))
    _items(draw, w, [], 0)
    return w.text()


def _hashes(result) -> tuple | None:
    spec = result.spec
    return (spec.hash, tuple((r.id, r.hash) for r in spec.rules)) if spec else None


def _meaning(text: str) -> tuple:
    result = load_text(text)
    return _hashes(result), sorted(d.code for d in result.diagnostics)


def _comments(tree) -> list[str]:
    return sorted(c.text for c in tree.comments)


@given(messy_specs())
@SETTINGS
def test_fmt_keeps_meaning_and_comments_and_is_idempotent(text):
    tree, diags = parse(text)
    assert tree is not None and not diags, diags
    before = _meaning(text)
    assert before[0] is not None, before  # the generator writes valid specs only
    out, diags = format_text(text)
    assert out is not None, diags
    again, again_diags = parse(out)
    assert again is not None and not again_diags, again_diags
    assert _meaning(out) == before
    assert _comments(again) == _comments(tree)
    assert format_text(out)[0] == out


# -- damaged specs --------------------------------------------------------------------------

CORPUS = sorted(
    {*(REPO / "tests" / "fixtures" / "fmt").glob("*.spec"), *(REPO / "examples").glob("**/*.spec"),
     *(REPO / "tests" / "bad").glob("**/*.spec")}
)
JUNK = st.lists(st.sampled_from(list('{}[]()",=.#\\r\n "x') + ['"""', "rule ", "must ", "check ", "not "]),
                min_size=1, max_size=4).map("".join)


@st.composite
def damaged(draw) -> tuple[Path, str]:
    path = draw(st.sampled_from(CORPUS))
    text = path.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "truncate", "swap", "repeat"]))
        i = draw(st.integers(0, len(text)))
        if op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 12)):]
        elif op == "insert":
            text = text[:i] + draw(JUNK) + text[i:]
        elif op == "truncate":
            text = text[:i]
        else:
            lines = text.split("\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if op == "swap":
                lines[a], lines[b] = lines[b], lines[a]
            else:
                lines.insert(b, lines[a])
            text = "\n".join(lines)
    return path, text


def _assert_located(diags, texts: dict[str, str]) -> None:
    for d in diags:
        assert d.code in CODES, d
        s = d.span
        assert s.start_line >= 1 and s.start_col >= 1, d
        assert (s.end_line, s.end_col) >= (s.start_line, s.start_col), d
        if s.file in texts:
            assert s.start_line <= texts[s.file].count("\n") + 2, d


@given(damaged())
@SETTINGS
def test_damaged_specs_never_crash_and_diagnostics_have_locations(case):
    path, text = case
    tree, diags = parse(text, path.name)
    _assert_located(diags, {path.name: text})
    # Resolved in the original's directory: its imports and `extends` find real files.
    result = load_text(text, str(path))
    _assert_located(result.diagnostics, {path.name: text})
    if tree is None or any(d.level == "error" for d in diags):
        assert format_text(text, path.name)[0] is None
        return
    out, _ = format_text(text, path.name)
    assert out is not None
    assert _comments(parse(out)[0]) == _comments(tree)
    assert format_text(out, path.name)[0] == out
    assert _hashes(load_text(out, str(path))) == _hashes(result)
