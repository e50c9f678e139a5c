"""K candidates of one prompt on llama.cpp: one sequence after another (the engine) vs K sequences
decoded together, one ``llama_decode`` a step (what the engine does not do), interleaved.

The engine generates a scenario's K on-policy candidates one after another, sharing the prompt's
KV cache (:meth:`LlamaCppModelHandle._prefill`). llama.cpp can also decode K sequences in one
batch a step (``n_seq_max`` K, the prompt's cache copied with ``llama_memory_seq_cp``). This bench
measures what that would save, and checks what it would cost: whether the batched texts equal
the one-at-a-time texts (they do not: the logits depend on the batch) and whether they are at
least the same from run to run for a fixed group (they are).

    python bench/multiseq.py [--k 4] [--tokens 48] [--threads 1] [--rounds 3] [--format json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MESSAGES = [
    {"role": "system", "content": "You are a helpful support assistant for Acme. Never share card numbers."},
    {"role": "user", "content": "Hi, can you tell me where my order AC-20931 is? It was due yesterday."},
]


def parallel_sequences(n: int):
    """Contexts made while this is active hold ``n`` sequences (``Llama()`` sets it only for
    embeddings), in one unified KV cache."""
    from specc.engines.llamacpp import patched_defaults

    return patched_defaults("llama_context_default_params", n_seq_max=n, kv_unified=True)


def sample(logits, rng, temperature: float, n_vocab: int) -> int:
    """The engine's multinomial sampler (:meth:`LlamaCppModelHandle._decode`)."""
    import numpy as np

    z = logits / float(temperature)
    z -= z.max()
    cdf = np.cumsum(np.exp(z))
    return min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), n_vocab - 1)


def one_after_another(h, toks, k: int, n: int, temperature: float):
    h.forget()  # the first candidate evaluates the prompt; the others reuse its KV cache
    return [h._decode(toks, n, 1000 + i, temperature) for i in range(k)]


def together(h, toks, k: int, n: int, temperature: float):
    import llama_cpp
    import numpy as np

    llm, ctx = h.llama, h.llama.ctx
    mem = llama_cpp.llama_get_memory(ctx)
    llama_cpp.llama_memory_clear(mem, True)
    h.forget()
    llm.n_tokens = 0
    batch = llama_cpp.llama_batch_init(max(len(toks), k), 0, k)
    try:
        batch.n_tokens = len(toks)
        for i, t in enumerate(toks):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, i == len(toks) - 1
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed on the prompt")
        first = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(h.n_vocab,)).astype(np.float64)
        for s in range(1, k):
            llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
        rngs = [np.random.default_rng(1000 + s) for s in range(k)]
        logits = {s: first.copy() for s in range(k)}
        outs: list[list[int]] = [[] for _ in range(k)]
        live = list(range(k))
        for step in range(n):
            nxt = []
            for s in live:
                t = sample(logits[s], rngs[s], temperature, h.n_vocab)
                outs[s].append(t)
                if not llama_cpp.llama_vocab_is_eog(h._vocab, t):
                    nxt.append((s, t))
            if not nxt or step == n - 1:
                break
            batch.n_tokens = len(nxt)
            for i, (s, t) in enumerate(nxt):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, len(toks) + step, 1
                batch.seq_id[i][0], batch.logits[i] = s, True
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            for i, (s, _) in enumerate(nxt):
                ptr = llama_cpp.llama_get_logits_ith(ctx, i)
                logits[s] = np.ctypeslib.as_array(ptr, shape=(h.n_vocab,)).astype(np.float64)
            live = [s for s, _ in nxt]
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_memory_clear(mem, True)
    return outs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=4, help="candidates of the prompt (the CLI's --candidates, default 4)")
    ap.add_argument("--tokens", type=int, default=48, help="new tokens a candidate at most")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args(argv)

    from specc.engines import llamacpp
    from specc.engines.provision import smollm2_gguf_path

    with parallel_sequences(args.k):
        h = llamacpp.load(smollm2_gguf_path(), "smollm2+multiseq", threads=args.threads)
    toks = h.prompt_tokens(MESSAGES)
    rounds, texts = [], {"one_after_another": [], "together": []}
    for _ in range(args.rounds):
        row = {}
        for side, fn in (("one_after_another", one_after_another), ("together", together)):
            t = time.perf_counter()
            outs = fn(h, toks, args.k, args.tokens, args.temperature)
            dt = time.perf_counter() - t
            row[side] = round(sum(map(len, outs)) / dt, 1)
            texts[side].append(outs)
        row["ratio"] = round(row["together"] / row["one_after_another"], 2)
        rounds.append(row)
    result = {
        "machine": {"cpus": os.cpu_count(), "load_avg_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": vars(args) | {"prompt_tokens": len(toks)},
        "rounds_tokens_per_s": rounds,
        "best": {s: max(r[s] for r in rounds) for s in ("one_after_another", "together")},
        "together_same_every_round": all(o == texts["together"][0] for o in texts["together"]),
        "one_after_another_same_every_round": all(o == texts["one_after_another"][0] for o in texts["one_after_another"]),
        "together_equals_one_after_another": [a == b for a, b in zip(texts["together"][0], texts["one_after_another"][0])],
    }
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        for i, r in enumerate(rounds):
            print(f"round {i}: one after another {r['one_after_another']} tok/s, together {r['together']} tok/s "
                  f"({r['ratio']}x)")
        print(f"together: the same texts every round: {result['together_same_every_round']}; "
              f"equal to one after another: {result['together_equals_one_after_another']}")
    h.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
