"""The language table (specc/language.py) against the grammar, the docs, the evaluators, the
lowerings and the diff, and `max_sentences`, the predicate added through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from specc import language
from specc.diagnostics import CODES
from specc.diff import diff_specs
from specc.diff import model as diff_model
from specc.ir import checks
from specc.ir.resolve import load_text
from specc.resources import grammar_path
from specc.synth import roles
from specc.syntax.fmt import format_text

REPO = Path(__file__).resolve().parent.parent
GRAMMAR = grammar_path().read_text(encoding="utf-8")


def _grammar_rule(name: str) -> str:
    """The right-hand side of a grammar rule, its continuation lines included."""
    m = re.search(rf"^\??{name}(?:\.\d+)?:(.*(?:\n\s+\|.*)*)", GRAMMAR, re.M)
    assert m, f"grammar/spec.lark has no rule {name}"
    return m.group(1)


# What the grammar writes after a field's keyword, by the table's kind of value.
_VALUE_SYMBOL = {"name": "NAME", "string": "STRING", "number": "NUMBER", "list": "value_list", "check": "check_expr"}


def test_the_grammar_has_the_fields_of_the_table_and_no_other():
    alternatives = [a.strip() for a in _grammar_rule("field").split("|")]
    keys = [{"axis_decl": "axis"}.get(a, a) for a in alternatives]
    assert keys == list(language.FIELD_KEYS)  # in the table's order, which the messages follow


@pytest.mark.parametrize("field", language.FIELDS, ids=lambda f: f.key)
def test_each_field_is_written_as_the_table_says(field):
    if field.key == "statement":
        assert _grammar_rule("statement").split() == ["MODALITY", "STRING"]
        assert set(re.findall(r'"(\w+)"', _grammar_rule("MODALITY"))) == set(field.keywords)
        return
    assert field.keywords == (field.key,)
    rule = _grammar_rule("axis_decl" if field.value == "axis" else field.key).split()
    assert rule[0] == f'"{field.key}"'
    if field.value in _VALUE_SYMBOL:
        assert rule[1:] == [_VALUE_SYMBOL[field.value]]
    elif field.value == "example":
        assert rule[1:3] == ["STRING", '"{"']


def _first_word(symbol: str) -> str:
    """The keyword that starts a declaration's grammar rule (`rule_decl: "rule" NAME ...`)."""
    return _grammar_rule(symbol).split()[0].strip('"')


def test_the_grammar_has_the_declarations_of_the_table_and_no_other():
    items = [a.strip() for a in _grammar_rule("item").split("|")]
    assert [_first_word(a) for a in items] == list(language.DECLARATIONS)
    inner = [a.strip() for a in _grammar_rule("section_item").split("|")]
    assert [_first_word(a) for a in inner] == list(language.SECTION_ITEMS)


def test_no_predicate_is_a_keyword_of_the_grammar():
    """The grammar names no predicate: a check calls any NAME, and the resolver knows which
    exist. A predicate named like a keyword would not even lex as a name."""
    keywords = set(re.findall(r'"([a-z_]+)"', GRAMMAR))
    name = re.compile(re.search(r"^NAME: /(.*)/$", GRAMMAR, re.M).group(1))
    assert "NAME" in _grammar_rule("check_atom")
    for p in language.PREDICATES:
        assert name.fullmatch(p.name) and p.name not in keywords, p.name


def test_the_docs_tables_are_the_tables_of_the_language():
    doc = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
    assert language.update_docs(doc) == doc, "run: python -m specc.language docs/language.md"
    assert language.field_table() in doc and language.predicate_table() in doc


def test_update_docs_rewrites_a_drifted_table():
    doc = (REPO / "docs" / "language.md").read_text(encoding="utf-8")
    drifted = doc.replace("| `max_sentences(n)` |", "| `max_sentence(n)` |")
    assert drifted != doc and language.update_docs(drifted) == doc


def test_every_predicate_has_an_evaluator_and_every_evaluator_a_predicate():
    assert list(checks.PREDICATES) == list(language.PREDICATE_NAMES)
    assert set(checks.EVALUATORS) == set(language.PREDICATE_NAMES)
    for p in language.PREDICATES:
        assert checks.PREDICATES[p.name].params == p.params


def test_every_lowering_the_table_names_exists_and_every_one_is_named():
    comply = {p.comply for p in language.PREDICATES} - {None}
    violate = {x for p in language.PREDICATES for x in (p.violate, p.violate_negated)} - {None}
    assert comply == set(roles.COMPLY)
    assert violate == set(roles.VIOLATE)


def test_the_diagnostics_list_the_table():
    assert f"library: {', '.join(language.PREDICATE_NAMES)}. A spec" in CODES["E301"].doc
    once = [f"`{f.key}`" for f in language.FIELDS if not f.many and f.key != "statement"]
    assert ", ".join(once[:-1]) + " and " + once[-1] in CODES["E208"].doc


def test_an_unknown_field_lists_every_field():
    result = load_text('spec s version "1.0.0"\n"""D."""\nrule r {\n  must "X."\n  colour red\n}\n')
    [d] = result.errors
    for f in language.FIELDS:
        assert f"`{f.keywords[0] if f.key == 'statement' else f.key}" in d.message, f.key


def test_the_formatter_writes_fields_in_the_table_order():
    values = {"statement": 'must "Do it."', "authority": "authority user", "severity": "severity low",
              "when": 'when "Asked."', "unless": 'unless "A test."', "details": 'details "More."',
              "tags": "tags [a]", "weight": "weight 2", "check": "check max_sentences(2)",
              "axis": "axis tone = [calm]",
              "example": 'example "e" {\n    user "Hi?"\n    good "Hello."\n  }'}
    assert set(values) == set(language.FIELD_KEYS)
    lines = [f"  {values[k]}" for k in reversed(language.FIELD_KEYS)]
    text = 'spec s version "1.0.0"\n  """D."""\n\nrule r {\n' + "\n".join(lines) + "\n}\n"
    out, diags = format_text(text)
    assert out is not None, diags
    body = out.split("rule r {\n", 1)[1].splitlines()
    firsts = [line.split()[0] for line in body if line.startswith("  ") and not line.startswith("    ")
              and line.strip() != "}"]
    assert firsts == ["must"] + [k for k in language.FIELD_ORDER if k != "statement"]


# -- the diff classes of each field -------------------------------------------------------------

BASE = '''spec s version "1.0.0"
  """D."""
rule r {
  should "Keep answers short."
  authority developer
  severity medium
  when "The user asks a question."
  unless "The user asks for detail."
  details "Short means a few sentences."
  tags [style]
  weight 1
  check max_sentences(3)
  axis tone = [calm]
  example "q" {
    user "What is a bond?"
    good "A loan to a company or a state."
  }
}
'''

# One edit per field of the table, in both directions the diff may tell apart.
EDITS = {
    "statement": [('should "Keep answers short."', 'must "Keep answers short."'),
                  ('should "Keep answers short."', 'should_not "Keep answers short."'),
                  ('should "Keep answers short."', 'should "Keep answers brief."')],
    "authority": [("authority developer", "authority root"), ("authority developer", "authority user")],
    "severity": [("severity medium", "severity high"), ("severity medium", "severity low")],
    "when": [('when "The user asks a question."', 'when "The user asks anything."'),
             ('  when "The user asks a question."\n', "")],
    "unless": [('  unless "The user asks for detail."\n', ""),
               ('unless "The user asks for detail."', 'unless "The user is a lawyer."')],
    "details": [('details "Short means a few sentences."', 'details "Short means two sentences."')],
    "tags": [("tags [style]", "tags [tone]")],
    "weight": [("weight 1", "weight 2")],
    "check": [("max_sentences(3)", "max_sentences(2)"), ("max_sentences(3)", "max_sentences(4)"),
              ("check max_sentences(3)", "check is_json")],
    "axis": [("axis tone = [calm]", "axis tone = [calm, curt]")],
    "example": [('good "A loan to a company or a state."', 'good "A loan."')],
}


def _rule(text: str):
    result = load_text(text)
    assert result.ok, result.diagnostics
    return result.spec


@pytest.mark.parametrize("key", language.FIELD_KEYS)
def test_a_change_of_each_field_gets_only_the_classes_of_the_table(key):
    base = _rule(BASE)
    seen: set[str] = set()
    for old, new in EDITS[key]:
        assert old in BASE
        changes = diff_specs(base, _rule(BASE.replace(old, new))).rules
        [change] = changes
        for fc in change.fields:
            field = {"modality": "statement"}.get(fc.field, fc.field.split()[0])
            assert field == key, fc
            seen |= set(fc.classes)
    assert seen and seen <= set(language.FIELD[key].diff)
    assert set(language.FIELD[key].diff) <= set(diff_model.CLASSES)


def test_max_sentences_has_a_direction_in_the_diff():
    base = _rule(BASE)
    [tighter] = diff_specs(base, _rule(BASE.replace("max_sentences(3)", "max_sentences(2)"))).rules[0].fields
    [looser] = diff_specs(base, _rule(BASE.replace("max_sentences(3)", "max_sentences(5)"))).rules[0].fields
    assert tighter.classes == (diff_model.TIGHTENED, diff_model.CHECKS_CHANGED)
    assert looser.classes == (diff_model.LOOSENED, diff_model.CHECKS_CHANGED)


# -- max_sentences ----------------------------------------------------------------------------

SPEC = 'spec s version "1.0.0"\n  """D."""\n\nrule r {\n  should "Be brief."\n  check CHECK\n}\n'


@pytest.mark.parametrize("text, count", [
    ("", 0),
    ("   ", 0),
    ("Hello", 1),
    ("Hello.", 1),
    ("Open the app. Tap Cards! Done?", 3),
    ("It costs 3.5 dollars; see example.com for more", 1),
    ('He said "stop." Then he left...', 2),
    ("Wait… what?!", 2),
    ("e.g. this", 2),  # an abbreviation ends a sentence: documented
    ("...", 0),
    ("- first\n- second", 1),  # no sentence end: one stretch
    ("Line one.\nLine two.", 2),
])
def test_sentences_are_counted_as_documented(text, count):
    assert checks.sentences(text) == count


def test_max_sentences_parses_checks_and_evaluates():
    spec = _rule(SPEC.replace("CHECK", "max_sentences(2)"))
    [check] = spec.rules[0].checks
    assert spec.rules[0].check_sources == ("max_sentences(2)",)
    assert checks.evaluate(check, "Open the app. Tap Cards.")
    assert not checks.evaluate(check, "Open the app. Tap Cards. Choose Freeze.")


@pytest.mark.parametrize("check, code, message", [
    ('max_sentences("2")', "E303", "`max_sentences` takes a whole number here"),
    ("max_sentences(-1)", "E303", "`max_sentences` takes a whole number here"),
    ("max_sentences()", "E302", "`max_sentences` takes 1 argument, got 0"),
    ("max_sentence(2)", "E301", "did you mean `max_sentences`?"),
])
def test_max_sentences_misused(check, code, message):
    result = load_text(SPEC.replace("CHECK", check))
    [d] = result.errors
    assert d.code == code and message in d.message


def test_max_sentences_formats_and_keeps_its_hash():
    text = SPEC.replace("CHECK", "max_sentences( 2 ,)")
    out, _ = format_text(text)
    assert "  check max_sentences(2)\n" in out
    assert format_text(out)[0] == out
    assert _rule(out).hash == _rule(text).hash


def test_an_example_against_max_sentences_is_w408():
    text = SPEC.replace("CHECK", "max_sentences(1)").replace(
        "}\n", '  example "e" {\n    user "Hi?"\n    good "Hello. How are you?"\n  }\n}\n', 1)
    result = load_text(text)
    assert result.ok
    assert [d.code for d in result.diagnostics] == ["W408"]


def test_a_lookalike_examples_good_answer_owes_the_check_nothing():
    """An example whose every bad answer is an over-refusal is a request the rule does not cover:
    its good answer helps and is not held to the rule's check (W408); another example still is."""
    lookalike = ('  example "l" {\n    user "What time do you open?"\n    good "We open at nine. Come by."\n'
                 '    bad overrefusal "I can\'t help with that."\n  }\n')
    ordinary = '  example "e" {\n    user "Hi?"\n    good "Hello. How are you?"\n  }\n'
    text = SPEC.replace("CHECK", "max_sentences(1)").replace("}\n", lookalike + "}\n", 1)
    assert [d.code for d in load_text(text).diagnostics] == []
    both = SPEC.replace("CHECK", "max_sentences(1)").replace("}\n", lookalike + ordinary + "}\n", 1)
    assert [d.code for d in load_text(both).diagnostics] == ["W408"]
