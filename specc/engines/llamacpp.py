r"""The llama.cpp engine: any GGUF file (the embedded SmolLM2 as it is shipped), through
``llama-cpp-python`` (``pip install 'specc[fast]'``).

Constrained output uses Outlines' own automaton (``outlines_core``), the one the transformers
engine uses: the output type's JSON schema becomes a regex exactly as ``outlines.Generator``
makes it (:class:`outlines.types.JsonSchema` -> ``build_regex_from_schema``), and an
``outlines_core.Index`` over the GGUF's vocabulary masks the logits of every step. So every
pattern :class:`specc.synth.roles.Shape` produces (prefix, word-bounded, contains, not_letter,
json_object) and every ``Literal`` means on this engine what it means on transformers.

The vocabulary is built from the *bytes* of each token (``llama_token_to_piece``), not from
Outlines' ``from_llamacpp`` tokenizer, which decodes each piece to ``str`` with
``errors="replace"``: the 313 byte-fallback tokens of SmolLM2 (partial UTF-8) then collapse into
one ``"\ufffd"`` token that the automaton takes for a real character, and 43 more tokens are lost
to duplicate texts. With bytes, the automaton works on UTF-8 bytes, so the text it accepts is the
text the tokens spell. Control tokens (empty pieces) are never allowed inside the JSON.

The decoding loop is ours (``Llama.eval`` + the last logits), not ``create_chat_completion``:
that one silently falls back to "any JSON" when llama.cpp cannot convert a schema, and its
defaults (``repeat_penalty=1.1``, ``top_k=40``, ``min_p=0.05``) would change the text under the
name of another setting. Here: greedy (argmax of the masked logits) when ``temperature == 0``;
otherwise a plain multinomial draw from ``softmax(logits / temperature)`` (no top-k/top-p, as the
transformers engine samples) with a ``numpy`` generator seeded by the prompt's own seed.

A prompt is evaluated in chunks cut before every control token (one chunk a chat message), and the
chunks the previous prompt began with are kept in the KV cache: the K candidates of a scenario
share one prompt evaluation, and the calls of a role share its system message and few-shot turns.
A chunk is evaluated the same way whether the cache was warm or empty, so the logits are the same
bytes either way (tested against a cold evaluation): a prompt's text is still a function of that
prompt and its seed alone, and the engine is batch-invariant.

Prompts are rendered with the GGUF's own chat template (``tokenizer.chat_template``), by the same
``Jinja2ChatFormatter`` that ``create_chat_completion`` uses, then tokenized with special tokens
parsed and no BOS added (as ``create_chat_completion`` does). For SmolLM2 that is the template the
transformers engine applies, token for token (tested). A GGUF without a template gets the plain
``role: content`` transcript the transformers engine uses for a tokenizer without one.

Why this and not the two ready-made routes: measured on this machine (2 vCPUs shared with other
work, load average ~8, so absolute speeds are low; one thread), SmolLM2-135M Q4_1, greedy, the
same 20 role prompts captured from a ``specc compile`` of ``examples/support/assistant.spec``
(all 14 output types of that compile: attacker, operator, defender, violator and judge; 12 with
``Shape`` patterns: prefix, word-bounded, contains, not_letter, json_object, suffix), run
interleaved prompt by prompt so all three saw the same load::

    constraint                                  valid   tokens/s   patterns supported
    this module (outlines_core, byte vocab)     18/20   5.3        all 12
    outlines.from_llamacpp + Generator          18/20   5.1        all 12 (needs numba; lossy vocab)
    llama.cpp grammar (LlamaGrammar, schema)     9/20   3.7        0 of 12 (11 prompts unsupported)

The two invalid outputs are the same on both Outlines routes: a 77-token budget spent before the
string closed (a loop, "…/2018/04/12/10011.com…") and an operator turn cut the same way; every
finished output satisfied its schema and its pattern. Outlines' llama.cpp route also needs
``numba`` (not installed with ``outlines``): without it its logits processor raises inside
llama.cpp's ctypes sampler callback, the error is swallowed and generation runs *unconstrained*
(0/52 valid JSON in the first run). llama.cpp's converter rejects every unanchored pattern, and
anchored ones fail in llama.cpp's grammar parser (``\.`` and ``\s`` are "unknown escape"); its
grammar sampler is also the slowest of the three. Building an automaton costs ~1-3 s per output
type (cached per handle, as on the transformers engine); threads and ``n_ctx`` (1024 / 4096 /
8192) gave byte-identical greedy and sampled texts, so neither is in ``params``.

Against the transformers engine, the same 6 captured prompts in one run, interleaved, one thread
each, load average ~6.5 (tokens per second of wall time, prompt evaluation included):
constrained 5.3 (llama.cpp) vs 2.1 (transformers), free 4.4 vs 2.2. Measured at a lighter load,
llama.cpp decodes ~45 tokens/s on one thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from specc.engines.base import Messages, ModelError, ModelHandle, Usage, check_seeds

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

# Context: the role prompts of a compile of examples/support/assistant.spec (--max-chars 160) had
# 122-522 tokens (52 calls), plus at most ~100 new tokens; 4096 leaves room for longer specs,
# conversations and few-shot material. Capped by the model's own training context.
DEFAULT_N_CTX = 4096
# Prompt tokens evaluated per llama_decode call: it decides how a long prompt is cut into decode
# calls, which can move the last bits of the logits, so it is in ``params``.
N_BATCH = 512
GGUF_MAGIC = b"GGUF"


def fingerprint(path: Path) -> str:
    """Cheap, copy-stable fingerprint of a GGUF file: its size, its first and its last MiB.

    The first MiB holds the header (architecture, tokenizer, chat template, tensor index), the
    last one the end of the weights; hashing a multi-GB file whole would cost seconds to minutes.
    """
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(f"gguf:{size}\0".encode())
    chunk = 1 << 20
    with open(path, "rb") as f:
        h.update(f.read(chunk))
        if size > chunk:
            f.seek(max(chunk, size - chunk))
            h.update(f.read(chunk))
    return h.hexdigest()[:12]


def _check_gguf(path: Path) -> None:
    if not path.exists():
        raise ModelError(f"GGUF file {path} not found")
    if not path.is_file():
        raise ModelError(f"{path} is not a file (expected a .gguf model file)")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from e
    if head != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")


class LlamaCppModelHandle(ModelHandle):
    """A GGUF model in one ``llama_cpp.Llama``; prompts run one at a time, sharing the KV cache
of the chunks they begin with (:meth:`_prefill`)."""

    engine = "llamacpp"

    def __init__(self, llama: Any, path: Path, name: str, *, n_ctx: int, threads: int):
        import llama_cpp

        self.llama = llama
        self.path = Path(path)
        self.name = name
        self.n_ctx = n_ctx
        self.threads = threads
        self._vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self.n_vocab = llama.n_vocab()
        self.eos = llama.token_eos()
        self._formatter = self._chat_formatter()
        self._pieces: list[bytes] | None = None
        self._outlines_vocab = None
        self._indexes: dict[Any, Any] = {}  # by output type and by schema
        self._control: list[bool] | None = None
        self._kv_prompt: list[int] = []  # the prompt whose chunks are in the KV cache
        self._kv_logits = None  # the logits of its last position
        self.keep_prefix = True  # False: every prompt from an empty cache (the same bytes, slower)
        self.reused_tokens = 0  # prompt tokens taken from the KV cache, and evaluated
        self.evaluated_tokens = 0

    @property
    def params(self) -> dict:
        # what changes the text besides the model, the prompt, the budget, the temperature and
        # the seed (all of which are in the store key already). Threads do not, nor does n_ctx
        # (measured: 1 or 2 threads, n_ctx 1024/4096/8192 gave byte-identical greedy and sampled
        # texts); a prompt that does not fit the context is an error, never cut.
        return {"constraint": "outlines_core", "n_batch": N_BATCH, "extra_buffers": False,
                "sampler": "greedy|multinomial", "prefill": "chunks-before-control-tokens"}

    # -- prompts

    def _chat_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        model = self.llama._model
        bos_id = self.llama.token_bos()
        eos = model.token_get_text(self.eos) if self.eos != -1 else ""
        bos = model.token_get_text(bos_id) if bos_id != -1 else ""
        return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    def format_prompt(self, messages: Messages) -> str:
        """The exact text the model sees for ``messages`` (chat template + generation prompt)."""
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        if self._formatter is None:
            lines = [f"{m['role']}: {m['content']}" for m in messages]
            return "\n".join(lines) + "\nassistant:"
        return self._formatter(messages=messages).prompt

    def prompt_tokens(self, messages: Messages) -> list[int]:
        text = self.format_prompt(messages).encode("utf-8")
        # as create_chat_completion: the template writes the special tokens, so no BOS is added
        return self.llama.tokenize(text, add_bos=self._formatter is None, special=True)

    # -- the constraint

    def pieces(self) -> list[bytes]:
        """The bytes of every token as it appears in text (b"" for control tokens)."""
        if self._pieces is None:
            import ctypes

            import llama_cpp

            size = 64
            buf = (ctypes.c_char * size)()
            out = []
            for i in range(self.n_vocab):
                n = llama_cpp.llama_token_to_piece(self._vocab, i, buf, size, 0, False)
                if n > size:
                    big = (ctypes.c_char * n)()
                    n = llama_cpp.llama_token_to_piece(self._vocab, i, big, n, 0, False)
                    out.append(bytes(big[:n]))
                else:
                    out.append(bytes(buf[: max(n, 0)]))
            self._pieces = out
        return self._pieces

    def _vocabulary(self):
        if self._outlines_vocab is None:
            from outlines_core import Vocabulary

            by_bytes: dict[bytes, list[int]] = {}
            for i, piece in enumerate(self.pieces()):
                if piece and i != self.eos:
                    by_bytes.setdefault(piece, []).append(i)
            self._outlines_vocab = Vocabulary(self.eos, by_bytes)
        return self._outlines_vocab

    def index(self, output_type: type[BaseModel]):
        """The Outlines automaton of ``output_type`` over this model's vocabulary (cached)."""
        from outlines.types import JsonSchema
        from outlines_core import Index
        from outlines_core.json_schema import build_regex_from_schema

        idx = self._indexes.get(output_type)
        if idx is None:
            term = JsonSchema(output_type)  # what outlines.Generator makes of a pydantic type
            key = json.dumps([term.schema, term.whitespace_pattern])
            idx = self._indexes.get(key)
            if idx is None:
                idx = Index(build_regex_from_schema(term.schema, term.whitespace_pattern), self._vocabulary())
                self._indexes[key] = idx
            self._indexes[output_type] = idx
        return idx

    # -- decoding

    def _fits(self, token_lists: Sequence[list[int]], max_new_tokens: int) -> None:
        for i, toks in enumerate(token_lists):
            if len(toks) + max_new_tokens > self.n_ctx:
                raise ValueError(f"prompt {i} has {len(toks)} tokens: with max_new_tokens {max_new_tokens} it does "
                                 f"not fit the context of {self.n_ctx} tokens (nothing was generated)")

    def _is_control(self) -> list[bool]:
        if self._control is None:
            self._control = [not piece for piece in self.pieces()]
        return self._control

    def chunk_ends(self, tokens: Sequence[int]) -> list[int]:
        """Where the prompt's evaluation is cut: before every control token (for a chat template,
        before each ``<|im_start|>``: one chunk a message) and at the end. The cut is a function of
        the tokens alone, so a chunk's KV cache is the same bytes whether it was just evaluated or
        kept from an earlier prompt that began with the same chunks."""
        control = self._is_control()
        return [j for j in range(1, len(tokens)) if control[tokens[j]]] + [len(tokens)]

    def forget(self) -> None:
        """Drop the kept prompt: the next one is evaluated from an empty KV cache."""
        self._kv_prompt, self._kv_logits = [], None

    def _prefill(self, tokens: list[int]):
        """Evaluate the prompt ``tokens`` chunk by chunk (:meth:`chunk_ends`), reusing the chunks
        the last prompt began with, and return the logits of its last position.

        The same prompt again (the K candidates of a scenario) costs nothing: its KV cache is
        kept and the tokens generated after it are dropped. A prompt that shares its first chunks
        (a role's system message, the few-shot turns) evaluates only the chunks after them. The
        logits are byte-identical to an evaluation from an empty cache (tested), because every
        chunk is evaluated the same way in both cases."""
        import llama_cpp
        import numpy as np

        llm = self.llama
        if not self.keep_prefix:
            self.forget()
        if tokens == self._kv_prompt and self._kv_logits is not None:
            llm.n_tokens = len(tokens)  # the next eval drops what was generated after the prompt
            return self._kv_logits.copy()
        ends = self.chunk_ends(tokens)
        old = self._kv_prompt
        same = 0
        limit = min(len(old), len(tokens))
        while same < limit and old[same] == tokens[same]:
            same += 1
        old_ends = set(self.chunk_ends(old)) if same else set()
        keep = 0
        for e in ends:
            if e <= same and e < len(tokens) and e in old_ends:
                keep = e
        self.reused_tokens += keep
        self.evaluated_tokens += len(tokens) - keep
        llm.n_tokens = keep  # eval first removes the KV cache from n_tokens on
        self._kv_prompt, self._kv_logits = [], None
        start = keep
        for e in ends:
            if e > start:
                llm.eval(tokens[start:e])
                start = e
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
        self._kv_prompt, self._kv_logits = list(tokens), logits
        return logits.copy()

    def _decode(self, tokens: list[int], max_new_tokens: int, seed: int, temperature: float,
                index: Any = None) -> list[int]:
        """Generate from the prompt ``tokens``; returns the new tokens (EOS included)."""
        import llama_cpp
        import numpy as np

        llm = self.llama
        logits = self._prefill(tokens)
        guide = mask = None
        if index is not None:
            from outlines_core import Guide

            guide = Guide(index)
            mask = np.zeros((self.n_vocab + 31) // 32, dtype=np.int32)
        rng = np.random.default_rng(int(seed)) if temperature > 0 else None
        out: list[int] = []
        for step in range(int(max_new_tokens)):
            if step:
                ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
                logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
            if guide is not None:
                mask[:] = 0
                guide.write_mask_into(mask.ctypes.data, mask.size, 4)
                allowed = np.unpackbits(mask.view(np.uint8), bitorder="little")[: self.n_vocab].astype(bool)
                if not allowed.any():  # cannot happen with an Index: every live state has a way out
                    raise RuntimeError("the constraint allows no token")
                logits[~allowed] = -np.inf
            if rng is None:
                tok = int(np.argmax(logits))
            else:
                z = logits / float(temperature)
                z -= z.max()
                p = np.exp(z)
                cdf = np.cumsum(p)
                tok = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
                tok = min(tok, self.n_vocab - 1)
            out.append(tok)
            if tok == self.eos or (guide is None and llama_cpp.llama_vocab_is_eog(self._vocab, tok)):
                break
            if guide is not None:
                guide.advance(tok, return_tokens=False)
            llm.eval([tok])
        return out

    def _text(self, tokens: list[int]) -> str:
        pieces = self.pieces()
        return b"".join(pieces[t] for t in tokens if t != self.eos).decode("utf-8", errors="replace")

    # -- the interface

    def generate_json(
        self,
        prompts: Sequence[Messages],
        output_type: type[BaseModel],
        max_new_tokens: int,
        seeds: Sequence[int],
        *,
        temperature: float = 0.0,
    ) -> list[str]:
        seeds = check_seeds(prompts, seeds)
        index = self.index(output_type)
        token_lists = [self.prompt_tokens(m) for m in prompts]
        self._fits(token_lists, max_new_tokens)
        self.last_usage = None
        texts, usage = [], []
        for toks, s in zip(token_lists, seeds):
            new = self._decode(toks, max_new_tokens, s, temperature, index)
            texts.append(self._text(new))
            usage.append(Usage(len(toks), len(new)))
        self.last_usage = usage
        return texts

    def generate_raw(
        self,
        prompts: Sequence[Messages],
        max_new_tokens: int,
        seeds: Sequence[int],
        *,
        temperature: float = 0.0,
    ) -> tuple[list[str], int]:
        import llama_cpp

        seeds = check_seeds(prompts, seeds)
        token_lists = [self.prompt_tokens(m) for m in prompts]
        self._fits(token_lists, max_new_tokens)
        texts, n, usage = [], 0, []
        self.last_usage = None
        for toks, s in zip(token_lists, seeds):
            new = self._decode(toks, max_new_tokens, s, temperature)
            n += len(new)
            usage.append(Usage(len(toks), len(new)))
            pieces = self.pieces()
            texts.append(b"".join(pieces[t] for t in new if not llama_cpp.llama_vocab_is_eog(self._vocab, t))
                         .decode("utf-8", errors="replace"))
        self.last_usage = usage
        return texts, n

    def close(self) -> None:
        self.llama.close()


def default_threads() -> int:
    """Half the CPUs (at least one): llama-cpp-python's own default.

    Not all of them: llama.cpp's OpenMP threads spin at every barrier, so a thread that shares
    its core with another process stalls the others. Measured here (2 vCPUs, load average ~10
    from other work): SmolLM2 decoded 10.5-12.6 tokens/s on 1 thread and 0.6 on 2 (5.1 vs 45
    at a lighter load); with OMP_WAIT_POLICY=PASSIVE 2 threads gave 11.3. ``--threads`` sets it.
    """
    return max(1, (os.cpu_count() or 1) // 2)


@contextlib.contextmanager
def patched_defaults(factory: str, **fields):
    """While active, llama_cpp's ``factory`` (``llama_model_default_params``,
    ``llama_context_default_params``) returns params with ``fields`` set: how to give ``Llama()``
    a setting it has no argument for."""
    import llama_cpp.llama as llama_module

    low = llama_module.llama_cpp
    original = getattr(low, factory)

    def params():
        p = original()
        for k, v in fields.items():
            setattr(p, k, v)
        return p

    setattr(low, factory, params)
    try:
        yield
    finally:
        setattr(low, factory, original)


def _no_extra_buffers():
    """Load with ``use_extra_bufts = False`` (llama.cpp's ``--no-repack``).

    ``Llama()`` has no argument for it, so its default model params are patched while one model
    loads. Why: on a CPU with AMX (this machine's Xeon has amx_int8) llama.cpp puts the weights
    into its AMX buffer, and the first ``llama_decode`` then dies with SIGSEGV in
    ``ggml_backend_amx_mul_mat`` (llama-cpp-python 0.3.36 built from source; upstream
    ggml-org/llama.cpp#20824). A segfault cannot be caught, so the extra (repacked) buffer types
    are never used: one code path, the same numbers on every x86 CPU. It is in ``params``.
    """
    return patched_defaults("llama_model_default_params", use_extra_bufts=False)


def load(path: Path, name: str, *, threads: int | None = None, n_ctx: int | None = None) -> LlamaCppModelHandle:
    """Load a GGUF file into a :class:`LlamaCppModelHandle` (``ModelError`` if it cannot be)."""
    try:
        import llama_cpp
    except ImportError as e:  # engine_for() checks first; this is for direct callers
        raise ModelError("the llama.cpp engine needs llama-cpp-python. Install with:\n"
                         "    pip install 'specc[fast]'") from e
    path = Path(path)
    _check_gguf(path)
    threads = int(threads or default_threads())
    try:
        with _no_extra_buffers():
            llm = llama_cpp.Llama(model_path=str(path), n_ctx=int(n_ctx or DEFAULT_N_CTX), n_batch=N_BATCH,
                                  n_threads=threads, n_threads_batch=threads, verbose=False)
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelError(f"llama.cpp cannot load {path}: {e} (a truncated or damaged GGUF file, or an "
                         "architecture this llama.cpp build does not know)") from e
    if n_ctx is None:
        trained = int(llm.metadata.get(f"{llm.metadata.get('general.architecture', '')}.context_length", 0) or 0)
        if 0 < trained < DEFAULT_N_CTX:  # never more context than the model was trained for
            llm.close()
            return load(path, name, threads=threads, n_ctx=trained)
    return LlamaCppModelHandle(llm, path, name, n_ctx=llm.n_ctx(), threads=threads)
