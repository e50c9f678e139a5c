"""Raw decode speed of the embedded SmolLM2 on each engine, side by side and interleaved.

The same 8 chat prompts (free text, sampled at temperature 0.8, 48 new tokens at most) go through
the transformers engine (one batch of 8) and the llama.cpp engine at 1 and at 2 threads (one prompt
at a time, every prompt from an empty KV cache), round after round, so every engine sees the same
machine load. Tokens/s counts each engine's own generated tokens. It also checks that llama.cpp
gives the same texts at 1 and 2 threads (it is in no store key), and measures the transformers
engine a second time with its linear weights row-major, as PyTorch loads them (the engine stores
them column-major, `specc.engines.transformers.column_major_linears`): same texts, other speed.

    python bench/decode.py                 # 3 rounds
    python bench/decode.py --rounds 5 --format json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

PROMPTS = [[{"role": "system", "content": f"You are Acme's support assistant number {i}. Be brief and kind."},
            {"role": "user", "content": "My parcel never arrived. Can I get a refund? It was order AC-40112. " * 3}]
           for i in range(8)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args(argv)

    from specc.engines import resolve_model

    row_major = resolve_model("smollm2", engine="transformers", batch_size=8, reuse=False)
    for m in row_major.model.modules():
        if type(m).__name__ == "Linear":
            m.weight.data = m.weight.data.contiguous()
    sides = {
        "transformers (batch 8)": resolve_model("smollm2", engine="transformers", batch_size=8, reuse=False),
        "transformers, row-major": row_major,
        "llama.cpp, 1 thread": resolve_model("smollm2", engine="llamacpp", threads=1, reuse=False),
        "llama.cpp, 2 threads": resolve_model("smollm2", engine="llamacpp", threads=2, reuse=False),
    }
    for h in sides.values():
        if hasattr(h, "keep_prefix"):
            h.keep_prefix = False
    seeds = list(range(len(PROMPTS)))
    rows: dict[str, list[float]] = {name: [] for name in sides}
    texts: dict[str, list[str]] = {}
    result = {"cpus": os.cpu_count(), "load_avg_start": [round(x, 2) for x in os.getloadavg()], "rounds": []}
    for r in range(args.rounds):
        this = {}
        for name, h in sides.items():
            t0 = time.perf_counter()
            out, n = h.generate_raw(PROMPTS, args.max_new_tokens, seeds, temperature=0.8)
            secs = time.perf_counter() - t0
            rows[name].append(n / secs)
            texts.setdefault(name, out)
            this[name] = {"seconds": round(secs, 2), "tokens": n, "tokens_per_s": round(n / secs, 1)}
            if args.format == "text":
                print(f"round {r + 1}  {name:>24}: {secs:6.2f} s  {n:4d} tok  {n / secs:6.1f} tok/s", file=sys.stderr)
        result["rounds"].append(this)
    best = {name: round(max(v), 1) for name, v in rows.items()}
    result["best_tokens_per_s"] = best
    result["llamacpp_same_texts_1_and_2_threads"] = texts["llama.cpp, 1 thread"] == texts["llama.cpp, 2 threads"]
    result["transformers_same_texts_row_and_column_major"] = (
        texts["transformers (batch 8)"] == texts["transformers, row-major"])
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        tf = best["transformers (batch 8)"]
        for name, v in best.items():
            print(f"{name:>24}: best {v} tok/s ({v / tf:.2f}x transformers)")
        print(f"llama.cpp texts identical at 1 and 2 threads: {result['llamacpp_same_texts_1_and_2_threads']}")
        print("transformers texts identical, row- and column-major weights: "
              f"{result['transformers_same_texts_row_and_column_major']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
