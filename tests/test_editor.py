"""The editor files: the TextMate grammar against the language table and the example specs, and the
VS Code extension's manifest. (The language server itself: tests/test_lsp.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from specc import language
from specc.ir.model import AUTHORITIES, SEVERITIES
from specc.lsp import textmate
from specc.resources import grammar_path

REPO = Path(__file__).resolve().parent.parent
EDITOR = REPO / "editors" / "vscode"
TM_FILE = EDITOR / "syntaxes" / "spec.tmLanguage.json"
NAME = "variable.other.name.spec"


def test_the_grammar_file_is_what_the_language_table_writes():
    assert TM_FILE.read_text(encoding="utf-8") == textmate.render(), \
        "run: python -m specc.lsp.textmate editors/vscode/syntaxes/spec.tmLanguage.json"


# -- a small TextMate engine: enough of one for this grammar (match, begin/end, include, captures)


def _rules(grammar: dict, patterns: list[dict]) -> list[dict]:
    out = []
    for p in patterns:
        if "include" in p:
            out.extend(_rules(grammar, [grammar["repository"][p["include"][1:]]]))
        elif "match" in p or "begin" in p:
            out.append(p)
        else:
            out.extend(_rules(grammar, p["patterns"]))
    return out


def _earliest(rules: list[dict], line: str, pos: int):
    best = None
    for rule in rules:
        m = re.compile(rule.get("match") or rule["begin"]).search(line, pos)
        if m and (best is None or m.start() < best[1].start()):
            best = (rule, m)
    return best


def tokens(text: str, grammar: dict | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """(token, scope) of every match outside strings, and the unmatched text (none, for a good grammar)."""
    grammar = grammar or textmate.grammar()
    top = _rules(grammar, grammar["patterns"])
    found: list[tuple[str, str]] = []
    unmatched: list[str] = []
    open_rule = None  # a begin/end rule spanning lines (a block string)
    for line in text.split("\n"):
        pos = 0
        while pos <= len(line):
            if open_rule is not None:
                end = re.compile(open_rule["end"]).search(line, pos)
                inner = _earliest(_rules(grammar, open_rule.get("patterns", [])), line, pos)
                if end and (inner is None or end.start() <= inner[1].start()):
                    pos, open_rule = end.end(), None
                    continue
                if inner is None:
                    break  # the rest of the line is inside the string
                pos = max(inner[1].end(), pos + 1)
                continue
            hit = _earliest(top, line, pos)
            rest = line[pos:] if hit is None else line[pos:hit[1].start()]
            if rest.strip():
                unmatched.append(rest.strip())
            if hit is None:
                break
            rule, m = hit
            if "begin" in rule:
                open_rule = rule
                found.append((m.group(), rule["name"]))
            elif "captures" in rule:
                found.extend((m.group(int(k)), c["name"]) for k, c in rule["captures"].items())
            else:
                found.append((m.group(), rule["name"]))
            pos = max(m.end(), pos + 1)
    return found, unmatched


def _lark_keywords() -> set[str]:
    return set(re.findall(r'"([a-z_]+)"', grammar_path().read_text(encoding="utf-8")))


@pytest.mark.parametrize("word", sorted({*language.FIELD_WORDS, *language.DECLARATIONS, *language.PREDICATE_NAMES,
                                         *_lark_keywords()}))
def test_every_keyword_of_the_table_and_of_the_grammar_has_a_colour(word):
    found, unmatched = tokens(word)
    assert unmatched == [] and found[0][0] == word and found[0][1] != NAME


@pytest.mark.parametrize("field,values,scope", [("authority", AUTHORITIES, "constant.language.authority.spec"),
                                                ("severity", SEVERITIES, "constant.language.severity.spec")])
def test_authority_and_severity_values_are_coloured_after_their_keyword(field, values, scope):
    for value in values:
        assert tokens(f"  {field} {value}")[0] == [(field, "keyword.other.field.spec"), (value, scope)]
    assert tokens("  user \"hi\"")[0][0] == ("user", "keyword.other.example.spec")  # a turn, not an authority


def test_strings_raw_block_and_unterminated():
    found, unmatched = tokens('must_not r"\\d{3}" "a \\"q\\"" """\nblock "with" quotes\n""" "open\nrule x {}')
    assert unmatched == []
    assert [s for _, s in found] == [
        "keyword.control.modality.spec", "string.quoted.double.raw.spec", "string.quoted.double.spec",
        "string.quoted.triple.spec", "string.quoted.double.spec", "keyword.other.declaration.spec", NAME,
        "punctuation.separator.spec", "punctuation.separator.spec"]


@pytest.mark.parametrize("path", sorted([*REPO.glob("examples/**/*.spec"), *REPO.glob("stdlib/*.spec")]),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_the_grammar_colours_every_example_and_stdlib_spec_without_an_unmatched_token(path):
    found, unmatched = tokens(path.read_text(encoding="utf-8"))
    assert unmatched == [] and found


def test_the_vscode_extension_registers_the_language_the_grammar_and_the_server():
    manifest = json.loads((EDITOR / "package.json").read_text(encoding="utf-8"))
    lang = manifest["contributes"]["languages"][0]
    assert lang["id"] == "spec" and ".spec" in lang["extensions"]
    assert (EDITOR / lang["configuration"]).is_file()
    tm = manifest["contributes"]["grammars"][0]
    assert tm["scopeName"] == textmate.SCOPE and (EDITOR / tm["path"]).resolve() == TM_FILE
    server = (EDITOR / manifest["main"]).read_text(encoding="utf-8")
    assert '"lsp"' in server  # it starts `specc lsp`
