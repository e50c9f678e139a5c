"""``specc improve``: rounds of on-policy pairs → training → the same held-out probes.

Layout of OUT (every file written whole, by a temporary name and a rename)::

    improve.json          the run's options, the spec's hash and the base model (a rerun checks them)
    requests.json         the composed training prompts, the probes, and the decontamination result
    round-0/eval.json     the base model's answers and scores on the probes
    round-R/train.jsonl   round R's pairs (TRL's conversational preference format, with provenance)
    round-R/pairs.json    how round R's requests ended (pair, already-complies, no-chosen, …) and its cost
    round-R/model/        round R's model (``specc train``'s directory: merged weights, card, training.json)
    round-R/eval.json     round R's model on the probes
    round-R/model.gguf    the model as llama.cpp runs it (``--engine llamacpp`` only)
    report.json           per round: compliance and over-refusal, per rule and pooled, paired against the base
                          and the previous round, with 95 % intervals; stage times; the best round
    README.md             the same, to read

Round R samples its pairs from round R−1's model (round 1 from the base): iterative preference
training, so the pairs stay on-policy as the model changes. Each round trains round R−1's model
(its LoRA reference is that model with the adapter off).

**Resumable.** Each stage's output is checked before the stage runs: a rerun after a kill at any
moment redoes only the unfinished stage (training resumes from its last checkpoint).

**Stopping.** After each round the pooled compliance is compared, paired, with the previous
round's; the loop stops when the change is not above zero (the gain stalled or turned), or when
over-refusal rose more than :data:`OVERREFUSAL_SLACK` over the base. The best round is the one
with the highest pooled compliance among those within that slack.

**Engines.** Every round samples and is evaluated through the same engine, named in
``improve.json``: ``"transformers"`` (the default) runs the weights as saved, in batches of 8;
``"llamacpp"`` (the embedded base only) writes every model, the base included, as a ``Q8_0``
GGUF (:mod:`specc.engines.gguf_export`) and runs them on llama.cpp, slower on a 2-core machine
(bench/README.md, efficacy).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from specc import defaults
from specc.eval import instructions
from specc.improve import measure
from specc.improve.pairs import make_pairs
from specc.synth.requests import Request, RequestSet, build

OVERREFUSAL_SLACK = 0.02
FORMAT = "specc-improve/1"


class ImproveError(Exception):
    """The user's input cannot be used (exit 2)."""


class ImproveFailure(Exception):
    """A model or training failed (exit 3)."""


@dataclass(frozen=True)
class ImproveOptions:
    rounds: int = 2
    per_rule: int = 150
    probes_per_rule: int = 100
    lookalikes: int = 150
    lookalike_probes: int = 100
    seed: int = 0
    probe_seed: int = 1
    k: int = 4
    max_new_tokens: int = 96
    eval_tokens: int = 96
    method: str = "dpo"
    epochs: float = 1.0
    batch_size: int = 8
    # measured: at the default scale (150 requests per rule, one epoch: 88 steps on bank) 3e-4 cost +5.6 %
    # perplexity and 2e-4 met every target; at 30 per rule and two epochs (29-35 steps) 3e-4 met them on
    # bank and airline (docs/improve.md)
    learning_rate: float | None = 2e-4
    beta: float = 0.1
    sft_weight: float = 1.0
    anchors: float = 0.5
    engine: str = defaults.IMPROVE_ENGINE

    def key(self) -> dict:
        return asdict(self)


def _write_json(path: Path, data) -> None:
    from specc.files import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ImproveError(f"{path}: cannot be read ({e}); it was not written by this specc run: remove it, "
                           "or use a new -o") from None


def _req_dict(r: Request) -> dict:
    return asdict(r)


def _req_from(d: dict) -> Request:
    return Request(**d)


class Runner:
    """Loads the model of a round for sampling and evaluation: through a GGUF on llama.cpp when given
    the embedded model's GGUF as ``template`` (``--engine llamacpp``), else on transformers."""

    def __init__(self, template: Path | None, say):
        self.template, self.say = template, say

    def handle(self, model_dir: Path, gguf_out: Path):
        from specc.engines import resolve_model

        if self.template is not None:
            if not gguf_out.is_file():
                from specc.engines.gguf_export import export_gguf

                self.say("export", model=str(model_dir), gguf=str(gguf_out))
                gguf_out.parent.mkdir(parents=True, exist_ok=True)
                export_gguf(model_dir, self.template, gguf_out)
            return resolve_model(f"llamacpp:{gguf_out}", engine="llamacpp", reuse=False)
        return resolve_model(str(model_dir), engine="transformers", reuse=False)


def _rel(out: Path, p: Path) -> str:
    try:
        return str(p.relative_to(out))
    except ValueError:
        return str(p)


def improve(spec, spec_path: Path, out: Path, *, base: str = "smollm2", options: ImproveOptions = ImproveOptions(),
            on_event: Callable[..., None] | None = None) -> dict:
    """Run (or resume) the loop; return the report (also written to ``OUT/report.json``)."""
    from specc.train.data import TrainError
    from specc.train.run import TrainOptions, resolve_base, train_model

    say = on_event or (lambda *a, **k: None)
    if options.rounds < 1:
        raise ImproveError("--rounds must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        base_dir, base_label = resolve_base(base)
    except TrainError as e:
        raise ImproveError(str(e)) from None
    from specc.engines.provision import SMOLLM2_ALIASES, smollm2_gguf_path

    import importlib.util

    if options.engine not in defaults.IMPROVE_ENGINES:
        raise ImproveError(f"--engine {options.engine}: expected one of {', '.join(defaults.IMPROVE_ENGINES)}")
    embedded = (base or "smollm2").strip().lower() in SMOLLM2_ALIASES
    has_llamacpp = importlib.util.find_spec("llama_cpp") is not None
    if options.engine == "llamacpp":
        if not embedded:
            raise ImproveError("--engine llamacpp runs the embedded base only (its GGUF is the template every "
                               f"round is written with): use --engine transformers with --model {base}")
        if not has_llamacpp:
            raise ImproveError("--engine llamacpp needs llama-cpp-python: pip install 'specc[fast]', or use "
                               "--engine transformers")
    template = smollm2_gguf_path() if options.engine == "llamacpp" else None
    runner = Runner(template, say)

    # --rounds may change between runs (a longer run continues a shorter one); the rest may not
    head = {"format": FORMAT, "spec": spec.id, "spec_hash": spec.hash, "base": base_label,
            "options": {k: v for k, v in options.key().items() if k != "rounds"}}
    head_path = out / "improve.json"
    if head_path.is_file():
        prev = _read_json(head_path)
        if isinstance(prev, dict) and isinstance(prev.get("options"), dict):
            # a run written before --engine existed ran on llama.cpp where it could (the embedded
            # base, llama-cpp-python installed), else on transformers: it resumes on that engine
            had = "llamacpp" if embedded and has_llamacpp else "transformers"
            prev = {**prev, "options": {"engine": had, **prev["options"]}}
            was = prev["options"]["engine"]
            if was != options.engine and was in defaults.IMPROVE_ENGINES \
                    and {**prev, "options": {**prev["options"], "engine": options.engine}} == head:
                raise ImproveError(f"{out} holds a run on --engine {was}: resume it with --engine {was}, "
                                   "or use a new -o")
        if prev != head:
            changed = sorted(k for k in set(prev) | set(head) if prev.get(k) != head.get(k))
            raise ImproveError(f"{out} holds a run with another {', '.join(changed)}: resume it with the same spec "
                               "and options, or use a new -o")
    else:
        _write_json(head_path, head)

    times: dict[str, float] = {}

    # -- requests
    req_path = out / "requests.json"
    if req_path.is_file():
        data = _read_json(req_path)
        reqs = RequestSet(tuple(map(_req_from, data["train"])), tuple(map(_req_from, data["probes"])),
                          tuple(map(_req_from, data["dropped"])), tuple(tuple(x) for x in data["skipped"]))
    else:
        t0 = time.perf_counter()
        reqs = build(spec, per_rule=options.per_rule, probes_per_rule=options.probes_per_rule,
                     lookalikes=options.lookalikes, lookalike_probes=options.lookalike_probes,
                     seed=options.seed, probe_seed=options.probe_seed)
        _write_json(req_path, {"train": [_req_dict(r) for r in reqs.train],
                               "probes": [_req_dict(r) for r in reqs.probes],
                               "dropped": [_req_dict(r) for r in reqs.dropped],
                               "skipped": [list(x) for x in reqs.skipped]})
        times["requests"] = round(time.perf_counter() - t0, 2)
    if not reqs.rules():
        why = "; ".join(f"{rid}: {w}" for rid, w in reqs.skipped) or "the spec has no rules"
        raise ImproveError(f"no rule of {spec_path} can take part in the loop ({why})")
    say("requests", train=len(reqs.train), probes=len(reqs.probes), dropped=len(reqs.dropped),
        rules=len(reqs.rules()), skipped=len(reqs.skipped))
    probes = list(reqs.probes)

    def evaluate(r: int, model_dir: Path) -> measure.Answers:
        path = out / f"round-{r}" / "eval.json"
        dirty = not path.is_file()
        handle = None
        if not dirty:
            d = _read_json(path)
            got = measure.Answers(d["model"], d["answers"], d["scores"], d["seconds"], d["tokens"],
                                  d.get("perplexity"), d.get("instruction_answers"), d.get("instructions"),
                                  d.get("instructions_set"))
        else:
            handle = runner.handle(model_dir, out / f"round-{r}" / "model.gguf")
            say("eval", round=r, probes=len(probes))
            got = measure.answer_and_score(handle, spec, probes, max_new_tokens=options.eval_tokens,
                                           on_progress=lambda done, total: say("progress", stage=f"eval {r}",
                                                                               done=done, total=total))
        if got.instructions is None or got.instructions_set != instructions.set_hash():
            # an eval written before the instruction set (or with another set): answered now
            handle = handle or runner.handle(model_dir, out / f"round-{r}" / "model.gguf")
            got.instruction_answers = instructions.answer_instructions(handle, max_new_tokens=options.eval_tokens)
            got.instructions = instructions.score(got.instruction_answers)
            got.instructions_set = instructions.set_hash()
            say("instructions", round=r, right=int(sum(got.instructions.values())), of=len(got.instructions))
            dirty = True
        if handle is not None:
            _close(handle)
        if got.perplexity is None:
            got.perplexity = _perplexity(model_dir)
            say("perplexity", round=r, value=round(got.perplexity, 3))
            dirty = True
        if dirty:
            _write_json(path, asdict(got))
        return got

    evals: dict[int, measure.Answers] = {0: evaluate(0, base_dir)}
    model_dirs: dict[int, Path] = {0: base_dir}
    rounds: list[dict] = []
    stopped = None

    def write_report(stopped: str | None, done: bool = True) -> dict:
        best = 0
        best_score = evals[0] and _pooled(probes, evals[0])
        for row in rounds:
            o = row["vs_base"]["overrefusal"]
            within = o is None or o["change"] <= OVERREFUSAL_SLACK
            score = row["vs_base"]["compliance"]["after"] if row["vs_base"]["compliance"] else None
            if within and score is not None and (best_score is None or score > best_score):
                best, best_score = row["round"], score
        report = {"format": FORMAT, "spec": spec.id, "spec_file": str(spec_path), "base": base_label,
                  "options": options.key(), "requests": {"train": len(reqs.train), "probes": len(reqs.probes),
                                                         "probes_dropped_by_decontamination": len(reqs.dropped),
                                                         "rules": reqs.rules(), "skipped": [list(x) for x in reqs.skipped]},
                  "base_eval": {"compliance": measure.rate([evals[0].scores[p.id] for p in probes
                                                            if p.kind == "violation" and evals[0].scores.get(p.id) is not None]),
                                "overrefusal": measure.rate([evals[0].scores[p.id] for p in probes
                                                             if p.kind == "lookalike" and evals[0].scores.get(p.id) is not None]),
                                "perplexity": evals[0].perplexity,
                                "instructions": measure.rate(list((evals[0].instructions or {}).values()))},
                  "rounds": rounds, "done": done, "stopped": stopped, "best_round": best,
                  "best_model": _rel(out, model_dirs[best]) if best else None}
        _write_json(out / "report.json", report)
        from specc.files import write_atomic

        write_atomic(out / "README.md", render_text(report).encode("utf-8"))
        return report

    for r in range(1, options.rounds + 1):
        rdir = out / f"round-{r}"
        rdir.mkdir(parents=True, exist_ok=True)
        # pairs from the previous round's model
        pairs_path, stats_path = rdir / "train.jsonl", rdir / "pairs.json"
        if not stats_path.is_file():
            handle = runner.handle(model_dirs[r - 1], out / f"round-{r - 1}" / "model.gguf")
            say("pairs", round=r, requests=len(reqs.train))
            t0 = time.perf_counter()
            pairs, stats = make_pairs(handle, spec, list(reqs.train), seed=options.seed + 1000 * r, k=options.k,
                                      max_new_tokens=options.max_new_tokens, anchors=options.anchors,
                                      on_progress=lambda n: say("progress", stage=f"pairs {r}", done=n))
            _close(handle)
            from specc.files import write_atomic

            write_atomic(pairs_path, "".join(json.dumps(p.row(), ensure_ascii=False) + "\n"
                                             for p in pairs).encode("utf-8"))
            _write_json(stats_path, {**asdict(stats), "seconds": round(time.perf_counter() - t0, 2)})
        stats = _read_json(stats_path)
        if not stats.get("pairs"):
            stopped = f"round {r} made no pair (the model already complies on every training request, or no " \
                      "chosen side was found)"
            break
        # training
        model_dir = rdir / "model"
        if not (model_dir / "training.json").is_file():
            steps = max(1, math.ceil(options.epochs * stats["pairs"] / options.batch_size))
            say("train", round=r, pairs=stats["pairs"], steps=steps)
            topts = TrainOptions(method=options.method, steps=steps, seed=options.seed + r,
                                 resume=(model_dir / "checkpoints").is_dir(), learning_rate=options.learning_rate,
                                 batch_size=options.batch_size, beta=options.beta,
                                 sft_weight=options.sft_weight)  # train applies it to DPO only
            try:  # the round's directory is the dataset: its one train*.jsonl is the pairs
                train_model(rdir, model_dir, base=str(model_dirs[r - 1]), options=topts,
                            on_event=lambda ev, **kw: say("train-" + ev, round=r, **kw))
            except TrainError as e:
                raise ImproveFailure(f"round {r}: training failed: {e}") from e
        model_dirs[r] = model_dir
        evals[r] = evaluate(r, model_dir)
        vs_base = measure.compare(probes, evals[0], evals[r])
        vs_prev = measure.compare(probes, evals[r - 1], evals[r])
        training = _read_json(model_dir / "training.json")
        ppl = {"base": evals[0].perplexity, "after": evals[r].perplexity,
               "change": (evals[r].perplexity / evals[0].perplexity - 1) if evals[0].perplexity else None}
        rounds.append({"round": r, "pairs": stats["pairs"], "pair_outcomes": stats.get("outcomes"), "perplexity": ppl,
                       "instructions": measure.instructions_change(evals[0], evals[r]),
                       "chosen_from": stats.get("chosen_from"), "rejected_from": stats.get("rejected_from"),
                       "sampling": {"calls": stats.get("calls"), "tokens": stats.get("tokens"),
                                    "seconds": stats.get("seconds")},
                       "training": {"steps": training.get("steps_done"), "loss": training.get("train_loss"),
                                    "parameters": training.get("parameters")},
                       "eval_seconds": round(evals[r].seconds, 2),
                       "vs_base": vs_base, "vs_previous": vs_prev})
        write_report(None, done=False)  # a kill in a later round leaves the finished rounds' report
        say("round", round=r, vs_base=vs_base, vs_previous=vs_prev)
        c = vs_prev["compliance"]
        o = vs_base["overrefusal"]
        if o and o["change"] > OVERREFUSAL_SLACK:
            stopped = f"over-refusal rose {o['change']:+.3f} over the base after round {r}"
            break
        if c and c["change"] <= 0 and r < options.rounds:
            stopped = f"pooled compliance did not rise in round {r} ({c['change']:+.3f})"
            break

    return write_report(stopped)


def _perplexity(model_dir: Path) -> float:
    from specc.engines import resolve_model
    from specc.eval.perplexity import perplexity

    handle = resolve_model(str(model_dir), engine="transformers", reuse=False)
    try:
        return float(perplexity(handle).value)
    finally:
        _close(handle)


def _pooled(probes, ans: measure.Answers) -> float | None:
    xs = [ans.scores[p.id] for p in probes if p.kind == "violation" and ans.scores.get(p.id) is not None]
    return sum(xs) / len(xs) if xs else None


def _close(handle) -> None:
    close = getattr(handle, "close", None)
    if callable(close):
        close()


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _pts(p: dict | None) -> str:
    if not p:
        return "n/a"
    lo, hi = p["interval"]
    return f"{100 * p['change']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def render_text(report: dict) -> str:
    lines = [f"# specc improve: {report['spec']} on {report['base']}", ""]
    rq = report["requests"]
    lines.append(f"{rq['train']} training requests, {rq['probes']} held-out probes over {len(rq['rules'])} rule(s) "
                 f"({rq['probes_dropped_by_decontamination']} probe(s) dropped: they shared an 8-word sequence with "
                 "a training request).")
    for rid, why in rq["skipped"]:
        lines.append(f"Not in the loop: {rid}: {why}")
    be = report["base_eval"]
    lines += ["", f"Base: compliance {_pct(be['compliance']['rate'])} of {be['compliance']['n']} probes, "
                  f"over-refusal {_pct(be['overrefusal']['rate'])} of {be['overrefusal']['n']} lookalike probes.", ""]
    for row in report["rounds"]:
        vb = row["vs_base"]
        lines.append(f"## Round {row['round']}: {row['pairs']} pairs, {row['training']['steps']} training steps")
        lines.append(f"- compliance (pooled, paired vs base): {_pct(vb['compliance']['after'] if vb['compliance'] else None)}"
                     f", change {_pts(vb['compliance'])}")
        lines.append(f"- over-refusal (lookalike probes, vs base): "
                     f"{_pct(vb['overrefusal']['after'] if vb['overrefusal'] else None)}, change {_pts(vb['overrefusal'])}")
        for rid, p in vb["rules"].items():
            lines.append(f"  - {rid}: {_pct(p['before'])} → {_pct(p['after'])} ({_pts(p)}, n={p['n']})")
        ppl = row["perplexity"]
        if ppl["change"] is not None:
            lines.append(f"- perplexity (capability): {ppl['base']:.2f} → {ppl['after']:.2f} ({100 * ppl['change']:+.1f} %)")
        ins = row.get("instructions")
        if ins:
            lines.append(f"- instruction set (capability, {ins['n']} general requests checked by code, paired vs base): "
                         f"{_pct(ins['before'])} → {_pct(ins['after'])}, change {_pts(ins)}")
        lines.append(f"- requests: {json.dumps(row['pair_outcomes'])}; chosen from {json.dumps(row['chosen_from'])}")
        s = row["sampling"]
        lines.append(f"- sampling: {s['calls']} calls, {s['tokens']} tokens, {s['seconds']} s; eval "
                     f"{row['eval_seconds']} s")
        lines.append("")
    status = report["stopped"] or ("all rounds done" if report["done"] else
                                   f"not yet: {len(report['rounds'])} of {report['options']['rounds']} round(s) done")
    lines.append(f"Stopped: {status}. Best round{'' if report['done'] else ' so far'}: {report['best_round']}"
                 + (f" ({report['best_model']})" if report["best_model"] else " (the base)") + ".")
    return "\n".join(lines) + "\n"
