"""Engines benchmark: the same compile through transformers, llama.cpp and a local OpenAI-compatible
server, side by side in one run.

Each engine compiles the same spec with the same settings into a fresh store (so every model call is
generated) and is timed end to end, model loading excluded (reported apart). Output tokens are
counted the same way for every engine: each generated JSON text tokenized with the SmolLM2 tokenizer
(the same model runs on every engine), so tokens/s compare like with like.

Sides:

``transformers``  the embedded SmolLM2 converted to a plain model, Outlines over transformers,
                  batches of ``--batch-size``;
``llamacpp``      the shipped GGUF through llama-cpp-python, one prompt at a time;
``server@C``      ``python -m llama_cpp.server`` started here on 127.0.0.1 with the same GGUF,
                  ``--model openai:…  --dialect json_object`` at concurrency C (``--concurrency``).

Target: llama.cpp compile throughput (tokens/s and verified pairs/s) >= 4x transformers'.
Exit 1 if it is missed. The two engines give different texts (different kernels and constrained
decoders), so their verified counts differ; tokens/s is the primary measure.

    python bench/engines.py                                  # built-in 4-rule spec, all sides
    python bench/engines.py --sides llamacpp transformers    # no server
    python bench/engines.py --spec examples/support/assistant.spec --max-chars 96 --format json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile import SPEC  # noqa: E402  (the 4-rule spec of bench/compile.py)

TARGET = 4.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TokenCounter:
    """Counts the tokens of every text an engine returns, with one tokenizer for all engines."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.tokens = 0
        self.calls = 0

    def wrap(self, handle):
        orig = handle.generate_json

        def generate_json(prompts, output_type, max_new_tokens, seeds, **kw):
            out = orig(prompts, output_type, max_new_tokens, seeds, **kw)
            self.calls += len(out)
            self.tokens += sum(len(self.tok(t, add_special_tokens=False).input_ids) for t in out)
            return out

        raw = handle.generate_raw

        def generate_raw(prompts, max_new_tokens, seeds, **kw):
            texts, n = raw(prompts, max_new_tokens, seeds, **kw)
            self.calls += len(texts)
            self.tokens += sum(len(self.tok(t, add_special_tokens=False).input_ids) for t in texts)
            return texts, n

        handle.generate_json = generate_json
        handle.generate_raw = generate_raw
        return handle


def compile_once(handle, spec, spec_path: Path, work: Path, tag: str, args, counter: TokenCounter) -> dict:
    from specc.compile import CompileOptions, compile_spec

    opts = CompileOptions(out_dir=work / f"out-{tag}", store=work / f"store-{tag}", per_rule=args.per_rule,
                          rounds=args.rounds, retries=args.retries, batch_size=args.batch_size,
                          answer_chars=args.max_chars, candidates=args.candidates)
    counter.tokens = counter.calls = 0
    t0 = time.perf_counter()
    report = compile_spec(spec, spec_path, opts, model=handle)
    secs = time.perf_counter() - t0
    s = report.stats
    return {"seconds": round(secs, 1), "model_calls": s.generated, "scenarios": s.scenarios,
            "verified": s.verified, "dropped": s.dropped, "tokens": counter.tokens,
            "tokens_per_s": round(counter.tokens / secs, 1), "verified_per_min": round(60 * s.verified / secs, 2),
            "dropped_reasons": s.dropped_reasons}


def _files(d: Path) -> dict:
    """The dataset's files, the manifest without its run statistics (times differ)."""
    out = {}
    for p in sorted(d.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "manifest.json":
                m = json.loads(data)
                m.pop("run", None)
                data = json.dumps(m, sort_keys=True).encode()
            out[str(p.relative_to(d))] = data
    return out


def start_server(gguf: Path, port: int, n_ctx: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", str(n_ctx)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not answer within 120 s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=None, help="spec file (default: bench/compile.py's 4-rule spec)")
    ap.add_argument("--sides", nargs="+", default=["llamacpp", "transformers", "server"],
                    choices=["llamacpp", "llamacpp-cold", "transformers", "server"])
    ap.add_argument("--max-chars", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument("--per-rule", type=int, default=1)
    ap.add_argument("--candidates", type=int, default=4, help="on-policy candidates per scenario (the CLI's default 4)")
    ap.add_argument("--batch-size", type=int, default=8, help="the transformers engine's batch (default 8)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--n-ctx", type=int, default=4096, help="the server's context (default 4096)")
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args(argv)

    from specc.ir.resolve import load
    from specc.engines import resolve_model
    from specc.engines.provision import load_smollm2_tokenizer, smollm2_gguf_path

    counter = TokenCounter(load_smollm2_tokenizer())
    result: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                "load_avg_start": [round(x, 2) for x in os.getloadavg()]},
                    "settings": {"max_chars": args.max_chars, "rounds": args.rounds, "retries": args.retries,
                                 "per_rule": args.per_rule, "batch_size": args.batch_size,
                                 "candidates": args.candidates},
                    "spec": str(args.spec) if args.spec else "bench/compile.py's 4-rule spec", "sides": {}}
    with tempfile.TemporaryDirectory(prefix="specc-bench-engines-") as tmp:
        work = Path(tmp)
        spec_path = args.spec
        if spec_path is None:
            spec_path = work / "bench.spec"
            spec_path.write_text(SPEC)
        loaded = load(spec_path)
        if loaded.spec is None or any(d.level == "error" for d in loaded.diagnostics):
            print("\n".join(str(d) for d in loaded.diagnostics), file=sys.stderr)
            return 2

        def side(tag: str, make) -> None:
            t0 = time.perf_counter()
            handle = counter.wrap(make())
            load_s = time.perf_counter() - t0
            res = compile_once(handle, loaded.spec, spec_path, work, tag, args, counter)
            res["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
            res.update(model=handle.name, engine=handle.engine, load_s=round(load_s, 1))
            if hasattr(handle, "reused_tokens"):  # llama.cpp: prompt tokens kept in the KV cache / evaluated
                res.update(prompt_tokens_reused=handle.reused_tokens, prompt_tokens_evaluated=handle.evaluated_tokens)
            result["sides"][tag] = res
            if args.format == "text":
                print(f"{tag:>14}: {res['seconds']:7.1f} s  {res['tokens']:6d} tok  {res['tokens_per_s']:6.1f} tok/s  "
                      f"{res['model_calls']:4d} calls  verified {res['verified']}/{res['scenarios']}  "
                      f"({res['verified_per_min']}/min)  load {res['load_s']} s", file=sys.stderr, flush=True)

        def cold_llamacpp():
            handle = resolve_model("smollm2", engine="llamacpp", reuse=False)
            handle.keep_prefix = False
            return handle

        for name in args.sides:  # in the order given: put the slow side between two fast ones to see drift
            if name in ("llamacpp", "llamacpp-cold", "transformers"):
                side(name, cold_llamacpp if name == "llamacpp-cold" else
                     lambda name=name: resolve_model("smollm2", engine=name, batch_size=args.batch_size, reuse=False))
        if {"llamacpp", "llamacpp-cold"} <= set(result["sides"]):
            # the kept prefix must not change a byte of the data
            result["llamacpp_kept_prefix_same_bytes"] = _files(work / "out-llamacpp") == _files(work / "out-llamacpp-cold")
        if "server" in args.sides:
            port = _free_port()
            proc = start_server(smollm2_gguf_path(), port, args.n_ctx, work / "server.log")
            try:
                for c in args.concurrency:
                    side(f"server@{c}", lambda c=c: resolve_model(f"openai:http://127.0.0.1:{port}/v1",
                                                                  concurrency=c, dialect="json_object", reuse=False))
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()

    sides = result["sides"]
    targets = {}
    if "llamacpp" in sides and "transformers" in sides:
        lc, tf = sides["llamacpp"], sides["transformers"]
        result["speedup"] = {
            "tokens_per_s": round(lc["tokens_per_s"] / max(tf["tokens_per_s"], 1e-9), 2),
            "wall": round(tf["seconds"] / max(lc["seconds"], 1e-9), 2),
            "verified_per_min": round(lc["verified_per_min"] / max(tf["verified_per_min"], 1e-9), 2),
        }
        targets[f"llamacpp/transformers tokens/s >= {TARGET}"] = result["speedup"]["tokens_per_s"] >= TARGET
    result["targets"] = targets
    result["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        if "speedup" in result:
            sp = result["speedup"]
            print(f"llama.cpp vs transformers: tokens/s {sp['tokens_per_s']}x, wall {sp['wall']}x, "
                  f"verified/min {sp['verified_per_min']}x")
        for k, ok in targets.items():
            print(f"{'met' if ok else 'MISSED'}: {k}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
