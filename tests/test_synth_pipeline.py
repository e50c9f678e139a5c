"""Synthesis logic with a scripted model: verification, retries, faults, store reuse, the pool.

The model here is a fake (a ModelHandle subclass returning scripted JSON), which is fine for
logic; the end-to-end tests in test_compile.py use a real transformers model through Outlines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from specc.compile import CompileOptions, compile_spec
from specc.ir.checks import is_refusal
from specc.ir.resolve import load_text
from specc.plan.planner import make_plan
from specc.synth.calls import CallRunner, Settings
from specc.engines import ModelHandle
from specc.synth.pipeline import synthesize
from specc.synth import tactics
from specc.synth.store import Store

SPEC = '''spec t.fake version "1.0.0"

axis tactic = [direct, multi_turn]

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
}

rule short {
  must "Keep answers under 12 words."
  authority system
  check max_words(12)
}
'''


def spec_of(text: str = SPEC):
    res = load_text(text, "fake.spec")
    assert res.spec is not None, [d.message for d in res.diagnostics]
    return res.spec


def role_of(messages, output_type) -> str:
    fields = set(output_type.model_fields)
    if "first" in fields:
        return "judge"
    if "user" in fields:
        return "attacker"
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    return "violator" if any(w in system for w in VIOLATOR_WORDS) else "defender"


VIOLATOR_WORDS = ("careless assistant", "over-cautious assistant", "stubborn assistant")
COMPLIANT = "Happy to help with that, without being rude about you."
# over 12 words (fails `short`), with "idiot" (fails `no_insults`); not a loop (gate Q107)
VIOLATION = "You idiot, anyone who had read the manual would know the answer to this simple question already."


class FakeModel(ModelHandle):
    """Answers by role; ``fault`` may turn a call into an exception, garbage or a timeout.

    The judge reads the answers: one is bad when it insults ("idiot", what this violator writes),
    is one of ``bad_texts``, or refuses where the judge prompt says the request is legitimate; it
    says ``judge_says[0]`` of a good answer and ``judge_says[1]`` of a bad one. So by default it
    is a correct judge on this file's spec examples (and calibrates), whatever the order."""

    def __init__(self, name="fake-model", fault=None, judge_says=("complies", "violates"), bad_texts=()):
        self.name = name
        self.fault = fault
        self.judge_says = judge_says
        self.bad_texts = set(bad_texts)
        self.calls: list[tuple[str, str]] = []  # (role, start of the prompt)
        self.prompts: dict[str, list] = {}

    def generate_raw(self, prompts, max_new_tokens, seeds, *, temperature=0.0):
        """Free chat: the on-policy candidates. Greedy, this model complies; sampled, it slips into
        an insult on odd seeds (a real violation of `no_insults` and `short`)."""
        out = []
        for messages, seed in zip(prompts, seeds):
            self.calls.append(("candidate", json.dumps(messages)[:200]))
            self.prompts.setdefault("candidate", []).append(messages)
            if self.fault:
                effect = self.fault("candidate", messages, temperature)
                if effect == "raise":
                    raise RuntimeError("model crashed")
                if effect == "timeout":
                    raise TimeoutError("request timed out")
                if effect == "garbage":
                    out.append("   ")
                    continue
            out.append(VIOLATION if temperature > 0 and seed % 2 else COMPLIANT)
        return out, sum(len(t.split()) for t in out)

    def generate_json(self, prompts, output_type, max_new_tokens, seeds, *, temperature=0.0):
        out = []
        for messages in prompts:
            role = role_of(messages, output_type)
            self.calls.append((role, json.dumps(messages)[:200]))
            self.prompts.setdefault(role, []).append(messages)
            if self.fault:
                effect = self.fault(role, messages, temperature)
                if effect == "raise":
                    raise RuntimeError("model crashed")
                if effect == "timeout":
                    raise TimeoutError("request timed out")
                if effect == "garbage":
                    out.append('{"answer": "cut mid-w')
                    continue
            out.append(self.answer(role, messages))
        return out

    def answer(self, role, messages) -> str:
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        if role == "attacker":
            return json.dumps({"user": attack_for(messages)})
        if role == "judge":
            text = messages[-1]["content"]
            first_answer, second_answer = judged_answers(text)
            help_ = "an answer that refuses it violates" in text

            def bad(answer):
                return "idiot" in answer.lower() or answer in self.bad_texts or (help_ and is_refusal(answer))

            c, r = self.judge_says
            first, second = (r if bad(first_answer) else c), (r if bad(second_answer) else c)
            return json.dumps({"first": first, "second": second, "cited_rules": [judged_rule(text)], "reason": "ok"})
        refuse = "over-cautious assistant" in system
        if role == "violator":
            if refuse:
                return json.dumps({"answer": "I'm sorry, but I can't help with that."})
            return json.dumps({"answer": VIOLATION})
        return json.dumps({"answer": COMPLIANT})


def attack_for(messages) -> str:
    """The fake attacker's request: rude, and on the situation's topic (gate Q112) by naming the
    first long word of the situation it was asked about."""
    brief = messages[-1]["content"].split("situation:", 1)[-1].split("(")[0]
    topic = ([w for w in re.findall(r"[A-Za-z]{4,}", brief) if w.lower() not in ("does", "when", "that", "this")]
             or ["things"])[-1]
    return f"Tell me something rude about myself and {topic.lower()}."


def judged_rule(text: str) -> str:
    """The id of the rule a judge prompt is about: the only id its verdict may cite."""
    return re.match(r"Rule (\S+):", text).group(1)


def judged_answers(text: str) -> tuple[str, str]:
    """The two answers of a judge prompt (templates/judge.j2)."""
    m = re.search(r"\nFirst answer: (.*)\n\nSecond answer: (.*)\n\nFor each answer", text, re.S)
    assert m, text
    return m.group(1), m.group(2)


def run(tmp_path: Path, model, spec=None, *, per_rule=1, retries=1, store="store", **kw):
    spec = spec or spec_of()
    opts = CompileOptions(out_dir=tmp_path / "out", store=tmp_path / store, per_rule=per_rule,
                          retries=retries, **kw)
    return compile_spec(spec, Path("fake.spec"), opts, model=model)


def rows_of(out: Path, rep) -> list[dict]:
    return [json.loads(line) for split in ("train", "test") if rep.files[split]
            for line in (out / rep.files[split]).read_text().splitlines()]


def test_verification_by_check_and_judge(tmp_path):
    rep = run(tmp_path, FakeModel())
    s = rep.stats
    assert s.verified + s.dropped == s.scenarios > 0
    assert s.dropped == 0, s.dropped_reasons
    assert s.verified_by["judge"] > 0 and s.verified_by["check"] > 0
    rows = rows_of(tmp_path / "out", rep)
    by_rule = {}
    for r in rows:
        by_rule.setdefault(r["rule_ids"][0], set()).add(r["verified_by"])
    assert by_rule["t.fake.be_honest"] <= {"judge", "check"} and "judge" in by_rule["t.fake.be_honest"]
    assert {"check", "spec"} <= by_rule["t.fake.no_insults"]
    # rejected sides really fail the target rule's check
    for r in rows:
        if r["rule_ids"] == ["t.fake.no_insults"] and r["boundary"] == "violation" and r["source"] == "generated":
            assert "idiot" in r["rejected"][0]["content"]


def test_failed_pairs_are_regenerated_then_dropped(tmp_path):
    # the judge always says both answers comply: judged pairs can never verify. Such a judge fails
    # calibration (agreement 0); trusted here by --min-judge-agreement 0 to exercise the retries
    model = FakeModel(judge_says=("complies", "complies"))
    rep = run(tmp_path, model, retries=2, min_judge_agreement=0)
    assert rep.manifest.judge["agreement"] == 0.0 and rep.manifest.judge["trusted"]
    s = rep.stats
    honest = s.per_rule["t.fake.be_honest"]
    judged_scenarios = honest.scenarios - 1  # its lookalike is verified by code
    assert honest.verified == 1 and honest.dropped == judged_scenarios
    assert s.dropped_reasons == {"judge-rejected-complies": judged_scenarios}
    # each judged scenario: 1 + retries judge calls, the rejected side regenerated before each retry
    judged = [c for c in model.calls if c[0] == "judge"]
    assert len(judged) == 2 + 3 * judged_scenarios  # 2: the calibration calls (one example, both orders)
    assert s.verified + s.dropped == s.scenarios


@pytest.mark.parametrize("effect,reason", [("raise", "model-error"), ("timeout", "model-timeout"),
                                           ("garbage", "invalid-output")])
def test_model_faults_are_retried_and_reported(tmp_path, effect, reason):
    # every first attempt of a defender fails; the retry (sampled: temperature > 0) works
    # (no candidates: every chosen side comes from the defender)
    model = FakeModel(fault=lambda role, m, t: effect if role == "defender" and t == 0.0 else None)
    rep = run(tmp_path, model, retries=1, candidates=0)
    s = rep.stats
    assert s.faults[reason] > 0
    assert s.verified > 0
    assert s.verified + s.dropped == s.scenarios
    # always failing: dropped with the reason, the run still completes
    # (no example sides either: the example's good answer would stand in for the defender)
    model = FakeModel(fault=lambda role, m, t: effect if role == "defender" else None)
    rep = run(tmp_path, model, retries=1, store="store2", candidates=0, example_sides=False)
    s = rep.stats
    assert s.verified == 0 and s.dropped == s.scenarios
    assert set(s.dropped_reasons) == {f"{reason}:defender"}
    assert (tmp_path / "out" / "manifest.json").exists()
    # spec examples are still emitted
    assert s.spec_examples == 1


def test_store_reuse_and_incremental_regeneration(tmp_path):
    first = run(tmp_path, FakeModel())
    assert first.stats.generated > 0 and first.stats.reused == 0
    again_model = FakeModel()
    again = run(tmp_path, again_model)
    assert again.stats.generated == 0 and again_model.calls == []
    assert again.stats.reused == first.stats.generated
    # edit one rule: only its scenarios are generated
    edited = spec_of(SPEC.replace("Keep answers under 12 words.", "Keep answers under twelve words."))
    m3 = FakeModel()
    third = run(tmp_path, m3, spec=edited)
    per = third.stats.per_rule
    assert per["t.fake.short"].generated > 0
    assert per["t.fake.no_insults"].generated == 0 and per["t.fake.be_honest"].generated == 0
    assert third.stats.generated == per["t.fake.short"].generated


def test_same_inputs_give_identical_files(tmp_path):
    a = run(tmp_path / "a", FakeModel())
    b = run(tmp_path / "b", FakeModel())
    for rel in ["manifest.json", "README.md", a.files["train"]]:
        assert (tmp_path / "a" / "out" / rel).read_bytes() == (tmp_path / "b" / "out" / rel).read_bytes()
    assert a.stats == b.stats


def test_experience_pool_feeds_later_attacks(tmp_path):
    spec = spec_of(SPEC.replace("axis tactic = [direct, multi_turn]", ""))
    model = FakeModel()
    plan = make_plan(spec, per_rule=2, boundaries=("violation",))
    with Store(tmp_path / "s") as store:
        runner = CallRunner(model, store, Settings(retries=0))
        res = synthesize(spec, plan, runner)
    assert res.stats.experience_pool > 0
    # the second wave's attacker prompts show the first wave's successful attacks, as a
    # demonstration (an answered chat turn), never as prose about the task
    attacks = model.prompts["attacker"]
    assert len(attacks) == 2 * len(plan.rules)
    pooled = [m for m in attacks if any(t["role"] == "assistant" and t["content"] == json.dumps({"user": attack_for(m)})
                                        for t in m)]
    assert pooled == attacks[len(plan.rules):]


def test_multi_turn_scenarios_escalate(tmp_path):
    spec = spec_of()
    plan = make_plan(spec, per_rule=4, boundaries=("violation",))
    multi = [s for s in plan.scenarios if s.axes.get("tactic") == "multi_turn"]
    assert multi
    model = FakeModel()
    with Store(tmp_path / "s") as store:
        res = synthesize(spec, plan, CallRunner(model, store, Settings(retries=0, rounds=3)))
    pairs = {p.scenario_id: p for p in res.pairs if p.scenario_id}
    seen = 0
    for s in multi:
        if s.id in pairs:
            seen += 1
            turns = pairs[s.id].prompt
            assert [m["role"] for m in turns] == ["user", "assistant", "user", "assistant", "user"]
            # the escalations are the documented, seeded follow-ups; the replies the model's own
            assert turns[2]["content"] == tactics.escalation(s.id, 1) and turns[4]["content"] == tactics.escalation(s.id, 2)
            assert turns[2]["content"] in tactics.ESCALATIONS and turns[1]["content"] == COMPLIANT
    assert seen == len(multi)  # every multi-turn scenario gave a verified pair, each checked above
    # the model writes only the first turn; escalations are code
    attacks = [c for c in model.calls if c[0] == "attacker"]
    assert len(attacks) == len(plan.scenarios)


def test_spec_examples_become_pairs(tmp_path):
    rep = run(tmp_path, FakeModel(fault=lambda *a: "raise"), retries=0)
    rows = [json.loads(l) for l in (tmp_path / "out" / rep.files["train"]).read_text().splitlines()]
    ex = [r for r in rows if r["source"] == "spec-example"]
    assert len(ex) == 1
    assert ex[0]["prompt"] == [{"role": "user", "content": "You are useless."}]
    assert ex[0]["chosen"] == [{"role": "assistant", "content": "Sorry about that, let me help."}]
    assert ex[0]["rejected"] == [{"role": "assistant", "content": "Only an idiot asks that."}]
    assert ex[0]["verified_by"] == "spec" and ex[0]["scenario_id"] is None
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert ex[0]["record_id"] in man["rules"]["t.fake.no_insults"]["records"]


@pytest.mark.parametrize("fmt", ["kto", "sft"])
def test_other_formats(tmp_path, fmt):
    rep = run(tmp_path, FakeModel(), fmt=fmt)
    rows = rows_of(tmp_path / "out", rep)
    if fmt == "kto":
        assert {r["label"] for r in rows} == {True, False}
        assert all(len(r["completion"]) == 1 and r["completion"][0]["role"] == "assistant" for r in rows)
    else:
        assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    train = [json.loads(line)["record_id"] for line in (tmp_path / "out" / rep.files["train"]).read_text().splitlines()]
    assert train == sorted(train)


# -- on-policy candidates -------------------------------------------------------------------------


def test_candidates_give_sampled_sides(tmp_path):
    """With candidates, a rule with checks gets its chosen side from the model's greedy answer and
    its rejected side from a sampled answer that really fails the check; no role is prompted."""
    model = FakeModel()
    rep = run(tmp_path, model, candidates=4)
    rows = rows_of(tmp_path / "out", rep)
    gen = [r for r in rows if r["source"] == "generated" and r["boundary"] == "violation"
           and r["rule_ids"] in (["t.fake.no_insults"], ["t.fake.short"])]
    assert gen
    for r in gen:
        assert r["chosen_from"] == "sampled" and r["rejected_from"] == "sampled"
        assert r["chosen"][0]["content"] == COMPLIANT and r["rejected"][0]["content"] == VIOLATION
    assert rep.stats.sides_from["chosen:sampled"] >= len(gen)
    # a lookalike's rejected side must refuse: no candidate does, so the violator writes it
    look = [r for r in rows if r["source"] == "generated" and r["boundary"] == "lookalike"]
    assert look and all(r["chosen_from"] == "sampled" and r["rejected_from"] == "violator" for r in look)
    # a rule without checks never samples candidates (nothing could sort them): the roles and the judge
    honest = [r for r in rows if r["rule_ids"] == ["t.fake.be_honest"] and r["boundary"] != "lookalike"
              and r["source"] == "generated"]
    assert honest and all(r["chosen_from"] == "defender" and r["rejected_from"] == "violator" for r in honest)
    ex = [r for r in rows if r["source"] == "spec-example"]
    assert ex and all(r["chosen_from"] == "spec" and r["rejected_from"] == "spec" for r in ex)


def test_candidates_that_never_violate_leave_the_rejected_side_to_the_violator(tmp_path):
    class Polite(FakeModel):
        def generate_raw(self, prompts, max_new_tokens, seeds, *, temperature=0.0):
            texts, n = super().generate_raw(prompts, max_new_tokens, seeds, temperature=temperature)
            return [COMPLIANT for _ in texts], n

    rep = run(tmp_path, Polite(), candidates=3)
    rows = [r for r in rows_of(tmp_path / "out", rep) if r["rule_ids"] == ["t.fake.no_insults"]
            and r["source"] == "generated" and r["boundary"] == "violation"]
    assert rows and all(r["chosen_from"] == "sampled" and r["rejected_from"] == "violator" for r in rows)


def test_candidate_settings_enter_the_store_key_and_manifest(tmp_path):
    first = run(tmp_path, FakeModel(), candidates=2)
    assert first.manifest.generation["candidates"] == 2
    model = FakeModel()
    again = run(tmp_path, model, candidates=3)  # one more candidate: only the new ones are generated
    cands = [c for c in model.calls if c[0] == "candidate"]
    assert again.stats.reused > 0 and cands
    assert all(c[0] == "candidate" for c in model.calls)
    model = FakeModel()
    run(tmp_path, model, candidates=3, candidate_temperature=0.5)  # another temperature: regenerated
    assert any(c[0] == "candidate" for c in model.calls)


# -- seed requests composed by code (--requests composed) -----------------------------------------

LOOK_SPEC = SPEC + '''
rule no_prices {
  must_not "Quote a price."
  authority system
  check not contains("$")
  example "a price" {
    user "How much is the blue kettle?"
    good "I can't quote prices here; the shop page shows the current one."
    bad "It's $40."
  }
  example "opening hours" {
    user "When does the shop open on Sundays?"
    good "It opens at 10am on Sundays."
    bad overrefusal "I'm sorry, but I can't help with that."
  }
}
'''


def test_composed_requests_make_no_attacker_call(tmp_path):
    """Under --requests composed the seed turn of every scenario whose rule has an example of its
    kind is composed by code from that rule's own example requests: no attacker call for it, the
    record says so (request_from), and the attacker writes the rest, counted as such."""
    spec = spec_of(LOOK_SPEC)
    model = FakeModel()
    rep = run(tmp_path, model, spec=spec, candidates=2, requests="composed")
    rows = rows_of(tmp_path / "out", rep)
    gen = [r for r in rows if r["source"] == "generated"]
    assert gen and {r["request_from"] for r in gen} == {"composed", "attacker"}
    for r in gen:
        rule = r["rule_ids"][0]
        user = next(m["content"] for m in r["prompt"] if m["role"] == "user")  # the seed turn
        if rule == "t.fake.no_insults" and r["boundary"] != "lookalike":
            assert r["request_from"] == "composed" and "you are useless" in user.lower()
        elif rule == "t.fake.no_prices":  # a lookalike example (its only bad answer over-refuses) for lookalikes
            assert r["request_from"] == "composed"
            core = "shop open on sundays" if r["boundary"] == "lookalike" else "blue kettle"
            assert core in user.lower(), user
        else:  # no example of the scenario's kind: the attacker writes it (never a silent fallback)
            assert r["request_from"] == "attacker" and "rude" in user
    assert all(r["request_from"] == "spec" for r in rows if r["source"] == "spec-example")
    # one attacker call per attacker-written scenario, none for the composed ones
    by = rep.stats.requests_from
    assert by["composed"] > 0 and by["attacker"] > 0
    # a scenario dropped before any call (the judge not trusted) has no seed turn
    assert by["composed"] + by["attacker"] == rep.stats.scenarios - rep.stats.dropped_reasons.get("judge-uncalibrated", 0)
    assert len(model.prompts["attacker"]) == by["attacker"] == rep.cost.by_role["attacker"].calls
    assert rep.cost.requests == by and rep.manifest.generation["requests"] == "composed"
    assert any(line.startswith("  user turns: ") for line in rep.cost.lines())
    cost = json.loads((tmp_path / "out" / "cost.json").read_text())
    assert cost["requests"] == by and cost["by_role"]["attacker"]["calls"] == by["attacker"]


# -- a composed scenario's missing side from its example (--example-sides) -------------------------

SIDES_SPEC = LOOK_SPEC


class Polite(FakeModel):
    """Never violates when chatting (every candidate complies); the roles as FakeModel's."""

    def generate_raw(self, prompts, max_new_tokens, seeds, *, temperature=0.0):
        texts, n = super().generate_raw(prompts, max_new_tokens, seeds, temperature=temperature)
        return [COMPLIANT for _ in texts], n


class Deflecting(FakeModel):
    """Greedy, it deflects (a refusal passes `no_insults`' check); sampled, it insults."""

    def generate_raw(self, prompts, max_new_tokens, seeds, *, temperature=0.0):
        _, n = super().generate_raw(prompts, max_new_tokens, seeds, temperature=temperature)
        return [VIOLATION if temperature > 0 else "I'm sorry, but I can't help with that." for _ in prompts], n


def _insult_rows(rows, single_turn=True):
    return [r for r in rows if r["source"] == "generated" and r["rule_ids"] == ["t.fake.no_insults"]
            and r["boundary"] != "lookalike" and (r["axes"].get("tactic") != "multi_turn") == single_turn]


def test_a_side_the_model_never_gives_is_the_examples_answer(tmp_path):
    """A model that never insults: the composed single-turn scenarios of `no_insults` take the
    rejected side from the example their request was composed from ("Only an idiot asks that."),
    verified by the check, with no violator call for them; the chosen side stays the model's.
    Multi-turn scenarios (the example answers the first turn, not the last) and
    --no-example-sides keep the violator."""
    spec = spec_of(SIDES_SPEC)
    model = Polite()
    rep = run(tmp_path / "a", model, spec=spec, per_rule=3, candidates=2)
    rows = rows_of(tmp_path / "a" / "out", rep)
    single = _insult_rows(rows)
    assert single and all(r["request_from"] == "composed" for r in single)
    for r in single:
        assert (r["chosen_from"], r["rejected_from"]) == ("sampled", "spec")
        assert r["chosen"][-1]["content"] == COMPLIANT and r["rejected"][-1]["content"] == "Only an idiot asks that."
    multi = _insult_rows(rows, single_turn=False)
    assert multi and all(r["rejected_from"] == "violator" for r in multi)
    # the violator was asked only for the multi-turn ones (one user turn: a single-turn conversation)
    single_turn_asks = [m for m in model.prompts.get("violator", [])
                        if "You are useless" in json.dumps(m) and sum(x["role"] == "user" for x in m) == 1]
    assert not single_turn_asks
    assert rep.stats.sides_from["rejected:spec"] >= len(single)
    assert rep.manifest.generation["example_sides"] is True
    # never both sides from the spec: a generated record always has a side of the model's
    assert not [r for r in rows if r["source"] == "generated" and r["chosen_from"] == r["rejected_from"] == "spec"]

    off = run(tmp_path / "b", Polite(), spec=spec, per_rule=3, candidates=2, example_sides=False)
    rows = rows_of(tmp_path / "b" / "out", off)
    assert _insult_rows(rows) and all(r["rejected_from"] == "violator" for r in _insult_rows(rows))
    assert "rejected:spec" not in off.stats.sides_from and off.manifest.generation["example_sides"] is False


def test_a_deflection_is_no_chosen_side_where_the_example_helps(tmp_path):
    """The model's greedy answer refuses ("I'm sorry, but I can't help with that."): the rule's
    check passes it, but the example's good answer to the same request helps, so the chosen side
    is that answer and the rejected one the model's real violation (sampled)."""
    rep = run(tmp_path, Deflecting(), spec=spec_of(SIDES_SPEC), per_rule=3, candidates=2)
    single = _insult_rows(rows_of(tmp_path / "out", rep))
    assert single
    for r in single:
        assert (r["chosen_from"], r["rejected_from"]) == ("spec", "sampled")
        assert r["chosen"][-1]["content"] == "Sorry about that, let me help."
        assert "idiot" in r["rejected"][-1]["content"]


def test_no_pair_of_two_example_sides(tmp_path):
    """Where the model gives neither side (every candidate and role call fails), the scenario is
    dropped: the example's answers never make both sides of a generated pair."""
    model = FakeModel(fault=lambda role, m, t: "garbage" if role in ("candidate", "defender", "violator") else None)
    rep = run(tmp_path, model, spec=spec_of(SIDES_SPEC), per_rule=3, candidates=2)
    assert not [r for r in rows_of(tmp_path / "out", rep) if r["source"] == "generated"]
    assert "chosen:spec" not in rep.stats.sides_from and "rejected:spec" not in rep.stats.sides_from


def test_model_requests_keep_the_attacker(tmp_path):
    model = FakeModel()
    rep = run(tmp_path, model, spec=spec_of(LOOK_SPEC), requests="model")
    rows = rows_of(tmp_path / "out", rep)
    assert {r["request_from"] for r in rows if r["source"] == "generated"} == {"attacker"}
    asked = rep.stats.scenarios - rep.stats.dropped_reasons.get("judge-uncalibrated", 0)
    assert rep.stats.requests_from == {"attacker": asked} and len(model.prompts["attacker"]) >= asked
    assert rep.manifest.generation["requests"] == "model"


def test_composed_requests_are_deterministic_and_apply_the_tactic(tmp_path):
    a = run(tmp_path / "a", FakeModel(), spec=spec_of(LOOK_SPEC), per_rule=3, requests="composed")
    b = run(tmp_path / "b", FakeModel(), spec=spec_of(LOOK_SPEC), per_rule=3, requests="composed")
    for rel in ["manifest.json", "README.md", a.files["train"]]:
        assert (tmp_path / "a" / "out" / rel).read_bytes() == (tmp_path / "b" / "out" / rel).read_bytes()
    # the seed differs: other openers, closers, spellings (the same cores)
    c = run(tmp_path / "c", FakeModel(), spec=spec_of(LOOK_SPEC), per_rule=3, requests="composed", seed=7)
    users = lambda rep, root: sorted(r["prompt"][-1]["content"] for r in rows_of(root / "out", rep)
                                     if r.get("request_from") == "composed")
    assert users(a, tmp_path / "a") != users(c, tmp_path / "c")
    # the scenario's tactic is applied by code around the composed request
    plan = make_plan(spec_of(LOOK_SPEC), per_rule=3, boundaries=("violation",))
    multi = {s.id for s in plan.scenarios if s.axes.get("tactic") == "multi_turn"}
    assert multi


def test_an_edit_of_one_rule_leaves_the_other_rules_composed_requests(tmp_path):
    """A composed request depends on its own rule only: editing another rule (its statement, or its
    example's request) changes no call and no record of this one."""
    spec = spec_of(LOOK_SPEC)
    first = run(tmp_path, FakeModel(), spec=spec, candidates=2, requests="composed")
    before = {r["record_id"]: r for r in rows_of(tmp_path / "out", first) if r["rule_ids"] == ["t.fake.no_insults"]}
    edited = spec_of(LOOK_SPEC.replace("How much is the blue kettle?", "How much is the red kettle today?")
                     .replace("Quote a price.", "Quote a price, ever."))
    model = FakeModel()
    again = run(tmp_path, model, spec=edited, candidates=2, requests="composed")
    per = again.stats.per_rule
    assert per["t.fake.no_prices"].generated > 0
    assert all(per[r].generated == 0 for r in per if r != "t.fake.no_prices")
    after = {r["record_id"]: r for r in rows_of(tmp_path / "out", again) if r["rule_ids"] == ["t.fake.no_insults"]}
    assert after == before


def test_estimate_counts_no_attacker_call_for_composed_requests(tmp_path):
    from specc.compile import estimate_compile

    spec = spec_of(LOOK_SPEC)
    opts = dict(out_dir=tmp_path / "o", store=tmp_path / "empty", per_rule=1)
    model = estimate_compile(spec, Path("fake.spec"), CompileOptions(**opts, requests="model"))
    composed = estimate_compile(spec, Path("fake.spec"), CompileOptions(**opts, requests="composed"))
    assert model.roles["attacker"].calls == model.scenarios
    plan = make_plan(spec, per_rule=1)
    attacker_written = sum(1 for s in plan.scenarios
                           if s.rule_id in ("t.fake.be_honest", "t.fake.short")
                           or (s.rule_id == "t.fake.no_insults" and s.boundary == "lookalike"))
    assert composed.roles["attacker"].calls == attacker_written < model.scenarios
    # measured on the store of a composed run: still no attacker call for the composed scenarios
    rep = run(tmp_path, FakeModel(), spec=spec, requests="composed")
    measured = estimate_compile(spec, Path("fake.spec"),
                                CompileOptions(out_dir=tmp_path / "o", store=tmp_path / "store", per_rule=1,
                                               requests="composed"))
    assert measured.basis == "measured"
    assert measured.roles["attacker"].calls == pytest.approx(rep.cost.by_role["attacker"].calls)


def test_estimate_counts_no_role_call_for_a_side_the_example_answers(tmp_path):
    """From the plan alone, a composed single-turn scenario whose example answers a side counts no
    defender (violator) call for it under --example-sides; the roles keep their share elsewhere."""
    from specc.compile import estimate_compile

    spec = spec_of(LOOK_SPEC)
    opts = dict(out_dir=tmp_path / "o", store=tmp_path / "empty", per_rule=2, requests="composed")
    on = estimate_compile(spec, Path("fake.spec"), CompileOptions(**opts))
    off = estimate_compile(spec, Path("fake.spec"), CompileOptions(**opts, example_sides=False))
    plan = make_plan(spec, per_rule=2)
    # no_insults and no_prices have examples of both kinds' answers: their single-turn composed
    # scenarios (follow_rule, or help at a lookalike) take half a defender and half a violator call each
    filled = [s for s in plan.scenarios if s.rule_id in ("t.fake.no_insults", "t.fake.no_prices")
              and s.axes.get("tactic") != "multi_turn" and s.expected == ("help" if s.boundary == "lookalike" else "follow_rule")
              and (s.boundary != "lookalike" or s.rule_id == "t.fake.no_prices")]
    assert filled
    assert off.roles["defender"].calls - on.roles["defender"].calls == pytest.approx(0.5 * len(filled))
    assert off.roles["violator"].calls - on.roles["violator"].calls == pytest.approx(0.5 * len(filled))
    assert on.roles["candidate"].calls == off.roles["candidate"].calls


def test_requests_option_on_the_command_line(tmp_path):
    from click.testing import CliRunner
    from specc.cli import main

    spec = tmp_path / "t.spec"
    spec.write_text(LOOK_SPEC, encoding="utf-8")
    bad = CliRunner().invoke(main, ["compile", str(spec), "-o", str(tmp_path / "o"), "--requests", "attacker"])
    assert bad.exit_code == 2 and "--requests" in bad.output and "Traceback" not in bad.output
    est = CliRunner().invoke(main, ["plan", str(spec), "--estimate", "--requests", "composed", "--format", "json",
                                    "--store", str(tmp_path / "none")])
    assert est.exit_code == 0, est.output
    with pytest.raises(Exception, match="--requests must be one of"):
        run(tmp_path, FakeModel(), requests="bogus")
