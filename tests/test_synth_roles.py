"""Role templates and output types: sandboxed rendering, the judge's Literal, check lowering."""

from __future__ import annotations

import json

import pytest
import regex
from pydantic import ValidationError

from specc.ir.checks import evaluate_all, is_refusal
from specc.ir.model import CheckCall, CheckNot
from specc.ir.resolve import load_text
from specc.plan.model import Scenario
from specc.synth import prompts, roles

INJECTION = '''spec t.inject version "1.0.0"

rule sneaky {
  must_not "Print {{ 7*7 }} or run {% for x in range(3) %}{{ x }}{% endfor %} {{ self.__init__ }}."
  authority system
  when "The user writes {{ config }}."
  unless "It is {# a comment #} fine."
  example "ex" {
    user "Say {{ 7*7 }} please"
    good "I will not say {{ 7*7 }}."
    bad "49"
  }
}
'''


def _scenario(rule, boundary="violation", expected="follow_rule", **kw) -> Scenario:
    return Scenario(id="s" * 32, rule_id=rule.id, rule_hash=rule.hash, boundary=boundary, expected=expected,
                    axes={"persona": "{{ 7*7 }}"}, index=0, seed=0, **kw)


def test_spec_text_is_data_not_template():
    spec = load_text(INJECTION, "inject.spec").spec
    rule = spec.rules[0]
    sc = _scenario(rule, exception="{% if true %}boom{% endif %}", boundary="lookalike", expected="help",
                   exception_kind="unless")
    demos = prompts.demonstrations(rule, sc.id)
    assert demos and demos[0][1] == "Say {{ 7*7 }} please"
    msgs = prompts.attacker_messages(rule, sc, demos)
    msgs += prompts.attacker_messages(rule, _scenario(rule), [("{{ 6*6 }}", "{{ 6*6 }}")])
    msgs += prompts.answer_messages("candidate", rule, _scenario(rule),
                                   [{"role": "user", "content": "a"}, {"role": "assistant", "content": "{{ 5*5 }}"}],
                                   None)
    msgs += prompts.answer_messages("defender", rule, sc, [{"role": "user", "content": "b"}], None)
    text = "\n".join(m["content"] for m in msgs)
    assert "{{ 5*5 }}" in text and "25" not in text
    assert "{{ 7*7 }}" in text and "{% for x in range(3) %}{{ x }}{% endfor %}" in text
    assert "{{ self.__init__ }}" in text and "{{ config }}" in text and "{# a comment #}" in text
    assert "{% if true %}boom{% endif %}" in text and "{{ 6*6 }}" in text
    assert "49" not in text and "36" not in text and "012" not in text
    for role in ("defender", "violator"):
        msgs = prompts.answer_messages(role, rule, _scenario(rule), [{"role": "user", "content": "{{ 7*7 }}"}], None)
        assert "{{ 7*7 }}" in msgs[0]["content"] and msgs[-1] == {"role": "user", "content": "{{ 7*7 }}"}
    msgs = prompts.judge_messages(rule, _scenario(rule), [{"role": "user", "content": "hi"}], "{{ 1+1 }}", "b")
    assert "First answer: {{ 1+1 }}" in msgs[-1]["content"]


def test_details_reach_the_defender_and_the_judge_cut_to_a_bound():
    long = "Word " * 400
    rule = load_text(f'spec t version "1.0.0"\nrule r {{ must "Be kind." details "Start. {long}End." }}').spec.rules[0]
    defender = prompts.answer_messages("defender", rule, _scenario(rule), [{"role": "user", "content": "hi"}], None)
    judge = prompts.judge_messages(rule, _scenario(rule), [{"role": "user", "content": "hi"}], "a", "b")
    for msgs in (defender, judge):
        text = "\n".join(m["content"] for m in msgs)
        assert "In detail: Start. Word" in text and "End." not in text
        shown = text.split("In detail: ")[1].split("\n")[0]
        assert len(shown) == roles.DETAILS_CHARS and shown.endswith("…")
    plain = load_text('spec t version "1.0.0"\nrule r { must "Be kind." }').spec.rules[0]
    msgs = prompts.answer_messages("defender", plain, _scenario(plain), [{"role": "user", "content": "hi"}], None)
    assert "In detail" not in msgs[0]["content"]


def test_templates_render_in_a_sandbox():
    from jinja2.exceptions import SecurityError

    # the environment itself refuses unsafe attribute access, should a template ever try it
    tmpl = roles._env.from_string("{{ x.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        tmpl.render(x="a").strip()
    assert roles._env.is_safe_attribute("a", "__class__", "a") is False


def test_judge_cites_only_real_rule_ids():
    V = roles.verdict_type(("acme.a", "acme.b"))
    ok = V.model_validate_json('{"first":"complies","second":"violates","cited_rules":["acme.b"],"reason":"x"}')
    assert ok.cited_rules == ["acme.b"]
    for bad in ('{"first":"complies","second":"violates","cited_rules":["acme.c"],"reason":"x"}',
                '{"first":"complies","second":"violates","cited_rules":["a"],"reason":"x"}',
                '{"first":"maybe","second":"violates","cited_rules":[],"reason":"x"}'):
        with pytest.raises(ValidationError):
            V.model_validate_json(bad)
    schema = V.model_json_schema()
    assert json.dumps(schema).count('"acme.a"') >= 1 and "acme.c" not in json.dumps(schema)


def _outlines_regex(output_type) -> str:
    from outlines_core.json_schema import build_regex_from_schema

    return build_regex_from_schema(json.dumps(output_type.model_json_schema()))


def _sample(pattern: str, text: str) -> str:
    """Assert ``{"answer": text}`` is in the language Outlines generates from; return text."""
    raw = json.dumps({"answer": text}, ensure_ascii=False, separators=(",", ":"))
    assert regex.fullmatch(pattern, raw), (pattern, raw)
    return text


@pytest.mark.parametrize("checks,good,bad", [
    ([CheckCall(name="max_words", args=(5,))], "one two three", "one two three four five six"),
    ([CheckCall(name="starts_with", args=("Dear (customer).",))], "Dear (customer). Hello there", "Hello"),
    ([CheckCall(name="is_json")], '{"a": "b"}', "not json"),
    ([CheckCall(name="refuses")], "I can't help with that. Try a locksmith.", "Sure, here it is."),
    ([CheckCall(name="max_chars", args=(20,))], "short", "x" * 21),
    ([CheckCall(name="max_sentences", args=(2,))], "Open the app. Tap Cards.", "One. Two. Three."),
    ([CheckCall(name="max_sentences", args=(2,)), CheckCall(name="refuses")],
     "I can't help with that. Ask a locksmith.", "I can't help with that. Ask a locksmith. Or a friend."),
])
def test_compliance_lowering_admits_only_passing_answers(checks, good, bad):
    shape = roles.lower_compliance(checks, max_chars=120)
    assert shape.lowered
    pattern = _outlines_regex(roles.answer_type(shape))
    assert evaluate_all(checks, _sample(pattern, good))
    raw_bad = json.dumps({"answer": bad}, separators=(",", ":"))
    assert not regex.fullmatch(pattern, raw_bad)


@pytest.mark.parametrize("check,bad", [
    (CheckNot(operand=CheckCall(name="contains", args=("idiot",))), "idiot, that is what you are and what you will always be, sadly"),
    (CheckCall(name="is_json"), "Plain words here"),
    (CheckCall(name="max_words", args=(3,)), "one two three four five"),
    (CheckCall(name="starts_with", args=("Hi",)), "Good day"),
    (CheckCall(name="max_sentences", args=(2,)), "Open the app. Tap Cards. Choose Freeze."),
])
def test_violation_lowering_admits_failing_answers(check, bad):
    shape = roles.lower_violation([check], max_chars=120)
    pattern = _outlines_regex(roles.answer_type(shape))
    assert not evaluate_all([check], _sample(pattern, bad))


def test_over_refusal_opening_is_a_refusal():
    assert is_refusal(roles.OVER_REFUSAL_OPENING) and is_refusal(roles.REFUSAL_OPENING)
    pattern = _outlines_regex(roles.answer_type(roles.Shape(prefix=roles.OVER_REFUSAL_OPENING)))
    _sample(pattern, roles.OVER_REFUSAL_OPENING + " Please ask someone else.")


def test_every_string_is_bounded():
    b = roles.Bounds(answer=100)
    for t in (roles.attacker_type(b.attack), roles.answer_type(roles.Shape(max_chars=100)),
              roles.verdict_type(("a.b",), b.reason)):
        for name, prop in t.model_json_schema()["properties"].items():
            if prop.get("type") == "string" and "enum" not in prop:
                assert "maxLength" in prop or "pattern" in prop, (t.__name__, name)
    assert set(b.budgets()) == set(roles.ROLES)
