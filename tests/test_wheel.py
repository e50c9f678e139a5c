"""Packaging: the wheel carries the grammar and the stdlib, and an installed specc uses them.

One test, because building the wheel is the slow part: build it (no build isolation, so no
network: hatchling comes from the test extra), install it into a private folder, and run
the installed copy with that folder first on PYTHONPATH, from a directory outside the
checkout so that nothing resolves to the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(args, cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    p = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_wheel_ships_grammar_and_stdlib_and_works_installed(tmp_path):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    dist = tmp_path / "dist"
    p = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
             tmp_path, env)
    assert p.returncode == 0, p.stdout + p.stderr
    (wheel,) = dist.glob("specc-*.whl")

    # -- what is inside the wheel
    stdlib = sorted(REPO.glob("stdlib/*.spec"))
    assert stdlib, "stdlib/ has no modules"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert {n.split("/")[0] for n in names} == {"specc", wheel.name.split("-py")[0] + ".dist-info"}
        assert z.read("specc/_data/grammar/spec.lark") == (REPO / "grammar/spec.lark").read_bytes()
        shipped = sorted(n for n in names if n.startswith("specc/_data/stdlib/") and n.endswith(".spec"))
        assert shipped == [f"specc/_data/stdlib/{p.name}" for p in stdlib]
        for path in stdlib:
            assert z.read(f"specc/_data/stdlib/{path.name}") == path.read_bytes()
        # the page of codes that `specc lsp` links each diagnostic to
        assert z.read("specc/_data/docs/diagnostics.md") == (REPO / "docs/diagnostics.md").read_bytes()
        assert "specc/cli.py" in names and "specc/ir/resolve.py" in names
        assert "specc/report/templates/report.html.j2" in names  # `specc report`'s page
        assert "specc/review/page.html" in names  # `specc review`'s page
        assert not [n for n in names if n.startswith(("tests/", "bench/")) or "__pycache__" in n]
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        assert "specc = specc.cli:main" in entry_points

    # -- install it privately and run the installed copy
    site = tmp_path / "site"
    p = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
             tmp_path, env)
    assert p.returncode == 0, p.stdout + p.stderr
    work = tmp_path / "work"
    work.mkdir()
    env["PYTHONPATH"] = str(site)

    p = _run([sys.executable, "-c", "import json, specc, specc.resources as r; print(json.dumps("
              "[specc.__file__, str(r.data_root()), str(r.grammar_path()), str(r.stdlib_dir()), "
              "str(r.diagnostics_doc())]))"], work, env)
    assert p.returncode == 0, p.stderr
    module_file, data_root, grammar, stdlib_dir, codes_page = map(Path, json.loads(p.stdout))
    assert codes_page.is_file() and codes_page.is_relative_to(data_root)
    assert module_file == site / "specc" / "__init__.py"
    assert data_root == site / "specc" / "_data"
    assert grammar.is_file() and grammar.is_relative_to(data_root)
    assert sorted(x.name for x in stdlib_dir.glob("*.spec")) == [x.name for x in stdlib]

    module = "std." + stdlib[0].stem
    (work / "app.spec").write_text(
        f'spec app.main version "1.0.0"\n  """Uses the standard library."""\n\nimport {module}\n\n'
        'rule cites {\n  must "Cite a source."\n  check contains("Source:")\n}\n', encoding="utf-8")
    p = _run([sys.executable, "-m", "specc.cli", "check", "app.spec"], work, env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "error[" not in p.stdout and ": 0 errors, " in p.stdout + p.stderr

    p = _run([sys.executable, "-m", "specc.cli", "inspect", "--format", "json", "app.spec"], work, env)
    assert p.returncode == 0, p.stderr
    spec = json.loads(p.stdout)
    assert spec["imports"] == [module]
    assert any(r["spec"] == module for r in spec["rules"]) and any(r["id"] == "app.main.cites" for r in spec["rules"])

    (work / "bad.spec").write_text('spec app.bad version "1.0.0"\nimport std.no_such_module\n', encoding="utf-8")
    p = _run([sys.executable, "-m", "specc.cli", "check", "bad.spec"], work, env)
    assert p.returncode == 1
    assert p.stdout.startswith("bad.spec:2:1: error[E204]: no stdlib module `std.no_such_module`")

    # `specc report` finds its template in the installed package
    ds = work / "ds"
    ds.mkdir()
    outcomes = {"scenarios": 1, "generated": 1, "reused": 0, "verified": 0, "dropped": 1,
                "dropped_reasons": {"judge-uncalibrated": 1}}
    (ds / "manifest.json").write_text(json.dumps({  # a complete manifest: `report` validates it
        "specc_version": "0.1.0", "spec": {"id": "app.main", "version": "1.0.0", "hash": "0" * 32, "file": "main.spec"},
        "format": "dpo", "file_format": "jsonl", "seed": 0, "model": {"name": "m", "judge": "m"}, "generation": {},
        "plan": {"per_rule": 1, "coverage": "pairwise", "system_prompt": "none", "test_fraction": 0.2,
                 "boundaries": ["violation"]},
        "rules": {"app.main.cites": {"hash": "1" * 32, "records": [], "scenarios": ["s1"]}},
        "files": {"train": None, "test": None}, "counts": {"train": 0, "test": 0},
        "stats": {**outcomes, "verified_by": {}, "sides_from": {}, "faults": {}, "gate_failures": {},
                  "spec_example_gate_warnings": {}, "spec_examples": 0, "experience_pool": 0,
                  "per_rule": {"app.main.cites": {**outcomes, "examples": 0}}}}),
        encoding="utf-8")
    p = _run([sys.executable, "-m", "specc.cli", "report", "ds", "--format", "markdown"], work, env)
    assert p.returncode == 0 and "| `app.main.cites` | 1 | 0 | 0 |" in p.stdout, p.stdout + p.stderr
    p = _run([sys.executable, "-m", "specc.cli", "report", "ds", "-o", "report.html"], work, env)
    assert p.returncode in (0, 3), p.stderr  # 3: no matplotlib where the wheel's dependencies are
    if p.returncode == 0:
        html = (work / "report.html").read_text(encoding="utf-8")
        assert "app.main.cites" in html and "<svg" in html
    else:
        assert "specc[report]" in p.stderr
