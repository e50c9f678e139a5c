"""A minimal, verified TRL recipe: train a local model on a specc dataset directory.

Formats and their TRL column conventions (conversational):

- ``dpo``: ``prompt`` (message list), ``chosen`` / ``rejected`` (assistant message lists)
- ``kto``: ``prompt`` (message list), ``completion`` (assistant message list), ``label`` (bool)
- ``sft``: ``messages`` (full conversation)

Plain-string ``prompt``/``chosen``/... columns work as well. The records are read with
``datasets.load_dataset("json", data_files=...)`` from ``*.jsonl`` files (or ``*.parquet``)
in ``dataset_dir``; a file whose name starts with the format name (``dpo*.jsonl``) is
preferred when several formats live side by side.

CPU-safe defaults: ``bf16=False`` (TRL 1.x configs default to bf16), ``use_cpu`` when no
CUDA device is present, ``report_to=[]``, no gradient checkpointing, no saving. The
reference model of DPO/KTO is a second copy loaded from ``model_path`` (TRL's own
``ref_model=None`` path re-loads the policy by ``config._name_or_path``, which only works
for models that were loaded from a path).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

__all__ = ["TrainError", "train", "find_data_files"]

Format = Literal["dpo", "kto", "sft"]
_COLUMNS = {
    "dpo": {"prompt", "chosen", "rejected"},
    "kto": {"prompt", "completion", "label"},
    "sft": {"messages"},
}


class TrainError(Exception):
    """A user-facing training error (bad dataset dir, wrong columns, missing packages)."""


def find_data_files(dataset_dir: Path, fmt: str) -> tuple[str, list[str]]:
    """Return (``datasets`` builder name, files) for ``fmt`` in ``dataset_dir``."""
    dataset_dir = Path(dataset_dir)
    if dataset_dir.is_file():
        files = [dataset_dir]
    else:
        if not dataset_dir.is_dir():
            raise TrainError(f"dataset directory {dataset_dir} does not exist")
        files = []
        for pattern in (f"{fmt}*.jsonl", f"**/{fmt}*.jsonl", f"{fmt}*.parquet", f"**/{fmt}*.parquet",
                        "*.jsonl", "**/*.jsonl", "*.parquet", "**/*.parquet"):
            files = sorted(p for p in dataset_dir.glob(pattern) if p.is_file())
            if files:
                break
    if not files:
        raise TrainError(f"no .jsonl or .parquet file in {dataset_dir}")
    builder = "parquet" if files[0].suffix == ".parquet" else "json"
    return builder, [str(f) for f in files]


def train(
    dataset_dir: Path,
    fmt: Format,
    model_path: Path,
    max_steps: int,
    output_dir: Path,
    *,
    learning_rate: float | None = None,
    batch_size: int = 2,
    max_length: int = 512,
    seed: int = 0,
) -> dict:
    """Run ``max_steps`` optimisation steps of DPO, KTO or SFT; return the metrics.

    The returned dict holds ``train_loss`` (mean over the run), ``final_loss`` (last
    logged loss), ``steps``, ``format``, ``n_records``, and every metric the trainer
    logged (prefixed ``last_``).
    """
    fmt = fmt.lower()  # type: ignore[assignment]
    if fmt not in _COLUMNS:
        raise TrainError(f"unknown format {fmt!r}: expected one of dpo, kto, sft")
    try:
        import torch
        from datasets import load_dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer
        import trl
    except ImportError as e:
        raise TrainError(f"training needs: pip install 'specc[train]' (missing: {e.name})") from e

    builder, files = find_data_files(Path(dataset_dir), fmt)
    ds = load_dataset(builder, data_files=files, split="train")
    missing = _COLUMNS[fmt] - set(ds.column_names)
    if missing:
        raise TrainError(
            f"{fmt} data needs the columns {sorted(_COLUMNS[fmt])}; {files[0]} lacks {sorted(missing)}"
        )
    ds = ds.select_columns(sorted(_COLUMNS[fmt]))
    if fmt == "kto":
        ds = ds.cast_column("label", _bool_feature())

    model_path = Path(model_path)
    if not (model_path / "config.json").is_file():
        raise TrainError(f"{model_path} is not a transformers model directory (no config.json)")

    on_cpu = not torch.cuda.is_available()
    common = dict(
        output_dir=str(output_dir),
        max_steps=int(max_steps),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=False,
        fp16=False,
        use_cpu=on_cpu,
        activation_checkpointing=False,  # TRL 1.16 defaults it to True; transformers 5 renamed gradient_checkpointing
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        max_length=max_length,
    )
    if learning_rate is not None:
        common["learning_rate"] = learning_rate

    def load():
        m = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, dtype=torch.float32)
        return m

    tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = load()

    if fmt == "dpo":
        args = trl.DPOConfig(**common)
        trainer = trl.DPOTrainer(
            model=model, ref_model=load(), args=args, train_dataset=ds, processing_class=tok
        )
    elif fmt == "kto":
        args = trl.KTOConfig(**common)
        trainer = trl.KTOTrainer(
            model=model, ref_model=load(), args=args, train_dataset=ds, processing_class=tok
        )
    else:
        args = trl.SFTConfig(**common)
        trainer = trl.SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)

    result = trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    metrics: dict = {
        "format": fmt,
        "steps": int(result.global_step),
        "n_records": len(ds),
        "train_loss": float(result.training_loss),
        "final_loss": float(logs[-1]["loss"]) if logs else float("nan"),
    }
    if logs:
        for k, v in logs[-1].items():
            if isinstance(v, (int, float)):
                metrics[f"last_{k}"] = float(v)
    if not math.isfinite(metrics["train_loss"]):
        metrics["warning"] = "non-finite training loss"
    return metrics


def _bool_feature():
    from datasets import Value

    return Value("bool")
