"""`specc fmt`: the canonical layout of every messy fixture, and what formatting guarantees.

Each ``tests/fixtures/fmt/NAME.spec`` is a deliberately messy spec; its formatted text is the
golden file ``tests/golden/fmt/NAME.spec``. Beyond the layout, formatting must keep the
meaning (the IR hash of the spec and of every rule), every comment, and be idempotent.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from specc.cli import main
from specc.ir.model import check_source
from specc.ir.resolve import load, load_text
from specc.syntax.fmt import encode_string, format_check, format_number, format_string, format_text
from specc.syntax.parser import decode_string, parse

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fmt"
GOLDEN = Path(__file__).resolve().parent / "golden" / "fmt"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.spec"))


def _fmt(path: Path) -> str:
    out, diags = format_text(path.read_text(encoding="utf-8"), path.name)
    assert out is not None, diags
    return out


def _meaning(result) -> tuple:
    assert result.spec is not None, result.diagnostics
    return result.spec.hash, tuple((r.id, r.hash) for r in result.spec.rules)


def _comments(text: str) -> list[str]:
    tree, _ = parse(text)
    return sorted(c.text for c in tree.comments)


def test_there_are_enough_messy_fixtures():
    assert len(NAMES) >= 6


@pytest.mark.parametrize("name", NAMES)
def test_layout_matches_golden(name, golden):
    golden(f"fmt/{name}.spec", _fmt(FIXTURES / f"{name}.spec"))


@pytest.mark.parametrize("name", NAMES)
def test_formatting_keeps_meaning_comments_and_is_idempotent(name):
    path = FIXTURES / f"{name}.spec"
    text = path.read_text(encoding="utf-8")
    out = _fmt(path)
    assert out != text, "a messy fixture should need formatting"
    # Same directory, so relative imports and `extends` resolve as for the original.
    assert _meaning(load_text(out, str(path))) == _meaning(load(path))
    assert _comments(out) == _comments(text)
    again, _ = format_text(out, path.name)
    assert again == out


@pytest.mark.parametrize("name", NAMES)
def test_golden_files_are_themselves_canonical(name):
    path = GOLDEN / f"{name}.spec"
    text = path.read_text(encoding="utf-8")
    assert format_text(text, path.name)[0] == text


def test_comments_stay_where_they_belong():
    out = _fmt(FIXTURES / "comments.spec")
    lines = out.splitlines()
    # licence header first, a blank line kept after it; the end-of-file comment last
    assert lines[:3] == ["# Copyright Acme. A licence header, kept at the top.", "", "# The spec itself."]
    assert lines[-1] == "# a comment at the end of the file"
    # trailing comments stay on their item's line, two spaces after it
    assert '    must_not "Leak personal data."  # why: GDPR' in lines
    assert "  }  # after the rule" in lines
    # a leading comment moves with its field when the field moves
    i = lines.index("    # leading the authority, which moves up")
    assert lines[i + 1] == "    authority root"
    # comments before a closing brace stay inside the block
    j = lines.index("      # dangling at the end of the example")
    assert lines[j + 1] == "    }  # after the example"


def test_fields_come_in_canonical_order():
    out = _fmt(FIXTURES / "basic.spec")
    body = out.split("rule no_home_address {\n")[1].split("\n}")[0]
    keys = [line.split()[0] for line in body.splitlines()]
    assert keys == ["must_not", "authority", "severity", "when", "unless", "tags", "weight", "check"]


def test_syntax_errors_give_diagnostics_and_no_text():
    out, diags = format_text('spec a version "1.0.0"\nrule r { must }\n', "bad.spec")
    assert out is None
    assert [(d.code, d.span.start_line, d.span.start_col) for d in diags] == [("E101", 2, 15)]


def test_the_ir_prints_checks_with_the_formatter():
    result = load(FIXTURES / "checks.spec")
    tree, _ = parse((FIXTURES / "checks.spec").read_text(encoding="utf-8"))
    from_ast = sorted(format_check(f.value) for r in tree.items for f in r.fields if f.key == "check")
    from_ir = sorted(check_source(c) for r in result.spec.rules for c in r.checks)
    assert from_ast == from_ir
    assert 'not is_json and (max_words(10) or min_words(3))' in from_ir


# -- strings and numbers ------------------------------------------------------------------

TRICKY = [
    "",
    "plain",
    "back\\slash",
    "ends with one \\",
    "ends with two \\\\",
    'both \\ and "',
    "new\nline",
    "  leading and trailing  ",
    "tab\there",
    'a "quoted" word',
    '"""',
    '""""',
    "line\n\nwith blank",
    "\nstarts with a newline",
    "carriage\rreturn",
    "é ✓ 日本",
]


@pytest.mark.parametrize("value", TRICKY)
def test_tricky_strings_read_back_exactly(value):
    for literal in (encode_string(value), format_string(value, "    ")):
        assert decode_string(literal) == (value, None), literal


def test_string_forms():
    assert encode_string(r"\d+") == r'r"\d+"'
    assert encode_string("ends \\") == '"ends \\\\"'  # an odd trailing backslash cannot be raw
    assert encode_string('say "hi"\n') == '"say \\"hi\\"\\n"'
    assert format_string("one\ntwo", "  ") == '"""\n    one\n    two\n  """'
    assert format_string(" one\ntwo", "  ") == '"""\n     one\n    two\n  """'
    assert format_string(" one\n two", "  ") == '" one\\n two"'  # cleandoc would eat the common indent


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
@settings(max_examples=200, deadline=None)
def test_any_string_reads_back(value):
    assert decode_string(encode_string(value)) == (value, None)
    assert decode_string(format_string(value, "  ")) == (value, None)


NUMBER = re.compile(r"-?\d+(\.\d+)?\Z")


@given(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
@settings(max_examples=200, deadline=None)
def test_numbers_print_as_the_grammar_reads_them(x):
    text = format_number(x)
    assert NUMBER.match(text), text
    back = float(text) if "." in text else int(text)
    assert type(back) is type(x) and back == x and str(back) == str(x)


def test_check_arguments_keep_int_and_float_apart():
    tree, _ = parse('spec a version "1.0.0"\nrule r { must "x" check max_words(10.0) and min_words(0010) }\n')
    assert format_check(tree.items[0].fields[1].value) == "max_words(10.0) and min_words(10)"


# -- the command --------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name in ("checks", "basic"):
        shutil.copy(FIXTURES / f"{name}.spec", tmp_path / f"{name}.spec")
    shutil.copy(GOLDEN / "examples.spec", tmp_path / "tidy.spec")
    (tmp_path / "broken.spec").write_text('spec a version "1.0.0"\nrule r { must }\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(*args):
    return CliRunner().invoke(main, ["fmt", *args])


def _snapshot(d: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(d.glob("*.spec"))}


def test_check_lists_files_that_would_change_and_writes_nothing(workdir):
    before = _snapshot(workdir)
    r = _run("--check", "checks.spec", "tidy.spec")
    assert r.exit_code == 1
    assert r.stdout == "would reformat checks.spec\n"
    assert r.stderr == "1 file would be reformatted, 1 file would be left unchanged\n"
    assert _snapshot(workdir) == before


def test_check_passes_on_canonical_files(workdir):
    r = _run("--check", "tidy.spec")
    assert (r.exit_code, r.stdout) == (0, "")


def test_diff_prints_a_unified_diff_and_writes_nothing(workdir, golden):
    before = _snapshot(workdir)
    r = _run("--diff", "checks.spec", "tidy.spec")
    assert r.exit_code == 1
    assert _snapshot(workdir) == before
    golden("fmt/cli_diff.txt", r.stdout)


def test_rewrites_in_place_keeping_the_mode(workdir):
    os.chmod(workdir / "basic.spec", 0o640)
    r = _run("basic.spec", "checks.spec", "tidy.spec")
    assert r.exit_code == 0, r.output
    assert r.stdout == "reformatted basic.spec\nreformatted checks.spec\n"
    assert r.stderr == "2 files reformatted, 1 file left unchanged\n"
    assert (workdir / "basic.spec").read_text(encoding="utf-8") == (GOLDEN / "basic.spec").read_text(encoding="utf-8")
    assert stat.S_IMODE((workdir / "basic.spec").stat().st_mode) == 0o640
    assert not [p for p in workdir.iterdir() if p.name.endswith(".tmp")]
    again = _run("basic.spec", "checks.spec")
    assert (again.exit_code, again.stdout) == (0, "")


def test_a_directory_means_every_spec_under_it(workdir):
    r = _run("--check", ".")
    assert r.exit_code == 1
    assert r.stdout == "would reformat basic.spec\nwould reformat checks.spec\n"
    assert "broken.spec:2:15: error[E101]" in r.stderr


def test_a_file_with_syntax_errors_is_left_alone(workdir):
    before = (workdir / "broken.spec").read_text(encoding="utf-8")
    r = _run("broken.spec", "basic.spec")
    assert r.exit_code == 1
    assert "broken.spec:2:15: error[E101]: expected a string after `must`" in r.stderr
    assert "broken.spec: not formatted" in r.stderr
    assert "Traceback" not in r.output
    assert (workdir / "broken.spec").read_text(encoding="utf-8") == before
    assert r.stdout == "reformatted basic.spec\n"  # the good file is still formatted


def test_a_missing_file_is_a_usage_error(workdir):
    r = _run("nope.spec")
    assert r.exit_code == 2
    assert "nope.spec" in r.stderr and "does not exist" in r.stderr
