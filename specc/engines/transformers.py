"""The transformers engine: a local causal LM, constrained through ``outlines.from_transformers``.

Prompts are generated in batches of ``batch_size`` (left padding). Greedy decoding is
deterministic for the same prompts, batch and machine; with ``temperature > 0`` each batch is
seeded from its prompts' seeds. Padding depends on the batch, so a prompt's text can depend on
the prompts beside it: the engine is *not* batch-invariant (``--batch-size 1`` makes it so).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from specc.engines.base import Messages, ModelError, ModelHandle, Usage, check_seeds, count_usage

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel


def batch_seed(seeds: Sequence[int]) -> int:
    h = hashlib.sha256(",".join(str(int(s)) for s in seeds).encode()).hexdigest()
    return int(h[:8], 16) % (2**31)


FINGERPRINT_BLOCKS = 8  # blocks read from each weight file, evenly spaced from its first byte to its last
FINGERPRINT_BLOCK = 1 << 16


def dir_fingerprint(path: Path) -> str:
    """Copy-stable fingerprint of a model dir: the config and tokenizer files' bytes, and of each
    weight file its name, its size and :data:`FINGERPRINT_BLOCKS` blocks of
    :data:`FINGERPRINT_BLOCK` bytes spread over it (the first holds a safetensors header).

    Where the directory lives is not part of it: a model moved or copied keeps its fingerprint,
    so its store entries and its data. Two checkpoints of one architecture differ in the sampled
    weight bytes (training moves every tensor), so they never share a fingerprint as they would
    if only sizes were read. Reading 8 blocks costs milliseconds where hashing gigabytes would
    cost minutes.
    """
    h = hashlib.sha256()
    for fname in (
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ):
        f = path / fname
        if f.is_file():
            h.update(fname.encode() + b"\0" + f.read_bytes() + b"\0")
    for f in sorted(path.iterdir()):
        if f.suffix in {".safetensors", ".bin", ".pt", ".gguf"}:
            size = f.stat().st_size
            h.update(f"{f.name}:{size}\0".encode())
            with open(f, "rb") as fh:
                last = max(0, size - FINGERPRINT_BLOCK)
                for i in range(FINGERPRINT_BLOCKS):
                    fh.seek(last * i // (FINGERPRINT_BLOCKS - 1))
                    h.update(fh.read(FINGERPRINT_BLOCK))
    return h.hexdigest()[:12]


def dir_model_name(path: Path) -> str:
    """A local model directory's name in store keys and outputs: its base name and fingerprint,
    never the path, so that the same model gives the same data wherever it is stored."""
    path = Path(path).resolve()
    return f"{path.name}@{dir_fingerprint(path)}"


class TransformersModelHandle(ModelHandle):
    """A local transformers causal LM, constrained through ``outlines.from_transformers``."""

    engine = "transformers"

    def __init__(self, model: Any, tokenizer: Any, name: str, *, batch_size: int = 8):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        # decoder-only batching needs left padding and a pad token
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.has_chat_template = getattr(tokenizer, "chat_template", None) is not None
        # outlines_core masks logits with a @torch.compile kernel: compiling it costs ~30 s on
        # the first call and recompiles on new batch shapes, and on CPU the compiled kernel is
        # no faster. Left False, generation runs with dynamo disabled (scoped to our calls).
        self.compile_kernels = False
        self._outlines_model = None
        self._generators: dict[str, Any] = {}

    # -- prompts

    def format_prompt(self, messages: Messages) -> str:
        """The exact text the model sees for ``messages`` (chat template + generation prompt)."""
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        # no chat template: a plain transcript ending with the assistant's cue
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant:"

    def _outlines_input(self, messages: Messages):
        # Outlines applies the chat template itself to a Chat -- and ALSO to a plain str
        # when the tokenizer has a template, so never pass it pre-templated text.
        from outlines.inputs import Chat

        if self.has_chat_template:
            return Chat(list(messages))
        return self.format_prompt(messages)

    def _generator(self, output_type: type[BaseModel]):
        import outlines

        key = json.dumps(output_type.model_json_schema(), sort_keys=True)
        gen = self._generators.get(key)
        if gen is None:
            if self._outlines_model is None:
                self._outlines_model = outlines.from_transformers(self.model, self.tokenizer)
            gen = outlines.Generator(self._outlines_model, output_type)
            self._generators[key] = gen
        return gen

    def _no_compile(self):
        if self.compile_kernels:
            return contextlib.nullcontext()
        import torch._dynamo

        return torch._dynamo.config.patch(disable=True)

    @staticmethod
    def _sampling_kwargs(temperature: float) -> dict:
        if temperature and temperature > 0:
            return {"do_sample": True, "temperature": float(temperature), "top_p": 1.0, "top_k": 0}
        return {"do_sample": False}

    # -- generation

    def generate_json(
        self,
        prompts: Sequence[Messages],
        output_type: type[BaseModel],
        max_new_tokens: int,
        seeds: Sequence[int],
        *,
        temperature: float = 0.0,
    ) -> list[str]:
        import torch

        seeds = check_seeds(prompts, seeds)
        self.last_usage = None
        gen = self._generator(output_type)
        kwargs = {"max_new_tokens": int(max_new_tokens), **self._sampling_kwargs(temperature)}
        out: list[str] = []
        size = self.batch_size
        with torch.inference_mode(), self._no_compile():
            for start in range(0, len(prompts), size):
                chunk = list(prompts[start : start + size])
                torch.manual_seed(batch_seed(seeds[start : start + size]))
                res = gen.batch([self._outlines_input(m) for m in chunk], **kwargs)
                out.extend(res)
        # Outlines returns text: its tokens are counted by the tokenizer, the prompt as templated
        self.last_usage = count_usage(self.tokenizer, prompts, out, self.format_prompt)
        return out

    def generate_raw(
        self,
        prompts: Sequence[Messages],
        max_new_tokens: int,
        seeds: Sequence[int],
        *,
        temperature: float = 0.0,
    ) -> tuple[list[str], int]:
        import torch

        seeds = check_seeds(prompts, seeds)
        tok = self.tokenizer
        eos = tok.eos_token_id
        pad = tok.pad_token_id
        kwargs = {"max_new_tokens": int(max_new_tokens), **self._sampling_kwargs(temperature)}
        texts: list[str] = []
        usage: list[Usage] = []
        self.last_usage = None
        n_tokens = 0
        with torch.inference_mode(), self._no_compile():
            for start in range(0, len(prompts), self.batch_size):
                chunk = list(prompts[start : start + self.batch_size])
                torch.manual_seed(batch_seed(seeds[start : start + self.batch_size]))
                enc = tok(
                    [self.format_prompt(m) for m in chunk],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                ids = self.model.generate(**enc, pad_token_id=pad, **kwargs)
                new = ids[:, enc["input_ids"].shape[1] :]
                prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()  # padding is no prompt token
                for row, p in zip(new.tolist(), prompt_lengths):
                    n = len(row)
                    if eos in row:
                        n = row.index(eos) + 1
                    n_tokens += n
                    usage.append(Usage(int(p), n))
                texts.extend(tok.batch_decode(new, skip_special_tokens=True))
        self.last_usage = usage
        return texts, n_tokens


def load_dir(path: Path, name: str, batch_size: int) -> TransformersModelHandle:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise ModelError(
            "local models need the generation stack: pip install 'specc[compile]' "
            f"(missing: {e.name})"
        ) from e
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"cannot load a transformers model from {path}: {e}") from e
    model.eval()
    column_major_linears(model)
    return TransformersModelHandle(model, tok, name, batch_size=batch_size)


def column_major_linears(model: Any) -> int:
    """Store every ``nn.Linear`` weight of an inference-only ``model`` column-major, and copy its
    other tensors into memory of their own.

    ``F.linear`` computes ``x @ W.T``; with ``W`` stored row-major (PyTorch's default) MKL's
    sgemm takes the transposed operand on a path 2-2.5x slower on this class of CPU (AVX-512,
    2 cores: a 576x1536 projection of 8 rows 189 us against 85 us). A column-major ``W`` makes
    ``W.T`` contiguous. Same parameters, same modules, same state dict, and on SmolLM2 the same
    logits to the bit; decoding is about 1.3x faster at batch 8 (bench/README.md, "Generation on
    the CPU"). The other tensors are copied because the loaded ones share one mapping of the
    weights file, which one of them left there would keep resident beside the copies (measured:
    1,390 MiB resident where 877 MiB suffice). Returns how many weights moved.
    """
    import torch

    moved = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.is_contiguous():
            module.weight.data = module.weight.data.t().contiguous().t()
            moved += 1
    for param in model.parameters():
        if param.is_contiguous():  # not moved above (tied weights are moved once)
            param.data = param.data.clone()
    for module in model.modules():
        for key, buf in list(module._buffers.items()):
            if buf is not None:
                module._buffers[key] = buf.clone()
    return moved
