"""manifest.json: one pydantic model, written and read through it; a tampered manifest is a
clear error naming the file (exit 1), never a traceback, a hang or a read outside the dataset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from specc.cli import main
from specc.emit.manifest import MAX_PER_RULE, Manifest, ManifestError, read_manifest
from specc.synth.model import SynthStats
from test_synth_pipeline import FakeModel, run

REPO = Path(__file__).resolve().parent.parent
V1 = "examples/diff/v1/assistant.spec"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    """A real dataset from the compiler (a fake model: fast), with a test split."""
    root = tmp_path_factory.mktemp("manifest")
    rep = run(root, FakeModel(), per_rule=3)
    assert rep.files["train"] and rep.files["test"]
    return root / "out"


def copy_of(compiled: Path, tmp_path: Path, name: str = "d") -> Path:
    d = tmp_path / name
    shutil.copytree(compiled, d)
    return d


def edit(d: Path, change) -> None:
    m = json.loads((d / "manifest.json").read_text())
    change(m)
    (d / "manifest.json").write_text(json.dumps(m, indent=2))


def test_the_written_manifest_reads_back_through_the_same_model_byte_for_byte(compiled):
    text = (compiled / "manifest.json").read_text(encoding="utf-8")
    m = read_manifest(compiled)
    assert isinstance(m, Manifest) and isinstance(m.stats, SynthStats)
    assert m.dumps() == text
    assert m.stats.verified + m.stats.spec_examples == sum(m.counts.values())


def test_schema_command_prints_the_manifest_schema(compiled):
    r = CliRunner().invoke(main, ["schema", "--manifest"])
    assert r.exit_code == 0, r.output
    schema = json.loads(r.output)
    assert schema["title"] == "Manifest"
    assert set(schema["required"]) >= {"specc_version", "spec", "rules", "files", "counts", "stats", "plan"}
    assert schema["$defs"]["PlanInfo"]["properties"]["per_rule"]["maximum"] == MAX_PER_RULE
    # the schema describes what the compiler writes: a validator agrees on the real file
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads((compiled / "manifest.json").read_text()), schema)


def diff_cli(*args, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, ["diff", *map(str, args)])
    finally:
        os.chdir(old)


TAMPERED = {
    "deep nesting": None,  # written as text below
    "rules of the wrong type": lambda m: m.update(rules=["a", "b"]),
    "a record id that is a number": lambda m: next(iter(m["rules"].values())).update(records=[1, 2]),
    "a hash that is null": lambda m: next(iter(m["rules"].values())).update(hash=None),
    "an absurd per_rule": lambda m: m["plan"].update(per_rule=1e8),
    "a negative count": lambda m: m["counts"].update(train=-1),
    "an unknown boundary": lambda m: m["plan"].update(boundaries=["everything"]),
    "stats of the wrong shape": lambda m: m.update(stats={"verified": "many"}),
    "a train file outside the dataset": lambda m: m["files"].update(train="../../etc/passwd"),
    "an absolute train file": lambda m: m["files"].update(train="/etc/passwd"),
    "a list instead of an object": None,
}


@pytest.mark.parametrize("what", sorted(TAMPERED))
def test_a_tampered_manifest_is_a_clear_error_in_every_reader(compiled, tmp_path, what):
    d = copy_of(compiled, tmp_path)
    if what == "a list instead of an object":
        (d / "manifest.json").write_text("[1, 2]")
    elif what == "deep nesting":
        (d / "manifest.json").write_text('{"specc_version": "0.1.0", "rules": ' + "[" * 100_000 + "]" * 100_000 + "}")
    else:
        edit(d, TAMPERED[what])
    with pytest.raises(ManifestError, match=str(d / "manifest.json")):
        read_manifest(d)
    good = copy_of(compiled, tmp_path, "good")
    for args in ((d, good), (good, d), (REPO / V1, REPO / V1, "--data", d)):
        r = diff_cli(*args, cwd=tmp_path)
        assert r.exit_code == 1, (args, r.output)
        assert "manifest.json" in r.output and "Traceback" not in r.output
        assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)
    from specc.eval.probes import ProbeError, held_out_files
    from specc.train.data import TrainError, find_data_files

    with pytest.raises(ProbeError, match="manifest.json"):
        held_out_files(d)
    with pytest.raises(TrainError, match="manifest.json"):
        find_data_files(d, "dpo")


def test_a_data_file_linked_outside_the_dataset_is_refused(compiled, tmp_path):
    """`files` names a path inside the directory, but a symbolic link leads out of it."""
    d = copy_of(compiled, tmp_path)
    secret = tmp_path / "secret.jsonl"
    shutil.copy(d / "data" / "train.jsonl", secret)
    (d / "data" / "train.jsonl").unlink()
    (d / "data" / "train.jsonl").symlink_to(secret)
    m = read_manifest(d)  # the manifest itself is fine
    with pytest.raises(ManifestError, match="leads outside the dataset directory"):
        m.data_file(d, "train")
    from specc.train.data import TrainError, find_data_files

    with pytest.raises(TrainError, match="outside"):
        find_data_files(d, "dpo")
    good = copy_of(compiled, tmp_path, "good")
    r = diff_cli(good, d, cwd=tmp_path)
    assert r.exit_code == 1 and "leads outside the dataset directory" in r.output, r.output


def test_an_absurd_per_rule_does_not_hang_the_diff(compiled, tmp_path):
    d = copy_of(compiled, tmp_path)
    edit(d, lambda m: m["plan"].update(per_rule=MAX_PER_RULE + 1))
    r = diff_cli(REPO / V1, REPO / V1, "--data", d, cwd=tmp_path)
    assert r.exit_code == 1 and "per_rule" in r.output, r.output


def test_an_unknown_field_is_refused_not_dropped(compiled, tmp_path):
    d = copy_of(compiled, tmp_path)
    edit(d, lambda m: m.update(extra_field=1))
    with pytest.raises(ManifestError, match="extra_field"):
        read_manifest(d)


def test_a_compile_cannot_write_a_per_rule_its_manifest_refuses(tmp_path):
    r = CliRunner().invoke(main, ["compile", str(REPO / V1), "-o", str(tmp_path / "o"), "--per-rule",
                                  str(MAX_PER_RULE + 1)])
    assert r.exit_code == 2 and "--per-rule" in r.output
    from specc.compile import CompileError

    with pytest.raises(CompileError, match="--per-rule"):
        run(tmp_path, FakeModel(), per_rule=MAX_PER_RULE + 1)
