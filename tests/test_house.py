"""The house: one meaning per word, one place per default, imports that flow one way."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from specc import defaults
from specc.ir.model import OVERREFUSAL_LABELS
from specc.ir.resolve import load_text

REPO = Path(__file__).resolve().parent.parent

OVERCAUTIOUS = '''spec s version "1.0.0"
  """A spec."""
rule no_codes {
  must_not "Reveal a one-time code."
  check not contains("code is")
  example "a reset" {
    user "How do I reset my password?"
    good "Open Settings, then Security, and choose Reset password."
    bad LABEL "I can't help with account changes."
  }
}
'''


@pytest.mark.parametrize("label", sorted(OVERREFUSAL_LABELS) + ["Over_Refusal"])
def test_every_overrefusal_label_is_a_lookalike_and_exempt_from_w408(label):
    """One set of labels with one meaning: lint and the pipeline agree (W408 used to exempt
    only `overrefusal` while the pipeline emitted all four as lookalikes)."""
    from specc.synth.pipeline import spec_example_pairs

    result = load_text(OVERCAUTIOUS.replace("LABEL", label))
    assert result.ok, result.diagnostics
    assert [d.code for d in result.diagnostics] == []
    [pair] = spec_example_pairs(result.spec)
    assert pair.boundary == "lookalike"


def test_an_other_label_is_a_violation_and_w408_warns():
    from specc.synth.pipeline import spec_example_pairs

    text = OVERCAUTIOUS.replace("LABEL", "leak").replace("I can't help with account changes.", "Your code is 1234.")
    result = load_text(text.replace('not contains("code is")', 'contains("code is")'))
    assert [d.code for d in result.diagnostics if "`bad` answer" in d.message] == ["W408"]
    [pair] = spec_example_pairs(result.spec)
    assert pair.boundary == "violation"


def _option_defaults(command) -> dict:
    return {p.name: p.default for p in command.params}


def test_compile_defaults_have_one_source():
    """The command line, CompileOptions and the generation Settings say the same
    (`Settings.retries` was 2 while `--retries` was 1)."""
    from specc.cli import compile_command, plan
    from specc.compile import CompileOptions
    from specc.synth.calls import Settings

    cli = _option_defaults(compile_command)
    opts = {f.name: f.default for f in dataclasses.fields(CompileOptions)}
    settings = {f.name: f.default for f in dataclasses.fields(Settings)}
    for name, value in {"per_rule": defaults.PER_RULE, "seed": defaults.SEED, "retries": defaults.RETRIES,
                        "rounds": defaults.ROUNDS, "batch_size": defaults.BATCH_SIZE, "fmt": defaults.FORMAT,
                        "coverage": defaults.COVERAGE, "system_prompt": defaults.SYSTEM_PROMPT,
                        "candidates": defaults.CANDIDATES,
                        "min_judge_agreement": defaults.MIN_JUDGE_AGREEMENT}.items():
        assert cli[name] == value == opts[name], name
    assert cli["max_chars"] == opts["answer_chars"] == defaults.ANSWER_CHARS
    for name in ("seed", "retries", "rounds", "batch_size", "temperature", "candidate_temperature"):
        assert settings[name] == opts[name], name
    p = _option_defaults(plan)
    assert (p["per_rule"], p["seed"], p["coverage"], p["system_prompt"], p["test_fraction"]) == (
        defaults.PLAN_PER_RULE, defaults.SEED, defaults.COVERAGE, defaults.SYSTEM_PROMPT, defaults.TEST_FRACTION)


def test_the_boundaries_are_spelled_once():
    """defaults.BOUNDARIES is the vocabulary; plan.model's Boundary type is made from it. The
    tuple was spelled in seven modules."""
    import re

    spelled = re.compile(r'"(violation|lookalike|conflict)",\s*"(violation|lookalike|conflict)"')
    where = sorted(str(f.relative_to(REPO)) for f in (REPO / "specc").rglob("*.py")
                   if spelled.search(f.read_text(encoding="utf-8")))
    assert where == ["specc/defaults.py"]


def test_eval_defaults_have_one_source():
    """`specc eval`, EvalOptions and answer_probes say the same (192 tokens and 3 per rule were
    spelled in three places)."""
    import inspect

    from specc.cli import eval_command
    from specc.eval.run import EvalOptions
    from specc.eval.score import answer_probes

    cli = _option_defaults(eval_command)
    opts = {f.name: f.default for f in dataclasses.fields(EvalOptions)}
    for name, value in {"per_rule": defaults.EVAL_PER_RULE, "max_new_tokens": defaults.EVAL_MAX_NEW_TOKENS,
                        "samples": defaults.EVAL_SAMPLES}.items():
        assert cli[name] == value == opts[name], name
    assert cli["batch_size"] == defaults.EVAL_BATCH_SIZE
    params = inspect.signature(answer_probes).parameters
    assert params["max_new_tokens"].default == defaults.EVAL_MAX_NEW_TOKENS


@pytest.mark.parametrize("module", ["specc.synth.store", "specc.ir.model", "specc.ir.checks",
                                    "specc.emit.manifest"])
def test_the_ir_and_the_store_import_without_the_parser(module):
    """The IR stands alone: importing it (or the store) loads neither lark nor the parser or the
    formatter (the IR prints its own checks, with the literals of specc.syntax.text)."""
    code = (f"import sys, json, {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m == 'lark' or m.startswith('lark.') "
            "or m in ('specc.syntax.parser', 'specc.syntax.fmt', 'specc.syntax.direct', 'specc.syntax.ast'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []


def test_a_missing_golden_file_fails(request):
    """Without --update-golden a golden file that is not there is a failure, not a new file."""
    if request.config.getoption("--update-golden"):
        pytest.skip("--update-golden writes golden files")
    golden = request.getfixturevalue("golden")
    with pytest.raises(pytest.fail.Exception, match="is missing"):
        golden("no/such/golden-file.txt", "text")
    assert not (REPO / "tests" / "golden" / "no").exists()


def test_one_span_type_from_the_parser_to_the_ir():
    """The IR keeps the parser's spans (specc.diagnostics.Span), no converted copy; its JSON
    dump reads back into an equal spec."""
    import specc.ir.model as model
    from specc.diagnostics import Span
    from specc.ir.model import Spec

    spec = load_text(OVERCAUTIOUS.replace("LABEL", "leak")).spec
    rule = spec.rules[0]
    assert type(rule.span) is Span and type(rule.examples[0].span) is Span
    assert (rule.span.file, rule.span.start_line) == ("<string>.spec", 3)
    assert not hasattr(model, "SourceSpan")
    assert Spec.model_validate_json(spec.model_dump_json()) == spec


# Each package may import only those before it (the pipeline of DESIGN.md: one direction);
# the small shared modules of LEAVES may also import each other.
LAYERS = (
    ("language",),  # the language's vocabulary: plain data, below everything
    ("__init__", "diagnostics", "files", "resources", "defaults", "markdown"),
    ("engines",),  # the model backends: a floor every phase may stand on, importing no phase
    ("syntax",), ("ir",), ("importers",), ("plan",), ("synth",), ("emit",), ("diff",), ("compile",), ("eval",), ("train",), ("improve",), ("report",), ("review",),
    ("audit",), ("lsp",), ("cli",),
)
LEAVES = 1


def _package_imports() -> dict[tuple[str, str], str]:
    """(importing package, imported package) -> one module where it happens, function-level
    imports included."""
    import ast

    root = REPO / "specc"
    out: dict[tuple[str, str], str] = {}
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        src = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [f"{node.module}.{a.name}" for a in node.names] if node.module == "specc" else [node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            for m in mods:
                parts = m.split(".")
                if parts[0] == "specc" and len(parts) > 1:
                    dst = parts[1] if parts[1] != "__version__" else "__init__"
                    if dst != src:
                        out.setdefault((src, dst), str(rel))
    return out


def test_imports_between_packages_flow_one_way():
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    edges = _package_imports()
    assert {p for e in edges for p in e} <= set(rank), "a package missing from LAYERS"
    backwards = [f"{where}: {src} imports {dst}" for (src, dst), where in sorted(edges.items())
                 if rank[dst] >= rank[src] and not (rank[dst] == rank[src] == LEAVES)]
    assert backwards == []


def _module_imports(package: str) -> dict[str, set[str]]:
    """Module of ``specc/<package>/`` -> the specc modules it imports (function-level included)."""
    import ast

    out: dict[str, set[str]] = {}
    for f in sorted((REPO / "specc" / package).rglob("*.py")):
        name = "specc." + ".".join(f.relative_to(REPO / "specc").with_suffix("").parts)
        deps = out.setdefault(name, set())
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
    return out


def test_the_layers_above_synthesis_use_its_typed_floor_not_the_orchestrator():
    """emit (and eval, report) read Pair, Probe and SynthResult from specc.synth.model; the
    orchestrator is called by compile and eval's fresh probes only, never imported for a type."""
    for package in ("emit", "report", "diff", "train"):
        users = {m for m, deps in _module_imports(package).items() if "specc.synth.pipeline" in deps}
        assert users == set(), f"{package} imports the orchestrator: {sorted(users)}"


def test_no_module_reaches_into_another_modules_private_names():
    """`from specc.x import _name`, or `module._name` on an imported specc module: a private name is
    its module's own (pipeline read agents._brief and roles._MODALITY_WORDS, gates roles._env)."""
    import ast

    found = []
    for f in sorted((REPO / "specc").rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("specc"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        found.append(f"{f.relative_to(REPO)}: from {node.module} import {a.name}")
                    aliases.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                aliases.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("specc"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in aliases:
                    found.append(f"{f.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def test_no_import_cycle_inside_synthesis():
    """calibrate and pipeline imported each other (the one circle in the house)."""
    graph = {m: {d for d in deps if d.startswith("specc.synth.") and d != m}
             for m, deps in _module_imports("synth").items()}
    graph = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    seen, done = set(), set()

    def visit(m, path):
        assert m not in seen or m in done, "import cycle: " + " -> ".join(path + [m])
        if m in seen:
            return
        seen.add(m)
        for d in sorted(graph[m]):
            visit(d, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


def test_one_flattening_of_and_or():
    """`a and (b and c)` and `a and b and c` are one check to the printer, the hash and the
    lowering, however the IR was built (the resolver builds flat chains)."""
    from specc.ir.model import CheckAnd, CheckCall, CheckOr, canonical_checks, chain, check_source, conjuncts
    from specc.synth.roles import lower_compliance

    a, b, c = (CheckCall(name="max_words", args=(9,)), CheckCall(name="contains", args=("x",)),
               CheckCall(name="starts_with", args=("Hi",)))
    nested = CheckAnd(operands=(a, CheckAnd(operands=(b, c))))
    flat = chain("and", [a, chain("and", [b, c])])
    assert flat == CheckAnd(operands=(a, b, c))
    assert check_source(nested) == check_source(flat) == 'max_words(9) and contains("x") and starts_with("Hi")'
    assert canonical_checks((nested,)) == canonical_checks((a, b, c)) == canonical_checks((flat,))
    assert conjuncts((nested,)) == [a, b, c]
    assert lower_compliance((nested,)) == lower_compliance((a, b, c))
    either = CheckOr(operands=(a, CheckOr(operands=(b, c))))
    assert check_source(either) == 'max_words(9) or contains("x") or starts_with("Hi")'
    assert conjuncts((either,)) == [either]


# Inside synthesis: the typed floor imports no other synth module; the call runner and the prompt
# builders stand on the floor (and the store, the role templates) but not on each other or on the
# orchestrator; only the orchestrator (pipeline) and calibration put them together.
SYNTH_FLOOR = {
    "specc.synth.model": set(),
    "specc.synth.calls": {"specc.synth.model", "specc.synth.store", "specc.synth.roles"},
    "specc.synth.prompts": {"specc.synth.model", "specc.synth.roles", "specc.synth.tactics", "specc.synth.demos"},
}


@pytest.mark.parametrize("module", sorted(SYNTH_FLOOR))
def test_the_call_runner_and_the_prompts_stand_on_the_floor_alone(module):
    deps = {d for d in _module_imports("synth")[module] if d.startswith("specc.synth.")}
    synth_modules = set(_module_imports("synth"))
    assert {d for d in deps if d in synth_modules} <= SYNTH_FLOOR[module]


@pytest.mark.parametrize("module", ["specc.emit.writer", "specc.emit.merge", "specc.emit.card", "specc.emit.manifest",
                                    "specc.emit.formats", "specc.emit.read"])
def test_emit_loads_neither_the_orchestrator_nor_the_call_runner(module):
    """Not only no `import specc.synth.pipeline` in emit's source: importing emit does not load the
    orchestrator, the call runner or the prompts through any other module either."""
    code = (f"import sys, json, {module}; print(json.dumps(sorted(m for m in sys.modules if m in "
            "('specc.synth.pipeline', 'specc.synth.calls', 'specc.synth.prompts', 'specc.synth.calibrate'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []


def test_the_cli_maps_exceptions_to_exit_codes_in_one_place():
    """Every exception class of cli.EXIT_CODES exists (they are named, not imported), and no
    `except` handler in cli.py ends the command itself with sys.exit: it raises cli.Failure."""
    import ast
    import importlib

    from specc.cli import EXIT_CODES

    for module, name, _ in EXIT_CODES:
        cls = getattr(importlib.import_module(module), name)
        assert isinstance(cls, type) and issubclass(cls, BaseException), (module, name)
    tree = ast.parse((REPO / "specc" / "cli.py").read_text(encoding="utf-8"))
    exits = [f"cli.py:{n.lineno}" for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler)
             for n in ast.walk(h) if isinstance(n, ast.Call) and ast.unparse(n.func) == "sys.exit"]
    assert exits == []
