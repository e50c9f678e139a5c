"""The command line: exit codes, output formats, inspect/schema/explain."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from specc.cli import main
from specc.diagnostics import CODES

CLEAN = '''spec acme.clean version "1.0.0"
  """A spec with nothing to complain about."""

axis tactic = [direct, roleplay]

section privacy "Privacy" {
  rule no_home_address {
    must_not "Reveal the home address of a private individual."
    authority root
    severity critical
    check not matches(r"\\b\\d+\\s+\\w+\\s+Street\\b")
  }
}

default concise {
  should "Keep answers short."
  check max_words(120) and not refuses
}
'''
WARNS = 'spec acme.warn version "1.0.0"\n"""Doc."""\nrule be_honest {\n  must "Say when you do not know."\n}\n'
BROKEN = ('spec acme.broken version "1.0.0"\n"""Doc."""\nrule a {\n  must_not authority root\n}\n'
          'rule b {\n  should "B."\n  check nope(1)\n}\n')


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def specs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, text in {"clean.spec": CLEAN, "warn.spec": WARNS, "broken.spec": BROKEN}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


# -- check --------------------------------------------------------------------------------


def test_check_clean_exits_0_with_a_summary(specs):
    r = run("check", "clean.spec")
    assert r.exit_code == 0
    assert r.stdout == "1 file checked, 2 rules: 0 errors, 0 warnings\n"
    assert run("check", "--strict", "clean.spec").exit_code == 0


def test_check_warnings_exit_0_unless_strict(specs):
    r = run("check", "warn.spec")
    assert r.exit_code == 0
    assert "warning[W401]" in r.stdout
    assert r.stderr == "1 file checked, 1 rule: 0 errors, 1 warning\n"
    assert run("check", "--strict", "warn.spec").exit_code == 1


def test_check_errors_exit_1(specs):
    r = run("check", "broken.spec")
    assert r.exit_code == 1
    assert [m.group(1) for m in re.finditer(r"error\[(E\d+)\]", r.stdout)] == ["E101", "E301"]
    assert r.stderr == "1 file checked: 2 errors, 0 warnings\n"


def test_check_several_files_sums_up(specs):
    r = run("check", "clean.spec", "warn.spec", "broken.spec")
    assert r.exit_code == 1
    assert r.stderr.endswith("3 files checked: 2 errors, 1 warning\n")


def test_check_missing_file_is_a_diagnostic(specs):
    r = run("check", "nope.spec")
    assert r.exit_code == 1
    assert r.stdout.startswith("nope.spec:1:1: error[E201]: no such spec file: nope.spec\n")


def test_check_undecodable_file_is_a_diagnostic(specs):
    (specs / "latin1.spec").write_bytes('spec a.b version "1.0.0"\n"""Caf\xe9."""\n'.encode("latin-1"))
    r = run("check", "latin1.spec")
    assert r.exit_code == 1
    assert "error[E201]: cannot read latin1.spec" in r.stdout


@pytest.mark.parametrize("args", [
    ["check"],
    ["check", "--format", "xml", "clean.spec"],
    ["check", "--bogus", "clean.spec"],
    ["check", "."],
    ["no-such-command"],
])
def test_usage_errors_exit_2(specs, args):
    r = run(*args)
    assert r.exit_code == 2
    assert "Usage:" in r.stderr or "Error:" in r.stderr


def test_check_json_shape(specs):
    r = run("check", "--format", "json", "broken.spec", "warn.spec")
    assert r.exit_code == 1
    diags = json.loads(r.stdout)
    assert [d["code"] for d in diags] == ["E101", "E301", "W401"]
    for d in diags:
        assert set(d) == {"code", "name", "level", "message", "span", "notes"}
        assert set(d["span"]) == {"file", "start_line", "start_col", "end_line", "end_col"}
        assert d["name"] == CODES[d["code"]].name
        assert d["level"] == ("error" if d["code"].startswith("E") else "warning")
    first = diags[0]
    assert first["span"] == {"file": "broken.spec", "start_line": 4, "start_col": 12, "end_line": 4, "end_col": 21}
    assert first["message"] == "expected a string after `must_not`, found `authority`"
    assert json.loads(run("check", "--format", "json", "clean.spec").stdout) == []


def test_check_json_notes(specs):
    (specs / "dup.spec").write_text('spec a.b version "1.0.0"\n"""D."""\nrule x { must "A." check max_words(1) }\n'
                                    'rule x { must "B." check max_words(2) }\n', encoding="utf-8")
    (d,) = json.loads(run("check", "--format", "json", "dup.spec").stdout)
    assert d["code"] == "E205"
    assert d["notes"] == [{"message": "first declared here", "span": {
        "file": "dup.spec", "start_line": 3, "start_col": 6, "end_line": 3, "end_col": 7}}]


def test_check_github_annotations(specs):
    r = run("check", "--format", "github", "broken.spec", "warn.spec")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines[0] == ("::error file=broken.spec,line=4,col=12,endLine=4,endColumn=21,title=E101 syntax::"
                        "expected a string after `must_not`, found `authority`")
    pattern = re.compile(r"^::(error|warning) file=[^,]+,line=\d+,col=\d+,endLine=\d+,endColumn=\d+,"
                         r"title=[EW]\d{3} [a-z-]+::\S.*$")
    assert len(lines) == 3 and all(pattern.match(x) for x in lines)
    assert lines[2].startswith("::warning file=warn.spec,line=3,")
    assert run("check", "--format", "github", "clean.spec").stdout == ""


def test_github_escapes_newlines():
    from specc.diagnostics import Diagnostic, Span, render_github

    out = render_github([Diagnostic("E101", "line one\nline two 100%", Span("a.spec", 1, 1, 1, 2))])
    assert out.endswith("::line one%0Aline two 100%25")


# -- inspect ------------------------------------------------------------------------------


def test_inspect_json_has_rules_with_ids_hashes_and_spans(specs):
    r = run("inspect", "--format", "json", "clean.spec")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert (data["id"], data["version"], len(data["hash"])) == ("acme.clean", "1.0.0", 32)
    rules = {x["id"]: x for x in data["rules"]}
    assert set(rules) == {"acme.clean.no_home_address", "acme.clean.concise"}
    rule = rules["acme.clean.no_home_address"]
    assert {k: rule[k] for k in ("statement", "modality", "authority", "severity")} == {
        "statement": "Reveal the home address of a private individual.", "modality": "must_not",
        "authority": "root", "severity": "critical"}
    assert re.fullmatch(r"[0-9a-f]{32}", rule["hash"])
    assert {k: rule["span"][k] for k in ("file", "start_line", "end_line")} == {
        "file": "clean.spec", "start_line": 7, "end_line": 12}
    assert rules["acme.clean.concise"]["checks_source"] == ["max_words(120) and not refuses"]


def test_inspect_json_matches_the_schema(specs):
    schema = json.loads(run("schema").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(run("inspect", "--format", "json", "clean.spec").stdout), schema)


def test_inspect_text(specs):
    r = run("inspect", "clean.spec")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"spec acme\.clean version 1\.0\.0  hash [0-9a-f]{32}", lines[0])
    assert "  axis tactic = ['direct', 'roleplay']" in lines
    assert "2 rules:" in lines
    assert any(re.fullmatch(r"  acme\.clean\.no_home_address  \[[0-9a-f]{12}\]  rule must_not · root · critical"
                            r"  \(clean\.spec:7\)", x) for x in lines)
    assert "      check max_words(120) and not refuses" in lines


def test_inspect_of_a_broken_spec_exits_1_with_errors_on_stderr(specs):
    r = run("inspect", "--format", "json", "broken.spec")
    assert r.exit_code == 1 and r.stdout == ""
    body, last = r.stderr.rsplit("\n", 2)[0], r.stderr.splitlines()[-1]
    assert [d["code"] for d in json.loads(body)] == ["E101", "E301"]
    assert last == "broken.spec: 2 error(s); fix them first (see `specc check broken.spec`)"
    r = run("inspect", "broken.spec")
    assert r.exit_code == 1 and "error[E101]" in r.stderr


# -- schema, explain, version ---------------------------------------------------------------


def test_schema_is_a_json_schema(specs):
    r = run("schema")
    assert r.exit_code == 0
    schema = json.loads(r.stdout)
    assert "$defs" in schema and "properties" in schema
    assert {"id", "version", "rules", "hash"} <= set(schema["properties"])
    assert {"id", "hash", "statement", "modality", "authority", "severity", "span"} <= set(
        schema["$defs"]["Rule"]["properties"])
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("code", ["E101", "e101", "syntax"])
def test_explain_by_code_or_name(code):
    r = run("explain", code)
    assert r.exit_code == 0
    assert r.stdout.startswith("E101 syntax (error)\n\nthe text is not valid spec syntax.\n\n")
    assert "expected a string after must_not" in r.stdout


def test_explain_unknown_check_by_name():
    r = run("explain", "unknown-check")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0] == "E301 unknown-check (error)"
    assert "max_words" in r.stdout


def test_explain_lists_every_code():
    r = run("explain")
    assert r.exit_code == 0
    from specc.synth.gates import GATES

    # diagnostics first, then the quality gates (Q1xx)
    assert [line.split()[0] for line in r.stdout.splitlines()] == list(CODES) + [g.code for g in GATES]


@pytest.mark.parametrize("code", ["E999", "bogus"])
def test_explain_bogus_code_exits_2(code):
    r = run("explain", code)
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr == f"unknown diagnostic code {code!r}; run `specc explain` for the list\n"


def test_every_command_has_help():
    for name in main.commands:
        r = run(name, "--help")
        assert r.exit_code == 0 and r.stdout.startswith("Usage:"), name


def test_console_script_runs_as_a_module(specs):
    """The real process: no traceback, exit code and streams as CliRunner shows them."""
    p = subprocess.run([sys.executable, "-m", "specc.cli", "check", "broken.spec"], capture_output=True, text=True,
                       cwd=specs, timeout=60)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert p.stdout.startswith("broken.spec:4:12: error[E101]:")
    assert p.stderr == "1 file checked: 2 errors, 0 warnings\n"
