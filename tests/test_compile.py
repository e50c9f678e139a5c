"""`specc compile` end to end with a real (tiny, random) transformers model through Outlines.

The tiny model's output is noise, so most generated pairs fail verification and are dropped:
these tests assert the mechanics (files, loading, determinism, reuse, resume, TRL), not quality.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from specc.cli import main
from specc.compile import CompileOptions, compile_spec
from specc.ir.resolve import load

DATA = Path(__file__).parent / "data" / "compile"
SPEC = DATA / "tiny.spec"
# small strings keep the noise model fast; the same options as `CLI_ARGS` below
OPTS = dict(per_rule=1, seed=0, answer_chars=40, retries=1, rounds=2, batch_size=4)
CLI_ARGS = ["--per-rule", "1", "--seed", "0", "--max-chars", "40", "--retries", "1", "--rounds", "2",
            "--batch-size", "4"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def handle(tiny_model):
    from specc.engines import resolve_model

    return resolve_model(str(tiny_model), batch_size=4)


def compile_with(handle, out: Path, store: Path, **kw):
    spec = load(SPEC).spec
    return compile_spec(spec, SPEC, CompileOptions(out_dir=out, store=store, **{**OPTS, **kw}), model=handle)


@pytest.fixture(scope="session")
def compiled(handle, tmp_path_factory):
    root = tmp_path_factory.mktemp("compiled")
    report = compile_with(handle, root / "out", root / "store")
    return root, report


def files_of(d: Path) -> dict[str, bytes]:
    # cost.json is the run's record (its seconds are measured), not data: docs/cost.md
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != "cost.json"}


def without_run_stats(manifest: bytes) -> dict:
    m = json.loads(manifest)
    for scope in [m["stats"], *m["stats"]["per_rule"].values()]:
        scope.pop("generated"), scope.pop("reused")
    return m


def test_dataset_files_load_with_datasets(compiled, tmp_path):
    import datasets

    root, report = compiled
    out = root / "out"
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n")
    # the spec's doc string is the card's summary, under its title (and kept in the manifest for merge)
    assert "# t.tiny 0.1.0 (DPO)\n\nTwo rules: one verified by a check, one by the judge.\n\n" in card
    man = json.loads((out / "manifest.json").read_text())
    assert man["spec"]["id"] == "t.tiny" and man["spec"]["file"] == "tiny.spec" and man["format"] == "dpo"
    assert man["spec"]["doc"] == "Two rules: one verified by a check, one by the judge."
    s = man["stats"]
    from specc.plan.planner import make_plan

    planned = make_plan(load(SPEC).spec, seed=OPTS["seed"], per_rule=OPTS["per_rule"]).scenarios
    assert s["scenarios"] == len(planned) and s["verified"] + s["dropped"] == s["scenarios"]
    assert sum(s["dropped_reasons"].values()) == s["dropped"]
    # every record is a verified pair or a spec example, and the manifest lists each one under its rule
    assert sum(man["counts"].values()) == s["verified"] + s["spec_examples"] == \
        sum(len(e["records"]) for e in man["rules"].values())
    with sqlite3.connect(root / "store" / "store.sqlite") as conn:  # a fresh store: all of it this run's
        stored = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    calibration = man["judge"]["calls"] if "judge" in man else 0
    assert s["generated"] + calibration == stored and s["reused"] == 0
    assert set(man["rules"]) == {"t.tiny.no_insults", "t.tiny.be_honest"}
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))  # no stale cache of another run
    assert set(ds) == {k for k, v in report.files.items() if v}
    train = ds["train"]
    assert {"prompt", "chosen", "rejected", "record_id", "rule_ids", "boundary", "axes", "scenario_id",
            "source", "verified_by"} <= set(train.column_names)
    sources = set(train["source"])
    assert "spec-example" in sources
    for row in train:
        assert row["chosen"][0]["role"] == "assistant" and row["prompt"][-1]["role"] == "user"
        assert row["record_id"] in man["rules"][row["rule_ids"][0]]["records"]
        if row["source"] == "generated":
            assert row["scenario_id"] == row["record_id"] and row["verified_by"] in ("check", "judge")
            assert set(row["axes"]) == {"tactic"}


def test_same_seed_fresh_store_gives_identical_bytes(compiled, handle, tmp_path):
    root, _ = compiled
    compile_with(handle, tmp_path / "out", tmp_path / "store")
    assert files_of(tmp_path / "out") == files_of(root / "out")


def test_second_compile_generates_nothing(compiled, handle, tmp_path):
    root, first = compiled
    again = compile_with(handle, tmp_path / "out", root / "store")
    assert again.stats.generated == 0 and again.stats.reused == first.stats.generated
    a, b = files_of(root / "out"), files_of(tmp_path / "out")
    assert without_run_stats(a.pop("manifest.json")) == without_run_stats(b.pop("manifest.json"))
    assert a == b


def test_parquet_output_loads(compiled, handle, tmp_path):
    import datasets

    root, _ = compiled
    rep = compile_with(handle, tmp_path / "out", root / "store", file_format="parquet")
    assert rep.files["train"] == "data/train.parquet" and rep.stats.generated == 0
    ds = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "hf"))
    jsonl = datasets.load_dataset(str(root / "out"), cache_dir=str(tmp_path / "hf2"))
    assert ds["train"].to_list() == jsonl["train"].to_list()


@pytest.mark.parametrize("fmt", ["dpo", "kto", "sft"])
def test_trl_trains_two_steps_on_each_format(compiled, handle, tiny_model, tmp_path, fmt):
    from specc.train import train

    root, _ = compiled
    out = tmp_path / "data"
    rep = compile_with(handle, out, root / "store", fmt=fmt)
    assert rep.stats.generated == 0  # every format is emitted from the same stored calls
    metrics = train(out, fmt, tiny_model, 2, tmp_path / "run", max_length=256)
    assert metrics["steps"] == 2 and metrics["format"] == fmt


def test_killed_compile_resumes_to_the_same_data(compiled, tmp_path, tiny_model):
    root, _ = compiled
    store, out = tmp_path / "store", tmp_path / "out"
    cmd = [sys.executable, "-m", "specc.cli", "compile", str(SPEC), "-o", str(out), "--store", str(store),
           "--model", str(tiny_model), *CLI_ARGS]
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db = store / "store.sqlite"
    deadline = time.time() + 240
    rows = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    rows = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                rows = 0
            if rows >= 3:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the compile finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    a, b = files_of(root / "out"), files_of(out)
    man = json.loads(b["manifest.json"])
    # every call stored before the kill is reused: the scenarios' (stats) and the judge calibration's
    # (counted apart, printed in the summary)
    cal = re.search(r"calibration calls (\d+) generated, (\d+) reused", done.stdout)
    assert cal, done.stdout
    assert man["stats"]["reused"] + int(cal.group(2)) >= rows > 0
    assert without_run_stats(a.pop("manifest.json")) == without_run_stats(b.pop("manifest.json"))
    assert a == b
    assert "verified" in done.stdout and str(out) in done.stdout


# -- the command line ---------------------------------------------------------------------------


def test_compile_reports_spec_errors(tmp_path):
    bad = Path(__file__).parent / "bad" / "bad_example.spec"
    res = CliRunner().invoke(main, ["compile", str(bad), "-o", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert "E213" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_compile_unknown_model_exits_3(tmp_path):
    res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(tmp_path / "out"), "--store",
                                    str(tmp_path / "s"), "--model", str(tmp_path / "no-such-model")])
    assert res.exit_code == 3
    assert "not found" in res.output and "Traceback" not in res.output


def test_full_disk_exits_3_and_keeps_the_store(tmp_path, monkeypatch):
    from specc.emit import writer
    from specc import engines as models
    from test_synth_pipeline import FakeModel

    monkeypatch.setattr(models, "resolve_model", lambda *a, **k: FakeModel())

    def full(path, data, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(writer, "write_atomic", full)
    res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(tmp_path / "out"), "--store",
                                    str(tmp_path / "s")])
    assert res.exit_code == 3, res.output
    assert "no space left" in res.output and "Traceback" not in res.output
    with sqlite3.connect(tmp_path / "s" / "store.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] > 0
    monkeypatch.undo()
    monkeypatch.setattr(models, "resolve_model", lambda *a, **k: FakeModel())
    res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(tmp_path / "out"), "--store",
                                    str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "0 generated" in res.output


@pytest.mark.slow
def test_embedded_smollm2_compiles_a_small_spec(tmp_path):
    res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(tmp_path / "out"), "--store",
                                    str(tmp_path / "s"), "--per-rule", "1", "--max-chars", "120", "--rounds", "1",
                                    "--candidates", "2"])
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["model"]["name"].startswith("smollm2-135m-instruct")
    s = man["stats"]
    assert s["verified"] + s["dropped"] == s["scenarios"]
    assert s["verified"] > 0 or s["spec_examples"] > 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "data" / "train.jsonl").read_text().splitlines()]
    assert rows and all(r["chosen"][0]["content"] for r in rows)
    # every side says where it came from; the candidates were sampled from the real model
    assert all(r["chosen_from"] in ("sampled", "defender", "spec") and r["rejected_from"] in ("sampled", "violator", "spec")
               for r in rows)
    assert man["generation"]["candidates"] == 2
    with sqlite3.connect(tmp_path / "s" / "store.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM results WHERE role = 'candidate'").fetchone()[0] > 0
