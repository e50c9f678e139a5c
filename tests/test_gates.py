"""Quality gates (specc/synth/gates.py): each gate on junk from real runs and on good text, the
pipeline's regenerate-then-drop path (scripted model), `specc audit` and `specc explain`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specc.synth.calls import Settings
from click.testing import CliRunner

from specc.cli import main
from specc.synth import gates
from specc.synth.gates import GATES, Context, failures, first_failure, pair_failure
from test_synth_pipeline import SPEC, FakeModel, judged_rule, rows_of, run, spec_of

RULE = ("should not Use internal jargon such as SKU codes, warehouse names or ticket states.",
        "The customer asks about an order.")
AXES = (("persona", "first-time customer"), ("persona", "small-business buyer"), ("tactic", "direct"))
CTX = Context(rule_texts=RULE, axes=AXES)


def names(kind: str, text: str, ctx: Context = CTX) -> list[str]:
    return [f.gate.name for f in failures(kind, text, ctx)]


# -- each gate: junk (verbatim from compiles of examples/support with the 135M model) and good text

GOOD_USER = [
    "Hi, please change the email on my account to mark.t.new@example.com, I lost access to the old one.",
    "Can you add a new shipping address to my account?",  # shares 5 words with a `when`: 50%
    "Can you show more than the last four digits of my card?",
    "I'm a first-time customer and my parcel is late. Where is order AC-20931?",
    "No. A real person. Now.",
    "where's my order AC-20931",
    "My wife ordered something last week, I think it's for my birthday. What's in order 88213?",
    "Thanks for your reply, I'll check the tracking link.",
    "The customer service here is awful. Where is my order?",
    "The assistant told me my refund was approved, but nothing came.",
    "The AI assistant is broken: it keeps logging me out. Can you help?",
    "The customer is always right, so refund me.",
    "A first-time customer's question: where is order AC-20931?",  # an axis value, but a request follows
    "The first-time customer discount did not apply to my order.",  # "the" + an axis value, no narration
    "See [Help Centre](https://help.acme.com): does it cover gift cards?",  # a Markdown link
    "Why does print(f'{total}') show nothing in your API example?",  # code, not a template variable
    "Can I export my PowerPoint slides to JavaScript on macOS?",  # camelCase names are words
    "Why do getUserName and setUserName return null in my B2B account's API client?",
    "Why was I charged twice? Here is the receipt: VISA 4539 1488 0343 6467 £42.99 12 Mar "
    "VISA 4539 1488 0343 6467 £42.99 12 Mar",
]
GOOD_CHOSEN = [
    "help.acme.com/returns has the steps, and the label is free.",  # a link may open an answer
    "Order 55120 was charged on 3 May to your Visa ending in 4242.",
    "Hi Amara, yes: order AC-40112 shipped this morning and should arrive tomorrow.",
    '{"status": "in_transit", "eta": "2026-05-14", "tracking_url": "https://track.acme.com/AC-20931"}',
    "We deliver on Sundays in most of the UK; choose a slot at checkout.",
    "I can't share a private person's address. If you know her, you could ask her directly.",
    "Please stop using it and unplug it: a swollen battery can catch fire.",
]
GOOD_REJECTED = [
    "Order 55120 was charged to 4242 4242 4242 4242 on 3 May.",  # a number repeated is no loop
    "Return declined.",  # curt but a realistic rejected side
    "Sure, here is the scene between them:",  # a rejected side may stop short (Q108 is not for it)
    "I'm sorry, but I can't help with that.",
]


@pytest.mark.parametrize("text", GOOD_USER)
def test_good_user_turns_pass(text):
    # off-topic (Q112) compares with the rule, and these turns come from many rules: tested below
    assert [n for n in names("user", text) if n != "off-topic"] == []


@pytest.mark.parametrize("text", GOOD_CHOSEN)
def test_good_chosen_answers_pass(text):
    assert [n for n in names("chosen", text, Context(user_turns=("Do you deliver on Sundays?",)))
            if n != "off-topic"] == []


DELIVERY = Context(rule_texts=("should Give delivery estimates as a range of dates taken from the carrier's tracking data.",
                               "The customer asks when an order will arrive."),
                   topic=("I'm leaving for holiday on Friday, will my swimsuit order get here in time?",))


@pytest.mark.parametrize("kind,text,off", [
    ("user", "Will my parcel arrive before Friday?", False),
    ("user", "Where is my order? The tracking page says nothing.", False),
    ("user", "I'm sending a reminder to the 18th of every month.", True),  # verbatim, a 135M attacker
    ("user", "My blender is broken and I want it fixed.", True),
    ("chosen", "The carrier expects it between Wednesday and Thursday.", False),
    ("chosen", "I'm sorry, but I can't help with that.", False),  # a refusal is not judged
    ("chosen", "Bananas are a good source of potassium and vitamins.", True),
    ("user", "Hi there!", False),  # too short to judge
])
def test_off_topic(kind, text, off):
    assert ("off-topic" in names(kind, text, DELIVERY)) is off


@pytest.mark.parametrize("text", GOOD_REJECTED)
def test_good_rejected_answers_pass(text):
    assert names("rejected", text) == []


@pytest.mark.parametrize("kind,text,gate", [
    ("user", "The assistant's rule: it should not Use internal jargon such as SKU…", "parroted-instructions"),
    ("user", "The user requested a message that would break the rule of…", "parroted-instructions"),
    ("user", "The customer is leaving for holiday on Friday, will their swimsuit arrive?", "parroted-instructions"),
    ("user", "A first-time customer asks when the order arrives.", "parroted-instructions"),
    ("user", "A customer reports heat, smoke, sparks, a swelling battery or a...", "parroted-instructions"),
    ("user", "A small business buyer with a customer message containing a card no", "parroted-instructions"),
    ("user", "The small-business buyer is looking for a phone charger that can tell them", "parroted-instructions"),
    ("user", "The AI assistant is designed to help users with their requests, but", "parroted-instructions"),
    ("user", "The AI assistant is trying to break a rule, so it can't.", "parroted-instructions"),
    ("user", "The chatty assistant is trying to be helpful, but she's just too...", "parroted-instructions"),
    ("user", "Write the message a user sends in this situation: the order is late.",
     "parroted-instructions"),
    ("chosen", "Keep the rule whatever the conversation claims, stay polite.", "parroted-instructions"),
    ("user", "Use internal jargon such as SKU codes, warehouse names or ticket states.", "parroted-rule"),
    ("user", "The customer asks about an order.", "parroted-rule"),
    ("user", "first-time customer", "bare-axis-value"),
    ("user", "I'm a first-time customer.", "bare-axis-value"),
    ("rejected", "The wrong reply", "scaffolding"),  # the old templates' example value, in old datasets
    ("rejected", "<the wrong reply>", "scaffolding"),
    ("chosen", "<your reply>", "scaffolding"),
    ("chosen", "<text here", "scaffolding"),
    ("user", '{"user": "where is my order"}', "scaffolding"),
    ("user", "{name} [mystery message", "scaffolding"),
    ("user", "{MysteryUser.Name} [13:24:06[789, 2]: I am angry about delayed last", "scaffolding"),
    ("chosen", "Dear [Customer Name], your order has shipped.", "scaffolding"),
    ("user", "Exception: the item is faulty, so refund me", "scaffolding"),
    ("user", "Style of the message: angry", "scaffolding"),
    ("user", "Persona: journalist", "scaffolding"),
    ("chosen", "Sure. user: thanks! assistant: you're welcome", "scaffolding"),
    ("rejected", "I'm sorry, I'm sorry, I'm sorry, …", "repetition"),
    ("rejected", "You idiot, " + " ".join(["word"] * 20), "repetition"),
    ("chosen", "I can help you with that. I can help you with that.", "repetition"),
    ("chosen", "The answer is:", "fragment"),
    ("chosen", "Your order AC-20931 is on its way and will arrive with the", "fragment"),
    ("user", "Here is my order number and", "fragment"),
    ("chosen", "I'm sorry for any confusion, but as a chatbot, I don't have the ability to browse the internet.",
     "canned-deflection"),  # verbatim, the 135M model as a candidate
    ("chosen", "I'm sorry for your loss, but as an assistant, I'm not equipped to assist with returns.",
     "canned-deflection"),
    ("user", "Sure, I can help with that.", "canned-deflection"),  # verbatim, the 135M attacker
    ("user", "I'm sorry, but I can't help with your order. Can you try again?", "canned-deflection"),
    ("rejected", "I'm sorry, but I can't help with that. I'm an over-cautious assistant.", "parroted-instructions"),
    ("rejected", "guaranteed to arrive on Wednesday. No other options available.", "fragment"),
    ("rejected", "guaranteed,but optional,and only a limited time!", "fragment"),
    # verbatim, the tiny random model of the tests as the attacker (7 words: too few for Q111)
    ("user", "counselingectinernacleinterpretationResp xmlATION twistcommgeneratorleaved Fusion contacting "
             "Methodistgar eject", "token-soup"),
    ("chosen", "pastryEnvironmentalUSE cerealslegetein quantifyohistTYPESreflection heating uncleANK", "token-soup"),
    ("rejected", "Your order \ufffdshipped today, hintManagementPlaneProtection\ufffdographersPot", "token-soup"),
    ("chosen", "OK", "too-short"),
    ("rejected", "", "too-short"),
    ("chosen", "...", "too-short"),
])
def test_junk_fails_its_gate(kind, text, gate):
    assert gate in names(kind, text)


def test_parroted_prompt():
    user = "Hi, please change the email on my account to mark.t.new@example.com"
    ctx = Context(user_turns=(user,))
    assert names("chosen", user, ctx) == ["parroted-prompt"]
    assert names("chosen", "Please change the email on my account.", ctx) == ["parroted-prompt"]
    f = first_failure("chosen", "Hi, please change the email on my account to mark.t.new@example.com today", ctx)
    assert f is not None and f.gate.code == "Q105"
    # the opening of a compile's lookalike: 14 words of the user turn, then a few of its own (74%)
    story = "The story begins as a journalist uses the term 'near miss' in an un"
    f = first_failure("chosen", "The story begins as a journalist uses the term 'near miss' in an unrefined way. "
                      "The journalist's", Context(user_turns=(story,)))
    assert f is not None and f.gate.name == "parroted-prompt" and "10+ words" in f.detail
    # an answer that picks up a few of the user's words is an answer
    assert names("chosen", "I can change the email once you read me the one-time code we just sent.", ctx) == []
    # a violator may legitimately echo what the user asked for: the gate is for the chosen side only
    assert names("rejected", user, ctx) == []


def test_identical_sides():
    a = "Thanks for waiting. Your refund was approved yesterday and should reach your card within five days."
    assert pair_failure(a, a).gate.name == "identical-sides"
    assert pair_failure(a, a.upper().replace(".", "!")) is not None  # case and punctuation do not count
    assert pair_failure(a, a.replace("approved", "approved only")) is not None  # 17 of 18 words
    # minimal pairs: a number or a negation is the whole point of the pair
    assert pair_failure(a, a.replace("five", "5")) is None
    assert pair_failure("You can return it within 30 days of delivery, and the refund goes to your card.",
                        "You can return it within 90 days of delivery, and the refund goes to your card.") is None
    assert pair_failure(a, a.replace("was approved", "was not approved")) is None
    assert pair_failure("Yes, it's expected to arrive on Wednesday.",
                        "Yes, it's guaranteed to arrive on Wednesday.") is None


def test_fragment_cut_by_the_bound_is_not_judged():
    text = "Your order AC-20931 is on its way. It will arrive with the"
    assert first_failure("chosen", text).gate.name == "fragment"
    # generated under a bound it reached: cut by construction (Outlines closes the string there)
    assert first_failure("chosen", text, Context(limits=(len(text),))) is None
    assert first_failure("chosen", text, Context(limits=(len(text) + 2,))) is None
    assert first_failure("chosen", text, Context(limits=(len(text) + 10,))).gate.name == "fragment"
    # a lowered max_words bound cuts by words
    assert first_failure("chosen", text, Context(max_words=len(text.split()))) is None
    # ending with a colon is a fragment at any length below the bound
    assert first_failure("chosen", "Here are the steps:", Context(limits=(96,))).gate.name == "fragment"
    # ... and a chosen answer the bound cut before its first sentence ended has nothing whole to keep
    # (verbatim, the 135M defender at --max-chars 96)
    cut = "Please stop using air fryers for air frying, and make sure to avoid using them for air frying in"
    assert first_failure("chosen", cut, Context(limits=(len(cut),))).gate.name == "fragment"
    assert first_failure("rejected", cut, Context(limits=(len(cut),))) is None
    # a user turn too (the compile trims a cut request to its whole sentences first; this one has
    # none); verbatim, the 135M attacker at --max-chars 96
    request = "Why does the phone charger suddenly get hot or hot when"
    assert first_failure("user", request, Context(limits=(len(request),))).gate.name == "fragment"
    assert first_failure("user", "Where is my parcel? It was due on", Context(limits=(33,))) is None


def test_scaffolding_comes_from_the_templates():
    sc = gates.scaffolding()
    assert {"user", "answer"} <= set(sc.keys) and "the wrong reply" in sc.placeholders
    assert {"style of the message", "exception", "it applies when"} <= set(sc.labels)
    assert ("write", "the", "message", "a", "user") in sc.instruction_grams


def test_gates_are_deterministic_and_kinds_are_checked():
    text = "The user requested a message that would break the rule of the shop."
    assert failures("user", text, CTX) == failures("user", text, CTX)
    with pytest.raises(ValueError):
        failures("judge", text)


def test_every_gate_has_a_case_here():
    """Each gate of the table fails on at least one text of this file's cases."""
    cases = [("user", t) for t in ["The user requested a message that would break the rule of…",
                                   "Use internal jargon such as SKU codes, warehouse names or ticket states.",
                                   "first-time customer", "<the wrong reply>", "Sorry sorry sorry sorry",
                                   "Here is my order number and", "OK",
                                   "mappedICs twistcommgeneratorleaved Fusion contacting"]]
    seen = {f.gate.code for k, t in cases for f in failures(k, t, CTX)}
    seen |= {f.gate.code for f in failures("chosen", "where is my order", Context(user_turns=("where is my order",)))}
    seen.add(pair_failure("Same answer here.", "Same answer here.").gate.code)
    example = "I can only share order details with the account holder, so order 88213 stays a surprise!"
    seen |= {f.gate.code for f in failures("chosen", "I can only share order details with the account holder.",
                                            Context(examples=(example,)))}
    # stock phrasing shared with an example is no copy
    assert failures("rejected", "I'm sorry, but I can't help with that at all.",
                    Context(examples=("I'm sorry, but I can't help with medication questions.",))) == []
    seen |= {f.gate.code for f in failures("chosen", "As an AI, I cannot see your order.")}
    seen |= {f.gate.code for f in failures("user", "My blender is broken and I want it fixed today.", DELIVERY)}
    seen |= {f.gate.code for f in failures("chosen", "Aba el habilidad es específico",
                                            Context(user_turns=("Where is my order? It is late again.",)))}
    assert seen == {g.code for g in GATES}


def test_gate_table_is_well_formed():
    assert len({g.code for g in GATES}) == len({g.name for g in GATES}) == len(GATES)
    for g in GATES:
        assert g.code.startswith("Q1") and g.summary and len(g.doc) > 80 and g.kinds <= set(gates.KINDS)
        assert gates.find(g.code) is g and gates.find(g.name) is g


# -- the pipeline: gated outputs are regenerated, then dropped with the gate's reason ------------

JUNK_ATTACK = "The user requested a message that would break the rule of the shop."


class JunkModel(FakeModel):
    """FakeModel whose answers ``junk(role, attempt)`` may replace; ``attempt`` is 0 for a first
    call (greedy, or the attacker's 0.7) and 1 for any retry (sampled at the retry temperature, 0.8)."""

    def __init__(self, junk, **kw):
        super().__init__(**kw)
        self.junk = junk
        self.temperature = 0.0

    def generate_json(self, prompts, output_type, max_new_tokens, seeds, *, temperature=0.0):
        self.temperature = temperature
        return super().generate_json(prompts, output_type, max_new_tokens, seeds, temperature=temperature)

    def answer(self, role, messages) -> str:
        if role == "judge":  # a right judge (also on the spec's examples, should it be calibrated on them)
            text = messages[-1]["content"]
            first = text.split("First answer: ", 1)[1].split("\n\nSecond answer: ", 1)
            verdicts = ["complies" if a.startswith(GOOD_OPENINGS) else "violates" for a in first]
            return json.dumps({"first": verdicts[0], "second": verdicts[1], "cited_rules": [judged_rule(text)],
                               "reason": "ok"})
        text = self.junk(role, 0 if self.temperature < Settings().retry_temperature else 1)
        if text is None:
            return super().answer(role, messages)
        return json.dumps({"user": text} if role == "attacker" else {"answer": text})


GOOD_OPENINGS = ("Happy to help", "Sorry about that")  # FakeModel's chosen answer, the spec example's good one


def judged_scenarios(model) -> list:
    """The judge prompts about generated pairs (not about the spec's own examples)."""
    return [m for m in model.prompts.get("judge", []) if "Happy to help" in m[-1]["content"]
            or "Tell me something rude" in m[-1]["content"]]


def count(model, role) -> int:
    return sum(1 for r, _ in model.calls if r == role)


def _clean_calls(tmp_path, **kw):
    """The calls of the same compile with nothing gated."""
    model = JunkModel(lambda role, attempt: None)
    run(tmp_path / "clean", model, **kw)
    return model


def test_gated_attack_is_regenerated(tmp_path):
    model = JunkModel(lambda role, attempt: JUNK_ATTACK if role == "attacker" and attempt == 0 else None)
    rep = run(tmp_path, model, retries=1, requests="model")  # the attacker writes every seed turn
    s = rep.stats
    assert s.dropped == 0, s.dropped_reasons
    n = s.scenarios
    attacks = count(_clean_calls(tmp_path, requests="model"), "attacker")  # one each: a multi-turn escalation is code
    assert attacks == n
    assert s.gate_failures == {"gate:parroted-instructions:attacker": attacks}
    assert count(model, "attacker") == 2 * attacks  # every attacker call retried once
    rows = rows_of(tmp_path / "out", rep)
    assert all(JUNK_ATTACK not in json.dumps(r["prompt"]) for r in rows)


def test_a_request_its_bound_cut_is_trimmed_to_its_whole_sentences(tmp_path):
    """The user turn the README's data showed cut mid-word ("... a signed-in account for check-in.
    If you have a signed-i") keeps its whole sentences; a cut request with none is regenerated."""
    from specc.synth.pipeline import _bound
    from specc.synth.roles import attacker_type

    bound = _bound(attacker_type(Settings().bounds.attack), "user")[0]
    whole = "Can you tell me honestly whether you know the answer to my question?"
    cut = (whole + " If you do not know it, please tell me which of your sources " + "x" * bound)[:bound]
    no_sentence = ("Why does the phone charger suddenly get hot when I use it with the old cable from my "
                   "previous laptop that I bought in a small shop near the station last winter and never had "
                   "any problem with until the day my sister borrowed it for her trip to")[:bound]
    assert len(no_sentence) == bound
    model = JunkModel(lambda role, attempt: cut if role == "attacker" else None)
    rep = run(tmp_path, model, retries=1, requests="model")
    users = {m["content"] for r in rows_of(tmp_path / "out", rep) for m in r["prompt"] if m["role"] == "user"}
    assert any(u.endswith(whole) for u in users), (users, rep.stats.dropped_reasons)  # after a tactic's frame, if any
    assert not any(cut[len(whole):].strip() in u for u in users)
    assert "gate:fragment:attacker" not in rep.stats.gate_failures  # trimmed, not gated as a fragment
    # a cut request with no whole sentence is a fragment, regenerated (and here dropped: always cut)
    model = JunkModel(lambda role, attempt: no_sentence if role == "attacker" else None)
    rep = run(tmp_path / "none", model, retries=1)
    assert rep.stats.dropped_reasons.get("gate:fragment:attacker", 0) > 0, rep.stats.dropped_reasons


def test_always_gated_attack_is_dropped_before_any_answer(tmp_path):
    model = JunkModel(lambda role, attempt: JUNK_ATTACK if role == "attacker" else None)
    rep = run(tmp_path, model, retries=2, requests="model")
    s = rep.stats
    assert s.verified == 0 and s.dropped == s.scenarios
    assert s.dropped_reasons == {"gate:parroted-instructions:attacker": s.scenarios}
    assert count(model, "attacker") == 3 * s.scenarios  # no second round: the first never ended
    assert count(model, "defender") == count(model, "violator") == 0 and judged_scenarios(model) == []
    assert s.spec_examples == 1  # the spec's own example is still emitted


def test_gated_answer_regenerates_only_its_side(tmp_path):
    model = JunkModel(lambda role, attempt: "<the wrong reply>" if role == "violator" and attempt == 0 else None)
    # the roles' own retry (no example answer in their place)
    rep = run(tmp_path, model, retries=1, candidates=0, example_sides=False)
    s = rep.stats
    assert s.dropped == 0, s.dropped_reasons
    n = s.scenarios
    assert s.gate_failures == {"gate:scaffolding:violator": n}
    clean = _clean_calls(tmp_path, candidates=0, example_sides=False)
    assert count(clean, "violator") == n and count(model, "violator") == 2 * n
    assert count(model, "defender") == count(clean, "defender")  # the chosen side was not regenerated
    # the judge only ever saw the regenerated answer
    assert all("<the wrong reply>" not in json.dumps(m) for m in model.prompts.get("judge", []))


def test_always_gated_answer_is_dropped_unjudged(tmp_path):
    model = JunkModel(lambda role, attempt: "I'm sorry, I'm sorry, I'm sorry, I'm sorry" if role == "defender"
                      else None)
    rep = run(tmp_path, model, retries=1, candidates=0, example_sides=False)
    s = rep.stats
    assert s.verified == 0
    assert s.dropped_reasons == {"gate:repetition:defender": s.scenarios}
    assert judged_scenarios(model) == []


def test_identical_sides_regenerate_both(tmp_path):
    same = "Thanks for asking, I will not be rude about that and I will get back to you."
    model = JunkModel(lambda role, attempt: same if role in ("defender", "violator") and attempt == 0 else None)
    rep = run(tmp_path, model, spec=spec_of(SPEC.replace("axis tactic = [direct, multi_turn]", "")), retries=1,
              candidates=0, requests="model")  # the fake violator's answers were fitted to the attacker's turns
    s = rep.stats
    assert s.dropped == 0, s.dropped_reasons
    n = s.scenarios
    assert s.gate_failures == {"gate:identical-sides:pair": n}
    assert count(model, "defender") == count(model, "violator") == 2 * n


def test_gates_keep_determinism_and_resume(tmp_path):
    def junk(role, attempt):
        return JUNK_ATTACK if role == "attacker" and attempt == 0 else None

    a = run(tmp_path / "a", JunkModel(junk), requests="model")  # the attacker's gates are replayed too
    b = run(tmp_path / "b", JunkModel(junk), requests="model")
    for rel in ["manifest.json", "README.md", a.files["train"]]:
        assert (tmp_path / "a" / "out" / rel).read_bytes() == (tmp_path / "b" / "out" / rel).read_bytes()
    # a rerun on the same store replays the gates and generates nothing
    again = JunkModel(junk)
    c = run(tmp_path / "a", again, requests="model")
    assert c.stats.generated == 0 and again.calls == []
    assert c.stats.gate_failures == a.stats.gate_failures
    train = a.files["train"]
    assert (tmp_path / "a" / "out" / train).read_bytes() == (tmp_path / "b" / "out" / train).read_bytes()


def test_gates_change_no_store_key(tmp_path):
    """A gate adds retries and changes no key: the store of a run where every first attack is
    gated holds every key of the clean run, plus one retry per attacker call."""
    import sqlite3

    clean = _clean_calls(tmp_path)
    run(tmp_path / "gated",
        JunkModel(lambda role, attempt: JUNK_ATTACK if role == "attacker" and attempt == 0 else None))

    def rows(d):
        with sqlite3.connect(d / "store" / "store.sqlite") as conn:
            return dict(((k, r) for k, r in conn.execute("SELECT key, role FROM results")))

    a, b = rows(tmp_path / "clean"), rows(tmp_path / "gated")
    assert set(a) <= set(b)
    extra = [b[k] for k in set(b) - set(a)]
    assert extra and set(extra) == {"attacker"} and len(extra) == count(clean, "attacker")


def test_spec_examples_are_not_gated_but_counted(tmp_path):
    spec = spec_of(SPEC.replace('bad "Only an idiot asks that."', 'bad "<the wrong reply>"'))
    rep = run(tmp_path, JunkModel(lambda role, attempt: None), spec=spec)
    s = rep.stats
    assert s.spec_examples == 1
    assert s.spec_example_gate_warnings == {"scaffolding": 1}
    rows = rows_of(tmp_path / "out", rep)
    ex = [r for r in rows if r["source"] == "spec-example"]
    assert ex[0]["rejected"][0]["content"] == "<the wrong reply>"


# -- specc audit ---------------------------------------------------------------------------------


def cli(*args):
    return CliRunner().invoke(main, list(args))


def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def msg(role, text):
    return [{"role": role, "content": text}]


DPO_ROWS = [
    # good, conversational
    {"prompt": msg("user", "Which card did you charge for order 55120? I have two Visas."),
     "chosen": msg("assistant", "Order 55120 was charged on 3 May to your Visa ending in 4242."),
     "rejected": msg("assistant", "Order 55120 was charged to 4242 4242 4242 4242 on 3 May.")},
    # good, plain strings
    {"prompt": "Do you deliver on Sundays?", "chosen": "Yes, in most of the UK. Choose a Sunday slot at checkout.",
     "rejected": "I'm sorry, but I can't help with that."},
    # junk user turn + placeholder rejected
    {"prompt": msg("user", "The user requested a message that would break the rule of the shop."),
     "chosen": msg("assistant", "Happy to help with your order today."),
     "rejected": msg("assistant", "The wrong reply")},
    # looping rejected, fragment chosen
    {"prompt": msg("user", "Where is my parcel? It was due on Monday."),
     "chosen": msg("assistant", "The answer is:"),
     "rejected": msg("assistant", "I'm sorry, I'm sorry, I'm sorry, …")},
]


def test_audit_dpo_text_and_json(tmp_path):
    write_jsonl(tmp_path / "ds" / "data" / "train.jsonl", DPO_ROWS)
    r = cli("audit", str(tmp_path / "ds"))
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "audited 4 records in data/train.jsonl" in out
    assert "flagged 2 of 4 (50.0%)" in out
    assert "Q101 parroted-instructions" in out and "data/train.jsonl:3 prompt[0]:" in out
    assert "Q104 scaffolding" in out and "Q107 repetition" in out and "Q108 fragment" in out
    r = cli("audit", str(tmp_path / "ds"), "--format", "json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["records"] == 4 and rep["flagged"] == 2 and rep["rate"] == 0.5
    assert set(rep["by_gate"]) == {g.name for g in GATES}
    by = {k: v["count"] for k, v in rep["by_gate"].items() if v["count"]}
    assert by == {"parroted-instructions": 1, "scaffolding": 1, "repetition": 1, "fragment": 1}
    ex = rep["by_gate"]["scaffolding"]["examples"][0]
    assert ex["file"] == "data/train.jsonl" and ex["line"] == 3 and ex["part"] == "rejected"
    assert ex["text"] == "The wrong reply"


def test_audit_fail_over(tmp_path):
    write_jsonl(tmp_path / "ds" / "train.jsonl", DPO_ROWS)
    assert cli("audit", str(tmp_path / "ds"), "--fail-over", "0.5").exit_code == 0  # 0.5 is not over 0.5
    r = cli("audit", str(tmp_path / "ds"), "--fail-over", "0.25")
    assert r.exit_code == 1
    assert "2 of 4 records (50.0%) fail a gate, over --fail-over 0.25" in r.stderr
    r = cli("audit", str(tmp_path / "ds"), "--fail-over", "0.25", "--format", "json")
    assert r.exit_code == 1 and json.loads(r.stdout)["fail_over"] == 0.25
    assert cli("audit", str(tmp_path / "ds"), "--fail-over", "2").exit_code == 2  # click: not a rate


def test_audit_kto_sft_and_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    kto = [{"prompt": msg("user", "Is my order late?"), "completion": msg("assistant", "OK"), "label": True},
           {"prompt": msg("user", "Is my order late?"), "completion": msg("assistant", "It should arrive tomorrow."),
            "label": False}]
    # one Parquet schema for both rows: the column a row does not use is null
    sft = [{"messages": msg("user", "first-time customer") + msg("assistant", "Welcome! How can I help today?"),
            "axes": {"persona": "first-time customer", "tactic": None}, "text": None},
           {"messages": None, "axes": None, "text": "Sorry sorry sorry sorry"}]
    write_jsonl(tmp_path / "ds" / "data" / "kto.jsonl", kto)
    pq.write_table(pa.Table.from_pylist(sft), tmp_path / "ds" / "data" / "sft.parquet")
    rep = json.loads(cli("audit", str(tmp_path / "ds"), "--format", "json").stdout)
    assert rep["files"] == ["data/kto.jsonl", "data/sft.parquet"]
    assert rep["records"] == 4 and rep["flagged"] == 3
    by = {k: v["count"] for k, v in rep["by_gate"].items() if v["count"]}
    assert by == {"too-short": 1, "bare-axis-value": 1, "repetition": 1}
    assert rep["by_gate"]["bare-axis-value"]["examples"][0]["line"] == 1  # parquet: the row


def test_audit_a_compiled_dataset(tmp_path):
    rep = run(tmp_path, JunkModel(lambda role, attempt: None))
    assert rep.stats.verified > 0
    r = cli("audit", str(tmp_path / "out"), "--format", "json", "--fail-over", "0")
    assert r.exit_code == 0, r.output
    audit = json.loads(r.stdout)
    assert audit["records"] == rep.counts["train"] + rep.counts["test"] and audit["flagged"] == 0


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "no such directory"),
    (lambda d: d.mkdir(), "no data files (*.jsonl or *.parquet)"),
    (lambda d: write_jsonl(d / "data" / "train.jsonl", DPO_ROWS[:1]) or
     (d / "data" / "train.jsonl").write_text(json.dumps(DPO_ROWS[0]) + "\n{not json\n"),
     "data/train.jsonl:2: not a JSON record"),
    (lambda d: write_jsonl(d / "train.jsonl", [{"question": "hi"}]), "train.jsonl:1: not a TRL record"),
    (lambda d: write_jsonl(d / "train.jsonl", [[1, 2]]), "train.jsonl:1: a record must be a JSON object"),
    (lambda d: write_jsonl(d / "train.jsonl", [{"prompt": 3, "chosen": "a b", "rejected": "c d"}]),
     "train.jsonl:1: `prompt` is a number: expected a string or a list"),
])
def test_audit_errors_exit_1_without_traceback(tmp_path, setup, message):
    d = tmp_path / "ds"
    setup(d)
    r = cli("audit", str(d))
    assert r.exit_code == 1, r.output
    assert message in r.stderr and "Traceback" not in r.output
    assert r.stdout == ""


# -- specc explain --------------------------------------------------------------------------------


@pytest.mark.parametrize("gate", GATES, ids=lambda g: g.code)
def test_explain_knows_every_gate(gate):
    for key in (gate.code, gate.code.lower(), gate.name):
        r = cli("explain", key)
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith(f"{gate.code} {gate.name} (gate)\n\n{gate.summary}.\n\n")
        assert gate.doc in r.stdout
    listing = cli("explain").stdout.splitlines()
    assert any(line.split()[:2] == [gate.code, gate.name] for line in listing)
