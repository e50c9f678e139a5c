"""What every engine gives the pipeline: one small interface, its errors, and shared helpers.

An engine turns chat prompts into text. :class:`ModelHandle` is the interface the pipeline
(the call runner, ``synth.calls.CallRunner``) calls; each engine module (``transformers``, ``llamacpp``, ``openai``)
implements it. Two rules hold for every engine:

- one seed per prompt, taken from the call's store key, so an engine that generates each prompt
  on its own (llama.cpp, a server) gives a prompt the same text whatever batch it is in: the
  property that lets ``--shard`` slices merge into the unsharded dataset byte for byte;
- a failure of *one prompt* (text that does not validate) is the caller's to retry, but a failure
  of *the engine* (a server that is down, died or keeps timing out after its retries) raises
  :class:`EngineFault`, which stops the compile with exit 3; the outputs finished before the fault
  travel with it so the store keeps them and a rerun starts where this run stopped.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

Messages = Sequence[dict]

ENGINES = ("transformers", "llamacpp", "openai")


class ModelError(Exception):
    """A model cannot be found, loaded or used; the message is meant for the user."""


class EngineFault(ModelError):
    """The engine itself failed (not one prompt): the compile stops with exit 3.

    ``done`` maps the indices of the prompts that finished before the fault to their texts,
    ``usage`` to what they cost.
    """

    def __init__(self, message: str, done: dict[int, str] | None = None,
                 usage: dict[int, "Usage"] | None = None):
        super().__init__(message)
        self.done = dict(done or {})
        self.usage = dict(usage or {})  # what the finished prompts cost, where the engine knows


@dataclass(frozen=True)
class Usage:
    """What one prompt cost: its prompt and completion tokens, and how they were counted.

    ``counted`` is ``"engine"`` (the engine's own token ids: llama.cpp, transformers' free
    generation), ``"server"`` (an OpenAI-compatible server's ``usage`` field), ``"tokenizer"`` (the
    model's tokenizer run over the prompt and the returned text: transformers' constrained
    generation, a server that sends no ``usage`` where a tokenizer is at hand) or ``"estimate"``
    (no tokenizer: :func:`estimate_tokens`). A count that is not known is None.
    """

    prompt_tokens: int | None
    completion_tokens: int | None
    counted: str = "engine"


def estimate_tokens(text: str) -> int:
    """A tokenizer-free count: words and punctuation marks, long words split every 6 characters
    (BPE vocabularies cut English at about 4-5 characters a token; this lands within ~25 % of
    SmolLM2's tokenizer on English prose). Used only where neither the server nor a tokenizer
    counts, and marked ``"estimate"``."""
    return sum(max(1, -(-len(w) // 6)) for w in re.findall(r"\w+|[^\w\s]", text))


def count_usage(tokenizer: Any, prompts: Sequence[Messages], texts: Sequence[str],
                format_prompt: Any = None) -> list[Usage]:
    """Usage of each prompt counted by ``tokenizer`` (a Hugging Face tokenizer) over the prompt as
    the model sees it and the returned text; without a tokenizer, :func:`estimate_tokens`."""
    out = []
    for m, t in zip(prompts, texts):
        shown = format_prompt(m) if format_prompt is not None else "\n".join(
            f"{x.get('role', '')}: {x.get('content', '')}" for x in m)
        if tokenizer is not None:
            p = len(tokenizer(shown, add_special_tokens=False)["input_ids"])
            c = len(tokenizer(t or "", add_special_tokens=False)["input_ids"])
            out.append(Usage(p, c, "tokenizer"))
        else:
            out.append(Usage(estimate_tokens(shown), estimate_tokens(t or ""), "estimate"))
    return out


class ModelHandle:
    """What the pipeline needs from a model.

    ``name`` is stable and identifies the model *and the engine that runs it* for store keys
    (the same weights through another engine give other text). ``engine`` is one of
    :data:`ENGINES`. ``tokenizer`` is a Hugging Face tokenizer where the engine has one.
    ``batch_size`` is how many prompts the pipeline hands over at once (for a server: how many
    requests are in flight). ``params`` are the engine's own settings that change its output;
    they enter the store key and the manifest.
    """

    name: str
    engine: str = ""
    tokenizer: Any = None
    batch_size: int = 8
    # what the last generate_json / generate_raw call cost, one Usage per prompt in order (None:
    # the engine does not say; the call runner then counts with ``tokenizer``, or estimates)
    last_usage: list[Usage] | None = None

    @property
    def params(self) -> dict:
        return {}

    def generate_json(
        self,
        prompts: Sequence[Messages],
        output_type: type[BaseModel],
        max_new_tokens: int,
        seeds: Sequence[int],
        *,
        temperature: float = 0.0,
    ) -> list[str]:
        """Constrained generation: one JSON string per chat prompt, ``seeds[i]`` for prompt i.

        The strings are *not* validated: a too small ``max_new_tokens`` cuts the JSON
        mid-way. Call ``output_type.model_validate_json`` on each.
        """
        raise NotImplementedError

    def generate_raw(
        self,
        prompts: Sequence[Messages],
        max_new_tokens: int,
        seeds: Sequence[int],
        *,
        temperature: float = 0.0,
    ) -> tuple[list[str], int]:
        """Free generation; returns the texts and the number of generated tokens."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def chunks(items: Sequence, size: int) -> list[Sequence]:
    size = max(1, int(size))
    return [items[i : i + size] for i in range(0, len(items), size)]


def check_seeds(prompts: Sequence, seeds: Sequence[int]) -> list[int]:
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
    return seeds


# What each engine needs importable, and the command that installs it. `specc compile` checks
# this before it writes or generates anything (exit 3 with the command).
REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "transformers": (("torch", "transformers", "outlines"),
                     "pip install torch==2.13.0 && pip install 'specc[compile]'"),
    "llamacpp": (("llama_cpp", "outlines"), "pip install 'specc[fast]'   (builds llama.cpp: ~8 min on 2 cores)"),
    "openai": (("openai",), "pip install 'specc[openai]'"),
}


def missing_modules(engine: str) -> list[str]:
    mods, _ = REQUIREMENTS[engine]
    out = []
    for m in mods:
        try:
            if importlib.util.find_spec(m) is None:
                out.append(m)
        except (ImportError, ValueError):
            out.append(m)
    return out


def require(engine: str) -> None:
    """Raise :class:`ModelError` with the install command when ``engine`` cannot be imported."""
    missing = missing_modules(engine)
    if missing:
        _, cmd = REQUIREMENTS[engine]
        raise ModelError(f"the {engine} engine needs {', '.join(missing)}, which "
                         f"{'is' if len(missing) == 1 else 'are'} not installed. Install with:\n    {cmd}")
