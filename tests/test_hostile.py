"""Hostile input (issue 14). Rows 1-3: no read outside the spec's root through a symlink, no write
through a symlink planted in the output directory, no file of a foreign directory lost to `-o`.
Rows 4-12 and their neighbours: inputs that once hung, grew without bound or crashed, each run
under a memory limit and a timeout; and a hypothesis test that mixes them."""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import time
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from specc.cli import main
from specc.compile import CompileError, CompileOptions, compile_spec
from specc.emit.writer import OutDirError, check_out_dir
from specc.files import UnsafeWrite, write_atomic
from specc.ir.resolve import load
from specc.synth.model import SynthStats

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


# -- rows 4-12: inputs that once hung, grew without bound or crashed --------------------------
# Each command runs in a subprocess under a memory limit (RLIMIT_AS) and a timeout: a
# regression fails the test instead of taking the machine down.

MEMORY = 1024 ** 3  # 1 GiB more address space than the test process has: far above what any needs
HEAD = 'spec t.h version "1.0.0"\n  """Hostile."""\n\n'
RULE = 'rule kind {\n  must "Be kind."\n  authority system\n  check max_words(50)\n}\n'


def _address_space() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))


def specc(*args, cwd: Path | None = None, timeout: float = 30) -> tuple[int, str, float]:
    """Run `specc ARGS` in a forked child (no interpreter start-up to pay) under a memory limit
    (RLIMIT_AS) and a timeout: a regression fails the test instead of taking the machine down.
    Returns (exit code, stdout + stderr, seconds); a traceback fails."""
    start = time.monotonic()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            limit = _address_space() + MEMORY
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            signal.alarm(int(timeout) + 1)
            if cwd is not None:
                os.chdir(cwd)
            res = CliRunner().invoke(main, [str(a) for a in args])
            crash = ""
            if res.exception is not None and not isinstance(res.exception, SystemExit):
                crash = "Traceback\n" + "".join(traceback.format_exception(*res.exc_info))
            os.write(w, json.dumps([res.exit_code, res.output + crash]).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        while True:
            ready, _, _ = select.select([f], [], [], max(0.0, start + timeout - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"specc {' '.join(map(str, args))} ran longer than {timeout} s")
            chunk = os.read(f.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    assert chunks, f"specc {' '.join(map(str, args))} died (status {status}): out of memory or time?"
    code, out = json.loads(b"".join(chunks))
    assert "Traceback" not in out, out[-3000:]
    return code, out, time.monotonic() - start


def nested_sections(n: int) -> str:
    return HEAD + "".join(f"section s{i} {{\n" for i in range(n)) + RULE + "}\n" * n


def test_a_directory_symlink_loop_is_one_cycle(tmp_path):
    (tmp_path / "main.spec").write_text(HEAD + 'import "./d/main.spec"\n' + RULE)
    os.symlink(".", tmp_path / "d")
    code, out, _ = specc("check", tmp_path / "main.spec")
    assert code == 1 and out.count("error[") == 1 and "E203" in out


def test_two_directory_symlinks_do_not_blow_up(tmp_path):
    (tmp_path / "main.spec").write_text(HEAD + 'import "./a.spec"\n' + RULE)
    (tmp_path / "a.spec").write_text('spec t.a version "1.0.0"\n  """A."""\nimport "./d/a.spec"\nimport "./e/a.spec"\n')
    os.symlink(".", tmp_path / "d")
    os.symlink(".", tmp_path / "e")
    code, out, took = specc("check", tmp_path / "main.spec", timeout=20)
    assert code == 1 and took < 10
    assert {line.split("error[")[1][:4] for line in out.splitlines() if "error[" in line} == {"E203"}


def test_a_file_reached_under_two_names_is_loaded_once(tmp_path):
    (tmp_path / "tone.spec").write_text('spec t.tone version "1.0.0"\n  """T."""\n\n'
                                        'rule calm {\n  must "Stay calm."\n  check max_words(9)\n}\n')
    os.symlink(".", tmp_path / "d")
    (tmp_path / "main.spec").write_text(HEAD + 'import "./tone.spec"\nimport "./d/tone.spec"\n' + RULE)
    res = load(tmp_path / "main.spec")
    assert res.errors == [] and [r.id for r in res.spec.rules] == ["t.h.kind", "t.tone.calm"]


def test_a_device_is_not_read(tmp_path):
    code, out, took = specc("check", "/dev/zero", timeout=20)
    assert code == 1 and "E201" in out and "not a regular file" in out and took < 10
    (tmp_path / "main.spec").write_text(HEAD + 'import "./z.spec"\n' + RULE)
    os.symlink("/dev/zero", tmp_path / "z.spec")
    code, out, _ = specc("check", tmp_path / "main.spec")
    assert code == 1 and ("E201" in out or "E202" in out)
    code, out, _ = specc("fmt", "--check", "/dev/zero")
    assert code == 1 and "not a regular file" in out


def test_a_fifo_given_as_the_spec_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "p.spec")
    code, out, _ = specc("check", tmp_path / "p.spec", timeout=20)
    assert code == 1 and "E201" in out and "not a regular file" in out
    code, out, _ = specc("fmt", "--check", tmp_path / "p.spec", timeout=20)
    assert code == 1 and "not a regular file" in out


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    from specc.files import MAX_SPEC_BYTES

    big = tmp_path / "big.spec"
    with open(big, "wb") as f:
        f.truncate(MAX_SPEC_BYTES + 1)  # sparse: nothing to write, plenty to read
    code, out, took = specc("check", big)
    assert code == 1 and "E501" in out and took < 10
    (tmp_path / "main.spec").write_text(HEAD + 'import "./big.spec"\n' + RULE)
    code, out, _ = specc("check", tmp_path / "main.spec")
    assert code == 1 and "E501" in out and "main.spec:4:1" in out


@pytest.mark.parametrize("text, where", [
    (nested_sections(1000), "sections nest"),
    (HEAD + 'rule r {\n  must "x"\n  check ' + "not " * 1000 + "max_words(3)\n}\n", "check nests"),
    (HEAD + 'rule r {\n  must "x"\n  check ' + "not (max_words(3) and " * 300 + "is_json" + ")" * 300 + "\n}\n",
     "check nests"),
])
def test_deep_nesting_is_E502_in_every_command(tmp_path, text, where):
    path = tmp_path / "deep.spec"
    path.write_text(text)
    for args in (["check"], ["fmt", "--check"], ["inspect", "--format", "json"], ["plan"]):
        code, out, _ = specc(*args, path)
        assert code == 1 and "E502" in out and where in out, (args, out[-500:])


def test_nesting_just_under_the_limit_works_everywhere(tmp_path):
    from specc.syntax.parser import MAX_NESTING

    path = tmp_path / "deep.spec"
    path.write_text(nested_sections(MAX_NESTING - 1).replace(
        "max_words(50)", "not " * (MAX_NESTING - 1) + "max_words(50)"))
    for args in (["check"], ["fmt", "--check"], ["inspect", "--format", "json"]):
        code, out, _ = specc(*args, path)
        assert code in (0, 1) and "E502" not in out, (args, out[-500:])
    assert specc("inspect", "--format", "json", path)[0] == 0


def test_deep_parentheses_parse_without_recursion(tmp_path):
    path = tmp_path / "p.spec"
    path.write_text(HEAD + 'rule r {\n  must "x"\n  check ' + "(" * 5000 + "max_words(3)" + ")" * 5000 + "\n}\n")
    code, out, _ = specc("check", path)
    assert code == 0


def test_a_long_chain_of_imports_is_E502(tmp_path):
    for i in range(40):
        nxt = f'import "./f{i + 1}.spec"\n' if i < 39 else ""
        (tmp_path / f"f{i}.spec").write_text(f'spec t.f{i} version "1.0.0"\n  """F."""\n{nxt}' + RULE)
    code, out, _ = specc("check", tmp_path / "f0.spec")
    assert code == 1 and "E502" in out and "imports nest more than 32" in out


def test_is_json_on_deeply_nested_text(tmp_path):
    path = tmp_path / "j.spec"
    path.write_text(HEAD + 'rule r {\n  must "x"\n  check is_json\n  example "e" {\n    user "u"\n    good "'
                    + "[" * 1000 + '"\n    good "' + "[" * 50 + "]" * 50 + '"\n  }\n}\n')
    code, out, _ = specc("check", path)
    assert code == 0 and out.count("W408") == 1 and ":9:" in out  # the 1000 `[` fail is_json, the 50 pass


def test_the_regex_budget_is_per_run(tmp_path):
    examples = "".join(f'  example "e{i}" {{\n    user "u"\n    good "{"a" * 40}b"\n  }}\n' for i in range(300))
    path = tmp_path / "redos.spec"
    path.write_text(HEAD + 'rule r {\n  must "x"\n  check not matches(r"(a|aa)+$")\n' + examples + "}\n")
    code, out, took = specc("check", path, timeout=60)
    assert code == 0 and "W410" in out and took < 10, (took, out[-800:])


def test_a_regex_that_expands_too_far_is_E305_without_compiling(tmp_path):
    for pattern in ("a{10000000}", "(?:x{1000}){1000}", "a{100000000000}"):
        path = tmp_path / "re.spec"
        path.write_text(HEAD + f'rule r {{\n  must "x"\n  check matches(r"{pattern}")\n}}\n')
        code, out, took = specc("check", path)
        assert code == 1 and "E305" in out and "units, more than the limit" in out and took < 10, out


def test_weight_is_bounded(tmp_path):
    path = tmp_path / "w.spec"
    path.write_text(HEAD + 'rule r {\n  must "x"\n  weight 100000000\n  check max_words(3)\n}\n')
    code, out, took = specc("plan", path)
    assert code == 1 and "E215" in out and "at most 100" in out and took < 10


def test_plan_size_is_checked_before_any_work(tmp_path):
    axes = "".join(f"axis a{i} = [{', '.join(f'v{j}' for j in range(50))}]\n" for i in range(40))
    path = tmp_path / "axes.spec"
    path.write_text(HEAD + axes + RULE)
    code, out, took = specc("plan", path)
    assert code == 1 and "E503" in out and "pairwise" in out and took < 10
    assert specc("plan", "--coverage", "random", path)[0] == 0
    small = tmp_path / "s.spec"
    small.write_text(HEAD + RULE.replace("rule kind", "rule a") + RULE.replace("rule kind", "rule b"))
    # 2 rules x (6 violation + 6 lookalike + 6 conflict): the limit is exact
    code, out, _ = specc("plan", "--max-scenarios", "35", small)
    assert code == 1 and "E503" in out and "36 scenarios, more than --max-scenarios 35" in out
    code, out, _ = specc("plan", "--max-scenarios", "36", "--format", "json", small)
    assert code == 0 and json.loads(out)["counts"]["total"] == 36
    # compile refuses before it loads a model: this one does not exist
    code, out, _ = specc("compile", small, "-o", tmp_path / "out", "--model", tmp_path / "no-model",
                         "--max-scenarios", "5", "--per-rule", "3")
    assert code == 1 and "E503" in out and not (tmp_path / "out").exists()


def canonical(text: str) -> str:
    from specc.syntax.fmt import format_text

    out, _ = format_text(text, "x.spec")
    return out


def test_a_byte_order_mark_reads_the_same_everywhere(tmp_path):
    text = canonical(HEAD + RULE)
    path = tmp_path / "bom.spec"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert specc("check", path)[0] == 0
    assert specc("fmt", "--check", path)[0] == 0
    assert specc("inspect", path)[0] == 0
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "add", "bom.spec"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    code, out, _ = specc("diff", "--exit-code", "HEAD:bom.spec", "bom.spec", cwd=tmp_path)
    assert code == 0, out


def test_crlf_and_a_bom_hash_the_same_through_git(tmp_path):
    from specc.diff.sources import open_side

    text = canonical(HEAD + RULE)
    (tmp_path / "a.spec").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    (tmp_path / "b.spec").write_text(text)
    assert open_side("a.spec", tmp_path).spec.hash == open_side("b.spec", tmp_path).spec.hash


def _store_with_rows(directory: Path) -> Path:
    from specc.synth.store import Store

    with Store(directory) as store:
        store.commit([(f"k{i}", "s", "r", "m", "x" * 300) for i in range(200)], [])
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return directory / "store.sqlite"


def test_a_damaged_store_is_a_store_error_with_its_path(tmp_path):
    from specc.synth.store import Store, StoreError

    db = _store_with_rows(tmp_path / "st")
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[page * 2: page * 3] = b"\xa5" * page  # a data page overwritten
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="store.sqlite"):
        Store(tmp_path / "st")


def test_compile_on_a_damaged_store_exits_3(tmp_path, spec_file):
    from specc.compile import OperationalError

    db = _store_with_rows(tmp_path / "st")
    db.write_bytes(db.read_bytes()[:4096] + b"\x00garbage" * 1000)
    with pytest.raises(OperationalError, match="st/store.sqlite"):
        compile_spec(load(spec_file).spec, spec_file, CompileOptions(out_dir=tmp_path / "o", store=tmp_path / "st"),
                     model=Refuser())
    assert not (tmp_path / "o").exists()


def test_a_spec_file_name_that_is_not_utf8_is_written_escaped():
    from specc.compile import _file_label

    assert _file_label(Path(os.fsdecode(b"ok\xffname.spec"))) == "ok\\xffname.spec"
    json.dumps({"file": _file_label(Path(os.fsdecode(b"ok\xffname.spec")))}).encode("utf-8")


def test_the_dataset_is_not_written_until_every_file_is_ready(tmp_path, monkeypatch, spec_file):
    from specc.emit import manifest as manifest_mod
    from specc.emit.writer import write_dataset

    def broken(*a, **k):
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(manifest_mod, "build_manifest", broken)
    spec = load(spec_file).spec
    with pytest.raises(UnicodeEncodeError):
        write_dataset(tmp_path / "out", result=EmptyResult(), spec=spec, spec_file="x", plan=None, fmt="dpo",
                      file_format="jsonl", seed=0, model="m", judge="m", generation={})
    assert not (tmp_path / "out").exists()


def test_excerpts_count_lines_as_the_parser_does(tmp_path):
    path = tmp_path / "ff.spec"
    path.write_text(HEAD + "# a\x0cb \u2028 c \x85 d\n" + 'rule r {\n  must ""\n}\n')
    code, out, _ = specc("check", path)
    assert code == 1 and ':6:8: error[E210]' in out and '\n      must ""\n' in out


def test_a_long_line_gives_a_short_excerpt(tmp_path):
    path = tmp_path / "long.spec"
    path.write_text(HEAD + 'rule r {\n  must "' + "x" * 900_000 + '" $\n}\n')
    code, out, _ = specc("check", path)
    assert code == 1 and "E102" in out and len(out) < 2000
    caret = next(line for line in out.splitlines() if line.strip().startswith("^"))
    shown = out.splitlines()[out.splitlines().index(caret) - 1]
    assert shown[caret.index("^")] == "$"


def test_fmt_does_not_count_a_file_it_could_not_write(tmp_path):
    real = tmp_path / "real.spec"
    real.write_text(HEAD + "rule kind {\n must   \"Be kind.\"\n}\n")
    os.symlink(real, tmp_path / "link.spec")
    code, out, _ = specc("fmt", tmp_path / "link.spec")
    assert code == 3 and "cannot write" in out and "reformatted" not in out.replace("not reformatted", "")


@pytest.mark.parametrize("args", [["compile", "-o", "o", "--model", ""], ["compile", "-o", "o", "--judge", " "],
                                  ["eval", "--model", ""], ["eval", "--attacker", ""]])
def test_an_empty_model_name_is_a_usage_error(tmp_path, spec_file, args):
    code, out, _ = specc(args[0], spec_file, *args[1:], cwd=tmp_path)
    assert code == 2 and "is empty" in out and not (tmp_path / "o").exists()


# -- a mix of the above, in process: whatever the combination, diagnostics and no exception ----

_PIECES = {
    "sections": lambda n: ("".join(f"section s{i} {{\n" for i in range(n)), "}\n" * n),
    "nots": lambda n: ("not " * n, ""),
}


@pytest.mark.parametrize("nots,deep", [(31, False), (32, True)])
def test_a_check_nests_32_levels_and_the_or_is_one(nots, deep):
    """The boundary hypothesis found: 32 `not`s under an `or` are 33 levels (docs/language.md, Limits)."""
    from specc.ir.resolve import load_text

    text = HEAD + 'rule r {\n  must "x"\n  check ' + "not " * nots + 'contains("a") or is_json\n}\n'
    codes = {d.code for d in load_text(text, "deep.spec").diagnostics}
    assert ("E502" in codes) == deep


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sections=st.integers(0, 200), nots=st.integers(0, 200), bom=st.booleans(), crlf=st.booleans(),
       sep=st.sampled_from(["", "\x0c", "\u2028", "\x85"]), repeat=st.sampled_from([1, 50, 10 ** 4, 10 ** 7]),
       weight=st.sampled_from(["1", "100", "1e3", "100000000"]), json_depth=st.integers(0, 2000))
def test_hostile_mixtures_give_diagnostics_never_an_exception(sections, nots, bom, crlf, sep, repeat, weight,
                                                               json_depth):
    from specc.files import decode_spec
    from specc.ir.resolve import load_text
    from specc.plan.planner import PlanError, make_plan
    from specc.syntax.fmt import format_text

    weight = weight if weight != "1e3" else "1000"
    open_, close = _PIECES["sections"](sections)
    text = (HEAD + f"# note{sep} here\n" + open_ + "rule r {\n  must \"x\"\n  weight " + weight + "\n  check "
            + "not " * nots + f'matches(r"a{{{repeat}}}") or is_json\n  example "e" {{\n    user "u"\n    good "'
            + "[" * json_depth + '"\n  }\n}\n' + close)
    raw = (b"\xef\xbb\xbf" if bom else b"") + (text.replace("\n", "\r\n") if crlf else text).encode()
    decoded = decode_spec(raw)
    assert decoded == text
    start = time.monotonic()
    res = load_text(decoded, "mix.spec")
    codes = {d.code for d in res.diagnostics}
    deep = sections > 32 or nots + 1 > 32  # the `or` is a level of the check's nesting too (32 at most)
    assert ("E502" in codes) == deep
    if not deep:
        assert ("E305" in codes) == (repeat > 100_000)
        assert ("E215" in codes) == (float(weight) > 100)
    if res.ok:
        make_plan(res.spec, per_rule=1)
    out, diags = format_text(decoded, "mix.spec")
    assert (out is None) == deep  # nesting is the one problem of these texts that fmt refuses
    if out is not None:
        again = load_text(out, "mix.spec")  # the same meaning: the same problems, moved by the layout
        assert [(d.code, d.message) for d in again.diagnostics] == [(d.code, d.message) for d in res.diagnostics]
    assert time.monotonic() - start < 10


def test_the_direct_parser_leaves_deep_text_to_lark():
    from specc.syntax import direct, parser as P

    text = nested_sections(direct.MAX_DEPTH + 5).replace(
        "max_words(50)", "(" * (direct.MAX_DEPTH + 5) + "max_words(50)" + ")" * (direct.MAX_DEPTH + 5))
    with pytest.raises(direct.Decline):
        P._direct_parser(P._parser()).parse(text, "t.spec")
    tree, diags = P._parse(text, "t.spec")  # lark builds it, without recursion
    assert tree is not None and diags == []
    assert [d.code for d in P.parse(text, "t.spec")[1]] == ["E502"]


def test_huge_strings_in_a_broken_file_are_lexed_in_linear_time_and_memory(tmp_path):
    path = tmp_path / "huge.spec"
    rules = "".join(f'rule r{i} {{\n  must "' + "x" * 900_000 + '" $\n}\n' for i in range(12))
    path.write_text(HEAD + 'rule big {\n  must "' + "y" * 10_000_000 + '" $\n}\n' + rules)
    code, out, took = specc("check", path, timeout=30)  # 1.4 GB and 10 s for the 10 MB string alone, once
    assert code == 1 and "E102" in out and len(out) < 5000 and took < 10


class EmptyResult:
    """What the pipeline returns for a compile that verified nothing (complete, typed stats)."""

    pairs, scenarios_by_rule, calibration, judge, cost = [], {}, None, None, None
    stats = SynthStats(scenarios=0, generated=0, reused=0, verified=0, dropped=0, dropped_reasons={},
                       verified_by={}, sides_from={}, faults={}, gate_failures={},
                       spec_example_gate_warnings={}, spec_examples=0, experience_pool=0, per_rule={})


def test_a_full_disk_while_writing_the_dataset_names_the_dataset(tmp_path, spec_file, monkeypatch):
    import errno

    from specc.compile import OperationalError
    from specc.emit import writer
    from specc.synth import pipeline


    def full(path, data, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "synthesize", lambda *a, **k: EmptyResult())
    monkeypatch.setattr(writer, "write_atomic", full)
    with pytest.raises(OperationalError) as e:
        compile_spec(load(spec_file).spec, spec_file, CompileOptions(out_dir=tmp_path / "out", store=tmp_path / "st"),
                     model=Refuser())
    assert "while writing" in str(e.value) and str(tmp_path / "out") in str(e.value).split(";")[0]


def test_sound_patterns_never_spend_the_regex_budget():
    from specc.ir import checks as checklib
    from specc.ir.model import CheckCall

    check = CheckCall(name="matches", args=(r"\b\d{3}-\d{4}\b",))
    with checklib.regex_budget(0.1, allowance=checklib.REGEX_ALLOWANCE_S, own=True) as budget:
        start = time.perf_counter()
        assert all(checklib.evaluate(check, f"call 555-{i % 10_000:04d} now") for i in range(50_000))
        assert time.perf_counter() - start > 0.1  # more than the budget without its allowance
        assert budget.left > 0.1
        budget.allowance = 0.0  # from here on, what a spec's lints get: a fixed budget
        budget.left = 0.2  # under the 0.25 s of one evaluation: the slow one is cut at what is left
        slow = CheckCall(name="matches", args=(r"(a|aa)+$",))
        with pytest.raises(checklib.CheckTimeout):
            checklib.evaluate(slow, "a" * 40 + "b")
        with pytest.raises(checklib.BudgetSpent):
            checklib.evaluate(check, "555-1234")


def test_exchange_swaps_two_directories_in_one_step(tmp_path):
    from specc.files import exchange

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "f").write_text("new"), (b / "f").write_text("old")
    if not exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) on this system: the writer renames in two steps")
    assert (b / "f").read_text() == "new" and (a / "f").read_text() == "old"
    with pytest.raises(OSError):
        exchange(tmp_path / "missing", b)


def test_a_rewritten_dataset_never_disappears(tmp_path, spec_file, monkeypatch):
    """A reader (a CI job, a trainer polling for the data) looking while a dataset is replaced sees
    the old manifest or the new one, never none: the directories are exchanged in one step."""
    import threading

    from specc.files import exchange
    from specc.synth import pipeline

    a, b = tmp_path / "probe-a", tmp_path / "probe-b"
    a.mkdir(), b.mkdir()
    if not exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) on this system: the writer renames in two steps")
    monkeypatch.setattr(pipeline, "synthesize", lambda *a, **k: EmptyResult())
    out = tmp_path / "out"
    options = CompileOptions(out_dir=out, store=tmp_path / "st")
    compile_spec(load(spec_file).spec, spec_file, options, model=Refuser())
    missing, done = [], threading.Event()

    def watch():
        while not done.is_set():
            if not (out / "manifest.json").exists():
                missing.append(1)

    t = threading.Thread(target=watch)
    t.start()
    try:
        for _ in range(20):
            compile_spec(load(spec_file).spec, spec_file, options, model=Refuser())
    finally:
        done.set()
        t.join()
    assert not missing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "probe-a", "probe-b", "s.spec", "st"]


def test_a_dataset_is_replaced_as_a_whole_or_not_at_all(tmp_path, spec_file, monkeypatch):
    from specc.emit import writer
    from specc.synth import pipeline


    monkeypatch.setattr(pipeline, "synthesize", lambda *a, **k: EmptyResult())
    out = tmp_path / "out"
    options = CompileOptions(out_dir=out, store=tmp_path / "st")
    compile_spec(load(spec_file).spec, spec_file, options, model=Refuser())
    (out / "data").mkdir(exist_ok=True)
    (out / "data" / "train.jsonl").write_text('{"old": true}\n')  # what an earlier compile wrote
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = writer.write_atomic

    def fail_on_manifest(path, data, **kw):
        if Path(path).name == "manifest.json":
            raise OSError(5, "I/O error", str(path))
        real(path, data, **kw)

    monkeypatch.setattr(writer, "write_atomic", fail_on_manifest)
    with pytest.raises(Exception):
        compile_spec(load(spec_file).spec, spec_file, options, model=Refuser())
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.spec", "st"]  # nothing staged is left
    monkeypatch.setattr(writer, "write_atomic", real)
    compile_spec(load(spec_file).spec, spec_file, options, model=Refuser())
    assert not (out / "data" / "train.jsonl").exists()  # the earlier split is gone with the old directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.spec", "st"]


# -- datasets from someone else: no reader follows a link out of the dataset directory ----------------


class NoCalls:
    """A model the refused dataset must never reach."""

    name, engine, batch_size, tokenizer = "never-called", "scripted", 1, None
    params: dict = {}

    def generate_raw(self, *a, **k):
        raise AssertionError("the model was asked about a file outside the dataset")

    generate_json = generate_raw


@pytest.fixture
def linked(tmp_path, monkeypatch):
    """A spec, a dataset compiled from it, and a file of records outside it holding a secret."""
    from evaldata import load_spec, row, write_dataset, write_jsonl, write_spec
    from specc import engines

    monkeypatch.setattr(engines, "resolve_model", lambda *a, **k: NoCalls())
    spec_path = write_spec(tmp_path / "spec")
    data = write_dataset(tmp_path / "data", load_spec(spec_path))
    outside = tmp_path / "outside.jsonl"
    write_jsonl(outside, [row("leak-1", "test.eval.magic_word", "violation", f"Repeat this: {SECRET}",
                              chosen=SECRET)])
    return spec_path, data, outside


def _swap_for_link(path: Path, target: Path) -> None:
    path.unlink()
    os.symlink(target, path)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("manifest", [True, False])
def test_audit_refuses_a_data_file_that_links_out(linked, manifest):
    _, data, outside = linked
    if not manifest:
        (data / "manifest.json").unlink()
    _swap_for_link(data / "data" / "train.jsonl", outside)
    r = invoke("audit", data, "--format", "json")
    assert r.exit_code == 1 and "outside the dataset directory" in r.stderr
    assert "supersecrethash" not in r.output


def test_eval_refuses_a_test_split_or_manifest_that_links_out(linked, tmp_path):
    spec_path, data, outside = linked
    _swap_for_link(data / "data" / "test.jsonl", outside)
    (data / "manifest.json").rename(tmp_path / "manifest.json")  # no manifest: the files are found by name
    r = invoke("eval", spec_path, "--model", "m", "--data", data, "-o", tmp_path / "eval.json")
    assert r.exit_code == 2 and "outside the dataset directory" in r.stderr, r.output
    assert "supersecrethash" not in r.output and not (tmp_path / "eval.json").exists()
    os.symlink(tmp_path / "manifest.json", data / "manifest.json")  # the manifest itself, from outside
    r = invoke("eval", spec_path, "--model", "m", "--data", data)
    assert r.exit_code == 2 and "outside the dataset directory" in r.stderr, r.output


def test_train_without_a_manifest_refuses_a_train_file_that_links_out(linked, tmp_path):
    _, data, outside = linked
    (data / "manifest.json").unlink()
    _swap_for_link(data / "data" / "train.jsonl", outside)
    r = invoke("train", data, "-o", tmp_path / "model", "--model", "m", "--steps", 1)
    assert r.exit_code == 1 and "outside the dataset directory" in r.stderr, r.output
    assert "supersecrethash" not in r.output and not (tmp_path / "model").exists()


def test_merge_refuses_a_shard_whose_data_links_out(linked, tmp_path):
    from test_shards import SPEC, compile_shards

    _, _, outside = linked
    (tmp_path / "s.spec").write_text(SPEC, encoding="utf-8")
    shards = compile_shards(tmp_path / "s.spec", tmp_path / "shards", 2)
    victim = next(d / "data" / "train.jsonl" for d in shards if (d / "data" / "train.jsonl").is_file())
    _swap_for_link(victim, outside)
    r = invoke("merge", tmp_path / "merged", *shards)
    assert r.exit_code == 1 and "outside the dataset directory" in r.stderr, r.output
    assert not (tmp_path / "merged").exists()


def test_train_refuses_an_output_directory_that_is_a_link(linked, tmp_path):
    from specc.train.run import _prepare_out
    from specc.train import TrainError

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "out")
    with pytest.raises(TrainError, match="symbolic link"):
        _prepare_out(tmp_path / "out", resume=False)
    assert list(elsewhere.iterdir()) == []


def test_a_password_in_the_server_url_is_never_echoed(tmp_path):
    pytest.importorskip("openai")
    import socket

    with socket.socket() as s:  # a port nothing listens on: every request fails, every error names the server
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = tmp_path / "t.spec"
    spec.write_text('spec t.pw version "1.0.0"\n\nrule r {\n  must "Be kind."\n  check not refuses\n}\n')
    for args in (["compile", spec, "-o", tmp_path / "out", "--timeout", "1"], ["eval", spec]):
        r = invoke(*args, "--model", f"openai:http://alice:hunter2@127.0.0.1:{port}/v1")
        assert r.exit_code == 3, r.output
        assert "hunter2" not in r.output and f"alice:***@127.0.0.1:{port}" in r.output, r.output
    r = invoke("compile", spec, "-o", tmp_path / "out", "--model", "openai:ftp://alice:hunter2@host/v1")
    assert r.exit_code != 0 and "hunter2" not in r.output and "alice:***@host" in r.output, r.output


# -- float options: nan and inf are no numbers here ---------------------------------------------------


@pytest.mark.parametrize("args", [
    ["audit", ".", "--fail-over", "nan"],
    ["eval", "x.spec", "--fail-under", "nan"],
    ["compile", "x.spec", "-o", "out", "--timeout", "nan"],
    ["compile", "x.spec", "-o", "out", "--timeout", "inf"],
    ["compile", "x.spec", "-o", "out", "--timeout", "1e308"],
    ["compile", "x.spec", "-o", "out", "--min-judge-agreement", "nan"],
    ["plan", "x.spec", "--test-fraction", "nan"],
    ["train", ".", "-o", "out", "--learning-rate", "nan"],
    ["train", ".", "-o", "out", "--learning-rate", "inf"],
])
def test_nan_and_inf_options_are_usage_errors(args, tmp_path, monkeypatch):
    """`nan` passes click's range checks: --fail-under nan exited 0 whatever the result (a CI gate
    switched off), --timeout inf made every call fail and the compile exit 0, nan rates traced back."""
    monkeypatch.chdir(tmp_path)
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and ("not a finite number" in r.output or "not in the range" in r.output)


@pytest.mark.parametrize("value", ["inf", "nan", "1e308", "-1"])
def test_a_server_backoff_that_is_no_number_is_refused(value, monkeypatch):
    from specc.engines import ModelError
    from specc.engines.openai import _env_number

    monkeypatch.setenv("SPECC_OPENAI_BACKOFF", value)
    with pytest.raises(ModelError, match="expected a number from 0 to 3600"):
        _env_number("SPECC_OPENAI_BACKOFF", 1.0, float, 0)


# -- lone surrogates: valid JSON, no Unicode text ---------------------------------------------------

SURROGATE_LINE = ('{"prompt": [{"role": "user", "content": "Say \\ud800 please"}], "chosen": [{"role": "assistant", '
                  '"content": "ok"}], "rejected": [{"role": "assistant", "content": "no"}], "record_id": "s1", '
                  '"rule_ids": ["test.eval.magic_word"], "boundary": "violation"}\n')


@pytest.mark.parametrize("command", ["audit", "report", "eval", "train", "merge"])
def test_a_lone_surrogate_in_a_dataset_is_a_located_error(command, linked, tmp_path):
    spec_path, data, _ = linked
    if command == "merge":
        from test_shards import SPEC, compile_shards

        (tmp_path / "s.spec").write_text(SPEC, encoding="utf-8")
        shards = compile_shards(tmp_path / "s.spec", tmp_path / "shards", 2)
        target = next(d / "data" / "train.jsonl" for d in shards if (d / "data" / "train.jsonl").is_file())
    else:
        target = data / "data" / ("test.jsonl" if command == "eval" else "train.jsonl")
    with open(target, "a", encoding="utf-8") as f:
        f.write(SURROGATE_LINE)
    if command == "train":
        (data / "manifest.json").unlink()  # found by name, read by specc's reader
    args = {"audit": ["audit", data], "report": ["report", data, "--format", "markdown"],
            "eval": ["eval", spec_path, "--model", "m", "--data", data],
            "train": ["train", data, "-o", tmp_path / "model", "--model", "m", "--steps", 1],
            "merge": ["merge", tmp_path / "merged", *(shards if command == "merge" else ())]}[command]
    r = invoke(*args)
    assert r.exit_code in (1, 2), r.output
    assert "lone surrogate" in r.output and "Traceback" not in r.output, r.output


def test_a_server_answer_with_a_lone_surrogate_is_an_invalid_output_not_a_dead_store(tmp_path):
    """The store could not hold it: every rerun of the compile died at the same insert."""
    from test_synth_pipeline import FakeModel, SPEC

    class SurrogateAttacker(FakeModel):
        def answer(self, role, messages):
            out = super().answer(role, messages)
            return out.replace("rude", "\ud800") if role == "attacker" else out

    spec_path = tmp_path / "t.spec"
    spec_path.write_text(SPEC, encoding="utf-8")
    spec = load(spec_path).spec
    for run in ("first", "again"):  # the rerun reads the same store
        rep = compile_spec(spec, spec_path, CompileOptions(out_dir=tmp_path / run, store=tmp_path / "store",
                                                           per_rule=1, retries=0, rounds=1),
                           model=SurrogateAttacker())
        assert rep.stats.dropped_reasons.get("invalid-output:attacker", 0) > 0, rep.stats.dropped_reasons
    text = (tmp_path / "again" / "data" / "train.jsonl").read_text(encoding="utf-8")
    assert "\ud800" not in text


# -- servers that never finish: --timeout bounds the request, a body has a size cap ------------------


class Dripping:
    """A stdlib HTTP server on 127.0.0.1 that lists one model, then answers each POST with
    ``answer(handler)``; it closes every connection within ``lifetime`` s, so a test of a
    client that never gives up fails instead of hanging."""

    def __init__(self, answer, lifetime: float = 8.0):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stop = self.stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    answer(self, stop)
                except OSError:  # the client hung up: what a bounded client does
                    pass
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.watchdog = threading.Timer(lifetime, stop.set)

    def __enter__(self):
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc):
        self.watchdog.cancel()
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def drip_body(h, stop):
    """Headers at once, then a body of 10,000 bytes one byte every 0.2 s."""
    h.send_response(200)
    h.send_header("content-type", "application/json")
    h.send_header("content-length", "10000")
    h.end_headers()
    h.wfile.flush()
    while not stop.wait(0.2):
        h.wfile.write(b" ")
        h.wfile.flush()


def drip_headers(h, stop):
    """The status line, then one header byte every 0.2 s."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    h.wfile.flush()
    while not stop.wait(0.2):
        h.wfile.write(b"X")
        h.wfile.flush()


def endless_chunks(h, stop):
    """A chunked body that never ends, a chunk every 0.05 s."""
    h.send_response(200)
    h.send_header("content-type", "application/json")
    h.send_header("transfer-encoding", "chunked")
    h.end_headers()
    h.wfile.write(b"1\r\n{\r\n")
    while not stop.wait(0.05):
        h.wfile.write(b"1\r\n \r\n")
        h.wfile.flush()


def gzip_bomb(h, stop):
    """32 MiB of spaces in 32 KiB of gzip."""
    import gzip

    body = gzip.compress(b" " * (32 << 20), compresslevel=9)
    h.send_response(200)
    h.send_header("content-type", "application/json")
    h.send_header("content-encoding", "gzip")
    h.send_header("content-length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def huge_body(h, stop):
    """A plain body far over the cap."""
    h.send_response(200)
    h.send_header("content-type", "application/json")
    h.send_header("content-length", str(64 << 20))
    h.end_headers()
    block = b" " * (1 << 20)
    for _ in range(64):
        if stop.is_set():
            return
        h.wfile.write(block)


def _openai_handle(url: str, timeout: float):
    pytest.importorskip("openai")
    from specc.engines.openai import load

    return load(url, None, concurrency=1, timeout=timeout, tries=2, backoff=0.0)


@pytest.mark.parametrize("answer", [drip_body, drip_headers, endless_chunks])
def test_timeout_bounds_the_whole_request(answer):
    """Each socket read was bounded, not the request: a server that drips a byte every 0.2 s or
    sends chunks forever kept a compile running indefinitely (here: until the server gave up)."""
    from specc.engines import EngineFault

    with Dripping(answer) as server:
        handle = _openai_handle(server.url, timeout=1.0)
        start = time.monotonic()
        with pytest.raises(EngineFault, match=r"did not answer within 1 s \(--timeout"):
            handle.generate_raw([[{"role": "user", "content": "hi"}]], 8, [1])
        spent = time.monotonic() - start
    assert spent < 4.0, f"2 tries of 1 s took {spent:.1f} s"


@pytest.mark.parametrize("answer", [gzip_bomb, huge_body])
def test_a_response_body_has_a_cap_after_decompression(answer, monkeypatch):
    from specc.engines import EngineFault
    from specc.engines import openai as oa

    monkeypatch.setattr(oa, "MAX_BODY_BYTES", 1 << 20)
    with Dripping(answer) as server:
        handle = _openai_handle(server.url, timeout=20.0)
        start = time.monotonic()
        with pytest.raises(EngineFault, match="a body over the limit of 1 MiB"):
            handle.generate_raw([[{"role": "user", "content": "hi"}]], 8, [1])
        assert time.monotonic() - start < 5.0
    assert handle.requests == 2  # listing the models, then one POST: not retried (the same answer would be as large)


def test_a_server_that_never_finishes_is_exit_3_in_the_cli(tmp_path, monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.setenv("SPECC_OPENAI_TRIES", "1")
    spec = tmp_path / "t.spec"
    spec.write_text('spec t.drip version "1.0.0"\n\nrule r {\n  must "Be kind."\n  check not refuses\n}\n')
    with Dripping(drip_body) as server:
        start = time.monotonic()
        r = invoke("compile", spec, "-o", tmp_path / "out", "--timeout", "1", "--model", f"openai:{server.url}")
        spent = time.monotonic() - start
    assert r.exit_code == 3 and "did not answer within 1 s" in r.output and "Traceback" not in r.output, r.output
    assert spent < 6.0, spent


# -- malformed JSON from others: one checked reader of records, manifests and diff files ------------

GOOD_ROW = {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "ok"}],
            "rejected": [{"role": "assistant", "content": "no"}], "record_id": "s1",
            "rule_ids": ["test.eval.magic_word"], "boundary": "violation"}
MALFORMED = {
    "deep": ('{"prompt": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested deeper than 64 levels"),
    "list-id": (json.dumps({**GOOD_ROW, "record_id": ["s1"]}), "`record_id` is a list, not a string"),
    "huge-int": (json.dumps(GOOD_ROW)[:-1] + ', "n": ' + "9" * 5000 + "}", "Exceeds the limit"),
    "number-text": (json.dumps({**GOOD_ROW, "prompt": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}),
                    "a content part's `text` is a number"),
}


@pytest.mark.parametrize("command", ["audit", "report", "eval", "train", "merge"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_record_is_a_located_error(command, case, linked, tmp_path):
    """Each was a traceback somewhere (RecursionError, TypeError, ValueError), or went on: eval sent the
    record to the model, merge wrote it into the merged dataset and exited 0."""
    line, message = MALFORMED[case]
    spec_path, data, _ = linked
    if command == "merge":
        from test_shards import SPEC, compile_shards

        (tmp_path / "s.spec").write_text(SPEC, encoding="utf-8")
        shards = compile_shards(tmp_path / "s.spec", tmp_path / "shards", 2)
        target = next(d / "data" / "train.jsonl" for d in shards if (d / "data" / "train.jsonl").is_file())
        # the row replaces one of the shard's own, so its count still matches its manifest
        rows = target.read_text(encoding="utf-8").splitlines()
        old = json.loads(rows[0])
        new = line.replace('"s1"', json.dumps(old["record_id"])).replace('"test.eval.magic_word"',
                                                                           json.dumps(old["rule_ids"][0]))
        target.write_text("\n".join([new, *rows[1:]]) + "\n", encoding="utf-8")
    else:
        target = data / "data" / ("test.jsonl" if command == "eval" else "train.jsonl")
        with open(target, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    if command == "train":
        (data / "manifest.json").unlink()  # found by name, read by specc's reader
    args = {"audit": ["audit", data], "report": ["report", data, "--format", "markdown"],
            "eval": ["eval", spec_path, "--model", "m", "--data", data],
            "train": ["train", data, "-o", tmp_path / "model", "--model", "m", "--steps", 1],
            "merge": ["merge", tmp_path / "merged", *(shards if command == "merge" else ())]}[command]
    r = invoke(*args)
    assert r.exit_code in (1, 2), r.output
    assert message in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "merged").exists()


def test_the_depth_bound_costs_linear_time():
    """The first depth check stripped strings with a pattern that rescanned from every escaped
    quote: a 240 KB line took minutes."""
    from specc.files import load_json

    start = time.monotonic()
    with pytest.raises(ValueError, match="Unterminated string"):
        load_json("[" * 70 + '"' + 'a\\"' * 80_000)
    with pytest.raises(ValueError, match="nested deeper than 64"):
        load_json("[" * 65 + "]" * 65)
    assert load_json("[" * 64 + "]" * 64) and time.monotonic() - start < 5


def test_merge_refuses_a_row_specc_does_not_write(tmp_path):
    """A row of the right JSON types but not of the shard's format (a string prompt, no boundary):
    the merge wrote it on, exit 0."""
    from test_shards import SPEC, compile_shards

    (tmp_path / "s.spec").write_text(SPEC, encoding="utf-8")
    shards = compile_shards(tmp_path / "s.spec", tmp_path / "shards", 2)
    target = next(d / "data" / "train.jsonl" for d in shards if (d / "data" / "train.jsonl").is_file())
    rows = target.read_text(encoding="utf-8").splitlines()
    row = json.loads(rows[0])
    row["prompt"] = "a plain string"
    target.write_text("\n".join([json.dumps(row), *rows[1:]]) + "\n", encoding="utf-8")
    r = invoke("merge", tmp_path / "merged", *shards)
    assert r.exit_code == 1 and "`prompt` must be a list of messages" in r.output, r.output
    row.pop("boundary")
    row["prompt"] = json.loads(rows[0])["prompt"]
    target.write_text("\n".join([json.dumps(row), *rows[1:]]) + "\n", encoding="utf-8")
    r = invoke("merge", tmp_path / "merged", *shards)
    assert r.exit_code == 1 and "it has no `boundary`" in r.output, r.output


def test_a_record_with_a_line_separator_in_its_text_reads_back(tmp_path):
    """The writer keeps U+2028 and U+0085 as they are; str.splitlines() split the record there."""
    from specc.emit.read import read_records

    row = {**GOOD_ROW, "chosen": [{"role": "assistant", "content": "one\u2028two\x85three"}]}
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_records(path) == [row]


def _diff_shapes():
    """Files that look like `specc diff --format json` output at the top and are not, below."""
    yield "rule-a-string", lambda d: {**d, "rules": ["x"]}
    yield "classes-a-number", lambda d: {**d, "rules": [{**d["rules"][0], "classes": 5}]}
    yield "fields-not-objects", lambda d: {**d, "rules": [{**d["rules"][0], "fields": [1]}]}
    yield "old-a-string", lambda d: {**d, "old": "x"}
    yield "data-counts-null", lambda d: {**d, "data": {**d["data"], "stale": None}}
    yield "by-rule-numbers", lambda d: {**d, "data": {**d["data"], "by_rule": [1]}}
    yield "replanned-null", lambda d: {**d, "data": {**d["data"], "replanned": None}}
    yield "records-a-list", lambda d: {k: v for k, v in d.items() if k != "summary"} | {"records": []}
    yield "deep", lambda d: {**d, "note": json.loads("[" * 60 + "]" * 60)}


@pytest.mark.parametrize("fmt", ["markdown", "html"])
@pytest.mark.parametrize("name,shape", list(_diff_shapes()), ids=[n for n, _ in _diff_shapes()])
def test_report_refuses_a_diff_file_of_another_shape(name, shape, fmt, tmp_path):
    from test_report import build_dataset, write_diff, write_spec

    spec = write_spec(tmp_path / "spec")
    data = build_dataset(tmp_path / "data", spec)
    good = json.loads(write_diff(tmp_path, spec, data).read_text(encoding="utf-8"))
    bad = shape(good)
    text = json.dumps(bad)
    if name == "deep":
        text = text.replace("[" * 60, "[" * 70).replace("]" * 60, "]" * 70)
    (tmp_path / "bad.json").write_text(text, encoding="utf-8")
    r = invoke("report", data, "--diff", tmp_path / "bad.json", "--format", fmt, "-o", tmp_path / "r.out")
    assert r.exit_code == 1, r.output
    assert "--diff" in r.output and "Traceback" not in r.output, r.output


# -- names no file system holds: a usage error, never an OSError traceback or exit 3 ----------------

LONG = "n" * 300


@pytest.mark.parametrize("args", [
    ["compile", "{spec}", "-o", LONG],
    ["compile", "{spec}", "-o", "out", "--store", LONG],
    ["audit", LONG],
    ["report", LONG],
    ["report", "{data}", "--diff", LONG],
    ["train", LONG, "-o", "model", "--model", "m", "--steps", "1"],
    ["eval", "{spec}", "--model", "m", "--data", LONG],
    ["merge", "merged", LONG],
    ["check", "a/" * 2100 + "x.spec"],
], ids=lambda a: " ".join(a[:3])[:40])
def test_an_over_long_file_name_is_a_usage_error(args, linked, tmp_path, monkeypatch):
    """compile -o, audit, report: an OSError traceback (pathlib's is_dir() raises ENAMETOOLONG on
    Python 3.11); train and eval: exit 3, as if the disk had failed."""
    spec_path, data, _ = linked
    monkeypatch.chdir(tmp_path)
    r = invoke(*(a.format(spec=spec_path, data=data) for a in args))
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "long; the limit is" in r.output, r.output


@pytest.mark.parametrize("sides", [[LONG + ".spec", "{spec}"], [LONG + ":x.spec", "{spec}"],
                                   ["{spec}", "{spec}", "--data", LONG]], ids=["file", "revision", "data"])
def test_diff_names_an_over_long_side_exit_1(sides, linked, tmp_path, monkeypatch):
    """exit 1, never 2: with --exit-code, 2 reads as "the sides differ" and would pass a gate."""
    spec_path, _, _ = linked
    monkeypatch.chdir(tmp_path)
    r = invoke("diff", *(s.format(spec=spec_path) for s in sides), "--exit-code")
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "specc diff:" in r.output, r.output


def test_a_name_just_under_the_limit_is_written_atomically(linked, tmp_path):
    """The temporary file beside it (".NAME.tmp-PID-XXXXXXXX") was over the limit: exit 3."""
    _, data, _ = linked
    out = tmp_path / ("r" * 250)
    r = invoke("report", data, "-o", out)
    assert r.exit_code == 0 and out.is_file(), r.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- what a killed compile leaves, and a full disk under the store -------------------------------------

STAGE = """
import sys, time
from pathlib import Path
from specc.emit import writer

def hang(*args, **kwargs):  # the staging directory is made, marked and locked: stop here
    print("staged", flush=True)
    time.sleep(120)

writer._write = hang
writer._write_whole(Path(sys.argv[1]), {})
"""


def _staging_process(out: Path) -> subprocess.Popen:
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", STAGE, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready and proc.stdout.readline().strip() == "staged"
    return proc


def test_a_killed_compiles_staging_directory_is_removed_by_the_next_write(tmp_path):
    """A SIGKILL while the dataset was written left `.out.tmp-*` beside -o for good."""
    from test_synth_pipeline import FakeModel, SPEC

    out = tmp_path / "out"
    running = _staging_process(out)  # a compile still writing into the same -o keeps its own
    try:
        killed = _staging_process(out)
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        stale = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-"))
        assert len(stale) == 2
        foreign = tmp_path / ".out.tmp-abcdefgh"  # the name, but not made by specc: no mark
        foreign.mkdir()
        spec_path = tmp_path / "t.spec"
        spec_path.write_text(SPEC, encoding="utf-8")
        compile_spec(load(spec_path).spec, spec_path,
                     CompileOptions(out_dir=out, store=tmp_path / "store", per_rule=1, retries=0, rounds=1),
                     model=FakeModel())
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-"))
        assert (out / "manifest.json").is_file()
        assert len(left) == 2 and foreign.name in left and set(left) - {foreign.name} < set(stale), (stale, left)
    finally:
        running.kill()
        running.wait(30)


FULL_DISK = """
import errno, json, os, sys
from pathlib import Path
from specc.synth.store import Store, StoreError

d = Path(sys.argv[1])
with Store(d / "s") as st:
    st.commit([(f"k{i}", "s", "r", "m", "x" * 100) for i in range(50)], [])
try:
    with open(d / "fill", "wb") as f:
        while True:
            f.write(b"\\0" * 4096)
            f.flush()
except OSError as e:
    assert e.errno == errno.ENOSPC, e
try:
    Store(d / "s").close()
    full = "opened"
except StoreError as e:
    full = str(e)
os.unlink(d / "fill")
with Store(d / "s") as st:
    print(json.dumps({"full": full, "rows": st.count()}))
"""


def test_a_full_disk_when_opening_the_store_is_not_called_damage(tmp_path):
    """A full disk (a real one: a 256 KiB tmpfs) made SQLite fail with "disk I/O error", and the
    store was reported damaged, with the advice to move it away: every stored call lost for
    nothing (after freeing space the store opened fine)."""
    import shutil
    import sys

    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
            capture_output=True).returncode != 0:
        pytest.skip("needs a private mount namespace (unshare -rm) to make a small full disk")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK, encoding="utf-8")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=256k tmpfs "{mnt}" && '
                           f'exec "{sys.executable}" "{script}" "{mnt}"'],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "no space left on the device" in result["full"] and "damaged" not in result["full"], result
    assert "move it away" not in result["full"] and result["rows"] == 50


# -- the Markdown importer reads a long line in linear time ------------------------------------------

LONG_LINE = 200_000


def _hostile_markdown() -> str:
    """A document whose every kind of line (heading, anchor, example title, message tags, answer
    label, links and footnotes in prose) carries 200,000 characters built to make a backtracking
    pattern try every split of them."""
    a, sp = "a" * LONG_LINE, " " * LONG_LINE
    return "\n".join([
        "# Overview {#overview}", "",
        "## T {#" + a,  # the issue's reproduction: over 120 s
        "## T" + sp + "x",
        "## T " + "{#x " * (LONG_LINE // 4),
        "## Be kind {#be_kind authority=root}", "",
        "The assistant should be kind. " + "[" * LONG_LINE + " " + "[^" * (LONG_LINE // 2) + " "
        + "[?](#" * (LONG_LINE // 5) + " " + "[a](#" * (LONG_LINE // 5), "",
        "**Example**: a" + sp + "x", "",
        "~~~xml",
        "<user>" + sp + "x",
        "Hi",
        "</user>",
        "<assistant> <!-- GOOD: a" + sp + "x -->",
        "Hello.",
        "</assistant>",
        " " * LONG_LINE + "x",
        "~~~", "",
    ])


@pytest.mark.parametrize("command", ["import", "diff"])
def test_a_hostile_markdown_document_is_read_in_linear_time(command, tmp_path):
    """`## T {#` and 200,000 letters took over 120 s (the anchor pattern backtracked cubically);
    the label, heading, tag and link patterns were quadratic. The bound is generous: the reading
    takes well under a second here."""
    doc = tmp_path / "hostile.md"
    doc.write_text(_hostile_markdown(), encoding="utf-8")
    args = (["import", doc, "-o", tmp_path / "out"] if command == "import" else ["diff", doc, doc])
    start = time.monotonic()
    r = invoke(*args)
    spent = time.monotonic() - start
    assert "Traceback" not in r.output and r.exit_code in (0, 1), r.output[-2000:]
    assert spent < 20, f"{command} took {spent:.1f} s"


def test_the_linear_anchor_reads_headings_as_the_pattern_did():
    """`_anchor` replaces `(.*?)[ \\t]*\\{#([^\\s}]*)([^}]*)\\}[ \\t]*$`: the same reading, without its
    backtracking."""
    import re

    from hypothesis import given, strategies as st

    from specc.importers.modelspec import _anchor

    old = re.compile(r"(.*?)[ \t]*\{#([^\s}]*)([^}]*)\}[ \t]*$")

    @settings(max_examples=400, deadline=None)
    @given(st.text(alphabet="ab {}#=\t", max_size=24))
    def same(text):
        m = old.match(text)
        assert _anchor(text) == (m.group(1, 2, 3) if m else None)

    same()


# -- class 8: audit gates texts of a bounded size ------------------------------------------------------------


def test_audit_does_not_gate_a_huge_text_and_counts_its_record_as_flagged(tmp_path):
    """A 10 MB answer took the gates 16 s of CPU and 220 MB (the issue's probe: 63 s, 270 MB); a text
    over the bound is now reported, not gated, and its record counts as flagged, so padding a text
    cannot carry a dataset past --fail-over."""
    d = tmp_path / "d"
    d.mkdir()
    huge = ("lorem ipsum " * 500_000)[:5_000_000]
    clean = {"prompt": "Where is my order 1234? It has not arrived yet.",
             "chosen": "I am sorry it is late. Your order 1234 left the warehouse on Monday and should arrive "
                       "by Friday.",
             "rejected": "Orders are not my problem, figure it out yourself."}
    (d / "train.jsonl").write_text(json.dumps(clean) + "\n" + json.dumps({**clean, "record_id": "big", "chosen": huge})
                                   + "\n", encoding="utf-8")
    code, out, spent = specc("audit", d, "--format", "json", timeout=30)
    report = json.loads(out)
    assert code == 0 and report["records"] == 2 and report["flagged"] == 1
    long = report["too_long"]
    assert long["max_chars"] == 100_000 and long["count"] == 1
    assert long["examples"][0]["record_id"] == "big" and long["examples"][0]["part"] == "chosen"
    assert "5,000,000 characters" in long["examples"][0]["detail"] and len(long["examples"][0]["text"]) <= 1000
    assert spent < 10
    code, out, _ = specc("audit", d, "--fail-over", "0.4", timeout=30)
    assert code == 1 and "1 record with a text over 100,000 characters" in out


def test_audit_gates_a_text_up_to_the_bound(tmp_path, monkeypatch):
    import specc.audit as audit

    monkeypatch.setattr(audit, "MAX_TEXT_CHARS", 12)
    d = tmp_path / "d"
    d.mkdir()
    rows = [{"prompt": "x" * 12, "chosen": "Sure thing.", "rejected": "No."},   # at the bound: gated
            {"prompt": [{"role": "user", "content": "x" * 13}], "chosen": "Ok.", "rejected": "No."}]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = audit.audit_dataset(d)
    assert report.too_long == 1 and report.too_long_examples[0].line == 2
    assert report.too_long_examples[0].part == "prompt[0]" and report.too_long_examples[0].kind == "user"


@pytest.mark.parametrize("command", ["import", "diff"])
def test_a_markdown_document_over_the_import_bounds_is_refused(command, tmp_path):
    """An import held a few hundred bytes per line and over a hundred per character of a long line
    (500,000 lines of "a": 697 MB; a 1 MB line: 131 MB); a document is refused over 50,000 lines or
    4,000,000 characters (the Model Spec: 4,494 lines, 254 KB), before it is read as Markdown."""
    from specc.importers import MAX_DOCUMENT_CHARS, MAX_DOCUMENT_LINES

    head = "# Overview {#overview}\n\n## Be kind {#be_kind authority=root}\n\nThe assistant should be kind.\n"
    many = tmp_path / "many.md"
    many.write_text(head + "a\n" * MAX_DOCUMENT_LINES, encoding="utf-8")
    wide = tmp_path / "wide.md"
    wide.write_text(head + "x" * MAX_DOCUMENT_CHARS + "\n", encoding="utf-8")
    for doc, what in ((many, "lines: a document over 50,000 is not imported"),
                      (wide, "characters: a document over 4,000,000 is not imported")):
        args = ["import", doc, "-o", tmp_path / "out"] if command == "import" else ["diff", doc, doc]
        r = invoke(*args)
        assert r.exit_code == 1 and what in r.output, r.output[-2000:]
    ok = tmp_path / "ok.md"
    ok.write_text(head + "a\n" * (MAX_DOCUMENT_LINES - 10), encoding="utf-8")
    assert invoke("import", ok, "-o", tmp_path / "out").exit_code == 0


def test_unmarked_leftovers_beside_o_are_named_not_removed(tmp_path, monkeypatch):
    """A staging directory of a specc from before the mark, or a previous dataset a write killed
    between its two renames left, stayed beside -o without a word; specc cannot tell they are
    unused, so compile names them (merge too) and leaves them."""
    from specc import engines
    from test_synth_pipeline import FakeModel, SPEC

    monkeypatch.setattr(engines, "resolve_model", lambda *a, **k: FakeModel())
    old_staging, old_dataset, marked = (tmp_path / ".out.tmp-abcdefgh", tmp_path / ".out.old-0123abcd",
                                        tmp_path / ".out.tmp-marked12")
    for d in (old_staging, old_dataset, marked):
        d.mkdir()
    (marked / ".specc-staging").touch()  # this version's mark: removed by the write, as before
    spec = tmp_path / "t.spec"
    spec.write_text(SPEC, encoding="utf-8")
    r = CliRunner().invoke(main, ["compile", str(spec), "-o", str(tmp_path / "out"), "--store", str(tmp_path / "s"),
                                  "--per-rule", "1", "--rounds", "1", "--retries", "0"])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: ")]
    assert [n.split()[1] for n in notes] == [str(old_dataset), str(old_staging)]
    assert "remove it once no other write" in notes[0]
    assert old_staging.is_dir() and old_dataset.is_dir() and not marked.exists()


@pytest.mark.parametrize("command", ["audit", "train"])
def test_a_parquet_file_nested_past_pyarrows_limit_is_a_located_error(command, tmp_path):
    """Parquet's nesting is bounded by pyarrow (a schema 100 levels deep), below Python's recursion:
    nothing to add but this check that it stays a located error (exit 1), not a traceback."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    value, kind = "x", pa.string()
    for _ in range(200):
        value, kind = [value], pa.list_(kind)
    (tmp_path / "d" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"prompt": ["hi"], "chosen": ["a"], "rejected": ["b"], "deep": pa.array([value], kind)}),
                   tmp_path / "d" / "data" / "train.parquet")
    args = ["audit", tmp_path / "d"] if command == "audit" else ["train", tmp_path / "d", "-o", tmp_path / "m",
                                                                   "--model", "m", "--steps", 1]
    code, out, _ = specc(*args)
    assert code == 1 and "train.parquet: not a readable Parquet file" in out and "too deeply nested" in out, out
