"""A tiny random model for tests: real SmolLM2 tokenizer, noise weights, the real constrained path.

Its output is noise, but under a bounded schema it exercises the real Outlines path in seconds.
It lives with the tests (and the benchmarks that import it), not in the package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from specc.engines.provision import atomic_build, is_complete, load_smollm2_tokenizer, write_marker


SEED_ENV = "SPECC_TEST_TINY_SEED"


def default_seed() -> int:
    """The tiny model's seed: 0, or ``$SPECC_TEST_TINY_SEED``. Another seed is other noise: the
    suite must pass under any, since another CPU's float kernels draw other noise anyway."""
    raw = os.environ.get(SEED_ENV, "0")
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{SEED_ENV}={raw!r}: expected an integer") from None


def build_tiny_model(
    dir: Path,
    *,
    tokenizer: Any = None,
    cache_dir: Path | None = None,
    seed: int | None = None,
) -> Path:
    """Save a tiny random Llama (hidden 64, 2 layers, 4 heads) with the real SmolLM2 tokenizer.

    Its output is noise, but under a bounded schema it exercises the real constrained
    path in seconds. Deterministic for a given ``seed`` (default: :func:`default_seed`). The tokenizer is taken from
    ``tokenizer`` if given, else the converted SmolLM2 cache, else the GGUF itself.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dir = Path(dir)
    seed = default_seed() if seed is None else seed
    if is_complete(dir):
        return dir
    tok = tokenizer if tokenizer is not None else load_smollm2_tokenizer(cache_dir)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
    )

    def build(tmp: Path) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config)
        model.generation_config.pad_token_id = config.pad_token_id
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_marker(tmp, {"model": "tiny-random-llama", "seed": seed})

    return atomic_build(dir, build)
