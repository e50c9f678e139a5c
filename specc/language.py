"""The language's vocabulary in one table: the fields of a rule and the check predicates.

Every phase that needs to know which fields and predicates exist reads them here: the parser's
"expected ..." messages, the direct parser's field groups, the formatter's field order, the
resolver's cardinality and override rules, the lowering of checks into output types, the diff's
classes, the E301 text and the tables of ``docs/language.md`` (:func:`update_docs`). Adding a
predicate is a row in :data:`PREDICATES` and its evaluator in ``specc/ir/checks.py``; adding a
field is a row in :data:`FIELDS` and its line in ``grammar/spec.lark`` (``tests/test_language.py``
checks the grammar against this table).

This module sits below every other one and imports nothing from specc: the table is plain
data. What needs code is named, not imported: a predicate's evaluator is found by its name in
``specc.ir.checks``, its lowerings by their names in ``specc.synth.roles``, so imports keep
flowing one way (the IR and synth read the table; the table knows neither).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

# -- argument types -----------------------------------------------------------------------

ArgType = Literal["str", "regex", "int", "strlist"]


@dataclass(frozen=True)
class ArgKind:
    """One type of predicate argument: how a diagnostic names it, how the docs show it."""

    words: str  # in E303: "`max_words` takes a whole number here"
    doc: str  # the docs table's argument column
    placeholder: str  # the argument in the docs' written form: `max_words(n)`


ARG_KINDS: dict[str, ArgKind] = {
    "str": ArgKind("a string", "string", '"..."'),
    "regex": ArgKind("a regular expression string", "regular expression", 'r"..."'),
    "int": ArgKind("a whole number", "whole number ≥ 0", "n"),
    "strlist": ArgKind("a list of strings", "list of strings", "[...]"),
}


# -- rule fields --------------------------------------------------------------------------

ValueKind = Literal["string", "name", "list", "number", "check", "axis", "example"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of a rule body.

    ``key`` is the AST's ``Field.key`` and the grammar rule that parses it; ``keywords`` the
    words that start it (a statement starts with its modality); ``many`` whether it may repeat
    (a repeated one-time field is E208); ``attrs`` the :class:`~specc.ir.model.Rule`
    attributes it sets; ``override`` what ``override NAME { field ... }`` does with it:
    ``replace`` the value, ``replace-all`` the whole list, or ``merge`` by name (axes);
    ``position`` its place in ``specc fmt``'s canonical order; ``diff`` the classes a change
    to it can get from ``specc diff`` (``specc.diff.model``).
    """

    key: str
    keywords: tuple[str, ...]
    value: ValueKind
    many: bool
    attrs: tuple[str, ...]
    override: Literal["replace", "replace-all", "merge"]
    position: int
    diff: tuple[str, ...]
    doc: str
    default: str  # for the docs: what a rule without the field gets

    @property
    def times(self) -> str:
        """The docs' "times" column."""
        if self.many:
            return "any"
        return "exactly 1 (E209, E208)" if self.key == "statement" else "at most 1"


MODALITIES = ("must", "must_not", "should", "should_not")

# In the grammar's order (its `field` rule), which is also the order the docs and the parser's
# messages list them in.
FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("statement", keywords=MODALITIES, value="string", many=False, attrs=("modality", "statement"),
              override="replace", position=0, diff=("reworded", "tightened", "loosened", "inverted"),
              doc="`must`, `must_not`, `should` or `should_not` and a non-empty string (E210)", default="—"),
    FieldSpec("authority", keywords=("authority",), value="name", many=False, attrs=("authority",),
              override="replace", position=1, diff=("authority-changed", "tightened", "loosened"),
              doc="who may override the rule at run time (below)",
              default="`system` for `rule`, `user` for `default`"),
    FieldSpec("severity", keywords=("severity",), value="name", many=False, attrs=("severity",),
              override="replace", position=2, diff=("tightened", "loosened"),
              doc="`critical`, `high`, `medium`, `low`: how bad a violation is", default="`medium`"),
    FieldSpec("when", keywords=("when",), value="string", many=False, attrs=("when",),
              override="replace", position=3, diff=("trigger-changed", "tightened", "loosened"),
              doc="the situation that triggers the rule", default="always applies"),
    FieldSpec("unless", keywords=("unless",), value="string", many=True, attrs=("unless",),
              override="replace-all", position=4, diff=("tightened", "loosened", "reworded"),
              doc="an exception: a situation that looks like the trigger but is allowed", default="none"),
    FieldSpec("details", keywords=("details",), value="string", many=False, attrs=("details",),
              override="replace", position=7, diff=("reworded",),
              doc="the rule's long text: what a judge and a defender need to know beyond the statement "
                  "(definitions, edge cases, the reasoning); usually a block string", default="none"),
    FieldSpec("tags", keywords=("tags",), value="list", many=True, attrs=("tags",),
              override="replace-all", position=5, diff=("metadata-changed",),
              doc="free labels for filtering and reporting; several lines add up", default="none"),
    FieldSpec("weight", keywords=("weight",), value="number", many=False, attrs=("weight",),
              override="replace", position=6, diff=("metadata-changed",),
              doc="a number > 0 and ≤ 100 (E215) that scales how many scenarios the rule gets", default="`1`"),
    FieldSpec("check", keywords=("check",), value="check", many=True, attrs=("checks",),
              override="replace-all", position=8, diff=("checks-changed", "tightened", "loosened"),
              doc="an executable predicate every compliant answer satisfies; several lines must all hold",
              default="none"),
    FieldSpec("axis", keywords=("axis",), value="axis", many=True, attrs=("axes",),
              override="merge", position=9, diff=("axes-changed",),
              doc="an axis for this rule only", default="—"),
    FieldSpec("example", keywords=("example",), value="example", many=True, attrs=("examples",),
              override="replace-all", position=10, diff=("examples-changed",),
              doc="a worked conversation with good and bad answers", default="none"),
)

FIELD = {f.key: f for f in FIELDS}
FIELD_KEYS = tuple(f.key for f in FIELDS)
# The canonical order of fields inside a rule (`specc fmt`).
FIELD_ORDER = tuple(f.key for f in sorted(FIELDS, key=lambda f: f.position))
# Every word that starts a field.
FIELD_WORDS = tuple(w for f in FIELDS for w in f.keywords)


# -- declarations -------------------------------------------------------------------------

# The words that start an item of a file (the grammar's `item` rule), in its order, and those
# that may also stand inside a section (`section_item`).
DECLARATIONS = ("import", "extends", "axis", "section", "rule", "default", "override", "remove")
SECTION_ITEMS = ("axis", "section", "rule", "default")


# -- check predicates ---------------------------------------------------------------------


@dataclass(frozen=True)
class PredicateSpec:
    """One predicate of the check library.

    ``params``: the argument types, checked at compile time (E302, E303). Its evaluator is the
    function registered under ``name`` in ``specc.ir.checks``. A predicate without parameters
    is written bare (``check refuses``). ``tighter`` says which change of its one argument
    makes the check stricter, for ``specc diff``: a ``lower`` or ``higher`` number, ``fewer``
    or ``more`` terms. ``comply`` names the lowering (``specc.synth.roles``) that shapes an
    answer passing the check, ``violate`` one failing it, ``violate_negated`` one failing
    ``not`` the check (so passing it); None where the check is not lowered that way.
    ``summary`` is one line, ``doc`` the docs' "holds when" column.
    """

    name: str
    params: tuple[ArgType, ...]
    summary: str
    doc: str
    tighter: Literal["lower", "higher", "fewer", "more"] | None = None
    comply: str | None = None
    violate: str | None = None
    violate_negated: str | None = None

    @property
    def bare(self) -> bool:
        return not self.params

    @property
    def form(self) -> str:
        """How the docs write a call: ``max_words(n)``, ``refuses``."""
        if self.bare:
            return self.name
        return f"{self.name}({', '.join(ARG_KINDS[p].placeholder for p in self.params)})"


PREDICATES: tuple[PredicateSpec, ...] = (
    PredicateSpec(
        "matches", ("regex",), "the answer contains a match of the regular expression",
        "the pattern matches **anywhere** in the answer (a search, not a full match). Case-sensitive unless the "
        "pattern says `(?i)`. Syntax of the `regex` module in Python-`re`-compatible mode (VERSION0)."),
    PredicateSpec(
        "contains", ("str",), "the answer contains the text (case-insensitive)",
        "the answer contains the text, ignoring case (Unicode case-folding), as a plain substring.",
        comply="contains", violate_negated="contains"),
    PredicateSpec(
        "max_words", ("int",), "the answer has at most N words",
        "the answer has at most `n` words; words are runs of non-whitespace (`len(text.split())`).",
        tighter="lower", comply="max_words", violate="exceed_words"),
    PredicateSpec(
        "min_words", ("int",), "the answer has at least N words",
        "the answer has at least `n` words, counted as for `max_words`.",
        tighter="higher", comply="min_words"),
    PredicateSpec(
        "max_chars", ("int",), "the answer has at most N characters",
        "the answer has at most `n` characters (Unicode code points, whitespace included).",
        tighter="lower", comply="max_chars", violate="exceed_chars"),
    PredicateSpec(
        "min_chars", ("int",), "the answer has at least N characters",
        "the answer has at least `n` characters, counted as for `max_chars`.",
        tighter="higher", comply="min_chars"),
    PredicateSpec(
        "starts_with", ("str",), "the answer (leading space ignored) starts with the text",
        "the answer, after leading whitespace, starts with the text; case-sensitive.",
        comply="prefix", violate="other_first_letter"),
    PredicateSpec(
        "ends_with", ("str",), "the answer (trailing space ignored) ends with the text",
        "the answer, before trailing whitespace, ends with the text; case-sensitive.",
        comply="suffix"),
    PredicateSpec(
        "is_json", (), "the whole answer is a JSON value",
        "the whole answer, stripped of surrounding whitespace, is one JSON value (object, array, string, number, "
        "`true`, `false`, `null`) as Python's `json` module reads it. Prose around it or a code fence makes it "
        "fail, and so does nesting deeper than 100 levels (`MAX_JSON_DEPTH`).",
        comply="json_object", violate="not_json"),
    PredicateSpec(
        "refuses", (), "the answer opens with a refusal (see REFUSAL_PATTERNS)",
        "the answer opens with a refusal, by the heuristic below.",
        comply="refusal", violate="compliance_opening", violate_negated="refusal"),
    PredicateSpec(
        "mentions_any", ("strlist",), "the answer mentions at least one of the terms (whole words, case-insensitive)",
        "at least one term occurs as a whole word or phrase (not inside a longer word), ignoring case; terms are "
        "literal text, not patterns.",
        tighter="fewer", violate_negated="contains_first"),
    PredicateSpec(
        "mentions_all", ("strlist",), "the answer mentions every one of the terms (whole words, case-insensitive)",
        "every term occurs, as for `mentions_any`.",
        tighter="more", comply="contains_single"),
    PredicateSpec(
        "max_sentences", ("int",), "the answer has at most N sentences",
        "the answer has at most `n` sentences. A sentence ends at a run of `.`, `!`, `?` or `…` (closing quotes "
        "or brackets may follow) that is followed by whitespace or the end of the answer; the text after the "
        "last end is a sentence too. A stretch without a letter or digit is no sentence. So `3.5` and "
        "`example.com` do not end one, and an abbreviation such as `e.g. this` does.",
        tighter="lower", comply="max_sentences", violate="exceed_sentences"),
)

PREDICATE = {p.name: p for p in PREDICATES}
PREDICATE_NAMES = tuple(p.name for p in PREDICATES)
# Zero-argument predicates, written without parentheses (`check refuses`).
BARE_CHECKS = tuple(p.name for p in PREDICATES if p.bare)


# -- text for people ----------------------------------------------------------------------


def field_list_words() -> str:
    """The fields as a parser message lists them."""
    return ("a statement such as `must \"...\"`, or "
            + ", ".join(f"`{f.key}`" for f in FIELDS if f.key != "statement"))


def declaration_words() -> str:
    """The declarations as a parser message lists them."""
    return ", ".join(f"`{w}`" for w in DECLARATIONS)


def field_table() -> str:
    """The fields table of docs/language.md."""
    rows = ["| field | times | meaning | default |", "| --- | --- | --- | --- |"]
    for f in FIELDS:
        name = f.key if f.key == "statement" else f"`{f.key}`"
        rows.append(f"| {name} | {f.times} | {f.doc} | {f.default} |")
    return "\n".join(rows)


def predicate_table() -> str:
    """The predicates table of docs/language.md."""
    rows = ["| predicate | argument | holds when |", "| --- | --- | --- |"]
    for p in PREDICATES:
        arg = ", ".join(ARG_KINDS[t].doc for t in p.params) or "—"
        rows.append(f"| `{p.form}` | {arg} | {p.doc} |")
    return "\n".join(rows)


def update_docs(text: str) -> str:
    """``text`` (docs/language.md) with its field and predicate tables written from the table."""
    for table in (field_table(), predicate_table()):
        head = table.split("\n", 1)[0]
        start = text.index(head)
        end = text.find("\n\n", start)
        text = text[:start] + table + text[end if end >= 0 else len(text):]
    return text


def main(argv: list[str]) -> int:
    """``python -m specc.language docs/language.md``: rewrite the docs' tables from the table."""
    for path in argv:
        with open(path, encoding="utf-8") as f:
            old = f.read()
        new = update_docs(old)
        if new != old:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"rewrote the tables of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

