"""The OpenAI-compatible server engine (vLLM, SGLang, llama.cpp's servers) through Outlines.

(First port from ``synth/models.py``; dialects, retries and faults come next.)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Sequence

from specc.synth.engines.base import Messages, ModelError, ModelHandle, check_seeds

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel


class OpenAIModelHandle(ModelHandle):
    engine = "openai"

    def __init__(self, base_url: str, model_name: str | None, *, concurrency: int = 8,
                 dialect: str = "json_schema", timeout: float = 120.0):
        try:
            import openai
        except ImportError as e:
            raise ModelError("using an OpenAI-compatible server needs the 'openai' package:\n"
                             "    pip install 'specc[openai]'") from e
        import outlines

        self.base_url = base_url
        self.client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"),
                                    timeout=timeout)
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
        self.batch_size = concurrency
        self.concurrency = concurrency
        self.dialect = dialect
        self._model = outlines.from_openai(self.client, model_name)

    def _one(self, messages, output_type, max_new_tokens, seed, temperature) -> str:
        from outlines.inputs import Chat

        return self._model.generate(Chat(list(messages)), output_type, max_tokens=int(max_new_tokens),
                                    seed=int(seed), temperature=float(temperature))

    def generate_json(self, prompts: Sequence[Messages], output_type: type[BaseModel], max_new_tokens: int,
                      seeds: Sequence[int], *, temperature: float = 0.0) -> list[str]:
        seeds = check_seeds(prompts, seeds)
        with ThreadPoolExecutor(max_workers=max(1, self.batch_size)) as pool:
            return list(pool.map(lambda ms: self._one(ms[0], output_type, max_new_tokens, ms[1], temperature),
                                 zip(prompts, seeds)))

    def generate_raw(self, prompts: Sequence[Messages], max_new_tokens: int, seeds: Sequence[int], *,
                     temperature: float = 0.0) -> tuple[list[str], int]:
        seeds = check_seeds(prompts, seeds)

        def one(ms):
            r = self.client.chat.completions.create(model=self.model_name, messages=list(ms[0]),
                                                    max_tokens=int(max_new_tokens), seed=int(ms[1]),
                                                    temperature=float(temperature))
            used = r.usage.completion_tokens if r.usage else 0
            return r.choices[0].message.content or "", used

        with ThreadPoolExecutor(max_workers=max(1, self.batch_size)) as pool:
            res = list(pool.map(one, zip(prompts, seeds)))
        return [t for t, _ in res], sum(n for _, n in res)


def load(base_url: str, model_name: str | None, *, concurrency: int = 8, dialect: str = "json_schema",
         timeout: float = 120.0) -> OpenAIModelHandle:
    return OpenAIModelHandle(base_url, model_name, concurrency=concurrency, dialect=dialect, timeout=timeout)
