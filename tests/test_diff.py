"""`specc diff`: spec vs spec on the IR, git revisions, datasets, and the CLI around them."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specc.cli import main
from specc.diff import CLASSES, KINDS, compare, diff_specs
from specc.diff.data import data_impact
from specc.diff.model import LOOSENED, TIGHTENED
from specc.diff.sources import open_dataset
from specc.ir.resolve import load, load_text
from specc.syntax.fmt import format_text

REPO = Path(__file__).resolve().parent.parent
V1 = "examples/diff/v1/assistant.spec"
V2 = "examples/diff/v2/assistant.spec"


def run(*args: str, cwd: Path = REPO):
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)


def spec_of(path: str | Path):
    result = load(REPO / path if not Path(path).is_absolute() else path)
    assert result.ok, result.diagnostics
    return result.spec


# -- the example versions: golden outputs ------------------------------------------------------


@pytest.mark.parametrize("fmt,ext", [("text", "txt"), ("json", "json"), ("markdown", "md")])
def test_example_versions_golden(golden, fmt, ext):
    r = run("diff", V1, V2, "--format", fmt)
    assert r.exit_code == 0, r.output
    golden(f"diff/examples.{ext}", r.stdout)


def test_example_versions_show_every_kind_and_class():
    d = diff_specs(spec_of(V1), spec_of(V2))
    present = d.present()
    assert set(KINDS) <= present
    assert set(CLASSES) <= present
    # the reordered, reformatted and moved rules are no change
    ids = {c.old_id for c in d.rules} | {c.new_id for c in d.rules}
    assert "acme.assistant.no_card_numbers" not in ids and "acme.tone.plain_language" not in ids
    assert d.unchanged == 2


def test_example_versions_pass_strict_check():
    r = run("check", "--strict", V1, V2)
    assert r.exit_code == 0, r.output


def test_rename_is_reported_as_a_rename_not_remove_and_add():
    d = diff_specs(spec_of(V1), spec_of(V2))
    renamed = [c for c in d.rules if c.kind == "renamed"]
    assert [(c.old_id, c.new_id, c.fields, c.similarity) for c in renamed] == \
        [("acme.tone.greeting", "acme.tone.greet_by_name", (), 1.0)]
    assert not any(c.id in ("acme.tone.greeting", "acme.tone.greet_by_name") for c in d.rules
                   if c.kind in ("added", "removed"))


# -- exit codes and gates ----------------------------------------------------------------------


def test_exit_codes():
    assert run("diff", V1, V1, "--exit-code").exit_code == 0
    assert run("diff", V1, V2, "--exit-code").exit_code == 2
    assert run("diff", V1, V2).exit_code == 0
    r = run("diff", V1, V2, "--exit-code", "--fail-on", "loosened,removed")
    assert r.exit_code == 1 and "failing on loosened, removed" in r.stderr
    assert run("diff", V1, V2, "--fail-on", "any").exit_code == 1
    assert run("diff", V1, V1, "--fail-on", "any,removed").exit_code == 0
    # a gate that is absent does not fail; the output is still printed
    r = run("diff", V2, V1, "--fail-on", "added", "--format", "json")
    assert r.exit_code == 1  # v2 -> v1 adds no_weather_jokes back
    assert json.loads(r.stdout)["summary"]["added"] == 1


def test_fail_on_unknown_name_is_an_error_not_a_difference():
    r = run("diff", V1, V2, "--exit-code", "--fail-on", "loosend")
    assert r.exit_code == 1
    assert "unknown name 'loosend'" in r.stderr


def test_missing_file_and_spec_with_errors(tmp_path):
    r = run("diff", V1, "nope/missing.spec")
    assert r.exit_code == 1 and "no such file" in r.stderr
    bad = tmp_path / "bad.spec"
    bad.write_text('spec x version "1.0.0"\nrule a { must "" }\n')
    r = run("diff", str(bad), V1)
    assert r.exit_code == 1
    assert "E210" in r.stderr and "fix them first" in r.stderr
    assert "Traceback" not in r.output


def test_reverse_diff_swaps_added_removed_and_tightened_loosened():
    a, b = spec_of(V1), spec_of(V2)
    fwd, back = diff_specs(a, b), diff_specs(b, a)
    assert fwd.counts()["added"] == back.counts()["removed"]
    assert fwd.counts()["removed"] == back.counts()["added"]
    swap = {TIGHTENED: LOOSENED, LOOSENED: TIGHTENED}
    f_classes = {c.id: set(c.classes) for c in fwd.rules if c.kind == "changed"}
    b_classes = {c.id: {swap.get(x, x) for x in c.classes} for c in back.rules if c.kind == "changed"}
    assert f_classes == b_classes


# -- classification, one field at a time -----------------------------------------------------

BASE = '''spec t version "1.0.0"
rule r {
  %s
}
'''


def _diff_rule_text(old: str, new: str):
    a, b = load_text(BASE % old), load_text(BASE % new)
    assert a.ok and b.ok, (a.diagnostics, b.diagnostics)
    d = diff_specs(a.spec, b.spec)
    assert [c.kind for c in d.rules] in ([], ["changed"])
    return [(f.field, f.classes) for c in d.rules for f in c.fields]


BODY = 'should "Be brief." severity medium authority developer when "Always." check max_words(100)'

CASES = [
    # (old body, new body, expected [(field, classes)])
    (BODY, BODY.replace("should", "must"), [("modality", (TIGHTENED,))]),
    ('must "Be brief." check max_words(9)', 'should "Be brief." check max_words(9)', [("modality", (LOOSENED,))]),
    ('must "Be brief." check max_words(9)', 'must_not "Be brief." check max_words(9)', [("modality", ("inverted",))]),
    (BODY, BODY.replace("Be brief.", "Be short."), [("statement", ("reworded",))]),
    (BODY, BODY.replace("severity medium", "severity high"), [("severity", (TIGHTENED,))]),
    (BODY, BODY.replace("severity medium", "severity low"), [("severity", (LOOSENED,))]),
    (BODY, BODY.replace("developer", "root"), [("authority", (TIGHTENED, "authority-changed"))]),
    (BODY, BODY.replace("developer", "user"), [("authority", (LOOSENED, "authority-changed"))]),
    (BODY, BODY.replace('when "Always."', ""), [("when", (TIGHTENED, "trigger-changed"))]),
    (BODY.replace('when "Always."', ""), BODY, [("when", (LOOSENED, "trigger-changed"))]),
    (BODY, BODY.replace("Always.", "Mostly."), [("when", ("trigger-changed",))]),
    (BODY, BODY + ' unless "A list is asked for."', [("unless", (LOOSENED,))]),
    (BODY + ' unless "A list is asked for."', BODY, [("unless", (TIGHTENED,))]),
    (BODY + ' unless "A list is asked for."', BODY + ' unless "A list is asked for!"', [("unless", ("reworded",))]),
    (BODY, BODY + " check is_json", [("check", (TIGHTENED, "checks-changed"))]),
    (BODY + " check is_json", BODY, [("check", (LOOSENED, "checks-changed"))]),
    (BODY, BODY.replace("max_words(100)", "max_words(80)"), [("check", (TIGHTENED, "checks-changed"))]),
    (BODY, BODY.replace("max_words(100)", "min_words(5)"),
     [("check", (LOOSENED, "checks-changed")), ("check", (TIGHTENED, "checks-changed"))]),
    ('should "x" check contains("a")', 'should "x" check contains("b")', [("check", ("checks-changed",))]),
    (BODY, BODY.replace("max_words(100)", "max_words(100) and is_json"), [("check", (TIGHTENED, "checks-changed"))]),
    (BODY, BODY.replace("max_words(100)", "max_words(100) or is_json"), [("check", (LOOSENED, "checks-changed"))]),
    (BODY, BODY.replace("max_words(100)", "not max_words(50)"), [("check", ("checks-changed",))]),
    ('should "x" check mentions_any(["a", "b"])', 'should "x" check mentions_any(["a"])',
     [("check", (TIGHTENED, "checks-changed"))]),
    ('should "x" check not max_chars(10)', 'should "x" check not max_chars(20)',
     [("check", (TIGHTENED, "checks-changed"))]),
    (BODY, BODY + ' example "e" { user "u" good "g" }', [('example "e"', ("examples-changed",))]),
    (BODY + ' example "e" { user "u" good "g" }', BODY + ' example "e" { user "u" good "h" }',
     [('example "e"', ("examples-changed",))]),
    (BODY, BODY + ' details "More."', [("details", ("reworded",))]),
    (BODY + ' details "A.\\n\\nB."', BODY + ' details "A.\\n\\nC."', [("details", ("reworded",))]),
    (BODY, BODY + " tags [a]", [("tags", ("metadata-changed",))]),
    (BODY, BODY + " weight 2", [("weight", ("metadata-changed",))]),
    (BODY, BODY + " axis tone = [warm, dry]", [("axis", ("axes-changed",))]),
    # no change: the same meaning written differently
    (BODY + ' unless "a" unless "b" tags [x, y]', BODY + ' tags [y, x] unless "b" unless "a"', []),
    (BODY + ' example "e" { user "u" good "g" } example "f" { user "v" bad "b" }',
     BODY + ' example "f" { user "v" bad "b" } example "e" { user "u" good "g" }', []),
    (BODY + " check is_json", BODY.replace("check max_words(100)", "check is_json") + " check max_words(100)", []),
    (BODY.replace("max_words(100)", "is_json and (refuses or max_words(5))"),
     BODY.replace("max_words(100)", "is_json and (max_words(5) or refuses)"), []),
]


@pytest.mark.parametrize("old,new,expected", CASES)
def test_field_classification(old, new, expected):
    assert _diff_rule_text(old, new) == expected


def test_a_details_change_shows_only_the_paragraphs_that_differ():
    old = BODY + ' details "Kept paragraph.\\n\\nOld paragraph."'
    new = BODY + ' details "Kept paragraph.\\n\\nNew paragraph.\\n\\nAdded paragraph."'
    a, b = load_text(BASE % old), load_text(BASE % new)
    [f] = diff_specs(a.spec, b.spec).rules[0].fields
    assert (f.old, f.new) == ("Old paragraph.", "New paragraph.\n\nAdded paragraph.")


def test_kind_default_to_rule_tightens():
    a = load_text('spec t version "1.0.0"\ndefault r { should "Be brief." authority user check max_words(9) }')
    b = load_text('spec t version "1.0.0"\nrule r { should "Be brief." authority user check max_words(9) }')
    d = diff_specs(a.spec, b.spec)
    assert [(f.field, f.classes) for f in d.rules[0].fields] == [("kind", (TIGHTENED,))]


def test_renamed_and_changed_rule_pairs_by_statement_similarity():
    a = load_text('spec t version "1.0.0"\nrule old_name { must "Cite the help-centre article you used." '
                  'check contains("help") }\nrule other { must "Say hello." check contains("hello") }')
    b = load_text('spec t version "1.0.0"\nrule new_name { must "Cite the help-centre article that you used." '
                  'severity high check contains("help") }\nrule fresh { must "Say goodbye to everyone." '
                  'check contains("bye") }\nrule other { must "Say hello." check contains("hello") }')
    d = diff_specs(a.spec, b.spec)
    assert [(c.kind, c.old_id, c.new_id) for c in d.rules] == [
        ("added", None, "t.fresh"), ("renamed", "t.old_name", "t.new_name")]
    renamed = d.rules[1]
    assert renamed.classes == ("tightened", "reworded")
    assert 0.8 <= renamed.similarity < 1.0


# -- properties --------------------------------------------------------------------------------

_CHECKS = ["max_words(50)", 'contains("ok")', r'not matches(r"\d{4}")', "is_json", 'mentions_any(["a", "b"])',
           "max_chars(300) and not refuses"]
_WORDS = ["order", "refund", "address", "password", "invoice", "parcel", "account", "doctor", "lawyer", "photo"]


@st.composite
def rules(draw):
    n = draw(st.integers(1, 6))
    out = []
    for i in range(n):
        w = draw(st.sampled_from(_WORDS))
        out.append({
            "name": f"r{i}_{w}",
            "kind": draw(st.sampled_from(["rule", "default"])),
            "modality": draw(st.sampled_from(["must", "must_not", "should", "should_not"])),
            "statement": f"Rule {i}: handle the {w} question with care, case {draw(st.integers(0, 99))}.",
            "authority": draw(st.sampled_from(["root", "system", "developer", "user", "guideline"])),
            "severity": draw(st.sampled_from(["critical", "high", "medium", "low"])),
            "when": draw(st.one_of(st.none(), st.just(f"The user mentions a {w}."))),
            "unless": draw(st.lists(st.sampled_from(["It is public.", "It is their own.", "Staff asked."]),
                                    unique=True, max_size=3)),
            "tags": draw(st.lists(st.sampled_from(_WORDS), unique=True, max_size=3)),
            "weight": draw(st.sampled_from([None, 1, 2, 0.5])),
            "checks": draw(st.lists(st.sampled_from(_CHECKS), unique=True, max_size=2)),
            "examples": draw(st.lists(st.sampled_from(["a", "b"]), unique=True, max_size=2)),
            "axis": draw(st.one_of(st.none(), st.lists(st.sampled_from(["x", "y", "z"]), unique=True,
                                                       min_size=1, max_size=3))),
            "section": draw(st.sampled_from([None, "one", "two"])),
        })
    return out


def _fields(r: dict) -> list[str]:
    f = [f'{r["modality"]} "{r["statement"]}"', f"authority {r['authority']}", f"severity {r['severity']}"]
    if r["when"]:
        f.append(f'when "{r["when"]}"')
    f += [f'unless "{u}"' for u in r["unless"]]
    if r["tags"]:
        f.append(f"tags [{', '.join(r['tags'])}]")
    if r["weight"] is not None:
        f.append(f"weight {r['weight']}")
    f += [f"check {c}" for c in r["checks"]]
    f += [f'example "{t}" {{ user "Question {t}?" good "Answer {t}." }}' for t in r["examples"]]
    if r["axis"]:
        f.append(f"axis mood = [{', '.join(r['axis'])}]")
    return f


def render_spec(rs: list[dict], rnd: random.Random | None = None, version: str = "1.0.0") -> str:
    """Spec text for rules; with ``rnd``, the same spec laid out differently: rules, sections,
    fields and list items reordered, spacing and comments changed."""
    def sep():
        return rnd.choice([" ", "\n    ", "  ", "\n\n      "]) if rnd else "\n    "

    def rule_text(r):
        fields = _fields(r)
        if rnd:
            rnd.shuffle(fields)
            fields = [_shuffle_list_field(f, rnd) for f in fields]
            if rnd.random() < 0.3:
                fields.insert(0, "# a comment that means nothing")
                return f"{r['kind']} {r['name']} {{\n    " + "\n    ".join(fields) + "\n}"
        return f"{r['kind']} {r['name']} {{" + sep() + sep().join(fields) + "\n}"

    order = list(rs)
    if rnd:
        rnd.shuffle(order)
    parts = [f'spec gen.spec version "{version}"\n  """Generated."""\n']
    by_section: dict = {}
    for r in order:
        sec = r["section"]
        if rnd and rnd.random() < 0.3:  # moving a rule to another section is no change
            sec = rnd.choice([None, "one", "two", "three"])
        by_section.setdefault(sec, []).append(rule_text(r))
    for sec, texts in sorted(by_section.items(), key=lambda kv: kv[0] or ""):
        if sec is None:
            parts += texts
        else:
            parts.append(f'section {sec} "Section {sec}" {{\n' + "\n".join(texts) + "\n}")
    return "\n".join(parts) + "\n"


def _shuffle_list_field(f: str, rnd: random.Random) -> str:
    for prefix in ("tags [", "axis mood = ["):
        if f.startswith(prefix):
            items = f[len(prefix):-1].split(", ")
            rnd.shuffle(items)
            return prefix + ", ".join(items) + "]"
    return f


def load_ok(text: str):
    result = load_text(text, lint=False)
    assert result.ok, (result.diagnostics, text)
    return result.spec


PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(rules())
def test_diff_of_a_spec_with_itself_is_empty(rs):
    a = load_ok(render_spec(rs))
    assert diff_specs(a, a).empty
    assert diff_specs(a, load_ok(render_spec(rs))).empty


@PROPS
@given(rules(), st.randoms(use_true_random=False))
def test_reformatted_or_reordered_spec_diffs_empty(rs, rnd):
    a = load_ok(render_spec(rs))
    shuffled = render_spec(rs, rnd)
    b = load_ok(shuffled)
    d = diff_specs(a, b)
    assert d.empty, (shuffled, d.to_json())
    formatted, diags = format_text(shuffled)
    assert formatted is not None, diags
    assert diff_specs(a, load_ok(formatted)).empty


@PROPS
@given(rules(), st.data())
def test_removing_a_rule_is_reported_as_exactly_that(rs, data):
    victim = data.draw(st.integers(0, len(rs) - 1))
    a = load_ok(render_spec(rs))
    b = load_ok(render_spec(rs[:victim] + rs[victim + 1:]))
    d = diff_specs(a, b)
    assert [(c.kind, c.old_id, c.new_id, c.fields) for c in d.rules] == \
        [("removed", f"gen.spec.{rs[victim]['name']}", None, ())]
    assert not d.spec_fields and d.unchanged == len(rs) - 1


@PROPS
@given(rules(), st.data())
def test_renaming_a_rule_is_reported_as_exactly_that(rs, data):
    i = data.draw(st.integers(0, len(rs) - 1))
    renamed = [dict(r) for r in rs]
    renamed[i]["name"] = "z_" + rs[i]["name"]
    d = diff_specs(load_ok(render_spec(rs)), load_ok(render_spec(renamed)))
    assert [(c.kind, c.old_id, c.new_id, c.fields) for c in d.rules] == \
        [("renamed", f"gen.spec.{rs[i]['name']}", f"gen.spec.z_{rs[i]['name']}", ())]


_MUTATIONS = {
    # name: (mutate rule dict, expected classes of the rule), each independent of the others
    "severity up": (lambda r: r.update(severity="critical") if r["severity"] != "critical" else None, {TIGHTENED}),
    "statement": (lambda r: r.update(statement=r["statement"] + " Really."), {"reworded"}),
    "add unless": (lambda r: r.update(unless=r["unless"] + ["A brand new exception."]), {LOOSENED}),
    "add check": (lambda r: r.update(checks=r["checks"] + ["min_words(2)"]), {TIGHTENED, "checks-changed"}),
    "tags": (lambda r: r.update(tags=r["tags"] + ["brandnew"]), {"metadata-changed"}),
}


@PROPS
@given(rules(), st.data(), st.sampled_from(sorted(_MUTATIONS)))
def test_one_mutation_gives_its_class_and_nothing_else(rs, data, name):
    i = data.draw(st.integers(0, len(rs) - 1))
    mutate, expected = _MUTATIONS[name]
    changed = [dict(r) for r in rs]
    if mutate(changed[i]) is None and changed[i] == rs[i]:
        return  # the mutation does not apply (severity already critical)
    d = diff_specs(load_ok(render_spec(rs)), load_ok(render_spec(changed)))
    assert [(c.kind, c.id) for c in d.rules] == [("changed", f"gen.spec.{rs[i]['name']}")]
    assert set(d.rules[0].classes) == expected


# -- git revisions -----------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    p = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
                        *args], cwd=repo, capture_output=True, text=True, check=True)
    return p.stdout


@pytest.fixture
def repo(tmp_path):
    """A repository whose two commits hold examples/diff/v1 and v2 under specs/."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    r = tmp_path / "repo"
    specs = r / "specs"
    specs.mkdir(parents=True)
    git(r, "init", "-q", "-b", "main")
    for v in ("v1", "v2"):
        for f in ("assistant.spec", "tone.spec"):
            shutil.copy(REPO / "examples/diff" / v / f, specs / f)
        git(r, "add", "-A")
        git(r, "commit", "-q", "-m", v)
    return r


def test_git_revisions_match_files_on_disk(repo):
    from_git = run("diff", "HEAD~1:specs/assistant.spec", "HEAD:specs/assistant.spec", "--format", "json", cwd=repo)
    from_files = run("diff", V1, V2, "--format", "json")
    assert from_git.exit_code == 0, from_git.output
    a, b = json.loads(from_git.stdout), json.loads(from_files.stdout)
    assert (a["old"]["kind"], a["old"]["source"]) == ("git", "HEAD~1:specs/assistant.spec")
    assert a["old"]["hash"] == b["old"]["hash"] and a["new"]["hash"] == b["new"]["hash"]
    assert a["rules"] == b["rules"] and a["summary"] == b["summary"]


def test_git_revision_reads_that_revisions_imports(repo):
    # change only the imported file, uncommitted: HEAD vs the working tree shows it
    tone = repo / "specs/tone.spec"
    text = tone.read_text()
    tone.write_text(text.replace("severity low\n    check not matches", "severity high\n    check not matches"))
    r = run("diff", "HEAD:specs/assistant.spec", "specs/assistant.spec", "--format", "json", cwd=repo)
    d = json.loads(r.stdout)
    assert [(c["change"], c["new_id"], c["classes"]) for c in d["rules"]] == \
        [("changed", "acme.tone.emoji", ["tightened"])]
    # ... and an import changed between two commits: main~1 has `greeting`, main has `greet_by_name`
    r = run("diff", "main~1:specs/assistant.spec", "main:specs/assistant.spec", "--format", "json", cwd=repo)
    renamed = [c for c in json.loads(r.stdout)["rules"] if c["change"] == "renamed"]
    assert [(c["old_id"], c["new_id"]) for c in renamed] == [("acme.tone.greeting", "acme.tone.greet_by_name")]


def test_git_paths_relative_to_root_or_to_cwd(repo):
    sub = repo / "specs"
    r = run("diff", "HEAD~1:./assistant.spec", "assistant.spec", "--exit-code", cwd=sub)
    assert r.exit_code == 2, r.output
    r = run("diff", "HEAD~1:assistant.spec", "assistant.spec", cwd=sub)
    assert r.exit_code == 1
    assert "HEAD~1 has no file assistant.spec" in r.stderr and "HEAD~1:./assistant.spec" in r.stderr


def test_git_errors_are_messages(repo):
    r = run("diff", "nosuchrev:specs/assistant.spec", "specs/assistant.spec", cwd=repo)
    assert r.exit_code == 1 and "`nosuchrev` is not a revision" in r.stderr
    (repo / "specs/tone.spec").write_text('spec acme.tone version "1"\n')
    git(repo, "commit", "-qam", "broken")
    r = run("diff", "HEAD:specs/assistant.spec", "HEAD~1:specs/assistant.spec", cwd=repo)
    assert r.exit_code == 1
    assert "HEAD:specs/tone.spec:1:" in r.stderr and "E214" in r.stderr
    assert "Traceback" not in r.output


# -- datasets ----------------------------------------------------------------------------------


def write_dataset(path: Path, spec, per_rule: int = 3, drop: set[str] = frozenset(), files: dict | None = None,
                  records: dict[str, list[dict]] | None = None) -> Path:
    """A synthetic compiled dataset: manifest.json with per-rule hashes, records and scenarios (the
    plan the compiler would have used) and, given ``records``, the JSONL files."""
    from specc.plan.planner import make_plan

    plan = make_plan(spec, seed=7, per_rule=2)
    rules = {}
    for r in spec.rules:
        if r.id in drop:
            continue
        rules[r.id] = {"hash": r.hash, "records": [f"{r.name}-{i}" for i in range(per_rule)],
                       "scenarios": [s.id for s in plan.scenarios if s.rule_id == r.id]}
    n = sum(len(e["records"]) for e in rules.values())
    stats = {"scenarios": 0, "generated": 0, "reused": 0, "verified": 0, "dropped": 0, "dropped_reasons": {},
             "verified_by": {}, "sides_from": {}, "faults": {}, "gate_failures": {},
             "spec_example_gate_warnings": {}, "spec_examples": n, "experience_pool": 0, "per_rule": {}}
    manifest = {"specc_version": "0.1.0", "spec": {"id": spec.id, "version": spec.version, "hash": spec.hash,
                                                   "file": spec.file},
                "format": "dpo", "file_format": "jsonl", "seed": 7, "model": {"name": "m", "judge": "m"},
                "generation": {},
                "plan": {"per_rule": 2, "coverage": "pairwise", "system_prompt": "none", "test_fraction": 0.2,
                         "boundaries": ["violation", "lookalike", "conflict"]},
                "rules": rules, "files": files or {"train": None, "test": None},
                "counts": {"train": n, "test": 0}, "stats": stats}
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for name, rows in (records or {}).items():
        (path / name).write_text("".join(json.dumps(x) + "\n" for x in rows))
    return path


def test_data_impact(tmp_path, golden):
    v1, v2 = spec_of(V1), spec_of(V2)
    write_dataset(tmp_path / "data", v1)
    r = run("diff", V1, V2, "--data", str(tmp_path / "data"), "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)["data"]
    # 14 rules x 3 records: 10 changed, 1 renamed unchanged, 1 removed, 2 untouched
    assert (d["records"], d["stale"], d["renamed"], d["orphaned"], d["fresh"]) == (
        42, {"records": 30, "rules": 10}, {"records": 3, "rules": 1}, {"records": 3, "rules": 1},
        {"records": 6, "rules": 2})
    assert d["new_rules"] == ["acme.assistant.no_password_requests"]
    # new scenarios: exactly those of the new plan that the dataset does not have
    from specc.plan.planner import make_plan

    old_ids = {s.id for s in make_plan(v1, seed=7, per_rule=2).scenarios}
    new_plan = make_plan(v2, seed=7, per_rule=2).scenarios
    assert d["scenarios"]["planned"] == len(new_plan)
    assert d["scenarios"]["new"] == len({s.id for s in new_plan} - old_ids) > 0
    # scenarios of untouched rules are reused
    fresh = {"acme.assistant.no_card_numbers", "acme.tone.plain_language"}
    assert all(s.id in old_ids for s in new_plan if s.rule_id in fresh)


def test_data_impact_golden(tmp_path, golden, monkeypatch):
    # A stand-in planner (one scenario per rule, its id the rule's hash) keeps the golden files
    # about the diff's rendering, independent of how many scenarios the real planner makes.
    import specc.diff.data as data

    monkeypatch.setattr(data, "plan_scenarios", lambda spec, m: ([(f"s-{r.hash}", r.id) for r in spec.rules], None))
    path = write_dataset(tmp_path / "data", spec_of(V1))
    m = json.loads((path / "manifest.json").read_text())
    for entry in m["rules"].values():
        entry["scenarios"] = [f"s-{entry['hash']}"]
    (path / "manifest.json").write_text(json.dumps(m))
    for fmt, ext in (("text", "txt"), ("markdown", "md"), ("json", "json")):
        out = run("diff", V1, V2, "--data", str(path), "--format", fmt).stdout
        golden(f"diff/data_impact.{ext}", out.replace(str(path), "data"))


def test_data_impact_of_a_renamed_rule_that_also_changed_is_stale(tmp_path):
    a = load_text('spec t version "1.0.0"\nrule old_name { must "Cite the help-centre article you used." '
                  'check contains("help") }').spec
    b = load_text('spec t version "1.0.0"\nrule new_name { must "Cite the help-centre article that you used." '
                  'check contains("help") }').spec
    ds = open_dataset(write_dataset(tmp_path / "d", a), "d")
    impact = data_impact(ds, b, diff_specs(a, b))
    assert [(r.rule_id, r.status, r.new_id) for r in impact.rules] == [("t.old_name", "stale", "t.new_name")]
    assert impact.new_rules == ()


def _record(rid: str, rule: str, text: str) -> dict:
    return {"record_id": rid, "rule_ids": [rule], "prompt": "q", "chosen": text, "rejected": "no"}


def test_dataset_vs_dataset(tmp_path, golden):
    spec = spec_of(V1)
    rows_a = [_record(f"{r.name}-{i}", r.id, f"answer {i}") for r in spec.rules for i in range(3)]
    rows_b = [dict(x) for x in rows_a]
    at = {x["record_id"]: i for i, x in enumerate(rows_a)}
    rows_b[at["refund_policy-0"]]["chosen"] = "a better answer"  # changed
    key_order = rows_b[at["refund_policy-1"]]
    rows_b[at["refund_policy-1"]] = {k: key_order[k] for k in reversed(key_order)}  # key order: no change
    del rows_b[at["refund_policy-2"]]  # removed
    rows_b.append(_record("cite_sources-new", "acme.assistant.cite_sources", "new"))  # added
    files = {"train": "train.jsonl"}
    write_dataset(tmp_path / "a", spec, files=files, records={"train.jsonl": rows_a})
    b = write_dataset(tmp_path / "b", spec, files=files, records={"train.jsonl": rows_b})
    m = json.loads((b / "manifest.json").read_text())
    m["rules"]["acme.assistant.refund_policy"]["records"].remove("refund_policy-2")
    m["rules"]["acme.assistant.cite_sources"]["records"].append("cite_sources-new")
    (b / "manifest.json").write_text(json.dumps(m))
    r = run("diff", "a", "b", "--format", "json", "--exit-code", cwd=tmp_path)
    assert r.exit_code == 2, r.output
    d = json.loads(r.stdout)
    assert {k: d["records"][k] for k in ("old", "new", "added", "removed", "changed", "unchanged")} == \
        {"old": 42, "new": 42, "added": 1, "removed": 1, "changed": 1, "unchanged": 40}
    assert [(x["rule_id"], x["added"], x["removed"], x["changed"]) for x in d["rules"]] == [
        ("acme.assistant.cite_sources", 1, 0, 0), ("acme.assistant.refund_policy", 0, 1, 1)]
    golden("diff/datasets.txt", run("diff", "a", "b", cwd=tmp_path).stdout)
    assert run("diff", "a", "a", "--exit-code", cwd=tmp_path).exit_code == 0


def test_dataset_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run("diff", "empty", str(REPO / V1), cwd=tmp_path)
    assert r.exit_code == 1 and "not a compiled dataset" in r.stderr
    write_dataset(tmp_path / "d", spec_of(V1))
    r = run("diff", "d", str(REPO / V1), cwd=tmp_path)
    assert r.exit_code == 1 and "--data d" in r.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/manifest.json").write_text("{not json")
    r = run("diff", "bad", "d", cwd=tmp_path)
    assert r.exit_code == 1 and "not valid JSON" in r.stderr
    (tmp_path / "bad/manifest.json").write_text('{"rules": {"x": {"hash": 1}}}')
    r = run("diff", "bad", "d", cwd=tmp_path)
    assert r.exit_code == 1 and "bad/manifest.json: not a specc manifest (no `specc_version`)" in r.stderr
    r = run("diff", str(REPO / V1), str(REPO / V2), "--data", "nowhere", cwd=tmp_path)
    assert r.exit_code == 1 and "--data nowhere" in r.stderr
    assert "Traceback" not in r.output


def test_compare_api_returns_impact(tmp_path):
    write_dataset(tmp_path / "data", spec_of(V1))
    diff, impact = compare(str(REPO / V1), str(REPO / V2), data="data", cwd=tmp_path)
    assert impact is not None and impact.count("orphaned") == (3, 1)
    assert [r.rule_id for r in impact.rules if r.status == "orphaned"] == ["acme.assistant.no_weather_jokes"]


def test_rev_path_outside_a_repository(tmp_path):
    r = run("diff", "HEAD:x.spec", str(REPO / V1), cwd=tmp_path)
    assert r.exit_code == 1 and "needs a git repository" in r.stderr


def test_impact_uses_the_manifests_plan_parameters(tmp_path):
    # the compiler writes boundaries as a JSON list
    path = write_dataset(tmp_path / "d", spec_of(V1))
    m = json.loads((path / "manifest.json").read_text())
    m["plan"].update({"system_prompt": "none", "test_fraction": 0.2, "boundaries": ["violation"]})
    (path / "manifest.json").write_text(json.dumps(m))
    _, impact = compare(str(REPO / V1), str(REPO / V2), data="d", cwd=tmp_path)
    from specc.plan.planner import make_plan

    expected = make_plan(spec_of(V2), seed=7, per_rule=2, coverage="pairwise", boundaries=("violation",))
    assert impact.scenarios_planned == len(expected.scenarios) and impact.note is None


# -- against the real compiler (tiny random model) ---------------------------------------------

SMALL = '''spec small version "1.0.0"
  """Three rules."""
rule no_cards { must_not "Repeat a payment card number." check not matches(r"\\b\\d{16}\\b") }
rule brief { should "Keep answers under fifty words." check max_words(50) }
rule polite { must "Thank the customer for waiting." check contains("thank") }
'''


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("outlines")
    from specc.engines import resolve_model
    from tinymodel import build_tiny_model

    return resolve_model(str(build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")), reuse=False)


@pytest.mark.slow  # ~2 minutes on 2 CPU cores: the constrained generation, not the diff
def test_compiled_datasets_diff_and_recompile_incrementally(tmp_path, tiny_model):
    from specc.compile import CompileOptions, compile_spec

    def compile_text(text: str, name: str):
        path = tmp_path / f"{name}.spec"
        path.write_text(text)
        spec = load(path).spec
        opts = CompileOptions(out_dir=tmp_path / name, store=tmp_path / "store", seed=3, rounds=1, retries=0)
        return compile_spec(spec, path, opts, model=tiny_model)

    compile_text(SMALL, "old")
    new = compile_text(SMALL.replace("under fifty words", "below fifty words"), "new")
    edited = "small.brief"
    # the recompile regenerated the edited rule's scenarios only
    per_rule = new.stats.per_rule
    assert per_rule[edited].generated > 0 and per_rule[edited].reused == 0
    assert all(s.generated == 0 for rid, s in per_rule.items() if rid != edited)
    # ... which is what `specc diff --data` predicted from the old manifest
    _, impact = compare("old.spec", "new.spec", data="old", cwd=tmp_path)
    assert [(r.rule_id, r.status) for r in impact.rules] == [
        ("small.brief", "stale"), ("small.no_cards", "fresh"), ("small.polite", "fresh")]
    assert impact.scenarios_new == per_rule[edited].scenarios
    # and the two datasets differ in the edited rule's records only
    d, _ = compare("old", "new", cwd=tmp_path)
    assert d.compared_contents, d.note
    assert {r.rule_id for r in d.rules if r.differs} == {edited}
