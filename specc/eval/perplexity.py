"""Capability drift: a model's perplexity on a fixed general text that ships with Python.

The text is the stdlib's ``pydoc_data.topics`` (the help topics of the Python docs: English
prose and code, about 465k characters, on every Python, offline): the topics **sorted by key**,
joined by a blank line, and the first :data:`CHARS` characters of that. It is cut into
non-overlapping windows of :data:`WINDOW` tokens; perplexity is ``exp`` of the mean negative
log-likelihood of every token after the first of each window. The text can differ between Python
versions, so the report carries its sha256 and ``--baseline`` compares only equal texts.

Only a transformers model (a local model directory, or the embedded SmolLM2 on the transformers
engine) can give it: llama.cpp and OpenAI-compatible servers do not expose the logits here.
"""

from __future__ import annotations

import hashlib
import math
import sys

CHARS = 16384
WINDOW = 512
TEXT_NAME = "pydoc_data.topics"


class PerplexityError(Exception):
    pass


def reference_text(chars: int = CHARS) -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))[:chars]


def perplexity(handle, *, chars: int = CHARS, window: int = WINDOW):
    """The :class:`~specc.eval.report.Perplexity` of ``handle``'s model on the reference text."""
    from specc.eval.report import Perplexity

    model = getattr(handle, "model", None)
    tok = getattr(handle, "tokenizer", None)
    if getattr(handle, "engine", None) != "transformers" or model is None or tok is None:
        raise PerplexityError(
            f"--perplexity needs a transformers model (a local model directory, or smollm2 on the transformers "
            f"engine); {getattr(handle, 'name', handle)} runs on {getattr(handle, 'engine', '?') or '?'}")
    import torch

    text = reference_text(chars)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) or window
    window = max(2, min(window, int(limit)))
    nll, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids), window):
            piece = ids[start : start + window].unsqueeze(0)
            if piece.shape[1] < 2:
                continue
            logits = model(input_ids=piece).logits.float()
            logp = torch.log_softmax(logits[0, :-1], dim=-1)
            target = piece[0, 1:]
            nll -= float(logp.gather(1, target.unsqueeze(1)).sum())
            count += int(target.numel())
    if count == 0:
        raise PerplexityError("the reference text gave no tokens")
    return Perplexity(value=math.exp(nll / count), text=f"{TEXT_NAME}, topics sorted by key, first {chars} characters",
                      chars=len(text), tokens=int(len(ids)), window=window,
                      sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                      python=".".join(str(x) for x in sys.version_info[:3]))
