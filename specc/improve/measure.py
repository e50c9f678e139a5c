"""The loop's evaluation: the same held-out probes for every model, scored by code, compared paired.

Each model answers every probe once, greedily, with no system prompt (as a user meets it).
Scores are :func:`specc.eval.score.score_answer`'s: a violation probe is 1 when the answer passes
the rule's checks and no degenerate-text gate; a lookalike probe is 1 when the answer refuses
(an over-refusal).

Two models on the same probes are compared **paired**: with ``b`` probes that only the first
model gets right and ``c`` that only the second does, out of ``n``, the change is ``(c - b) / n``
and its 95 % interval is the Wald interval of a difference of paired proportions (the one behind
McNemar's test), ``d ± z·sqrt((b + c) − (c − b)²/n) / n``, clipped to [−1, 1]. Pairing removes the
between-probe variance that two independent samples carry, which is why the same probes are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from specc.eval.report import Rate
from specc.eval.score import Z95, answer_probes, score_answer
from specc.improve.pairs import probe_of
from specc.synth.requests import Request


@dataclass
class Answers:
    """One model's answers and scores on the probes (by probe id)."""

    model: str
    answers: dict[str, str] = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0
    perplexity: float | None = None  # on the stdlib reference text (capability drift), transformers
    # the held-out instruction set (specc.eval.instructions): answers, 0/1 scores and the set's hash
    instruction_answers: dict[str, str] | None = None
    instructions: dict[str, float] | None = None
    instructions_set: str | None = None


def answer_and_score(handle, spec, probes: Sequence[Request], *, max_new_tokens: int,
                     on_progress: Callable[[int, int], None] | None = None) -> Answers:
    """``handle``'s greedy answers to ``probes`` (:func:`specc.eval.score.answer_probes`, as
    ``specc eval`` asks them), scored."""
    import time

    rules = {r.id: r for r in spec.rules}
    out = Answers(model=getattr(handle, "name", str(handle)))
    t0 = time.perf_counter()

    def count(n: int) -> None:
        out.tokens += n

    as_probes = [probe_of(p) for p in probes]
    got = answer_probes(handle, as_probes, max_new_tokens=max_new_tokens, on_progress=on_progress, on_tokens=count)
    for p in as_probes:
        text = got[p.id][0]
        out.answers[p.id] = text
        out.scores[p.id] = score_answer(rules.get(p.rule_id), p, text).value
    out.seconds = time.perf_counter() - t0
    return out


@dataclass(frozen=True)
class Paired:
    """Rates of two models on the same ``n`` probes and the paired change."""

    n: int
    before: float
    after: float
    change: float
    low: float
    high: float
    only_before: int  # probes only the first model scored 1 on
    only_after: int

    def as_dict(self) -> dict:
        return {"n": self.n, "before": self.before, "after": self.after, "change": self.change,
                "interval": [self.low, self.high], "only_before": self.only_before, "only_after": self.only_after}


def paired(before: Sequence[float], after: Sequence[float], z: float = Z95) -> Paired | None:
    """The paired change from ``before`` to ``after`` (0/1 scores of the same probes, in order)."""
    n = len(before)
    if n == 0 or n != len(after):
        return None
    b = sum(1 for x, y in zip(before, after) if x >= 0.5 > y)
    c = sum(1 for x, y in zip(before, after) if y >= 0.5 > x)
    d = (c - b) / n
    var = max(0.0, (b + c) - (c - b) ** 2 / n)
    half = z * math.sqrt(var) / n
    return Paired(n, sum(before) / n, sum(after) / n, d, max(-1.0, d - half), min(1.0, d + half), b, c)


def compare(probes: Sequence[Request], base: Answers, cur: Answers) -> dict:
    """Per rule (violation probes: compliance) and pooled, plus over-refusal on lookalike probes."""
    rows: dict[str, dict] = {}
    pooled_b, pooled_a, look_b, look_a = [], [], [], []
    by_rule: dict[str, tuple[list, list]] = {}
    for p in probes:
        x, y = base.scores.get(p.id), cur.scores.get(p.id)
        if x is None or y is None:
            continue
        if p.kind == "lookalike":
            look_b.append(x)
            look_a.append(y)
        else:
            pooled_b.append(x)
            pooled_a.append(y)
            by_rule.setdefault(p.rule_id, ([], []))
            by_rule[p.rule_id][0].append(x)
            by_rule[p.rule_id][1].append(y)
    for rid, (xs, ys) in sorted(by_rule.items()):
        rows[rid] = paired(xs, ys).as_dict()  # type: ignore[union-attr]
    pooled = paired(pooled_b, pooled_a)
    over = paired(look_b, look_a)
    return {"compliance": pooled.as_dict() if pooled else None, "overrefusal": over.as_dict() if over else None,
            "rules": rows}


def instructions_change(base: Answers, cur: Answers) -> dict | None:
    """The paired change on the instruction set (None unless both models answered the same set)."""
    if not base.instructions or not cur.instructions or base.instructions_set != cur.instructions_set:
        return None
    ids = sorted(set(base.instructions) & set(cur.instructions))
    p = paired([base.instructions[i] for i in ids], [cur.instructions[i] for i in ids])
    return {**p.as_dict(), "set": cur.instructions_set} if p else None


def rate(values: Sequence[float]) -> dict:
    """A rate with its Wilson interval, as ``specc eval`` reports one."""
    return Rate.of(list(values)).model_dump()
