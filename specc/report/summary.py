"""The report's content as plain data, computed from :class:`~specc.report.inputs.Inputs`: the
spec, the verification funnel, the coverage matrix, drop reasons, the judge, sample pairs, evals
and the diff. The HTML and Markdown renderings both draw from a :class:`Summary`, so they say the
same thing.

The funnel counts scenarios. A dropped scenario is counted at the stage its drop reason names
(the pipeline keeps one reason per scenario, from its last attempt): ``judge-uncalibrated`` and
model faults before *generated*, ``gate:…`` at the gates, a check or judge verdict at
verification. *Emitted* counts the records in the dataset, the spec's own examples included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specc.diff.model import RuleSummary
from specc.plan.model import BOUNDARIES
from specc.report.inputs import Inputs

STAGES = ("planned", "generated", "gated", "verified", "emitted")
STAGE_NAMES = {"planned": "planned", "generated": "generated", "gated": "passed the gates",
               "verified": "checked or judged", "emitted": "emitted"}
# where a dropped scenario stopped, by the stage it did not pass
STOPPED_AT = {"generated": "not generated (judge untrusted, model fault)", "gated": "at the gates",
              "verified": "at check / judge"}
# the reasons specc.synth.verify gives (joined by "+") and the pipeline's own "unverified"
VERDICT_REASONS = {"chosen-refuses", "chosen-fails-check", "check-timeout", "rejected-not-refusal",
                   "rejected-passes-check", "judge-chosen-violates", "judge-rejected-complies", "unverified"}
SAMPLES_PER_RULE = 3
MAX_TEXT = 1200  # characters of one sample text shown


def stage_of(reason: str) -> str:
    """The funnel stage a drop reason stops a scenario at (the stage it did not pass)."""
    if reason.startswith("gate:"):
        return "gated"
    if reason.endswith(":judge") or all(p in VERDICT_REASONS for p in reason.split("+")):
        return "verified"
    return "generated"  # judge-uncalibrated (never generated) and model faults


@dataclass
class Funnel:
    planned: int = 0
    generated: int = 0
    gated: int = 0
    verified: int = 0
    emitted: int = 0
    examples: int = 0  # of the emitted records: the spec's own examples
    lost: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> reason -> scenarios

    @classmethod
    def of(cls, entry: dict, emitted: int) -> "Funnel":
        lost: dict[str, dict[str, int]] = {}
        for reason, n in sorted((entry.get("dropped_reasons") or {}).items()):
            lost.setdefault(stage_of(reason), {})[reason] = n
        planned = int(entry.get("scenarios", 0))
        generated = planned - sum(lost.get("generated", {}).values())
        gated = generated - sum(lost.get("gated", {}).values())
        return cls(planned=planned, generated=generated, gated=gated, verified=int(entry.get("verified", 0)),
                   emitted=emitted, examples=int(entry.get("examples", entry.get("spec_examples", 0))), lost=lost)

    def stages(self) -> list[tuple[str, int]]:
        return [(s, getattr(self, s)) for s in STAGES]

    @property
    def dropped(self) -> int:
        return sum(n for reasons in self.lost.values() for n in reasons.values())


@dataclass
class Cell:
    verified: int = 0  # scenarios with a generated record
    planned: int | None = None  # None: the plan is not known (no --spec)
    examples: int = 0  # spec-example records (boundary cells only)

    def text(self) -> str:
        if self.planned == 0 and not self.verified and not self.examples:
            return "–"  # nothing planned there
        s = str(self.verified) if self.planned is None else f"{self.verified} / {self.planned}"
        return s + (f" + {self.examples} ex." if self.examples else "")


@dataclass
class Sample:
    record_id: str
    split: str
    boundary: str
    source: str
    verified_by: str
    axes: dict
    prompt: list[tuple[str, str]]  # (role, text)
    chosen: str | None
    rejected: str | None
    chosen_from: str | None
    rejected_from: str | None
    request_from: str | None = None  # who wrote the first user turn (composed, attacker, spec)


@dataclass
class RuleRow:
    id: str
    info: RuleSummary | None  # with --spec
    funnel: Funnel
    boundaries: dict[str, Cell]
    axes: dict[str, dict[str, Cell]]  # axis -> value -> cell
    samples: list[Sample]
    judge: dict | None  # the judge's agreement on this rule's examples


@dataclass
class EvalColumn:
    label: str  # how the eval is named in the report: its model (and file when models repeat)
    file: str
    report: object  # specc.eval.EvalReport
    warnings: list[str]


@dataclass
class Summary:
    spec: dict
    model: dict
    seed: object
    fmt: str
    counts: dict
    specc_version: str
    funnel: Funnel
    provenance: str  # who verified the generated pairs and where their sides came from, in words
    rules: list[RuleRow]
    axis_names: list[str]
    axis_values: dict[str, list[str]]
    judge: dict | None
    judge_text: str | None
    with_plan: bool
    evals: list[EvalColumn]
    diff: dict | None
    diff_file: str | None
    notes: list[str]
    cost: object = None  # specc.synth.model.Cost: what the compile spent (cost.json), where known
    review: dict | None = None  # a reviewer's verdicts, counted (specc.report.inputs.review_stats)

    @property
    def eval_rules(self) -> list[str]:
        return sorted({rid for c in self.evals for rid in c.report.per_rule})


def _text(content) -> str:
    if isinstance(content, list):  # a message list: the assistant turn(s)
        return "\n\n".join(str(m.get("content", "")) for m in content if isinstance(m, dict))
    return "" if content is None else str(content)


def _cut(s: str | None) -> str | None:
    if s is None:
        return None
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def _messages(prompt) -> list[tuple[str, str]]:
    if isinstance(prompt, list):
        return [(str(m.get("role", "?")), _cut(str(m.get("content", "")))) for m in prompt if isinstance(m, dict)]
    return [("user", _cut(str(prompt)))] if prompt else []


def samples_of(records: list[dict]) -> dict[str, Sample]:
    """record id -> its pair, whatever the format (a KTO pair is two rows)."""
    out: dict[str, Sample] = {}
    for r in records:
        rid = r.get("record_id")
        if not rid:
            continue
        s = out.get(rid)
        if s is None:
            prompt = r.get("prompt")
            if "messages" in r:  # sft: the prompt, then the chosen answer
                prompt = r["messages"][:-1]
            s = out[rid] = Sample(rid, r.get("split", "train"), r.get("boundary") or "?", r.get("source") or "?",
                                  r.get("verified_by") or "?", dict(r.get("axes") or {}), _messages(prompt),
                                  None, None, r.get("chosen_from"), r.get("rejected_from"), r.get("request_from"))
        if "chosen" in r or "rejected" in r:
            s.chosen, s.rejected = _cut(_text(r.get("chosen"))), _cut(_text(r.get("rejected")))
        elif "completion" in r:
            setattr(s, "chosen" if r.get("label") else "rejected", _cut(_text(r["completion"])))
        elif "messages" in r:
            s.chosen = _cut(_text(r["messages"][-1:]))
    return out


def _eval_columns(inp: Inputs) -> list[EvalColumn]:
    models = [e.model for e in inp.evals]
    cols = []
    for rep, f in zip(inp.evals, inp.eval_files):
        label = rep.model if models.count(rep.model) == 1 else f"{rep.model} ({f})"
        warnings = []
        if rep.spec.get("hash") and rep.spec.get("hash") != inp.spec.get("hash"):
            warnings.append(f"{f} was run against another version of the spec "
                            f"({str(rep.spec.get('hash'))[:12]}, the dataset's is {str(inp.spec.get('hash'))[:12]})")
        cols.append(EvalColumn(label, f, rep, warnings))
    return cols


def summarize(inp: Inputs) -> Summary:
    from specc.emit.card import judge_line

    stats = inp.stats
    pairs = samples_of(inp.records)
    per_rule = stats.get("per_rule") or {}
    axis_names = sorted({a for s in pairs.values() for a in s.axes}
                        | {a for p in (inp.planned or []) for a in p.axes})
    judge = inp.judge
    # grouped once: each rule looking through every scenario and record made the summary quadratic
    # in the number of rules (6,000 rules: minutes)
    planned: dict[str, list] | None = None
    if inp.planned is not None:
        planned = {}
        for sc in inp.planned:
            planned.setdefault(sc.rule_id, []).append(sc)
    rules = [_rule_row(inp, rid, pairs, axis_names, per_rule.get(rid) or {},
                       ((judge or {}).get("per_rule") or {}).get(rid),
                       None if planned is None else planned.get(rid, [])) for rid in inp.rule_ids]
    total = Funnel.of(stats, len(pairs))
    notes = []
    if inp.rules is None:
        notes.append("Rule statements and the planned scenarios per boundary and axis value need the spec: "
                      "`specc report DIR --spec SPEC`.")
    elif inp.planned is None:
        notes.append("The spec's plan, made again with the manifest's parameters, does not give the "
                     "manifest's scenarios: planned counts per boundary are not shown.")
    # every field the page names, present (None where an older or partial manifest lacks it)
    spec = {k: inp.spec.get(k) for k in ("id", "version", "hash", "file")}
    model = {k: inp.model.get(k) for k in ("name", "engine", "judge", "judge_engine")}
    return Summary(spec=spec, model=model, provenance=provenance(stats), seed=inp.manifest.get("seed"), fmt=inp.manifest.get("format", "?"),
                   counts=inp.manifest.get("counts") or {}, specc_version=inp.manifest.get("specc_version", "?"),
                   funnel=total, rules=rules, axis_names=axis_names,
                   axis_values={a: sorted({v for r in rules for v in r.axes[a]}) for a in axis_names}, judge=judge,
                   judge_text=judge_line(judge, model["judge"] or model["name"] or "?", inp.typed.stats)
                   if judge else None,
                   with_plan=inp.planned is not None, evals=_eval_columns(inp), diff=inp.diff,
                   diff_file=inp.diff_file, notes=notes, cost=inp.cost, review=inp.review)


def provenance(stats: dict) -> str:
    """"verified by check 3, judge 3; chosen sides: 5 sampled, 1 defender; rejected sides: …"."""
    parts = []
    by = stats.get("verified_by") or {}
    if by:
        parts.append("verified by " + ", ".join(f"{k} {n}" for k, n in sorted(by.items())))
    sides = stats.get("sides_from") or {}
    for side in ("chosen", "rejected"):
        got = {k.split(":", 1)[1]: n for k, n in sorted(sides.items()) if k.startswith(side + ":")}
        if got:
            parts.append(f"{side} sides: " + ", ".join(f"{n} {k}" for k, n in got.items()))
    turns = stats.get("requests_from") or {}
    if turns:  # of all the scenarios that got a user turn, verified or not
        parts.append("user turns of the scenarios: " + ", ".join(f"{n} {k}" for k, n in sorted(turns.items())))
    return "; ".join(parts)


def _rule_row(inp: Inputs, rid: str, pairs: dict[str, Sample], axis_names: list[str], stats: dict,
              judge: dict | None, scenarios: list | None) -> RuleRow:
    """The row of rule ``rid``; ``scenarios`` are its planned ones (None: the plan is unknown)."""
    planned = scenarios is not None
    bounds = {b: Cell(planned=0 if planned else None) for b in BOUNDARIES}
    axes: dict[str, dict[str, Cell]] = {a: {} for a in axis_names}
    for p in scenarios or []:
        bounds.setdefault(p.boundary, Cell(planned=0)).planned += 1
        for a, v in p.axes.items():
            axes[a].setdefault(v, Cell(planned=0)).planned += 1
    ids = inp.rule_record_ids(rid)
    mine = [pairs[i] for i in sorted(ids) if i in pairs]  # by record id
    for s in mine:
        if s.source != "generated":
            bounds.setdefault(s.boundary, Cell()).examples += 1
            continue
        bounds.setdefault(s.boundary, Cell(planned=0 if planned else None)).verified += 1
        for a, v in s.axes.items():
            if v is not None:
                axes[a].setdefault(v, Cell(planned=0 if planned else None)).verified += 1
    return RuleRow(rid, (inp.rules or {}).get(rid), Funnel.of(stats, len(ids)), bounds,
                   {a: dict(sorted(v.items())) for a, v in axes.items()}, _pick_samples(mine), judge)


def _pick_samples(samples: list[Sample]) -> list[Sample]:
    """A few of a rule's records: generated pairs first, one boundary after another (violation,
    lookalike, conflict, then again), then the spec's own examples; by record id within each."""
    generated = [s for s in samples if s.source == "generated"]
    rank: dict[str, int] = {}
    order = []
    for s in generated:  # already by record id
        order.append((rank.get(s.boundary, 0), _boundary_rank(s.boundary), s.record_id, s))
        rank[s.boundary] = rank.get(s.boundary, 0) + 1
    picked = [s for *_, s in sorted(order, key=lambda x: x[:3])]
    return (picked + [s for s in samples if s.source != "generated"])[:SAMPLES_PER_RULE]


def _boundary_rank(b: str) -> int:
    return BOUNDARIES.index(b) if b in BOUNDARIES else len(BOUNDARIES)
