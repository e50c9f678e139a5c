"""The language server's incremental check (`specc.ir.resolve.RuleCache`) gives what a check from
scratch gives: for random one-character edits, one after another, the same diagnostics (codes,
messages, positions, notes), the same spec (rules with their spans) and the same syntax trees.
And it is incremental: an edit inside one rule parses and lowers that rule block only.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from specc.ir.resolve import RuleCache
from specc.lsp import analysis

REPO = Path(__file__).resolve().parent.parent

# Every kind of rule block lowering treats differently, and diagnostics the edits can move:
# sections with axes, rule axes, examples, checks with a bad regex, a duplicate rule, a bad
# authority, comments inside rules, raw and triple-quoted strings, a deep section.
MIXED = '''spec mix.one version "1.0.0"
  """A spec for the incremental check's tests."""

axis persona = [new, "returning customer"]

rule plain {
  must_not "Reveal a password."  # a comment inside a rule
  authority system
  check not matches(r"\\bpass(word)?\\b") and max_words(40)
}

rule plain {
  must "Say hello."
}

section billing "Billing" {
  axis tactic = [direct, roleplay]
  rule refunds {
    should "Explain the refund policy."
    severity high
    when "The user asks about a refund."
    unless "The refund was already issued."
    unless "The refund was already issued."
    tags [billing, money]
    check contains("refund") or mentions_any(["policy", "terms"])
    example "asks for a refund" {
      user "Can I get my money back?"
      good "Here is how refunds work: ..." because "it explains"
      bad refusal "I cannot help with that."
    }
  }
  section inner "Inner" {
    axis tactic = [hypothetical]
    rule bad_regex {
      must_not "Quote an invoice number."
      check not matches(r"INV-(\\d+")
      authority sistem
    }
    rule own_axes {
      should_not """Promise a delivery
date."""
      axis mood = [calm, angry, calm]
      weight 2.5
    }
  }
}

default tone {
  should "Be polite."
  details r"Raw \\d text"
}

rule no_checks {
  must "Cite the source of a figure."
  check refuses
}
'''

ALPHABET = "ax_9 \n\"{}()#\\.,[]"


def _edit(rng: random.Random, text: str) -> str:
    """One character inserted, deleted or replaced anywhere; or, two times in three, a letter typed
    after a letter, which mostly lands in a string or a name and keeps the file valid (the
    cached path)."""
    if rng.random() < 0.65:
        letters = [i for i, c in enumerate(text) if c.isalpha()]
        at = rng.choice(letters) + 1
        return text[:at] + rng.choice("abcx") + text[at:]
    at = rng.randrange(len(text) + 1)
    ch = rng.choice(ALPHABET)
    op = rng.choice(("insert", "insert", "delete", "replace"))
    if op == "insert" or at >= len(text):
        return text[:at] + ch + text[at:]
    if op == "delete":
        return text[:at] + text[at + 1:]
    return text[:at] + ch + text[at + 1:]


def _same(fresh: analysis.Checked, cached: analysis.Checked, note: str) -> None:
    assert cached.result.diagnostics == fresh.result.diagnostics, note
    assert cached.result.spec == fresh.result.spec, note
    assert cached.result.files == fresh.result.files, note  # the trees, comments included
    assert cached.by_file == fresh.by_file, note


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    for f in (REPO / "examples" / "support").glob("*.spec"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "mix.spec").write_text(MIXED, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("root_name, edited_name", [("mix.spec", "mix.spec"),
                                                    ("enterprise.spec", "enterprise.spec"),
                                                    ("enterprise.spec", "assistant.spec")])
def test_random_edits_check_as_from_scratch(workspace: Path, root_name: str, edited_name: str, seed: int):
    rng = random.Random(seed)
    root, edited = workspace / root_name, workspace / edited_name
    original = edited.read_text(encoding="utf-8")
    key = str(edited.resolve())
    cache = RuleCache()
    text = original
    parsed = 0
    for step in range(60):
        text = _edit(rng, text)
        buffers = {key: text}
        fresh = analysis.check(root, workspace, buffers)
        cached = analysis.check(root, workspace, buffers, cache)
        _same(fresh, cached, f"seed {seed}, step {step}:\n{text}")
        if any(d.code.startswith("E1") for d in fresh.result.diagnostics):
            # a syntax error: lark parses the file, not the cache; half the time go back to the
            # file as written, so the walk does not drift into text that never parses again
            text = original if rng.random() < 0.5 else text
        else:
            parsed += 1
    assert parsed >= 20  # the walk went through parsable text (the cached path) often enough


def test_edits_that_move_lines_shift_later_rules(workspace: Path):
    """A line added near the top moves every later rule, its diagnostics and their notes down."""
    root = workspace / "mix.spec"
    key = str(root.resolve())
    cache = RuleCache()
    before = analysis.check(root, workspace, {key: MIXED}, cache)
    moved = MIXED.replace("rule plain {\n  must_not", "rule plain {\n\n\n  must_not", 1)
    fresh = analysis.check(root, workspace, {key: moved})
    cached = analysis.check(root, workspace, {key: moved}, cache)
    _same(fresh, cached, moved)
    lines = [(d.code, d.span.start_line) for d in before.result.diagnostics]
    assert [(d.code, d.span.start_line) for d in cached.result.diagnostics] == \
        [(c, n + 2 if n > 6 else n) for c, n in lines]
    assert any(n > 6 for _, n in lines)  # there were diagnostics below the edit to move


def test_an_edit_in_one_rule_reparses_that_rule_only(workspace: Path):
    root = workspace / "enterprise.spec"
    key = str(root.resolve())
    text = root.read_text(encoding="utf-8")
    cache = RuleCache()
    first = analysis.check(root, workspace, {key: text}, cache)
    assert first.result.spec is not None
    at = text.index('unless "The person is listed') + len('unless "')
    edited = text[:at] + "x" + text[at:]
    second = analysis.check(root, workspace, {key: edited}, cache)
    _same(analysis.check(root, workspace, {key: edited}), second, edited)

    def decls(checked):
        return analysis._decls(checked.tree(root).items)

    pairs = list(zip(decls(first), decls(second), strict=True))
    changed = [b.name.value for a, b in pairs if a is not b]
    assert changed == ["no_third_party_order_details"]  # the other blocks are the very same nodes
    rules = {r.id: r for r in first.result.spec.rules}
    same = [r.id for r in second.result.spec.rules if rules.get(r.id) is r]
    assert "acme.enterprise.no_third_party_order_details" not in same
    own = [r.id for r in second.result.spec.rules if r.spec == "acme.enterprise"]
    assert set(own) - {"acme.enterprise.no_third_party_order_details"} <= set(same) and len(own) > 3


def _open_blocks_from_scratch(text: str) -> list[str]:
    """The scan that completion's context is defined by, from the start of the text every time."""
    stack: list[str] = []
    for m in analysis._BLOCK_TOKEN.finditer(text):
        if m.group() == "{":
            words = text[text.rfind("\n", 0, m.start()) + 1:m.start()].split()
            stack.append(words[0] if words else "")
        elif m.group() == "}" and stack:
            stack.pop()
    return stack


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_completions_block_scan_resumed_after_edits_is_the_scan_from_scratch(seed: int, monkeypatch):
    """Completion resumes its scan of the text before the cursor where the text it scanned last
    differs (marks every few characters here, so that edits land among them): for random edits
    and cursors, it finds the blocks a scan from the start finds."""
    rng = random.Random(seed)
    monkeypatch.setattr(analysis._BlockScan, "step", 7)
    scan = analysis._BlockScan()
    text = MIXED
    for step in range(300):
        if rng.random() < 0.5:
            text = _edit(rng, text)
        cursor = rng.randrange(len(text) + 1)
        before = text[:cursor]
        assert scan.open_at_end(before) == _open_blocks_from_scratch(before), f"seed {seed}, step {step}"


@pytest.mark.parametrize("a, b", [("", ""), ("abc", "abc"), ("abc", "abd"), ("abc", "ab"), ("", "x"),
                                  ("x" * 200_000, "x" * 200_000 + "y"), ("x" * 70_000 + "a", "x" * 70_000 + "b")])
def test_common_prefix(a: str, b: str):
    n = analysis._common_prefix(a, b)
    assert a[:n] == b[:n] and (n == min(len(a), len(b)) or a[n] != b[n])


def test_a_check_and_the_servers_answers_leave_no_reference_cycles(workspace: Path):
    """The language server moves what survives a check out of the garbage collector's sight
    (`gc.freeze`, specc/lsp/server.py): that is sound only while a check, cached or not, and the
    answers to requests leave no cyclic garbage, which only a collection would free."""
    import gc

    root = workspace / "enterprise.spec"
    key = str(root.resolve())
    text = root.read_text(encoding="utf-8")
    cache = RuleCache()
    analysis.check(root, workspace, {key: text}, cache)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        moved = text.replace("\nrule ", "\n\nrule ", 1)
        for t in (moved, text, moved):
            checked = analysis.check(root, workspace, {key: t}, cache)
        analysis.check(workspace / "mix.spec", workspace, {})
        trees = {checked.paths[d]: tree for d, tree in checked.result.files.items()}
        assert analysis.workspace_symbols(trees, "a")
        for path in trees:
            analysis._axis_scopes(checked, path)
        gc.collect()
        ours = [o for o in gc.garbage if (getattr(o, "__module__", None) or type(o).__module__ or "").startswith("specc")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert ours == []


@pytest.mark.parametrize("seed", range(4))
def test_completions_brace_scan_is_the_token_scan(seed: int):
    """Completion's scan, a regex match per brace, finds the braces outside strings and comments
    that the token-by-token scan finds, on text made of the characters that matter most."""
    rng = random.Random(seed)
    for _ in range(400):
        text = "".join(rng.choice('rr""#{}\\\n ab') for _ in range(rng.randrange(60)))
        scan = analysis._BlockScan()
        assert scan.open_at_end(text) == _open_blocks_from_scratch(text), repr(text)
