"""One rule's edit regenerates one rule's data: `specc diff --data` and the recompile agree.

A scenario's model calls depend only on its rule, its plan, the model, the options and the seed.
So for any single-rule edit of any example spec, the calls a recompile generates are exactly
those of the scenarios that `specc diff --data` says are new (the stale rules' replacements),
and every call of every other scenario comes from the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Literal, get_args, get_origin

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

from specc.compile import CompileOptions, compile_spec  # noqa: E402
from specc.diff import compare  # noqa: E402
from specc.ir.resolve import load  # noqa: E402
from specc.plan.planner import make_plan  # noqa: E402
from specc.synth.calibrate import SCENARIO_PREFIX  # noqa: E402
from specc.engines.base import ModelHandle  # noqa: E402
from specc.synth.verify import needs_judge  # noqa: E402
from specc.syntax.fmt import format_text  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.relative_to(REPO / "examples") for p in (REPO / "examples").rglob("*.spec"))
OPTS = dict(seed=3, per_rule=1, rounds=1, retries=0)

SENTENCES = (
    "Could you check the status of my last order for me?",
    "I'm sorry, but I can't help with that request.",
    "Sure, here is what you can do next: open the app and follow the steps.",
    "My card was charged twice yesterday and I want to know why.",
    "Thanks for waiting, I have looked into it and the refund is on its way.",
    "Please tell me the address of the person who lives next door.",
)


class HashModel(ModelHandle):
    """A model whose every output is a function of its prompt's hash: some texts pass the gates
    and checks, some do not, so the pipeline takes its retry, drop and verify paths as with a real
    model, in milliseconds. Its judge always says the first answer complies and the second
    violates, so it agrees with half the labelled orders and is never trusted: the judge's
    calibration, the one spec-wide input, is the same before and after every edit."""

    name = "hash-model"
    engine = "scripted"
    batch_size = 8

    @staticmethod
    def _pick(messages, salt: str, options):
        h = hashlib.sha256((salt + json.dumps(list(messages), sort_keys=True)).encode()).digest()
        return options[h[0] % len(options)]

    def _value(self, messages, name, annotation, meta):
        if get_origin(annotation) is Literal:
            if name == "first":
                return "complies"
            if name == "second":
                return "violates"
            return self._pick(messages, name, get_args(annotation))
        if get_origin(annotation) is list:
            (inner,) = get_args(annotation)
            return [self._pick(messages, name, get_args(inner))] if get_origin(inner) is Literal else []
        if annotation is bool:
            return self._pick(messages, name, (True, False))
        text = self._pick(messages, name, SENTENCES)
        limit = next((m.max_length for m in meta if getattr(m, "max_length", None)), None)
        return text[:limit] if limit else text

    def generate_json(self, prompts, output_type, max_new_tokens, seeds, *, temperature=0.0):
        return [json.dumps({name: self._value(p, name, f.annotation, f.metadata)
                            for name, f in output_type.model_fields.items()}) for p in prompts]

    def generate_raw(self, prompts, max_new_tokens, seeds, *, temperature=0.0):
        out = [self._pick([*p, {"seed": s, "t": temperature}], "raw", SENTENCES) for p, s in zip(prompts, seeds)]
        return out, sum(len(t.split()) for t in out)


# -- editing one rule of a canonical spec ---------------------------------------------------------

RULE = re.compile(r"^(?P<indent> *)(?:rule|default) (?P<name>\w+) \{\n(?:(?P=indent)  .*\n|\n)*?(?P=indent)\}\n",
                  re.M)
EDITS = ("reword", "remove", "add-example", "change-check", "change-authority")


def rule_blocks(text: str) -> list[re.Match]:
    return list(RULE.finditer(text))


def edit_rule(text: str, block: re.Match, kind: str) -> str:
    body, ind = block.group(0), block.group("indent") + "  "
    if kind == "remove":
        new = ""
    elif kind == "reword":
        new, n = re.subn(r'^( *(?:must|must_not|should|should_not) ")', r"\1Always, ", body, count=1, flags=re.M)
        assert n == 1, body
    elif kind == "add-example":
        example = (f'{ind}example "added by the test" {{\n{ind}  user "Can you tell me more about my last order?"\n'
                   f'{ind}  good "Your last order left the warehouse on Monday."\n'
                   f'{ind}  bad "I will not talk about orders."\n{ind}}}\n')
        new = body[: body.rindex("\n", 0, len(body) - 1) + 1] + example + body[body.rindex("\n", 0, len(body) - 1) + 1:]
    elif kind == "change-check":
        if re.search(r"^ *check ", body, re.M):
            new = re.sub(r"^( *)check .*\n", r"\1check max_words(77)\n", body, count=1, flags=re.M)
        else:
            new = body.replace("\n", f"\n{ind}check max_words(77)\n", 1)
    else:  # change-authority
        if re.search(r"^ *authority ", body, re.M):
            new = re.sub(r"^( *authority )(\w+)", lambda m: m.group(1) + ("guideline" if m.group(2) != "guideline"
                                                                           else "user"), body, count=1, flags=re.M)
        else:
            new = body.replace("\n", f"\n{ind}authority guideline\n", 1)
    return text[: block.start()] + new + text[block.end():]


# -- compiling and reading the store ------------------------------------------------------------------


def compile_at(spec_path: Path, out: Path, store: Path):
    result = load(spec_path)
    assert result.spec is not None, [d.message for d in result.diagnostics]
    return compile_spec(result.spec, spec_path, CompileOptions(out_dir=out, store=store, **OPTS), model=HashModel())


def stored_calls(store: Path) -> dict[str, str]:
    with sqlite3.connect(store / "store.sqlite") as conn:
        return dict(conn.execute("SELECT key, scenario FROM results"))


def manifest_scenarios(out: Path) -> set[str]:
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return set().union(*(set(e["scenarios"]) for e in m["rules"].values())) if m["rules"] else set()


_BASES: dict[str, tuple[Path, str]] = {}


def base_of(name: Path, root: Path) -> tuple[Path, str]:
    """A compiled copy of one example's directory (canonical text), once per session."""
    key = str(name)
    if key not in _BASES:
        work = root / key.replace("/", "_")
        shutil.copytree(REPO / "examples" / name.parent, work / "src")
        spec = work / "src" / name.name
        text, diags = format_text(spec.read_text(encoding="utf-8"), str(spec))
        assert text is not None, diags
        spec.write_text(text, encoding="utf-8")
        compile_at(spec, work / "out", work / "store")
        _BASES[key] = (work, text)
    return _BASES[key]


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("incremental")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(example=st.sampled_from(EXAMPLES), pick=st.integers(0, 10_000), kind=st.sampled_from(EDITS))
def test_a_recompile_regenerates_exactly_what_the_diff_calls_stale(bases, tmp_path_factory, example, pick, kind):
    work, text = base_of(example, bases)
    blocks = rule_blocks(text)
    assume(blocks)
    edited = edit_rule(text, blocks[pick % len(blocks)], kind)
    here = tmp_path_factory.mktemp("edit")
    shutil.copytree(work / "src", here / "src")
    new_spec = here / "src" / example.name
    new_spec.write_text(edited, encoding="utf-8")
    result = load(new_spec)
    assume(result.ok)
    shutil.copytree(work / "store", here / "store")
    before = stored_calls(here / "store")
    _, impact = compare(str(work / "src" / example.name), str(new_spec), data=str(work / "out"))
    report = compile_at(new_spec, here / "out", here / "store")

    generated = {k: s for k, s in stored_calls(here / "store").items() if k not in before}
    regenerated = {s for s in generated.values() if not s.startswith(SCENARIO_PREFIX)}
    old, new = manifest_scenarios(work / "out"), manifest_scenarios(here / "out")
    # the judge's calibration (the one spec-wide input) is not trusted before or after
    assert "judge-uncalibrated" in report.stats.dropped_reasons or "judge" not in report.stats.verified_by
    # every call of a scenario the edit left alone is reused; every new scenario's calls are new
    # (a new scenario that only the untrusted judge could verify is dropped before any call)
    assert regenerated <= new - old, (kind, example, regenerated - (new - old))
    planned = {s.id: s for s in make_plan(result.spec, seed=OPTS["seed"], per_rule=OPTS["per_rule"]).scenarios}
    for sid in (new - old) - regenerated:
        assert needs_judge(result.spec.rule(planned[sid].rule_id), planned[sid]), (kind, example, planned[sid])
    assert report.stats.generated == sum(1 for s in generated.values() if not s.startswith(SCENARIO_PREFIX))
    # ... and that is what `specc diff --data` said before the recompile
    assert impact.scenarios_new == len(new - old) and impact.scenarios_reused == len(new & old)
    stale_rules = {r.rule_id for r in impact.rules if r.status in ("stale", "replanned", "renamed")}
    changed_rules = {rid for rid, e in report.stats.per_rule.items() if e.generated}
    assert changed_rules <= stale_rules | set(impact.new_rules), (changed_rules, stale_rules)


def test_the_untouched_rule_reuses_every_call_with_the_tiny_model(tiny_dir, tmp_path):
    """The edit a user tried (issue 19), on a real transformers model: remove `greet_by_name`, add a
    word to `plain_language`; `emoji` regenerates nothing, whatever the noise says."""
    from specc.engines import resolve_model

    tone = (REPO / "examples" / "diff" / "v2" / "tone.spec").read_text(encoding="utf-8")
    start, end = tone.index("  rule greet_by_name"), tone.index("  rule plain_language")
    edited = (tone[:start] + tone[end:]).replace("Prefer plain words", "Prefer plain, short words")
    (tmp_path / "a.spec").write_text(tone, encoding="utf-8")
    (tmp_path / "b.spec").write_text(edited, encoding="utf-8")
    model = resolve_model(str(tiny_dir), reuse=False)

    def run(name: str):
        spec = load(tmp_path / f"{name}.spec").spec
        opts = CompileOptions(out_dir=tmp_path / name, store=tmp_path / "store", seed=3, per_rule=2)
        return compile_spec(spec, tmp_path / f"{name}.spec", opts, model=model)

    first = run("a")
    _, impact = compare(str(tmp_path / "a.spec"), str(tmp_path / "b.spec"), data=str(tmp_path / "a"))
    second = run("b")
    emoji, plain = (second.stats.per_rule[f"acme.tone.{r}"] for r in ("emoji", "plain_language"))
    assert emoji.generated == 0 and emoji.reused == first.stats.per_rule["acme.tone.emoji"].generated > 0
    assert plain.reused == 0
    assert {(r.rule_id, r.status) for r in impact.rules} == {
        ("acme.tone.emoji", "fresh"), ("acme.tone.greet_by_name", "orphaned"), ("acme.tone.plain_language", "stale")}
    assert impact.scenarios_new == plain.scenarios and impact.scenarios_reused == emoji.scenarios


def test_the_diff_names_spec_wide_inputs_and_replanned_records(bases, tmp_path):
    """What --data says beyond rule hashes: an axis change reaches every rule (a note says so), a
    change of examples reaches the judge's calibration (a note, where the judge was measured),
    and a record whose scenario the new plan lacks is `replanned`, not `fresh`."""
    work, text = base_of(Path("support/assistant.spec"), bases)
    old = work / "src" / "assistant.spec"
    man = json.loads((work / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert man["judge"]["needed"], "the judge is measured for this spec: the calibration note applies"

    def impact_of(new_text: str, data: Path = work / "out"):
        new = tmp_path / "src" / "assistant.spec"
        if not new.parent.exists():
            shutil.copytree(work / "src", new.parent)
        new.write_text(new_text, encoding="utf-8")
        return compare(str(old), str(new), data=str(data))[1]

    axis = re.search(r"^axis (\w+) = \[", text, re.M)
    assert axis, "the spec has an axis"
    widened = text.replace(axis.group(0), axis.group(0) + '"a value added by the test", ', 1)
    note = impact_of(widened).note or ""
    assert f"spec-level change (axis" in note and "records stale" in note, note

    block = next(b for b in rule_blocks(text))
    note = impact_of(edit_rule(text, block, "add-example")).note or ""
    assert "the judge is calibrated on every rule's examples" in note and block.group("name") in note, note

    # a dataset whose manifest lists a generated record under a scenario this version does not plan
    data = tmp_path / "data"
    shutil.copytree(work / "out", data)
    rid, entry = next((r, e) for r, e in man["rules"].items() if set(e["records"]) & set(e["scenarios"]))
    moved = sorted(set(entry["records"]) & set(entry["scenarios"]))[0]
    entry["records"] = sorted({*entry["records"], "0" * 32} - {moved})
    entry["scenarios"] = sorted({*entry["scenarios"], "0" * 32} - {moved})
    (data / "manifest.json").write_text(json.dumps(man), encoding="utf-8")
    impact = impact_of(text, data)
    assert (rid, "replanned", 1) in {(r.rule_id, r.status, r.records) for r in impact.rules}
    assert impact.count("fresh")[0] + impact.count("replanned")[0] == impact.records
