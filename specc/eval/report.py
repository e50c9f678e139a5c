"""The result of an eval as a typed file (``EVAL.json``), its renderings, and the change against
an earlier run (``--baseline``).

Numbers: per rule, **compliance** is the mean score of its ``violation`` and ``conflict`` probes
and **over-refusal** the mean score of its ``lookalike`` probes, each with ``n`` (probes scored)
and a 95 % Wilson interval; the same per boundary. The overall ``compliance`` and
``overrefusal`` are the mean over the rules that have a value (each rule weighs the same
whatever its probe count); ``compliance_pooled`` / ``overrefusal_pooled`` pool every probe, with
an interval. Probes that cannot be scored are counted under ``not_scored`` with their reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specc.defaults import BOUNDARIES
from specc.eval.score import diff_interval, wilson
from specc.files import validation_problem

METRICS = ("compliance", "overrefusal")


class Rate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rate: float | None = None
    n: int = 0
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, values: list[float]) -> "Rate":
        if not values:
            return cls()
        ci = wilson(sum(values), len(values))
        assert ci is not None
        return cls(rate=sum(values) / len(values), n=len(values), low=ci[0], high=ci[1])

    def interval(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)


class RuleResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    compliance: float | None = Field(None, description="Mean score of the violation and conflict probes")
    overrefusal: float | None = Field(None, description="Mean score of the lookalike probes")
    n: int = Field(0, description="Probes of the rule that were scored")
    compliance_interval: tuple[float, float] | None = None
    overrefusal_interval: tuple[float, float] | None = None
    n_compliance: int = 0
    n_overrefusal: int = 0
    not_scored: int = 0
    not_scored_reasons: dict[str, int] = Field(default_factory=dict)
    boundaries: dict[str, Rate] = Field(default_factory=dict)


class ProbeResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    rule_id: str
    boundary: str
    source: str
    metric: str | None = None
    score: float | None = None
    outcome: str = "n/a"  # complies | violates | overrefuses | helps | n/a (majority of the samples)
    reason: str | None = None
    prompt: list[dict] = Field(default_factory=list)
    answers: list[str] = Field(default_factory=list)


class Perplexity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: float
    text: str = Field(description="What the text is: the stdlib module and the slice")
    chars: int
    tokens: int
    window: int
    sha256: str = Field(description="sha256 of the exact text: two runs compare only when it is the same")
    python: str


class RuleDelta(BaseModel):
    compliance: float | None = None
    compliance_interval: tuple[float, float] | None = None
    overrefusal: float | None = None
    overrefusal_interval: tuple[float, float] | None = None


class BaselineDelta(BaseModel):
    model_config = ConfigDict(extra="ignore")

    baseline_model: str
    compliance: float | None = None
    overrefusal: float | None = None
    compliance_pooled: float | None = None
    compliance_pooled_interval: tuple[float, float] | None = None
    overrefusal_pooled: float | None = None
    overrefusal_pooled_interval: tuple[float, float] | None = None
    perplexity: float | None = Field(None, description="Relative change (0.05 = +5 %), same text only")
    shared_probes: int = 0
    per_rule: dict[str, RuleDelta] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class EvalReport(BaseModel):
    """What ``specc eval -o EVAL.json`` writes and ``--baseline EVAL.json`` reads back."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["specc-eval"] = "specc-eval"
    specc_version: str
    model: str
    engine: str
    spec: dict
    source: str = Field(description="test-split (of `data`) or fresh (planned with `seed`)")
    data: str | None = None
    probes: int
    samples: int = 1
    temperature: float = 0.0
    seed: int = 0
    max_new_tokens: int
    compliance: float | None = Field(None, description="Mean over rules of their compliance")
    overrefusal: float | None = Field(None, description="Mean over rules of their over-refusal")
    compliance_pooled: Rate = Field(default_factory=Rate)
    overrefusal_pooled: Rate = Field(default_factory=Rate)
    per_rule: dict[str, RuleResult] = Field(default_factory=dict)
    not_scored: dict[str, int] = Field(default_factory=dict)
    perplexity: Perplexity | None = None
    baseline: BaselineDelta | None = None
    warnings: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    results: list[ProbeResult] = Field(default_factory=list)

    def dumps(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


class ReportError(Exception):
    pass


def read_report(path: Path) -> EvalReport:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"cannot read {path}: {e}") from e
    try:
        return EvalReport.model_validate_json(text)
    except ValidationError as e:
        raise ReportError(f"{path} is not a `specc eval -o` file ({validation_problem(e)})") from e


# -- aggregation -----------------------------------------------------------------------------------


# the scored boundaries first (compliance), then the lookalikes (over-refusal)
_REPORT_ORDER = (*(b for b in BOUNDARIES if b != "lookalike"), "lookalike")


def aggregate(results: Iterable[ProbeResult], rule_ids: Iterable[str] = ()) -> tuple[dict[str, RuleResult], dict]:
    """Per-rule results and the overall numbers of a set of probe results."""
    results = list(results)
    by_rule: dict[str, list[ProbeResult]] = {rid: [] for rid in rule_ids}
    for r in results:
        by_rule.setdefault(r.rule_id, []).append(r)
    per_rule: dict[str, RuleResult] = {}
    for rid in sorted(by_rule):
        rs = by_rule[rid]
        if not rs:
            continue
        comp = [r.score for r in rs if r.metric == "compliance" and r.score is not None]
        over = [r.score for r in rs if r.metric == "overrefusal" and r.score is not None]
        rc, ro = Rate.of(comp), Rate.of(over)
        reasons: dict[str, int] = {}
        for r in rs:
            if r.score is None:
                reasons[r.reason or "not scored"] = reasons.get(r.reason or "not scored", 0) + 1
        bounds = {}
        for b in _REPORT_ORDER:
            vals = [r.score for r in rs if r.boundary == b and r.score is not None]
            if any(r.boundary == b for r in rs):
                bounds[b] = Rate.of(vals)
        per_rule[rid] = RuleResult(compliance=rc.rate, overrefusal=ro.rate, n=len(comp) + len(over),
                                   compliance_interval=rc.interval(), overrefusal_interval=ro.interval(),
                                   n_compliance=len(comp), n_overrefusal=len(over),
                                   not_scored=sum(reasons.values()), not_scored_reasons=dict(sorted(reasons.items())),
                                   boundaries=bounds)

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    not_scored: dict[str, int] = {}
    for rr in per_rule.values():
        for k, v in rr.not_scored_reasons.items():
            not_scored[k] = not_scored.get(k, 0) + v
    overall = {
        "compliance": mean(rr.compliance for rr in per_rule.values()),
        "overrefusal": mean(rr.overrefusal for rr in per_rule.values()),
        "compliance_pooled": Rate.of([r.score for r in results if r.metric == "compliance" and r.score is not None]),
        "overrefusal_pooled": Rate.of([r.score for r in results if r.metric == "overrefusal" and r.score is not None]),
        "not_scored": dict(sorted(not_scored.items())),
    }
    return per_rule, overall


# -- baseline ----------------------------------------------------------------------------------------


def _sub(a, b):
    return None if a is None or b is None else a - b


def _rate_delta(old: Rate, new: Rate) -> tuple[float | None, tuple[float, float] | None]:
    if old.rate is None or new.rate is None:
        return None, None
    return new.rate - old.rate, diff_interval(old.rate, old.interval(), new.rate, new.interval())


def compare(base: EvalReport, cur: EvalReport) -> BaselineDelta:
    """The change from ``base`` to ``cur``, per rule (with Newcombe intervals) and overall."""
    warnings = []
    shared = {r.id for r in base.results} & {r.id for r in cur.results}
    if base.spec.get("hash") != cur.spec.get("hash"):
        warnings.append(f"the baseline was run against another version of the spec ({base.spec.get('hash', '?')[:12]})")
    if len(shared) < max(len(base.results), len(cur.results)):
        warnings.append(f"the runs share {len(shared)} of {max(base.probes, cur.probes)} probes: "
                        "a change may come from the probes, not the model")
    per_rule = {}
    for rid in sorted(set(base.per_rule) | set(cur.per_rule)):
        b, c = base.per_rule.get(rid), cur.per_rule.get(rid)
        if b is None or c is None:
            continue
        d = RuleDelta()
        for m in METRICS:
            bv, cv = getattr(b, m), getattr(c, m)
            bi, ci = getattr(b, f"{m}_interval"), getattr(c, f"{m}_interval")
            if bv is not None and cv is not None and bi is not None and ci is not None:
                setattr(d, m, cv - bv)
                setattr(d, f"{m}_interval", diff_interval(bv, bi, cv, ci))
        per_rule[rid] = d
    cp, cpi = _rate_delta(base.compliance_pooled, cur.compliance_pooled)
    op, opi = _rate_delta(base.overrefusal_pooled, cur.overrefusal_pooled)
    ppl = None
    if base.perplexity and cur.perplexity:
        if base.perplexity.sha256 == cur.perplexity.sha256:
            ppl = cur.perplexity.value / base.perplexity.value - 1
        else:
            warnings.append("the perplexity texts differ (another Python version?): no perplexity change")
    return BaselineDelta(baseline_model=base.model, compliance=_sub(cur.compliance, base.compliance),
                         overrefusal=_sub(cur.overrefusal, base.overrefusal), compliance_pooled=cp,
                         compliance_pooled_interval=cpi, overrefusal_pooled=op, overrefusal_pooled_interval=opi,
                         perplexity=ppl, shared_probes=len(shared), per_rule=per_rule, warnings=warnings)


# -- rendering -------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci(iv) -> str:
    return "" if iv is None else f"[{100 * iv[0]:.0f}, {100 * iv[1]:.0f}]"


def _signed(x: float | None, iv=None) -> str:
    if x is None:
        return "n/a"
    s = f"{100 * x:+.1f}"
    return f"{s} [{100 * iv[0]:+.0f}, {100 * iv[1]:+.0f}]" if iv is not None else s


def _headline(rep: EvalReport) -> list[str]:
    src = f"test split of {rep.data}" if rep.source == "test-split" else f"fresh probes (seed {rep.seed})"
    how = "1 greedy answer each" if rep.samples == 1 else f"{rep.samples} answers each at T={rep.temperature:g}"
    return [f"model {rep.model} ({rep.engine}) against {rep.spec.get('id')} {rep.spec.get('version', '')}".rstrip(),
            f"{rep.probes} probes from the {src}, {how}"]


def _rule_rows(rep: EvalReport) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for rid, rr in rep.per_rule.items():
        comp = f"{_pct(rr.compliance)} {_ci(rr.compliance_interval)}".strip()
        over = f"{_pct(rr.overrefusal)} {_ci(rr.overrefusal_interval)}".strip()
        na = ""
        if rr.not_scored:
            na = "; ".join(f"{n} {reason}" for reason, n in rr.not_scored_reasons.items())
        rows.append((rid, comp, over, str(rr.n), na))
    return rows


def render_text(rep: EvalReport) -> str:
    lines = _headline(rep)
    rows = _rule_rows(rep)
    head = ("rule", "compliance", "over-refusal", "n", "not scored")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines.append("")
    lines.append("  ".join(h.ljust(w) for h, w in zip(head[:4], widths)) + "  " + head[4])
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + ("  " + r[4] if r[4] else ""))
    lines.append("")
    lines.append(f"overall (mean over rules): compliance {_pct(rep.compliance)}, over-refusal {_pct(rep.overrefusal)}")
    cp, op = rep.compliance_pooled, rep.overrefusal_pooled
    lines.append(f"pooled over probes: compliance {_pct(cp.rate)} {_ci(cp.interval())} (n={cp.n}), "
                 f"over-refusal {_pct(op.rate)} {_ci(op.interval())} (n={op.n})")
    if rep.not_scored:
        lines.append("not scored: " + ", ".join(f"{n} × {k}" for k, n in rep.not_scored.items()))
    if rep.perplexity:
        p = rep.perplexity
        lines.append(f"perplexity {p.value:.3f} on {p.text} ({p.tokens} tokens)")
    if rep.baseline:
        lines.append("")
        lines.extend(render_delta_text(rep.baseline))
    for w in rep.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines) + "\n"


def render_delta_text(d: BaselineDelta) -> list[str]:
    lines = [f"change against the baseline ({d.baseline_model}, {d.shared_probes} shared probes), in points "
             "[95% interval]:"]
    for rid, rd in d.per_rule.items():
        lines.append(f"  {rid}: compliance {_signed(rd.compliance, rd.compliance_interval)}, "
                     f"over-refusal {_signed(rd.overrefusal, rd.overrefusal_interval)}")
    lines.append(f"  overall (mean over rules): compliance {_signed(d.compliance)}, over-refusal {_signed(d.overrefusal)}")
    lines.append(f"  pooled: compliance {_signed(d.compliance_pooled, d.compliance_pooled_interval)}, "
                 f"over-refusal {_signed(d.overrefusal_pooled, d.overrefusal_pooled_interval)}")
    if d.perplexity is not None:
        lines.append(f"  perplexity {100 * d.perplexity:+.1f}%")
    lines.extend(f"  warning: {w}" for w in d.warnings)
    return lines


def render_markdown(rep: EvalReport) -> str:
    h = _headline(rep)
    lines = [f"### specc eval: {h[0]}", "", h[1], "",
             "| rule | compliance | over-refusal | n | not scored |", "|---|---|---|---:|---|"]
    for rid, comp, over, n, na in _rule_rows(rep):
        lines.append(f"| `{rid}` | {comp} | {over} | {n} | {na} |")
    lines.append(f"| **overall** (mean over rules) | **{_pct(rep.compliance)}** | **{_pct(rep.overrefusal)}** | "
                 f"{rep.compliance_pooled.n + rep.overrefusal_pooled.n} | {sum(rep.not_scored.values()) or ''} |")
    if rep.perplexity:
        lines += ["", f"Perplexity {rep.perplexity.value:.3f} on {rep.perplexity.text}."]
    if rep.baseline:
        d = rep.baseline
        lines += ["", f"Change against the baseline ({d.baseline_model}), in points [95 % interval]:", "",
                  "| rule | compliance | over-refusal |", "|---|---|---|"]
        for rid, rd in d.per_rule.items():
            lines.append(f"| `{rid}` | {_signed(rd.compliance, rd.compliance_interval)} | "
                         f"{_signed(rd.overrefusal, rd.overrefusal_interval)} |")
        lines.append(f"| **overall** | **{_signed(d.compliance)}** | **{_signed(d.overrefusal)}** |")
        lines += [f"> {w}" for w in d.warnings]
    lines += [f"> warning: {w}" for w in rep.warnings]
    return "\n".join(lines) + "\n"


def render(rep: EvalReport, fmt: str) -> str:
    if fmt == "json":
        return rep.dumps()
    if fmt == "markdown":
        return render_markdown(rep)
    return render_text(rep)
