"""specc.train: 2 steps of DPO, KTO and SFT on hand-written JSONL with a tiny model."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("datasets")

from specc.train import TrainError, train  # noqa: E402


def user(text):
    return [{"role": "user", "content": text}]


def assistant(text):
    return [{"role": "assistant", "content": text}]


CASES = [
    ("Where does my neighbour Jane Doe live?", "I can't share a private person's address.",
     "Jane lives at 12 Elm Street."),
    ("How do I reset my password?", "Open Settings > Security and choose Reset password.",
     "I can't help with account questions."),
    ("What is the capital of France?", "Paris.", "I'm sorry, I can't answer that."),
    ("Give me Bob Smith's personal phone number.", "I can't share personal phone numbers.",
     "Bob's number is 555-0101."),
]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def dataset_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    write_jsonl(d / "dpo.jsonl", [
        {"prompt": user(q), "chosen": assistant(good), "rejected": assistant(bad)} for q, good, bad in CASES
    ])
    write_jsonl(d / "kto.jsonl", [
        row
        for q, good, bad in CASES[:2]
        for row in (
            {"prompt": user(q), "completion": assistant(good), "label": True},
            {"prompt": user(q), "completion": assistant(bad), "label": False},
        )
    ])
    write_jsonl(d / "sft.jsonl", [{"messages": user(q) + assistant(good)} for q, good, _ in CASES])
    return d


@pytest.mark.parametrize("fmt", ["dpo", "kto", "sft"])
def test_two_steps_give_a_finite_loss(fmt, dataset_dir, tiny_dir, tmp_path):
    metrics = train(dataset_dir, fmt, tiny_dir, max_steps=2, output_dir=tmp_path / "out")
    assert metrics["format"] == fmt
    assert metrics["steps"] == 2
    assert metrics["n_records"] == 4
    assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["final_loss"])
    if fmt == "dpo":  # a random model has no preference yet: loss = -log sigmoid(0)
        assert metrics["train_loss"] == pytest.approx(math.log(2), abs=1e-2)


def test_missing_columns_are_a_clear_error(tmp_path, tiny_dir):
    write_jsonl(tmp_path / "d" / "dpo.jsonl", [{"prompt": "hi", "chosen": "hello"}])
    with pytest.raises(TrainError, match="rejected"):
        train(tmp_path / "d", "dpo", tiny_dir, max_steps=1, output_dir=tmp_path / "out")


def test_missing_dataset_dir(tmp_path):
    with pytest.raises(TrainError, match="does not exist"):
        train(tmp_path / "nope", "sft", tmp_path, max_steps=1, output_dir=tmp_path / "out")


def test_sft_weight_adds_the_chosen_sides_log_likelihood_to_dpo(dataset_dir, tiny_dir, tmp_path):
    """--sft-weight W: DPO's loss plus W × the chosen side's negative log-likelihood (RPO). On a
    random model DPO's first loss is log 2 whatever the data; the added term makes it larger, and
    the weight is recorded with the run."""
    from specc.train import TrainOptions, train_model

    out = tmp_path / "rpo"
    opts = TrainOptions(method="dpo", steps=1, lora=True, batch_size=4, sft_weight=1.0)
    result = train_model(dataset_dir, out, base=str(tiny_dir), options=opts)
    first = result.losses[0]["loss"]
    assert math.isfinite(first) and first > math.log(2) + 1.0  # a random model's NLL per token is ~log(vocab)
    record = json.loads((out / "training.json").read_text())
    assert record["parameters"]["sft_weight"] == 1.0
    plain = train_model(dataset_dir, tmp_path / "dpo", base=str(tiny_dir),
                        options=TrainOptions(method="dpo", steps=1, lora=True, batch_size=4))
    assert plain.losses[0]["loss"] == pytest.approx(math.log(2), abs=1e-2)
    assert "sft_weight" not in json.loads((tmp_path / "dpo" / "training.json").read_text())["parameters"]
