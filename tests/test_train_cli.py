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


# -- hostile input (issue 22, class 12): a clear message and exit 1, never a traceback ------------------------


def test_a_non_string_prompt_for_sft_is_a_located_error(tmp_path, tiny_dir):
    for i, prompt in enumerate((5, [5], {"role": "user", "content": "hi"}, [{"role": "user", "content": 5}])):
        write_jsonl(tmp_path / f"d{i}" / "train.jsonl", [{"prompt": prompt, "chosen": "a", "rejected": "b"}] * 2)
        r = invoke("train", tmp_path / f"d{i}", "-o", tmp_path / f"o{i}", "--model", tiny_dir, "--method", "sft",
                   "--steps", 1, *FAST)
        assert r.exit_code == 1 and "train.jsonl:1: `prompt`" in r.stderr, r.output


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_max_length_shorter_than_every_prompt(method, tmp_path, tiny_dir):
    long = "word " * 100
    write_jsonl(tmp_path / "d" / "train.jsonl", [{"prompt": long, "chosen": "yes", "rejected": "no"}] * 2)
    out = tmp_path / "o"
    r = invoke("train", tmp_path / "d", "-o", out, "--model", tiny_dir, "--method", method, "--steps", 1,
               "--max-length", 16)
    # dpo: torch's sampler raised on the empty dataset; kto: exit 0 with an untrained model written
    assert r.exit_code == 1 and "no record fits in --max-length 16" in r.stderr, r.output
    assert not (out / "config.json").exists()
    assert not (out / "checkpoints").exists()  # a rerun with a larger --max-length is not told to --resume
    r = invoke("train", tmp_path / "d", "-o", out, "--model", tiny_dir, "--method", method, "--steps", 1,
               "--max-length", 256)
    assert r.exit_code == 0, r.output


def test_records_whose_prompt_fills_max_length_are_counted_as_left_out(tmp_path, tiny_dir):
    long = "word " * 100
    rows = [{"prompt": long, "chosen": "yes", "rejected": "no"}, {"prompt": "hi", "chosen": "yes", "rejected": "no"}]
    write_jsonl(tmp_path / "d" / "train.jsonl", rows)
    out = tmp_path / "o"
    r = invoke("train", tmp_path / "d", "-o", out, "--model", tiny_dir, "--steps", 1, "--max-length", 16)
    assert r.exit_code == 0, r.output
    assert "on 1 records (1 left out: the prompt fills --max-length 16)" in r.stderr
    record = json.loads((out / "training.json").read_text())
    assert record["records"] == 1 and record["records_longer_than_max_length"] == 1
    assert "1 more left out" in (out / "README.md").read_text()


def _interrupted_run(out: Path, run_json: str | None, *, weights: bytes | None = b"",
                     state: str = '{"global_step": 2}'):
    """OUT as a killed run leaves it: checkpoints/run.json and one checkpoint (its files faked)."""
    ckpt = out / "checkpoints" / "checkpoint-2"
    ckpt.mkdir(parents=True)
    if run_json is not None:
        (out / "checkpoints" / "run.json").write_text(run_json)
    if weights is not None:
        (ckpt / "adapter_model.safetensors").write_bytes(weights)
    (ckpt / "trainer_state.json").write_text(state)


@pytest.mark.parametrize("run_json", [None, "[1, 2", '["dpo"]', '{"method": ["dpo"], "base": {}, "lora": 3}',
                                      '{"method": "dpo", "base": "tiny", "lora": "yes"}'])
def test_resume_with_a_malformed_run_record(run_json, dataset, tiny_dir, tmp_path):
    from safetensors.torch import save

    out = tmp_path / "out"
    _interrupted_run(out, run_json, weights=save({"w": __import__("torch").zeros(1)}))
    r = invoke("train", dataset, "-o", out, "--model", tiny_dir, "--resume", "--steps", 4, *FAST)
    assert r.exit_code == 1 and "is not the run record specc writes" in r.stderr, r.output
    assert f"remove {out}/checkpoints to start afresh" in r.stderr


@pytest.mark.parametrize("weights, state, problem", [
    (None, '{"global_step": 2}', "holds no model weights"),
    (b"", '{"global_step": 2}', "adapter_model.safetensors cannot be read"),
    (b"", "{not json", "trainer_state.json cannot be read"),
    (b"", '{"global_step": 2, "mine": 1}', "not the state transformers saves"),
    (b"", '{"global_step": "2"}', "no whole-number global_step"),
])
def test_resume_from_a_checkpoint_that_cannot_be_loaded(weights, state, problem, dataset, tiny_dir, tmp_path):
    from specc.engines.transformers import dir_model_name

    out = tmp_path / "out"
    run = json.dumps({"method": "dpo", "base": dir_model_name(tiny_dir), "lora": True})
    _interrupted_run(out, run, weights=weights, state=state)
    r = invoke("train", dataset, "-o", out, "--model", tiny_dir, "--resume", "--steps", 4, *FAST)
    assert r.exit_code == 1 and "cannot resume from" in r.stderr and problem in r.stderr, r.output


def test_resume_without_a_checkpoint_gives_advice_that_works(dataset, tiny_dir, tmp_path):
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)  # killed before the first checkpoint
    r = invoke("train", dataset, "-o", out, "--model", tiny_dir, "--resume", *FAST)
    assert r.exit_code == 1 and "remove" in r.stderr and "without --resume" not in r.stderr
