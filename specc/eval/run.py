"""``specc eval``: probes -> free answers of the model under test -> scores -> report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from specc import defaults
from specc.eval.probes import EvalError, Probe, dataset_spec, fresh_probes, load_test_probes
from specc.eval.report import BaselineDelta, EvalReport, ProbeResult, aggregate, compare
from specc.eval.score import SAMPLE_TEMPERATURE, answer_probes, probe_score, score_answer


DEFAULT_PER_RULE = defaults.EVAL_PER_RULE
DEFAULT_MAX_NEW_TOKENS = defaults.EVAL_MAX_NEW_TOKENS


@dataclass(frozen=True)
class EvalOptions:
    data: Path | None = None
    per_rule: int = DEFAULT_PER_RULE
    seed: int = 0
    samples: int = defaults.EVAL_SAMPLES
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    perplexity: bool = False
    store: Path | None = None  # the attacker's store for fresh probes (default .specc/ beside the spec)


def _label(handle) -> str:
    from specc.compile import model_label

    return model_label(handle)


def load_probes(spec, spec_path: Path, options: EvalOptions, *, attacker=None,
                on_event: Callable[..., None] | None = None) -> tuple[list[Probe], list[str]]:
    """The probes of the run and the warnings about them."""
    warnings: list[str] = []
    if options.data is not None:
        probes = load_test_probes(options.data)
        ds = dataset_spec(options.data) or {}
        if ds.get("hash") and ds["hash"] != spec.hash:
            warnings.append(f"{options.data} was compiled from another version of the spec "
                            f"({ds.get('id')} {ds.get('version', '')}, {ds['hash'][:12]}): its probes are scored "
                            "by the rules of SPEC")
        return probes, warnings
    if attacker is None:
        raise EvalError("fresh probes need an attacker model")
    from specc.compile import default_store

    store = options.store or default_store(spec_path)
    probes = fresh_probes(spec, per_rule=options.per_rule, seed=options.seed, attacker=attacker,
                          store_dir=store, on_event=on_event)
    if not probes:
        raise EvalError("the pipeline made no probe for this spec (every scenario was dropped)")
    return probes, warnings


def run_eval(spec, spec_path: Path, options: EvalOptions, *, model, attacker=None,
             baseline: EvalReport | None = None, on_event: Callable[..., None] | None = None) -> EvalReport:
    """Evaluate ``model`` (a loaded :class:`~specc.engines.ModelHandle`) against ``spec``."""
    if options.samples < 1:
        raise EvalError("--samples must be at least 1")
    if options.max_new_tokens < 1:
        raise EvalError("--max-new-tokens must be at least 1")
    say = on_event or (lambda *a, **k: None)
    t0 = time.perf_counter()
    ppl = None
    if options.perplexity:  # first: a model that cannot give it fails before the long part
        from specc.eval.perplexity import PerplexityError, perplexity

        try:
            ppl = perplexity(model)
        except PerplexityError as e:
            raise EvalError(str(e)) from e
    probes, warnings = load_probes(spec, spec_path, options, attacker=attacker, on_event=on_event)
    rules = {r.id: r for r in spec.rules}
    answers = answer_probes(model, probes, samples=options.samples, seed=options.seed,
                            max_new_tokens=options.max_new_tokens,
                            on_progress=lambda done, total: say("answer", done=done, total=total))
    results = []
    for p in probes:
        scores = [score_answer(rules.get(p.rule_id), p, a) for a in answers[p.id]]
        metric, value, reason = probe_score(scores)
        outcomes = [s.outcome for s in scores]
        outcome = max(sorted(set(outcomes)), key=outcomes.count)
        results.append(ProbeResult(id=p.id, rule_id=p.rule_id, boundary=p.boundary, source=p.source, metric=metric,
                                   score=value, outcome=outcome, reason=reason, prompt=p.messages(),
                                   answers=answers[p.id]))
    missing = sorted({p.rule_id for p in probes} - set(rules))
    if missing:
        warnings.append(f"{len(missing)} rule(s) of the probes are not in SPEC and were not scored: "
                        + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    per_rule, overall = aggregate(results)
    rep = EvalReport(
        specc_version=__import__("specc").__version__, model=_label(model), engine=model.engine or "?",
        spec={"id": spec.id, "version": spec.version, "hash": spec.hash},
        source="test-split" if options.data is not None else "fresh",
        data=str(options.data) if options.data is not None else None, probes=len(probes), samples=options.samples,
        temperature=0.0 if options.samples == 1 else SAMPLE_TEMPERATURE, seed=options.seed,
        max_new_tokens=options.max_new_tokens, per_rule=per_rule, perplexity=ppl, warnings=warnings,
        results=results, **overall)
    if baseline is not None:
        rep.baseline = compare(baseline, rep)
    rep.seconds = round(time.perf_counter() - t0, 2)
    return rep


__all__ = ["BaselineDelta", "EvalError", "EvalOptions", "EvalReport", "run_eval"]
