"""The corpus of bad specs in tests/bad/: what `specc check` says about each, exactly.

A case is a ``tests/bad/NAME.spec`` file, or a directory ``tests/bad/NAME/`` whose entry is
its one ``main.spec`` (for imports, ``extends`` and cycles). The golden file
``tests/golden/diagnostics/NAME.txt`` holds the command, everything it printed (stdout and
stderr, paths relative to the repository root) and its exit code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from specc.cli import main
from specc.diagnostics import CODES
from specc.ir.resolve import load

REPO = Path(__file__).resolve().parent.parent
BAD = REPO / "tests" / "bad"
HEADLINE = re.compile(r"^(\S+):(\d+):(\d+): (error|warning)\[([EW]\d{3})\]: ", re.M)


def _cases() -> dict[str, str]:
    cases = {}
    for p in sorted(BAD.iterdir()):
        if p.suffix == ".spec":
            cases[p.stem] = p.relative_to(REPO).as_posix()
        elif p.is_dir():
            (entry,) = sorted(p.rglob("main.spec"))
            cases[p.name] = entry.relative_to(REPO).as_posix()
    return cases


CASES = _cases()


def _run(args):
    return CliRunner().invoke(main, args, catch_exceptions=True)


@pytest.fixture
def at_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_output_matches_golden(case, at_repo, golden):
    path = CASES[case]
    result = _run(["check", "--format", "text", path])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    golden(f"diagnostics/{case}.txt", f"$ specc check --format text {path}\n{result.output}[exit {result.exit_code}]\n")


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_case_reports_coded_diagnostics(case, at_repo):
    path = CASES[case]
    text = _run(["check", "--format", "text", path])
    headlines = HEADLINE.findall(text.output)
    assert headlines, f"{case}: specc check reported nothing"
    for file, line, col, level, code in headlines:
        assert code in CODES, f"{case}: unknown code {code}"
        assert CODES[code].level == level
        assert (REPO / file).is_file(), f"{case}: diagnostic names {file}, which is not a file"
    errors = [h for h in headlines if h[3] == "error"]
    assert text.exit_code == (1 if errors else 0)

    as_json = _run(["check", "--format", "json", path])
    assert as_json.exit_code == text.exit_code
    diags = json.loads(as_json.stdout)
    assert len(diags) == len(headlines)
    assert [(d["span"]["file"], str(d["span"]["start_line"]), str(d["span"]["start_col"]), d["level"], d["code"])
            for d in diags] == headlines
    for d in diags:
        assert d["name"] == CODES[d["code"]].name
        s = d["span"]
        assert (s["start_line"], s["start_col"]) <= (s["end_line"], s["end_col"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_caret_sits_on_its_line(case, at_repo):
    """Every diagnostic draws the source line it names and a caret within (or just after) it."""
    result = _run(["check", "--format", "text", CASES[case]])
    lines = result.output.splitlines()
    for i, line in enumerate(lines):
        m = HEADLINE.match(line)
        if not m or i + 2 >= len(lines) or not lines[i + 2].lstrip().startswith("^"):
            continue
        file, lineno, col = m.group(1), int(m.group(2)), int(m.group(3))
        source = (REPO / file).read_text(encoding="utf-8").splitlines()[lineno - 1]
        assert lines[i + 1] == "    " + source
        caret = lines[i + 2]
        assert caret.index("^") == 4 + col - 1
        assert len(caret) - 4 <= max(len(source), col) + 1


def test_corpus_covers_every_code(at_repo):
    seen = set()
    for path in CASES.values():
        seen |= {d.code for d in load(path).diagnostics}
    # limits that no small file shows (a 64 MiB file, a 2 s regex budget, a plan): tests/test_hostile.py
    elsewhere = {"E501", "E503", "W410"}
    assert seen == set(CODES) - elsewhere, f"no bad spec produces {sorted(set(CODES) - elsewhere - seen)}"


def test_recovery_reports_every_broken_rule(at_repo):
    result = load(CASES["recovery_several_rules"])
    assert [(d.code, d.span.start_line) for d in result.diagnostics] == [("E101", 6), ("E101", 16), ("E101", 23)]


def test_root_weakening_notes_point_at_the_base_rule(at_repo):
    for case in ("weaken_remove_root", "weaken_severity", "weaken_modality", "weaken_flip", "weaken_unless",
                 "weaken_authority"):
        diags = [d for d in load(CASES[case]).diagnostics if d.code == "E207"]
        assert diags, case
        for d in diags:
            assert d.span.file.endswith("/main.spec")
            (note,) = d.notes
            assert note[1].file.endswith("/base.spec") and note[1].start_line == 4


def test_the_page_of_codes_is_generated_from_the_catalogue():
    """docs/diagnostics.md, which `specc lsp` links each diagnostic to, is current. Regenerate with
    python -c "from specc.diagnostics import catalogue; print(catalogue(), end='')" > docs/diagnostics.md"""
    from specc.diagnostics import anchor, catalogue
    from specc.resources import diagnostics_doc

    page = (Path(__file__).resolve().parent.parent / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    assert page == catalogue()
    assert diagnostics_doc().read_text(encoding="utf-8") == page
    for code in CODES.values():  # one heading per code, its anchor as a Markdown renderer slugs it
        heading = f"## {code.code} {code.name}"
        assert page.count(heading + "\n") == 1
        assert anchor(code) == re.sub(r"[^a-z0-9 -]", "", heading[3:].lower()).replace(" ", "-")
