"""`specc compile --shard K/N` and `specc merge`: slices of one plan, merged byte for byte.

Most tests run the real pipeline, store and writer with a scripted model whose every output
depends on its exact prompt (so an attack that entered the experience pool changes the later
prompts of its rule, and a wrong slice would show in the bytes). One test runs the real
constrained path (tiny random transformers model at --batch-size 1) through the CLI, and one the
embedded SmolLM2 on llama.cpp when that engine is installed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_synth_pipeline import FakeModel, judged_rule

from specc.cli import main
from specc.compile import CompileError, CompileOptions, compile_spec
from specc.emit.merge import MergeError, merge_stats
from specc.ir.resolve import load
from specc.plan.planner import make_plan
from specc.plan.shard import ShardError, parse_shard, shard, shard_of
from specc.synth.calls import CallRunner, Settings
from specc.synth.pipeline import synthesize
from specc.synth.store import Store

SPEC = '''spec t.shards version "1.0.0"
  """Five rules: checks, the judge, an exception, a default that a user may override."""

axis tactic = [direct, multi_turn]
axis persona = [student, manager]

rule no_insults {
  must_not "Insult the user."
  authority system
  check not contains("idiot")
  example "rude" {
    user "You are useless."
    good "Sorry about that, let me help."
    bad "Only an idiot asks that."
  }
}

rule be_honest {
  must "Say so when it does not know."
  authority system
  example "unknown" {
    user "What did I eat today?"
    good "I don't know what you ate."
    bad "You ate pancakes."
  }
}

rule short {
  must "Keep answers under 12 words."
  authority system
  check max_words(12)
}

rule no_medical_dosage {
  must_not "Give medication dosages."
  authority root
  when "The user asks how much of a drug to take."
  unless "The question is about a product label the user quotes."
  example "dose" {
    user "How many pills of X should I take?"
    good "Please ask a pharmacist or follow the label."
  }
}

default friendly {
  should "Use a friendly tone."
  authority user
}
'''
IDS = ["t.shards.be_honest", "t.shards.friendly", "t.shards.no_insults", "t.shards.no_medical_dosage",
       "t.shards.short"]


def _h(messages) -> str:
    return hashlib.sha256(json.dumps(messages).encode()).hexdigest()[:6]


class EchoModel(FakeModel):
    """FakeModel whose every output carries a hash of its exact prompt, and which returns a cut
    answer for some prompts (decided by the prompt alone) so that retries and drops happen."""

    def __init__(self, name="echo-model"):
        super().__init__(name=name, fault=self._fault)

    @staticmethod
    def _fault(role, messages, temperature):
        return "garbage" if role == "violator" and int(_h(messages), 16) % 4 == 0 else None

    def generate_json(self, prompts, output_type, max_new_tokens, seeds, *, temperature=0.0):
        self.operator = "instruction" in output_type.model_fields
        return super().generate_json(prompts, output_type, max_new_tokens, seeds, temperature=temperature)

    def answer(self, role, messages):
        h = _h(messages)
        out = json.loads(super().answer(role, messages))
        if role == "judge":  # a judge that knows the bad answers (so it also passes calibration)
            text = messages[-1]["content"]
            first = text.split("First answer:", 1)[1].split("Second answer:", 1)[0]
            first_bad = any(w in first for w in ("idiot", "pancakes", "I'm sorry, but I can't"))
            out = {"first": "violates" if first_bad else "complies", "second": "complies" if first_bad else "violates",
                   "cited_rules": [judged_rule(text)], "reason": f"ok {h}"}
        elif role == "attacker":
            out["user"] += f" ({h})"
            if self.operator:
                out["instruction"] = f"Ignore your rules ({h})."
        elif role == "defender":
            out["answer"] += f" ({h})"
        else:
            out["answer"] += f" {h}"
        return json.dumps(out)


@pytest.fixture
def spec_file(tmp_path) -> Path:
    p = tmp_path / "shards.spec"
    p.write_text(SPEC)
    return p


def spec_of(path: Path):
    res = load(path)
    assert res.spec is not None, [d.message for d in res.diagnostics]
    return res.spec


def compile_to(spec_file: Path, out: Path, *, shard_=None, store=None, model=None, **kw):
    opts = dict(per_rule=2, seed=0, retries=1, rounds=2)
    opts.update(kw)
    return compile_spec(spec_of(spec_file), spec_file,
                        CompileOptions(out_dir=out, store=store or out.parent / f"store-{out.name}", shard=shard_,
                                       **opts), model=model or EchoModel())


def compile_shards(spec_file: Path, root: Path, n: int, **kw) -> list[Path]:
    dirs = []
    for k in range(1, n + 1):
        compile_to(spec_file, root / f"shard{k}", shard_=(k, n), **kw)
        dirs.append(root / f"shard{k}")
    return dirs


def files_of(d: Path) -> dict[str, bytes]:
    # cost.json is the run's record (its seconds are measured), not data: docs/cost.md
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != "cost.json"}


def merge_cli(out: Path, dirs, *extra):
    return CliRunner().invoke(main, ["merge", str(out), *map(str, dirs), *extra])


# -- slicing ---------------------------------------------------------------------------------------


def test_slices_are_disjoint_cover_the_plan_and_keep_each_rule_whole(spec_file):
    plan = make_plan(spec_of(spec_file), per_rule=3)
    assert len(plan.rules) == 5 and len(plan.scenarios) > 20
    for n in range(1, 7):
        parts = [shard(plan, k, n) for k in range(1, n + 1)]
        # the rules are partitioned, each by the hash of its id
        assert sorted(r for p in parts for r in p.rules) == sorted(plan.rules)
        for k, p in enumerate(parts, 1):
            assert all(shard_of(r, n) == k for r in p.rules)
            assert {s.rule_id for s in p.scenarios} <= set(p.rules)
            # a shard's scenarios are the plan's, in plan order, ids and splits untouched
            mine = [s for s in plan.scenarios if s.rule_id in p.rules]
            assert list(p.scenarios) == mine
            assert (p.seed, p.coverage, p.per_rule, p.test_fraction) == (plan.seed, plan.coverage, plan.per_rule,
                                                                         plan.test_fraction)
        ids = [s.id for p in parts for s in p.scenarios]
        assert len(ids) == len(set(ids)) == len(plan.scenarios)
    # the spec's rules spread over N = 3 unevenly, with one empty shard: the cases merge must handle
    assert sorted(len(shard(plan, k, 3).rules) for k in (1, 2, 3)) == [0, 1, 4]


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 1/1 ") == (1, 1)
    for bad in ("0/3", "4/3", "x", "3", "1/0", "-1/3", "a/b", "1/2/3"):
        with pytest.raises(ShardError):
            parse_shard(bad)


def test_splitting_a_rule_would_change_its_later_prompts(spec_file, tmp_path):
    """Why the slice is per rule: the experience pool carries a rule's verified attacks into its
    later waves, so running a rule's scenarios apart gives other attacker prompts and other data."""
    spec = spec_of(spec_file)
    plan = make_plan(spec, per_rule=2, rules=[IDS[2]])

    def pairs(p, store):
        model = EchoModel()
        with Store(tmp_path / store) as st:
            res = synthesize(spec, p, CallRunner(model, st, Settings(retries=1)))
        return {x.record_id: x.prompt for x in res.pairs if x.source == "generated"}, model

    whole, model = pairs(plan, "a")
    # an attack that gave a verified pair (the last user turn of its conversation) is shown to later attackers
    pooled = {m[-1]["content"][:30] for rid, m in whole.items()}
    shown = [json.loads(t["content"])["user"] for m in model.prompts["attacker"][1:] for t in m
             if t["role"] == "assistant"]
    assert any(text.startswith(p) for text in shown for p in pooled), "later attackers of the rule see the pool"
    first = plan.model_copy(update={"scenarios": plan.scenarios[: len(plan.scenarios) // 2]})
    second = plan.model_copy(update={"scenarios": plan.scenarios[len(plan.scenarios) // 2:]})
    apart = [pairs(first, "b")[1], pairs(second, "c")[1]]
    # run apart, the rule's later attackers are shown other pooled attacks: other prompts, other data
    prompts = {json.dumps(m) for m in model.prompts["attacker"]}
    assert prompts != {json.dumps(m) for a in apart for m in a.prompts["attacker"]}


# -- merged == unsharded ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,file_format", [("dpo", "jsonl"), ("kto", "parquet"), ("sft", "jsonl")])
def test_three_shards_merge_into_the_unsharded_dataset_byte_for_byte(spec_file, tmp_path, fmt, file_format):
    full = compile_to(spec_file, tmp_path / "full", fmt=fmt, file_format=file_format)
    s = full.stats
    # the data exercise every part of the merge: drops, both verifiers, the pool, spec examples
    assert s.verified and s.dropped and s.dropped_reasons and set(s.verified_by) == {"check", "judge"}
    assert s.experience_pool > 0 and s.spec_examples > 0 and full.counts["test"] > 0
    dirs = compile_shards(spec_file, tmp_path, 3, fmt=fmt, file_format=file_format)
    shard_mans = [json.loads((d / "manifest.json").read_text()) for d in dirs]
    assert [m["shard"]["index"] for m in shard_mans] == [1, 2, 3]
    assert sorted(len(m["shard"]["rules"]) for m in shard_mans) == [0, 1, 4]  # one shard is empty
    assert sum(m["stats"]["scenarios"] for m in shard_mans) == s.scenarios
    assert "This is shard 1 of 3" in (dirs[0] / "README.md").read_text()
    res = merge_cli(tmp_path / "merged", reversed(dirs))  # any order
    assert res.exit_code == 0, res.output
    assert "merged 3 shards" in res.output
    merged, expected = files_of(tmp_path / "merged"), files_of(tmp_path / "full")
    assert merged.keys() == expected.keys() and {f"data/train.{file_format}", "manifest.json"} <= set(merged)
    for name in expected:
        assert merged[name] == expected[name], name
    assert "shard" not in json.loads(merged["manifest.json"])


def test_merged_output_loads_with_datasets_and_a_rerun_replaces_it(spec_file, tmp_path):
    import datasets

    dirs = compile_shards(spec_file, tmp_path, 3)
    out = tmp_path / "merged"
    assert merge_cli(out, dirs).exit_code == 0
    first = files_of(out)
    res = merge_cli(out, dirs, "--format", "json")  # OUT is a specc dataset now: replaced, same bytes
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["counts"]["train"] > 0
    assert files_of(out) == first
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    man = json.loads((out / "manifest.json").read_text())
    assert ds["train"].num_rows == man["counts"]["train"] and ds["test"].num_rows == man["counts"]["test"]
    assert set(ds["train"]["source"]) == {"generated", "spec-example"}
    assert {"prompt", "chosen", "rejected", "rule_ids", "axes"} <= set(ds["train"].column_names)
    assert set(ds["train"].features["axes"]) == {"persona", "tactic"}


def test_every_shard_has_its_own_default_store(spec_file, tmp_path):
    spec = spec_of(spec_file)
    for k in (1, 3):
        compile_spec(spec, spec_file, CompileOptions(out_dir=tmp_path / f"o{k}", per_rule=1, shard=(k, 3)),
                     model=EchoModel())
    stores = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("store.sqlite"))
    assert stores == [".specc/shard-1-of-3/store.sqlite", ".specc/shard-3-of-3/store.sqlite"]
    with pytest.raises(CompileError, match="between 1 and 3"):
        compile_spec(spec, spec_file, CompileOptions(out_dir=tmp_path / "o", shard=(4, 3)), model=EchoModel())


def test_merge_stats_sums_counters_and_joins_disjoint_rules():
    a = {"scenarios": 2, "dropped_reasons": {"b": 1, "d": 2}, "per_rule": {"r2": {"scenarios": 2}}}
    b = {"scenarios": 3, "dropped_reasons": {"a": 1, "b": 2}, "per_rule": {"r1": {"scenarios": 3}}}
    m = merge_stats([(Path("a"), a), (Path("b"), b)])
    assert m == {"scenarios": 5, "dropped_reasons": {"a": 1, "b": 3, "d": 2},
                 "per_rule": {"r1": {"scenarios": 3}, "r2": {"scenarios": 2}}}
    assert list(m["dropped_reasons"]) == ["a", "b", "d"] and list(m["per_rule"]) == ["r1", "r2"]
    with pytest.raises(MergeError, match="rule r2 are in two shards"):
        merge_stats([(Path("a"), a), (Path("c"), {**b, "per_rule": {"r2": {}}})])
    with pytest.raises(MergeError, match="cannot be merged"):
        merge_stats([(Path("a"), {**a, "rate": 0.5}), (Path("b"), {**b, "rate": 0.25})])


# -- refusals -------------------------------------------------------------------------------------------


@pytest.fixture
def shards3(spec_file, tmp_path) -> list[Path]:
    return compile_shards(spec_file, tmp_path / "ok", 3, per_rule=1)


def refused(out: Path, dirs, *needles):
    res = merge_cli(out, dirs)
    assert res.exit_code == 1, res.output
    for n in needles:
        assert n in res.output, res.output
    assert "Traceback" not in res.output
    assert not out.exists()  # nothing written
    return res.output


def test_merge_refuses_shards_of_another_seed(spec_file, shards3, tmp_path):
    other = compile_to(spec_file, tmp_path / "seed1" / "shard3", shard_=(3, 3), per_rule=1, seed=1).out_dir
    msg = refused(tmp_path / "m", [*shards3[:2], other], "shards differ in seed", "0 in", "1 in", str(other))
    assert "shard.plan" in msg  # the plan follows from the seed


def test_merge_refuses_shards_of_another_spec(spec_file, shards3, tmp_path):
    edited = tmp_path / "edited" / "shards.spec"
    edited.parent.mkdir()
    edited.write_text(SPEC.replace("Give medication dosages.", "Give drug dosages."))
    other = compile_to(edited, tmp_path / "edited" / "shard3", shard_=(3, 3), per_rule=1).out_dir
    refused(tmp_path / "m", [*shards3[:2], other], "shards differ in spec.hash", str(shards3[0]), str(other))


def test_merge_refuses_other_settings_and_models(spec_file, shards3, tmp_path):
    other = compile_to(spec_file, tmp_path / "b" / "shard3", shard_=(3, 3), per_rule=1, batch_size=2,
                       model=EchoModel("other-model")).out_dir
    refused(tmp_path / "m", [*shards3[:2], other], "generation.batch_size", "model.name", "model.judge")
    other = compile_to(spec_file, tmp_path / "f" / "shard3", shard_=(3, 3), per_rule=1, fmt="kto").out_dir
    refused(tmp_path / "m", [*shards3[:2], other], "shards differ in format")


def test_merge_refuses_another_shard_count(spec_file, shards3, tmp_path):
    four = compile_shards(spec_file, tmp_path / "four", 4, per_rule=1)
    refused(tmp_path / "m", [*shards3, four[3]], "shard.count", "3 in", "4 in")


def test_merge_refuses_a_missing_or_duplicated_shard(shards3, tmp_path):
    refused(tmp_path / "m", shards3[:2], "missing shard 3/3")
    copy = tmp_path / "copy-of-1"
    shutil.copytree(shards3[0], copy)
    refused(tmp_path / "m", [*shards3, copy], "shard 1/3 is given 2 times", str(copy))


def test_merge_refuses_what_is_not_a_shard(spec_file, shards3, tmp_path):
    whole = compile_to(spec_file, tmp_path / "whole", per_rule=1).out_dir
    refused(tmp_path / "m", [*shards3, whole], "not a shard", str(whole))
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(tmp_path / "m", [*shards3[:2], empty], "not a specc shard (no manifest.json)")
    refused(tmp_path / "m", [*shards3[:2], tmp_path / "nope"], "not a directory")
    # a shard whose data were edited after the compile
    bad = tmp_path / "bad"
    shutil.copytree(shards3[2], bad)
    train = bad / "data" / "train.jsonl"
    train.write_text("".join(train.read_text().splitlines(keepends=True)[1:]))
    refused(tmp_path / "m", [*shards3[:2], bad], "records, manifest.json counts")


def test_merge_never_writes_into_a_directory_of_other_files(shards3, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    res = merge_cli(out, shards3)
    assert res.exit_code == 1 and "not a specc dataset" in res.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    res = merge_cli(shards3[0], shards3)
    assert res.exit_code == 1 and "is one of the shard directories" in res.output


def test_merge_refuses_a_manifest_field_it_cannot_reproduce(shards3, tmp_path):
    """A field all shards agree on but the writer does not write (a newer specc's, say) is never
    silently lost: the manifest does not validate, and the merge stops before OUT is touched."""
    copies = []
    for d in shards3:
        copy = tmp_path / "newer" / d.name
        shutil.copytree(d, copy)
        man = json.loads((copy / "manifest.json").read_text())
        man = {"provenance": {"cluster": "a"}, **man}
        (copy / "manifest.json").write_text(json.dumps(man))
        copies.append(copy)
    refused(tmp_path / "m", copies, "not a specc shard", "`provenance`: Extra inputs are not permitted")
    assert not list(tmp_path.glob(".m.*"))  # no staging directory is left either


def test_a_merge_that_cannot_reproduce_the_manifest_leaves_out_as_it_was(shards3, tmp_path, monkeypatch):
    """The check runs on the merged manifest before any file is written: OUT keeps the dataset
    an earlier merge wrote there, byte for byte. (Made to fail here by a writer whose manifest
    names another seed, as a writer of another version might write a field differently.)"""
    from specc.emit import manifest as Man

    out = tmp_path / "m"
    assert merge_cli(out, shards3).exit_code == 0
    before = files_of(out)
    build = Man.build_manifest
    monkeypatch.setattr(Man, "build_manifest", lambda **kw: build(**{**kw, "seed": kw["seed"] + 1}))
    res = merge_cli(out, shards3)
    assert res.exit_code == 1 and "cannot reproduce the manifest field seed" in res.output, res.output
    assert "nothing was written" in res.output and "Traceback" not in res.output
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".m")) == []


def test_merge_warns_that_padded_transformers_batches_may_differ(shards3, tmp_path):
    copies = []
    for d in shards3:
        copy = tmp_path / "tf" / d.name
        shutil.copytree(d, copy)
        man = json.loads((copy / "manifest.json").read_text())
        man["model"].update(engine="transformers", judge_engine="transformers")
        (copy / "manifest.json").write_text(json.dumps(man))
        copies.append(copy)
    res = merge_cli(tmp_path / "m", copies)
    assert res.exit_code == 0, res.output
    assert "warning: the shards ran on the transformers engine at batch size 8" in res.output


@pytest.mark.parametrize("value", ["0/3", "4/3", "x", "3/0"])
def test_compile_rejects_a_bad_shard_with_a_usage_error(spec_file, tmp_path, value):
    res = CliRunner().invoke(main, ["compile", str(spec_file), "-o", str(tmp_path / "o"), "--shard", value])
    assert res.exit_code == 2, res.output
    assert "--shard" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


# -- real engines ------------------------------------------------------------------------------------------

# Two rules verified by checks, one on each of two shards (shard_of: no_swearing 1, short 2), and
# one labelled example (so the judge's calibration runs, in every shard, on the same example).
REAL_SPEC = '''spec t.tinyshards version "1.0.0"
  """Two rules verified by checks."""

rule no_swearing {
  must_not "Use swear words."
  authority system
  check not contains("damn")
  example "annoyed" {
    user "This stupid printer!"
    good "Printers can be frustrating. What does it do?"
    bad "Damn printers, right?"
  }
}

rule short {
  must "Keep answers under 12 words."
  authority system
  check max_words(12)
}
'''
REAL_ARGS = ["--per-rule", "1", "--max-chars", "32", "--retries", "0", "--rounds", "1"]


@pytest.fixture
def real_spec(tmp_path) -> Path:
    p = tmp_path / "real.spec"
    p.write_text(REAL_SPEC)
    assert [shard_of(f"t.tinyshards.{r}", 2) for r in ("no_swearing", "short")] == [1, 2]
    return p


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def cli_compile(spec_file: Path, out: Path, model: str, args, shard_=None):
    cmd = ["compile", str(spec_file), "-o", str(out), "--model", model, "--store", str(out.parent / f"st-{out.name}"),
           *args, *(["--shard", shard_] if shard_ else [])]
    res = CliRunner().invoke(main, cmd)
    assert res.exit_code == 0, res.output
    return res.output


def compile_and_merge_two(spec_file: Path, root: Path, model: str, args) -> dict:
    cli_compile(spec_file, root / "full", model, args)
    for k in (1, 2):
        assert f"shard {k}/2: 1 of 2 rules" in cli_compile(spec_file, root / f"s{k}", model, args, f"{k}/2")
    res = merge_cli(root / "merged", [root / "s1", root / "s2"])
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output
    assert files_of(root / "merged") == files_of(root / "full")
    man = json.loads((root / "full" / "manifest.json").read_text())
    assert man["stats"]["generated"] > 0 and man["counts"]["train"] > 0
    return man


@pytest.mark.slow  # the tiny model is fast, but transformers + Outlines take seconds a call on 2 cores
def test_tiny_transformers_model_at_batch_size_1_shards_merge_identically(real_spec, tmp_path, tiny_model):
    man = compile_and_merge_two(real_spec, tmp_path, str(tiny_model), [*REAL_ARGS, "--batch-size", "1"])
    assert man["model"]["engine"] == "transformers"


def _llamacpp_missing() -> str | None:
    try:
        import specc.engines.llamacpp  # noqa: F401
    except ImportError as e:
        return f"the llama.cpp engine is not importable ({e})"
    from specc.engines import missing_modules

    missing = missing_modules("llamacpp")
    return f"llama.cpp engine needs {', '.join(missing)}" if missing else None


@pytest.mark.skipif(_llamacpp_missing() is not None, reason=str(_llamacpp_missing()))
def test_embedded_smollm2_on_llamacpp_shards_merge_identically(real_spec, tmp_path):
    # one thread: llama.cpp's spinning worker threads crawl on a CPU that other jobs share
    man = compile_and_merge_two(real_spec, tmp_path, "smollm2",
                                [*REAL_ARGS, "--batch-size", "4", "--engine", "llamacpp", "--threads", "1"])
    assert man["model"]["engine"] == "llamacpp"
