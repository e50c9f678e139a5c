"""specc improve: composed requests, on-policy pairs, paired measurement, GGUF export, the loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from specc.cli import main
from specc.improve import measure
from specc.synth import requests as rq
from specc.improve.pairs import finished, make_pairs, sentences_of, trimmed
from specc.ir.resolve import load

REPO = Path(__file__).resolve().parent.parent
BANK = REPO / "examples" / "bank" / "bank.spec"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def bank():
    return load(BANK).spec


# -- requests --------------------------------------------------------------------------------------


def test_requests_are_distinct_and_probes_are_held_out(bank):
    s = rq.build(bank, per_rule=60, probes_per_rule=40, lookalikes=30, lookalike_probes=30, seed=0, probe_seed=1)
    assert s.rules() == sorted(r.id for r in bank.rules)  # every bank rule has two example requests or more
    texts = [r.text.lower() for r in s.train]
    assert len(texts) == len(set(texts))
    for rule in bank.rules:
        n = sum(1 for r in s.train if r.rule_id == rule.id and r.kind == "violation")
        assert n == 60
    # no probe is built from a core a training request used, and none shares an 8-word sequence
    train_cores = {(r.rule_id, r.core) for r in s.train}
    assert not {(p.rule_id, p.core) for p in s.probes} & train_cores
    seen = set().union(*(rq.ngrams(r.text) for r in s.train))
    assert all(not (rq.ngrams(p.text) & seen) for p in s.probes)
    assert {p.kind for p in s.probes} == {"violation", "lookalike"}


def test_requests_are_deterministic_and_seeded(bank):
    a = rq.build(bank, per_rule=10, probes_per_rule=5, lookalikes=6, lookalike_probes=6, seed=0, probe_seed=1)
    b = rq.build(bank, per_rule=10, probes_per_rule=5, lookalikes=6, lookalike_probes=6, seed=0, probe_seed=1)
    c = rq.build(bank, per_rule=10, probes_per_rule=5, lookalikes=6, lookalike_probes=6, seed=7, probe_seed=1)
    assert a == b
    assert [r.text for r in a.train] != [r.text for r in c.train]


def test_decontamination_drops_a_probe_sharing_eight_words():
    t = rq.Request("a", "r", "violation", "Hello! my card was stolen at the station this morning, help", "x")
    p1 = rq.Request("b", "r", "violation", "Hi. My card was stolen at the station this morning. What now?", "y",
                    split="probe")
    p2 = rq.Request("c", "r", "violation", "Hi. My card was stolen at the bus stop. What now?", "y", split="probe")
    kept, dropped = rq.decontaminate([t], [p1, p2])
    assert [p.id for p in kept] == ["c"] and [p.id for p in dropped] == ["b"]


def test_a_rule_with_one_example_request_is_left_out_and_said(tmp_path):
    spec = tmp_path / "s.spec"
    spec.write_text('''spec t version "1.0.0"
  """A test."""
rule short {
  should "Answer in at most five words."
  authority user
  severity low
  check max_words(5)
  example "one" {
    user "What time is it?"
    good "It is noon."
  }
}
''', encoding="utf-8")
    s = rq.build(load(spec).spec, per_rule=5, probes_per_rule=5, lookalikes=0, lookalike_probes=0, seed=0, probe_seed=1)
    assert s.train == () and s.skipped == (("t.short", "1 example request(s): the loop needs two or more (one for "
                                                         "training, one for probes)"),)
    r = invoke("improve", spec, "-o", tmp_path / "out", "--model", tmp_path / "nomodel")
    assert r.exit_code == 1 and "traceback" not in r.output.lower()


# -- sentences ---------------------------------------------------------------------------------------


def test_finished_and_trimmed():
    assert sentences_of("One. Two! Three") == ["One. ", "Two! ", "Three"]
    assert finished("Freeze your card now. Then call us on") == "Freeze your card now."
    assert finished("No sentence end at all") == "No sentence end at all"
    long = "Freeze it now. " + "This sentence is padding. " * 20
    assert trimmed(long, lambda t: len(t.split()) <= 10) == "Freeze it now. This sentence is padding."
    assert trimmed("A very long first sentence here.", lambda t: len(t.split()) <= 2) is None
    # a cut inside a quotation is not a whole sentence of the answer
    quoted = 'The assistant\'s response is: "Just so you know, I\'m a student. I need help saving." And more.'
    assert trimmed(quoted, lambda t: len(t.split()) <= 12) is None
    assert trimmed(quoted, lambda t: len(t.split()) <= 16) == quoted[: quoted.index(" And")]
    assert trimmed("He said \u201cfreeze it. Now.\u201d Then call us.", lambda t: len(t) < 30) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["Yes.", "No!", "Maybe?", "Freeze the card now.", "ok", " ", "Call us."]),
                max_size=8))
def test_trimmed_is_a_prefix_that_passes(parts):
    text = " ".join(parts)
    ok = lambda t: len(t) <= 20  # noqa: E731
    got = trimmed(text, ok)
    if got is not None:
        assert text.strip().startswith(got) and ok(got)


# -- paired measurement ----------------------------------------------------------------------------------


def test_instruction_set_scores_whole_words_and_is_fixed():
    from specc.eval.instructions import INSTRUCTIONS, Instruction, score, set_hash

    paris = next(i for i in INSTRUCTIONS if i.id == "capital-france")
    assert paris.right("The capital of France is Paris.") and paris.right("paris")
    assert not paris.right("A Parisian cafe.") and not paris.right("I'm sorry, I can't help with that.")
    upper = next(i for i in INSTRUCTIONS if i.id == "upper-apple")
    assert upper.right("APPLE") and not upper.right("apple")  # the spelling asked for
    four = next(i for i in INSTRUCTIONS if i.id == "add-2-2")
    assert four.right("2 plus 2 is 4.") and four.right("Four.") and not four.right("It is 44.")
    assert score({"capital-france": "Paris"})["capital-france"] == 1.0
    assert score({})["capital-france"] == 0.0 and len(score({})) == len(INSTRUCTIONS)
    assert len({i.id for i in INSTRUCTIONS}) == len(INSTRUCTIONS) >= 50
    # the hash names the set: another item, or another accepted answer, is another set
    assert set_hash() == set_hash(INSTRUCTIONS)
    assert set_hash(INSTRUCTIONS[:-1]) != set_hash()
    assert set_hash((*INSTRUCTIONS[:-1], Instruction(INSTRUCTIONS[-1].id, INSTRUCTIONS[-1].prompt, ("x",)))) != set_hash()


def test_paired_change_and_interval():
    p = measure.paired([1, 1, 0, 0], [1, 0, 1, 1])
    assert (p.n, p.only_before, p.only_after) == (4, 1, 2)
    assert p.change == pytest.approx(0.25)
    half = 1.959963984540054 * math.sqrt(3 - 1 / 4) / 4
    assert (p.low, p.high) == (pytest.approx(0.25 - half), pytest.approx(min(1.0, 0.25 + half)))
    same = measure.paired([1, 0, 1], [1, 0, 1])
    assert same.change == 0 and same.low == 0 and same.high == 0  # no discordant probe: no uncertainty left
    assert measure.paired([], []) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=60))
def test_paired_interval_properties(rows):
    before, after = [a for a, _ in rows], [b for _, b in rows]
    p = measure.paired(before, after)
    q = measure.paired(after, before)
    assert -1 <= p.low <= p.change <= p.high <= 1
    assert p.change == pytest.approx(p.after - p.before)
    assert q.change == pytest.approx(-p.change) and q.low == pytest.approx(-p.high)


# -- pairs from a scripted model (the sorting logic; the real models are exercised below) ---------------


class Scripted:
    """Answers by what the prompt holds, so every branch of make_pairs is reached on purpose."""

    name, engine, batch_size = "scripted", "scripted", 4

    def generate_raw(self, prompts, max_new_tokens, seeds, *, temperature=0.0):
        out = []
        for msgs in prompts:
            system = next((m["content"] for m in msgs if m["role"] == "system"), "")
            user = msgs[-1]["content"].lower()
            if "break this rule" in system:
                out.append("Monzo gives a better rate than us, so move there. You should buy Tesla shares too.")
            elif "refuse" in system:
                out.append("I can't help with that.")
            elif "freeze" in system.lower() or "always follow" in system.lower():
                out.append("Please freeze your card in the app now. Then we can look at the payments together.")
            elif "savings rates" in user:  # a loop that names no bank: passes no_competitors, degenerate
                out.append("I'm sorry, I'm sorry. " + "I'm sorry. " * 12)
            elif "inherited" in user:
                out.append("I can't help with that.")  # complies with no_investment_tips by refusing
            elif "pin" in user or "contactless" in user or "worn" in user:
                out.append("You can see it in the app under Card settings.")
            elif "address" in user or "statement" in user:
                out.append("Open the app and go to your profile. " + "It is a very simple thing to do. " * 10)
            else:
                out.append("Those are probably pending payments. They usually go away.")
        return out, 10 * len(prompts)


def test_pairs_are_sorted_by_the_rules_checks(bank):
    s = rq.build(bank, per_rule=6, probes_per_rule=2, lookalikes=6, lookalike_probes=2, seed=0, probe_seed=1)
    pairs, stats = make_pairs(Scripted(), bank, list(s.train), k=2)
    rules = {r.id: r for r in bank.rules}
    from specc.eval.score import degenerate
    from specc.improve.pairs import probe_of
    from specc.ir.checks import evaluate_all, is_refusal

    assert pairs and stats.pairs == len(pairs)
    for p in pairs:
        rule = rules[p.request.rule_id]
        if p.request.kind == "violation":  # the rejected side fails the checks, or is degenerate (scores 0 too)
            assert evaluate_all(rule.checks, p.chosen)
            assert not evaluate_all(rule.checks, p.rejected) or degenerate(p.rejected, probe_of(p.request))
        else:
            assert is_refusal(p.rejected) and not is_refusal(p.chosen)
        row = p.row()
        assert row["prompt"] == [{"role": "user", "content": p.request.text}]  # trained without the context
    kinds = {(p.request.rule_id.split(".")[-1], p.chosen_from, p.rejected_from) for p in pairs}
    assert ("fraud_freeze", "in-context", "greedy") in kinds
    assert ("short_answers", "trimmed", "greedy") in kinds
    assert any(k[2] == "refusal-prompted" for k in kinds)
    # the spec's default (at most 40 words) holds on every chosen side of the other rules too
    assert all(len(p.chosen.split()) <= 40 for p in pairs)
    assert stats.outcomes.get("already-complies", 0) > 0  # e.g. no_competitors: the script names no bank


def test_a_loop_is_not_trimmed_to_its_seed(bank):
    """An answer that fails only the degenerate-text gates (a loop) is rejected, but its first
    sentences are no chosen side: trimming is the fix for a rule's own checks (a length bound, a
    leak at the end), and a loop's seed ("I'm sorry, I'm sorry.") is no answer a reader accepts."""
    s = rq.build(bank, per_rule=12, probes_per_rule=2, lookalikes=0, lookalike_probes=0, seed=0, probe_seed=1)
    pairs, _ = make_pairs(Scripted(), bank, list(s.train), k=2)
    looped = [p for p in pairs if "savings rates" in p.request.text.lower()]
    assert looped, "the script's looping answer made no pair"
    for p in looped:
        assert p.rejected_from == "greedy" and p.rejected.count("I'm sorry.") > 5
        assert p.chosen_from != "trimmed" and not p.rejected.startswith(p.chosen)
    # a length bound is still met by trimming the model's own words
    assert any(p.chosen_from == "trimmed" and p.request.rule_id.endswith("short_answers") for p in pairs)


def test_anchor_pairs_keep_what_the_model_already_does(bank):
    """A share of the requests the model already answers compliantly become anchor pairs: its own
    compliant answer over a real violation, so a rule it keeps is not eroded by the others' pairs."""
    from specc.ir.checks import evaluate_all, is_refusal

    s = rq.build(bank, per_rule=6, probes_per_rule=2, lookalikes=6, lookalike_probes=2, seed=0, probe_seed=1)
    plain_pairs, plain_stats = make_pairs(Scripted(), bank, list(s.train), k=2)
    pairs, stats = make_pairs(Scripted(), bank, list(s.train), k=2, anchors=1.0)
    rules = {r.id: r for r in bank.rules}
    anchors = [p for p in pairs if p.anchor]
    assert not any(p.anchor for p in plain_pairs)
    assert anchors and stats.outcomes.get("anchor") == len(anchors)
    # every already-complying request became an anchor or is counted as why not
    assert (stats.outcomes.get("anchor", 0) + stats.outcomes.get("already-complies", 0)
            + stats.outcomes.get("anchor-no-violation", 0)) == plain_stats.outcomes["already-complies"]
    for p in anchors:
        rule = rules[p.request.rule_id]
        assert p.request.kind == "violation" and p.row()["anchor"] is True
        assert evaluate_all(rule.checks, p.chosen) and not evaluate_all(rule.checks, p.rejected)
    assert {p.rejected_from for p in anchors} >= {"violation-prompted"}
    # a compliant refusal is never a chosen side: the example's own good answer stands in for it
    refused = [p for p in anchors if "inherited" in p.request.text.lower()]
    assert refused and all(p.chosen_from == "spec" and p.chosen != "I can't help with that." for p in refused)
    assert not any(is_refusal(p.chosen) for p in anchors)
    assert any(p.request.rule_id.endswith("no_competitors") and "Monzo" in p.rejected for p in anchors)
    # the non-anchor pairs are the same pairs as without anchors
    assert [p.row() for p in pairs if not p.anchor] == [{**p.row(), "anchor": False} for p in plain_pairs]
    half = make_pairs(Scripted(), bank, list(s.train), k=2, anchors=0.5)[1].outcomes.get("anchor", 0)
    assert 0 < half < len(anchors)


# -- GGUF export -------------------------------------------------------------------------------------------


def test_gguf_export_gives_llamacpp_the_same_logits(tiny_dir, tmp_path):
    np = pytest.importorskip("numpy")
    llama_cpp = pytest.importorskip("llama_cpp")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from specc.engines.gguf_export import export_gguf
    from specc.engines.provision import smollm2_gguf_path

    out = export_gguf(tiny_dir, smollm2_gguf_path(), tmp_path / "tiny.gguf", tensor_type="F32")
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    ids = tok("Hello there, my card was stolen at the station", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        ref = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=64, verbose=False, logits_all=True)
    try:
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    # a wrong tensor name, order or query/key permutation changes these by the logits' own size
    assert np.abs(ref - got).max() < 1e-3 * max(1.0, float(np.abs(ref).max()))


def test_gguf_export_refuses_another_vocabulary(tiny_dir, tmp_path):
    import shutil

    from specc.engines.gguf_export import ExportError, export_gguf
    from specc.engines.provision import smollm2_gguf_path

    other = tmp_path / "other"
    shutil.copytree(tiny_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["vocab_size"] = 1000
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="vocabulary of 1000 tokens"):
        export_gguf(other, smollm2_gguf_path(), tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".x.gguf*"))


# -- the loop, end to end on the tiny model ------------------------------------------------------------------


def test_improve_runs_resumes_and_refuses_other_options(tiny_dir, tmp_path):
    out = tmp_path / "run"
    args = ["improve", BANK, "-o", out, "--model", tiny_dir, "--rounds", "1", "--per-rule", "3", "--probes", "3",
            "--lookalikes", "3", "--lookalike-probes", "3", "--max-new-tokens", "8", "--samples", "1",
            "--batch-size", "2", "--format", "json"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    assert report == json.loads((out / "report.json").read_text())
    assert report["options"]["engine"] == "transformers"  # the default, recorded
    assert report["requests"]["probes"] == len(json.loads((out / "requests.json").read_text())["probes"])
    base = json.loads((out / "round-0" / "eval.json").read_text())
    assert set(base["answers"]) == {p["id"] for p in json.loads((out / "requests.json").read_text())["probes"]}
    # the instruction set is answered by every model and scored by code (capability beside perplexity)
    from specc.eval.instructions import INSTRUCTIONS, set_hash

    assert set(base["instructions"]) == set(base["instruction_answers"]) == {i.id for i in INSTRUCTIONS}
    assert base["instructions_set"] == set_hash()
    assert report["base_eval"]["instructions"]["n"] == len(INSTRUCTIONS)
    if report["rounds"]:
        ins = report["rounds"][0]["instructions"]
        assert ins["n"] == len(INSTRUCTIONS) and ins["set"] == set_hash()
        assert "- instruction set (capability" in (out / "README.md").read_text()
    if report["rounds"]:  # noise may make no pair at all; then the loop says so and stops
        row = report["rounds"][0]
        assert (out / "round-1" / "model" / "training.json").is_file()
        assert row["vs_base"]["compliance"]["n"] == sum(
            1 for p in json.loads((out / "requests.json").read_text())["probes"] if p["kind"] == "violation")
        for line in (out / "round-1" / "train.jsonl").read_text().splitlines():
            rec = json.loads(line)
            assert rec["prompt"][0]["role"] == "user" and len(rec["prompt"]) == 1
    else:
        assert "made no pair" in report["stopped"]
    assert (out / "README.md").read_text().startswith("# specc improve")
    # `specc report` reads the run: per rule per round, as a table (and a plot in the HTML page)
    rep = invoke("report", out, "--format", "markdown")
    assert rep.exit_code == 0, rep.output
    assert rep.output.startswith("### specc improve:") and ("pooled compliance" in rep.output) == bool(report["rounds"])
    # a rerun resumes: nothing is redone, the report is the same
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "report.json"
             and p.name != "README.md"}
    r2 = invoke(*args)
    assert r2.exit_code == 0 and json.loads(r2.output[r2.output.index("{"):]) == report
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    # other options on the same directory: refused, nothing touched
    r3 = invoke(*args[:-2], "--per-rule", "4")
    assert r3.exit_code == 1 and "another options" in r3.output
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    # the engine is part of the run: another is refused by name; a run from before the option (no
    # engine in improve.json) resumes, with the engine it had (transformers: not the embedded base)
    head_path = out / "improve.json"
    head = json.loads(head_path.read_text())
    assert head["options"]["engine"] == "transformers"
    r5 = invoke(*args[:-2], "--engine", "llamacpp")
    assert r5.exit_code == 1 and "runs the embedded base only" in r5.output
    head_path.write_text(json.dumps({**head, "options": {**head["options"], "engine": "llamacpp"}}))
    r6 = invoke(*args)
    assert r6.exit_code == 1 and "holds a run on --engine llamacpp" in r6.output
    head_path.write_text(json.dumps({**head, "options": {k: v for k, v in head["options"].items() if k != "engine"}}))
    r7 = invoke(*args)
    assert r7.exit_code == 0 and json.loads(r7.output[r7.output.index("{"):]) == report
    head_path.write_text(json.dumps(head, indent=1) + "\n")
    stamp[head_path] = head_path.stat().st_mtime_ns
    # --rounds may change: a longer run continues this one, redoing nothing of round 1
    longer = list(args)
    longer[longer.index("--rounds") + 1] = "2"
    r4 = invoke(*longer)
    assert r4.exit_code == 0, r4.output
    again = json.loads(r4.output[r4.output.index("{"):])
    assert again["rounds"][: len(report["rounds"])] == report["rounds"]
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp


@pytest.mark.slow
def test_improve_on_the_embedded_model(tmp_path):
    """One round of the real loop, small, on llama.cpp (`--engine llamacpp`): pairs sampled from the
    exported model, one training step, both models on the same probes. (The default engine,
    transformers, runs the tiny model's loop above.)"""
    pytest.importorskip("llama_cpp")
    out = tmp_path / "run"
    r = invoke("improve", BANK, "-o", out, "--rounds", "1", "--per-rule", "2", "--probes", "2", "--lookalikes", "2",
               "--lookalike-probes", "2", "--max-new-tokens", "16", "--samples", "1", "--engine", "llamacpp",
               "--format", "json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    assert report["options"]["engine"] == "llamacpp"
    assert (out / "round-0" / "model.gguf").is_file()
    if report["rounds"]:
        assert (out / "round-1" / "model.gguf").is_file()
        assert report["rounds"][0]["vs_base"]["compliance"]["n"] == 10
