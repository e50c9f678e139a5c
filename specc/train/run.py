"""``specc train``: TRL's own trainers on a dataset's train split, into a plain model directory.

OUT, when the run finishes, is a transformers model directory (``config.json``, the weights, the
tokenizer; a LoRA adapter is merged into the weights) that ``specc eval --model OUT`` and
``specc compile --model OUT`` load, plus ``README.md`` (the training card) and ``training.json``
(the same facts, for programs). While it runs, checkpoints go to ``OUT/checkpoints/`` every
``save_steps`` steps; ``--resume`` continues from the last complete one after a kill, and they are
removed once the model is written.

CPU defaults: fp32, LoRA (r 16, alpha 32, every linear layer) through peft, batch 2, no
gradient checkpointing; ``use_cpu`` when no CUDA device is present. With LoRA the DPO / KTO
reference is the base model with the adapter disabled; a full fine-tune loads a second copy.
Reproducible for a seed: the seed is set before the adapter is made, and the trainer's data order
follows it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from specc.files import load_json
from specc.train.data import COLUMNS, METHODS, TrainError, TrainFailure, load_train_split

CHECKPOINTS = "checkpoints"
RECORD = "training.json"
DEFAULT_STEPS = 60
DEFAULT_LR = {"lora": 1e-4, "full": 1e-5}


@dataclass(frozen=True)
class TrainOptions:
    method: str = "dpo"
    steps: int = DEFAULT_STEPS
    lora: bool = True
    seed: int = 0
    resume: bool = False
    learning_rate: float | None = None
    batch_size: int = 2
    max_length: int = 512
    save_steps: int | None = None  # default: every max(1, steps // 5) steps
    lora_r: int = 16
    lora_alpha: int = 32
    beta: float = 0.1  # DPO / KTO
    # DPO only: weight of an added negative log-likelihood loss on the chosen side (TRL's
    # ``loss_type=["sigmoid", "sft"]``, RPO): DPO alone can widen the margin by pushing the rejected
    # side down while the chosen side's likelihood falls too; the NLL term raises the chosen side
    sft_weight: float = 0.0


@dataclass
class TrainResult:
    out_dir: Path
    method: str
    steps: int
    n_records: int
    resumed_from: int | None
    losses: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    record: dict = field(default_factory=dict)

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1]["loss"] if self.losses else None


# -- the base model --------------------------------------------------------------------------------


def resolve_base(base: str) -> tuple[Path, str]:
    """(directory, label) of a base model: ``smollm2`` (the embedded model, converted once) or a
    local transformers model directory."""
    from specc.engines import ModelError
    from specc.engines.provision import SMOLLM2_ALIASES, SMOLLM2_NAME, smollm2_gguf_path, smollm2_id

    base = (base or "smollm2").strip()
    if base.lower() in SMOLLM2_ALIASES:
        from specc.engines.provision import ensure_smollm2

        try:
            return ensure_smollm2(), f"{SMOLLM2_NAME}@{smollm2_id(smollm2_gguf_path())}"
        except ModelError as e:
            raise TrainFailure(str(e)) from e
    if base.startswith("openai:") or base.lower().endswith(".gguf") or base.startswith("llamacpp:"):
        raise TrainError(f"--model {base!r}: training needs a local transformers model directory (or smollm2)")
    path = Path(base).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise TrainError(f"--model {base}: not a transformers model directory (no config.json in it)")
    from specc.engines.transformers import dir_model_name

    return path.resolve(), dir_model_name(path)


def _load_model(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise TrainFailure(f"cannot load the base model from {path}: {e}") from e


def _load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise TrainFailure(f"cannot load the tokenizer of {path}: {e}") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


# -- OUT -------------------------------------------------------------------------------------------


def _complete_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoints that were written to the end (``trainer_state.json`` is saved last), by step."""
    if not ckpt_dir.is_dir():
        return []
    out = []
    for d in ckpt_dir.iterdir():
        if d.is_dir() and d.name.startswith("checkpoint-") and d.name[11:].isdigit() \
                and (d / "trainer_state.json").is_file():
            out.append(d)
    return sorted(out, key=lambda d: int(d.name[11:]))


# what a checkpoint's model weights are saved as (transformers' Trainer: a full model, sharded or not,
# or a peft adapter)
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
            "adapter_model.safetensors", "adapter_model.bin")


def _checkpoint_problem(ckpt: Path) -> str | None:
    """What keeps ``ckpt`` from being resumed, or None: the trainer's state (a JSON object of
    ``TrainerState``'s fields, which transformers reads with ``TrainerState(**data)``) and the
    model's weights must be there; transformers otherwise fails with a traceback deep in its loop."""
    state = ckpt / "trainer_state.json"
    try:
        data = load_json(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return f"its trainer_state.json cannot be read ({e})"
    from dataclasses import fields

    from transformers import TrainerState

    known = {f.name for f in fields(TrainerState)}
    if not isinstance(data, dict) or not set(data) <= known:
        return "its trainer_state.json is not the state transformers saves"
    if not isinstance(data.get("global_step", 0), int):
        return "its trainer_state.json has no whole-number global_step"
    weights = [ckpt / name for name in _WEIGHTS if (ckpt / name).is_file()]
    if not weights:
        return f"it holds no model weights (none of {', '.join(_WEIGHTS)})"
    if weights[0].suffix == ".safetensors":  # the header names every tensor: a cut file fails here, not mid-load
        from safetensors import safe_open

        try:
            with safe_open(str(weights[0]), framework="pt") as f:
                f.keys()
        except Exception as e:  # safetensors raises its own error type
            return f"its {weights[0].name} cannot be read ({e})"
    return None


def _check_run_record(out: Path, method: str, base_label: str, lora: bool) -> None:
    """A resumed run must continue with the options it was started with: ``checkpoints/run.json``
    says which (written before the first step); without a readable one the checkpoints cannot be
    trusted to match the command."""
    path = out / CHECKPOINTS / "run.json"
    prev = _read_record(path)
    if prev is None or not (prev.get("method") in METHODS and isinstance(prev.get("base"), str)
                            and isinstance(prev.get("lora"), bool)):
        raise TrainError(f"--resume: {path} is missing or is not the run record specc writes (method, base, lora), so "
                         f"the checkpoints cannot be matched to this command; {_START_AFRESH.format(out=out)}")
    if (prev["method"], prev["base"], prev["lora"]) != (method, base_label, lora):
        raise TrainError(f"--resume: {out} was started with method {prev['method']}, base {prev['base']}, "
                         f"{'LoRA' if prev['lora'] else 'full'}: resume with the same options")


_START_AFRESH = "remove {out}/checkpoints to start afresh, or choose another -o"


def _prepare_out(out: Path, resume: bool) -> Path | None:
    """Check OUT and return the checkpoint to resume from (None: start afresh)."""
    if out.is_symlink():  # as `compile -o` and `merge`: the model would be written wherever the link points
        raise TrainError(f"-o {out} is a symbolic link: give the directory itself")
    ckpts = _complete_checkpoints(out / CHECKPOINTS)
    if out.exists() and not out.is_dir():
        raise TrainError(f"-o {out}: exists and is not a directory")
    if resume:
        if (out / RECORD).is_file() and not (out / CHECKPOINTS).exists():
            raise TrainError(f"{out} holds a finished training run; there is nothing to resume")
        if not ckpts:  # not "run without --resume": that refuses OUT for the checkpoints directory
            raise TrainError(f"--resume: no complete checkpoint in {out / CHECKPOINTS}; "
                             + _START_AFRESH.format(out=out))
        problem = _checkpoint_problem(ckpts[-1])
        if problem:
            raise TrainError(f"--resume: cannot resume from {ckpts[-1]}: {problem}; " + _START_AFRESH.format(out=out))
        return ckpts[-1]
    if out.is_dir() and any(out.iterdir()):
        if (out / CHECKPOINTS).exists():
            raise TrainError(f"{out} has the checkpoints of an unfinished run: add --resume to continue it, "
                             "or choose another -o")
        raise TrainError(f"-o {out}: the directory is not empty; choose a new or empty directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".specc-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise TrainFailure(f"cannot write to {out}: {e.strerror or e}") from e
    return None


# -- dataset provenance ------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dataset_provenance(dataset_dir: Path, files: list[str]) -> dict:
    """What the card says about the data: the spec (from the manifest) and content hashes."""
    d = Path(dataset_dir)
    info: dict = {"dir": d.name or str(d), "files": [], "spec": None, "manifest_sha256": None}
    root = d if d.is_dir() else d.parent
    for f in files:
        p = Path(f)
        try:
            rel = str(p.relative_to(root))
        except ValueError:
            rel = p.name
        info["files"].append({"path": rel, "sha256": _sha256(p)})
    man = root / "manifest.json"
    if man.is_file():
        info["manifest_sha256"] = _sha256(man)
        from specc.emit.manifest import ManifestError, read_manifest

        try:
            m = read_manifest(man)
            info["spec"] = m.spec.to_dict()
            info["format"] = m.format
            info["compiled_with"] = m.model.name
        except ManifestError:
            pass  # the data were read already (train/data.py): the card leaves the spec out
    return info


# -- training ------------------------------------------------------------------------------------------


def _common_args(output_dir: Path, *, steps: int, batch_size: int, max_length: int, seed: int,
                 learning_rate: float | None, save_steps: int | None) -> dict:
    import torch

    args = dict(
        output_dir=str(output_dir),
        max_steps=int(steps),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1,
        logging_steps=1,
        report_to=[],
        bf16=False,
        fp16=False,
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=False,  # TRL 1.16 defaults it to True; transformers 5 renamed gradient_checkpointing
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        max_length=max_length,
    )
    if save_steps:
        args.update(save_strategy="steps", save_steps=int(save_steps), save_total_limit=2, save_only_model=False)
    else:
        args.update(save_strategy="no")
    if learning_rate is not None:
        args["learning_rate"] = learning_rate
    return args


def _trainer(method: str, model, ref_model, tok, ds, args: dict, peft_config, beta: float, sft_weight: float = 0.0):
    import trl

    extra = {} if peft_config is None else {"peft_config": peft_config}
    if method == "dpo":
        losses = {} if not sft_weight else {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, sft_weight]}
        cfg = trl.DPOConfig(**args, beta=beta, **losses)
        return trl.DPOTrainer(model=model, ref_model=ref_model, args=cfg, train_dataset=ds, processing_class=tok,
                              **extra)
    if method == "kto":
        cfg = trl.KTOConfig(**args, beta=beta)
        return trl.KTOTrainer(model=model, ref_model=ref_model, args=cfg, train_dataset=ds, processing_class=tok,
                              **extra)
    cfg = trl.SFTConfig(**args)
    return trl.SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, **extra)


def _progress_callback(on_event: Callable[..., None]):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                on_event("step", step=state.global_step, total=state.max_steps, loss=float(logs["loss"]))

        def on_save(self, args, state, control, **kw):
            on_event("checkpoint", step=state.global_step)

    return Progress()


def _require_stack() -> None:
    missing = []
    for mod in ("torch", "transformers", "trl", "datasets", "peft", "accelerate"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise TrainFailure(f"training needs {', '.join(missing)}: pip install 'specc[compile,train]'")


def losses_of(log_history: list[dict]) -> list[dict]:
    keep = ("loss", "rewards/accuracies", "rewards/margins", "learning_rate")
    out = []
    for e in log_history:
        if "loss" in e and "step" in e:
            out.append({"step": int(e["step"]), **{k: float(e[k]) for k in keep if k in e}})
    return out


def train_model(dataset_dir: Path, out_dir: Path, *, base: str = "smollm2", options: TrainOptions = TrainOptions(),
                on_event: Callable[..., None] | None = None) -> TrainResult:
    """Train ``base`` on the train split of ``dataset_dir`` with ``options``; write OUT (see the module doc)."""
    say = on_event or (lambda *a, **k: None)
    method = options.method.lower()
    if method not in METHODS:
        raise TrainError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    if options.steps < 1:
        raise TrainError("--steps must be at least 1")
    _require_stack()
    out = Path(out_dir)
    t0 = time.perf_counter()
    ds, files, source = load_train_split(Path(dataset_dir), method)
    base_dir, base_label = resolve_base(base)
    resume_from = _prepare_out(out, options.resume)
    if resume_from is not None:
        _check_run_record(out, method, base_label, options.lora)

    import torch
    import transformers

    transformers.set_seed(options.seed)
    tok = _load_tokenizer(base_dir)
    model = _load_model(base_dir)
    peft_config = None
    ref_model = None
    if options.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=options.lora_r, lora_alpha=options.lora_alpha, lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM", bias="none")
    elif method in ("dpo", "kto"):
        ref_model = _load_model(base_dir)
    lr = options.learning_rate if options.learning_rate is not None else DEFAULT_LR["lora" if options.lora else "full"]
    save_steps = options.save_steps if options.save_steps is not None else max(1, options.steps // 5)
    ckpt_dir = out / CHECKPOINTS
    args = _common_args(ckpt_dir, steps=options.steps, batch_size=options.batch_size, max_length=options.max_length,
                        seed=options.seed, learning_rate=lr, save_steps=save_steps)
    params = {"method": method, "lora": options.lora, "steps": options.steps, "learning_rate": lr,
              "batch_size": options.batch_size, "max_length": options.max_length, "seed": options.seed,
              "save_steps": save_steps, **({"lora_r": options.lora_r, "lora_alpha": options.lora_alpha,
                                            "lora_target_modules": "all-linear"} if options.lora else {}),
              **({"beta": options.beta} if method in ("dpo", "kto") else {}),
              **({"sft_weight": options.sft_weight} if method == "dpo" and options.sft_weight else {})}
    try:
        try:
            trainer = _trainer(method, model, ref_model, tok, ds, args, peft_config, options.beta,
                               options.sft_weight)
        except (ValueError, KeyError, TypeError) as e:
            raise TrainError(f"TRL cannot train {method} on this data: {e}") from e
        kept = len(trainer.train_dataset)
        if not kept:  # TRL drops a record whose prompt fills max_length; with none left, torch's sampler fails
            raise TrainError(f"no record fits in --max-length {options.max_length} tokens: the prompt of each of "
                             f"the {len(ds)} fills it, leaving no room for an answer; raise --max-length")
    except TrainError:
        if resume_from is None:  # the trainer made it: a rerun would be told to --resume a run that never began
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        raise
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if resume_from is None:
        _write_json(ckpt_dir / "run.json", {"method": method, "base": base_label, "lora": options.lora})
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; progress goes through on_event
    trainer.add_callback(_progress_callback(say))
    say("start", method=method, steps=options.steps, records=kept, too_long=len(ds) - kept, base=base_label,
        resume=int(resume_from.name[11:]) if resume_from else None, max_length=options.max_length)
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    losses = losses_of(trainer.state.log_history)
    final = trainer.model
    if options.lora:
        final = final.merge_and_unload()
    final = final.to(torch.float32)
    say("save", out=str(out))
    final.save_pretrained(out)
    tok.save_pretrained(out)
    prov = dataset_provenance(Path(dataset_dir), files)
    record = {
        "kind": "specc-train",
        "specc_version": __import__("specc").__version__,
        "base_model": base_label,
        "dataset": prov,
        "records": kept,
        "records_longer_than_max_length": len(ds) - kept,
        "records_from": source,
        "parameters": params,
        "steps_done": int(result.global_step),
        "resumed_from_step": int(resume_from.name[11:]) if resume_from else None,
        "train_loss": _finite(result.training_loss),
        "losses": losses,
        "versions": _versions(),
    }
    from specc.files import write_atomic
    from specc.train.card import render_card

    _write_json(out / RECORD, record)
    write_atomic(out / "README.md", render_card(record).encode("utf-8"))
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    seconds = round(time.perf_counter() - t0, 2)
    return TrainResult(out_dir=out, method=method, steps=int(result.global_step), n_records=kept,
                       resumed_from=record["resumed_from_step"], losses=losses, seconds=seconds, record=record)


def _finite(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _versions() -> dict:
    out = {}
    for mod in ("torch", "transformers", "trl", "peft"):
        try:
            out[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            pass
    return out


def _write_json(path: Path, data: dict) -> None:
    from specc.files import write_atomic

    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _read_record(path: Path) -> dict | None:
    try:
        data = load_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- the earlier recipe (kept: no saving, metrics only) ----------------------------------------------


def train(dataset_dir: Path, fmt: str, model_path: Path, max_steps: int, output_dir: Path, *,
          learning_rate: float | None = None, batch_size: int = 2, max_length: int = 512, seed: int = 0) -> dict:
    """Run ``max_steps`` steps of DPO, KTO or SFT (a full fine-tune, nothing saved); return the metrics.

    The returned dict holds ``train_loss`` (mean over the run), ``final_loss`` (last logged loss),
    ``steps``, ``format``, ``n_records``, and every metric the trainer logged (prefixed ``last_``).
    """
    fmt = fmt.lower()
    if fmt not in COLUMNS:
        raise TrainError(f"unknown format {fmt!r}: expected one of dpo, kto, sft")
    _require_stack()
    ds, _files, _ = load_train_split(Path(dataset_dir), fmt)
    model_path = Path(model_path)
    if not (model_path / "config.json").is_file():
        raise TrainError(f"{model_path} is not a transformers model directory (no config.json)")
    import transformers

    transformers.set_seed(seed)
    tok = _load_tokenizer(model_path)
    model = _load_model(model_path)
    ref = _load_model(model_path) if fmt in ("dpo", "kto") else None
    args = _common_args(Path(output_dir), steps=max_steps, batch_size=batch_size, max_length=max_length, seed=seed,
                        learning_rate=learning_rate, save_steps=None)
    trainer = _trainer(fmt, model, ref, tok, ds, args, None, 0.1)
    result = trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e]
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


__all__ = ["TrainOptions", "TrainResult", "train", "train_model", "resolve_base"]
