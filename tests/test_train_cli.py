"""specc train: the train split only, OUT as a loadable model that `specc eval` takes, resume after a kill,
bad input. Real TRL and peft on the tiny random model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("peft")

from evaldata import TEST_ROWS, TRAIN_ROWS, load_spec, write_dataset, write_jsonl, write_spec  # noqa: E402
from specc.cli import main  # noqa: E402
from specc.train import TrainError, find_data_files, load_train_split  # noqa: E402

FAST = ["--max-length", "64", "--batch-size", "2"]


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    return write_spec(tmp_path_factory.mktemp("spec"))


@pytest.fixture(scope="module")
def spec(spec_path):
    return load_spec(spec_path)


@pytest.fixture
def dataset(tmp_path, spec) -> Path:
    return write_dataset(tmp_path / "ds", spec)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# -- the train split, never the test split -------------------------------------------------------------


def test_the_manifest_names_the_train_split(dataset):
    assert find_data_files(dataset, "dpo") == ("json", [str(dataset / "data" / "train.jsonl")])
    ds, files, source = load_train_split(dataset, "dpo")
    assert len(ds) == len(TRAIN_ROWS) and source == "dpo"
    assert all("TRAIN-ONLY" in p[-1]["content"] for p in ds["prompt"])


def test_without_a_manifest_test_files_are_never_picked(tmp_path, dataset):
    loose = tmp_path / "loose"
    (loose / "data").mkdir(parents=True)
    for name in ("train.jsonl", "test.jsonl"):
        (loose / "data" / name).write_bytes((dataset / "data" / name).read_bytes())
    assert find_data_files(loose, "dpo")[1] == [str(loose / "data" / "train.jsonl")]
    # the fall-through patterns (every *.jsonl) skip test and eval files too
    other = tmp_path / "other"
    write_jsonl(other / "prefs.jsonl", [TRAIN_ROWS[0]])
    write_jsonl(other / "prefs_test.jsonl", [TEST_ROWS[0]])
    write_jsonl(other / "test" / "more.jsonl", [TEST_ROWS[1]])
    write_jsonl(other / "eval-set.jsonl", [TEST_ROWS[2]])
    assert find_data_files(other, "dpo")[1] == [str(other / "prefs.jsonl")]
    only_test = tmp_path / "only-test"
    write_jsonl(only_test / "test.jsonl", [TEST_ROWS[0]])
    with pytest.raises(TrainError, match="no train split"):
        find_data_files(only_test, "dpo")


def test_columns_convert_where_they_can(dataset):
    kto, _, src = load_train_split(dataset, "kto")
    assert src == "dpo" and len(kto) == 2 * len(TRAIN_ROWS) and set(kto["label"]) == {True, False}
    sft, _, _ = load_train_split(dataset, "sft")
    assert sft[0]["messages"][-1]["role"] == "assistant"


# -- a run: OUT is a model `specc eval` takes ------------------------------------------------------------


def test_train_writes_a_loadable_model_with_a_card(dataset, tiny_dir, spec_path, spec, tmp_path):
    out = tmp_path / "out"
    r = invoke("train", dataset, "-o", out, "--model", tiny_dir, "--steps", 2, "--seed", 1, *FAST)
    assert r.exit_code == 0, r.output
    assert "step 2/2" in r.stderr and f"wrote {out}" in r.stdout
    assert not (out / "checkpoints").exists()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    assert not any("lora" in n for n, _ in model.named_parameters())  # merged
    assert AutoTokenizer.from_pretrained(out, local_files_only=True).chat_template
    card = (out / "README.md").read_text()
    record = json.loads((out / "training.json").read_text())
    assert spec.hash in card and "tiny@" in card and "## Loss curve" in card and "| 2 |" in card
    assert record["parameters"]["method"] == "dpo" and record["parameters"]["lora"] is True
    assert record["steps_done"] == 2 and len(record["losses"]) == 2
    assert record["dataset"]["files"][0]["path"] == "data/train.jsonl"
    # the trained model is a --model for specc eval
    r = invoke("eval", spec_path, "--model", out, "--data", dataset, "--max-new-tokens", 4, "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"].startswith("out@")
    # the same seed gives the same weights
    again = tmp_path / "again"
    assert invoke("train", dataset, "-o", again, "--model", tiny_dir, "--steps", 2, "--seed", 1, *FAST).exit_code == 0
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


@pytest.mark.parametrize("method, mode", [("kto", "--full"), ("sft", "--lora"), ("dpo", "--full")])
def test_other_methods_and_full_fine_tune(method, mode, dataset, tiny_dir, tmp_path):
    out = tmp_path / method
    r = invoke("train", dataset, "-o", out, "--model", tiny_dir, "--method", method, "--steps", 1, mode, *FAST)
    assert r.exit_code == 0, r.output
    record = json.loads((out / "training.json").read_text())
    assert record["parameters"]["method"] == method and record["parameters"]["lora"] is (mode == "--lora")
    assert record["records_from"] == "dpo"
    assert (out / "config.json").is_file()


def test_resume_after_a_kill(dataset, tiny_dir, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "specc.cli", "train", str(dataset), "-o", str(out), "--model", str(tiny_dir),
           "--steps", "12", "--save-steps", "2", *FAST]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state = out / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.monotonic() + 300
    try:
        while not state.is_file():
            if proc.poll() is not None:
                pytest.fail(f"training ended before its first checkpoint: {proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 300 s")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "training.json").exists()
    # a plain rerun refuses to overwrite the unfinished run
    r = invoke("train", dataset, "-o", out, "--model", tiny_dir, "--steps", 12, "--save-steps", 2, *FAST)
    assert r.exit_code == 1 and "--resume" in r.stderr
    r = invoke("train", dataset, "-o", out, "--model", tiny_dir, "--steps", 12, "--save-steps", 2, "--resume", *FAST)
    assert r.exit_code == 0, r.output
    assert "resuming from step" in r.stderr
    record = json.loads((out / "training.json").read_text())
    assert record["resumed_from_step"] >= 2 and record["steps_done"] == 12
    assert [e["step"] for e in record["losses"]] == list(range(1, 13))
    r = invoke("train", dataset, "-o", out, "--model", tiny_dir, "--resume")
    assert r.exit_code == 1 and "nothing to resume" in r.stderr


# -- bad input ------------------------------------------------------------------------------------------------


def test_bad_input_exits_with_a_clear_message(tmp_path, spec, dataset, tiny_dir):
    no_train = write_dataset(tmp_path / "no-train", spec, train=None)
    r = invoke("train", no_train, "-o", tmp_path / "o1", "--model", tiny_dir)
    assert r.exit_code == 1 and "no train split" in r.stderr
    sft = write_dataset(tmp_path / "sft", spec, fmt="sft")
    r = invoke("train", sft, "-o", tmp_path / "o2", "--model", tiny_dir, "--method", "dpo")
    assert r.exit_code == 1 and "needs the columns" in r.stderr and "rejected" in r.stderr
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    r = invoke("train", dataset, "-o", tmp_path / "o3", "--model", broken)
    assert r.exit_code == 3 and "cannot load" in r.stderr
    r = invoke("train", dataset, "-o", tmp_path / "o4", "--model", tmp_path / "nothing-here")
    assert r.exit_code == 1 and "not a transformers model directory" in r.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = invoke("train", dataset, "-o", blocker / "out", "--model", tiny_dir)
    assert r.exit_code == 3 and "cannot write" in r.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    r = invoke("train", dataset, "-o", busy, "--model", tiny_dir)
    assert r.exit_code == 1 and "not empty" in r.stderr
    r = invoke("train", tmp_path / "missing", "-o", tmp_path / "o5", "--model", tiny_dir)
    assert r.exit_code == 1 and "does not exist" in r.stderr
    assert "Traceback" not in r.output
