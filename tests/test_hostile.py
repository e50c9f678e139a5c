"""Hostile input (issue 14, rows 1-3): no read outside the spec's root through a symlink, no write
through a symlink planted in the output directory, no file of a foreign directory lost to `-o`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from specc.cli import main
from specc.compile import CompileError, CompileOptions, compile_spec
from specc.emit.writer import OutDirError, check_out_dir
from specc.files import UnsafeWrite, write_atomic
from specc.ir.resolve import load

SECRET = "root:$6$supersecrethash:19000:0:99999:7:::"


def spec_text(imp: str) -> str:
    return f'spec t.host version "1.0.0"\n\nimport "{imp}"\n\nrule r {{\n  must "Be kind."\n  authority system\n}}\n'


@pytest.fixture
def tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "x.spec").write_text('spec t.out version "1.0.0"\n\nrule leak {\n  must "Leak."\n  authority system\n}\n')
    return root, outside


def check(*args) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["check", *map(str, args)])
    return r.exit_code, r.output


def test_an_import_that_a_symlink_leads_out_of_the_root_is_refused_unread(tree):
    root, outside = tree
    os.symlink(outside / "secret.txt", root / "s.spec")
    (root / "main.spec").write_text(spec_text("./s.spec"))
    code, out = check(root / "main.spec")
    assert code == 1 and "E202" in out and "through a symlink" in out
    assert "supersecrethash" not in out  # the file is never read, so never quoted in an excerpt


def test_a_spec_symlinked_from_outside_is_not_imported(tree):
    root, outside = tree
    os.symlink(outside / "x.spec", root / "l.spec")
    (root / "main.spec").write_text(spec_text("./l.spec"))
    res = load(root / "main.spec")
    assert [d.code for d in res.errors] == ["E202"]
    assert res.spec is None or all(not r.id.endswith("leak") for r in res.spec.rules)


def test_a_directory_symlink_out_of_the_root_is_refused(tree):
    root, outside = tree
    os.symlink(outside, root / "d")
    (root / "main.spec").write_text(spec_text("./d/x.spec"))
    assert [d.code for d in load(root / "main.spec").errors] == ["E202"]


def test_a_symlink_inside_the_root_still_imports(tree):
    root, _ = tree
    (root / "tone.spec").write_text('spec t.tone version "1.0.0"\n\nrule calm {\n  must "Stay calm."\n  authority system\n}\n')
    os.symlink(root / "tone.spec", root / "alias.spec")
    (root / "main.spec").write_text(spec_text("./alias.spec"))
    res = load(root / "main.spec")
    assert res.errors == [] and any(r.id.endswith("calm") for r in res.spec.rules)


def test_a_fifo_is_not_read(tree):
    root, _ = tree
    os.mkfifo(root / "pipe.spec")  # no writer: reading it would block forever
    (root / "main.spec").write_text(spec_text("./pipe.spec"))
    code, out = check(root / "main.spec")
    assert code == 1 and "E201" in out and "not a regular file" in out


def test_write_atomic_never_follows_a_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / "README.md")
    with pytest.raises(UnsafeWrite, match="symlink"):
        write_atomic(out / "README.md", b"card", within=out)
    assert victim.read_text() == "precious"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "data")
    with pytest.raises(UnsafeWrite, match="outside"):
        write_atomic(out / "data" / "train.jsonl", b"{}", within=out)
    assert list(elsewhere.iterdir()) == []


SPEC = '''spec t.out version "1.0.0"

rule kind {
  must_not "Insult the user."
  authority system
  check not contains("idiot")
  example "rude" {
    user "You are useless."
    good "Sorry about that, let me help."
    bad "Only an idiot asks that."
  }
}
'''


class Refuser:
    """Never called: these compiles must stop before any model call."""

    name, engine, tokenizer, batch_size, params = "never", "transformers", None, 8, {}

    def generate_json(self, *a, **k):
        raise AssertionError("a model call was made")

    generate_raw = generate_json


@pytest.fixture
def spec_file(tmp_path) -> Path:
    p = tmp_path / "s.spec"
    p.write_text(SPEC)
    return p


def test_compile_refuses_a_foreign_directory_and_loses_no_file(tmp_path, spec_file):
    out = tmp_path / "notes"
    (out / "data").mkdir(parents=True)
    (out / "README.md").write_text("my hand-written notes")
    (out / "data" / "train.jsonl").write_text('{"mine": true}\n')
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(CompileError, match="not a specc dataset"):
        compile_spec(load(spec_file).spec, spec_file, CompileOptions(out_dir=out, store=tmp_path / "st"),
                     model=Refuser())
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    r = CliRunner().invoke(main, ["compile", str(spec_file), "-o", str(out), "--store", str(tmp_path / "st")])
    assert r.exit_code == 1 and "--force" in r.output and "not a specc dataset" in r.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_out_dir_checks(tmp_path):
    check_out_dir(tmp_path / "new")  # a new directory
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty")
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "manifest.json").write_text(json.dumps({"specc_version": "0.1.0", "spec": {}}))
    (ds / "README.md").write_text("card")
    check_out_dir(ds)  # a specc dataset is recompiled in place
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutDirError, match="not a directory"):
        check_out_dir(tmp_path / "file")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.txt").write_text("a")
    with pytest.raises(OutDirError):
        check_out_dir(foreign)
    check_out_dir(foreign, force=True)
    os.symlink(ds, tmp_path / "link")
    with pytest.raises(OutDirError, match="symlink"):
        check_out_dir(tmp_path / "link")


def test_what_an_interrupted_compile_left_is_compiled_over(tmp_path):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "train.jsonl").write_text("{}\n")  # the compile died before README and manifest
    check_out_dir(out)
    (out / "notes.txt").write_text("mine")  # ... but not once something else is there
    with pytest.raises(OutDirError):
        check_out_dir(out)
