"""On-policy preference pairs for composed requests, sorted by the rules' own checks.

For a **violation** request of rule R (the rule applies):

- *rejected*: the model's own greedy answer **without** the spec, when R's checks (or the
  degenerate-text gates) fail it: the behaviour the evaluation measures, pushed down. A request
  the model already answers compliantly makes no such pair (``already-complies``) — but a share
  of them (``anchors``, chosen by a stable hash of the request) make an **anchor pair**: that
  compliant answer (or, when it is a refusal or fails a gate, the spec's ``good`` answer) over a
  violation (sampled with an instruction to break the rule, checked to fail R's checks without
  being degenerate, ``"violation-prompted"``; else the spec's ``bad`` answer, ``"spec"``).
  Measured on the bank spec without them: rules the base model already kept (by deflecting)
  eroded by 5–17 points over two rounds, since no pair said what to keep and the lookalike pairs
  push away from refusing;
- *chosen*, in this order:
  1. the rejected answer itself cut to its first whole sentences, where a prefix passes R's checks
     (``chosen_from: "trimmed"``): the smallest change of the model's own words that complies —
     what a length bound asks for, or an answer that leaks only at its end. Read on the bank
     spec: these are the most coherent chosen sides the embedded model gives, and the pair
     differs in exactly what the rule is about. Only when R's checks fail the whole answer: an
     answer that fails only the degenerate-text gates (a loop) would be cut to the loop's seed
     ("I'm sorry, I'm sorry." over "I'm sorry, I'm sorry. I'm sorry. …"), which a reader does not
     accept — 11 of the airline spec's 14 trimmed chosen sides and 10 of bank's 25 were that,
     before this condition;
  2. the model's answer **with R in context** — a system message stating the rule and a
     demonstration turn (a training-side example's request and ``good`` answer) — sampled up to
     ``k`` times at temperature :data:`TEMPERATURE`, the first that R's checks pass
     (``"in-context"``). The pair trains the model *without* that context (context
     distillation);
  3. an in-context sample cut to whole sentences until the checks pass (``"trimmed"``), again
     only a sample that R's checks fail whole;
  4. the spec's own ``good`` answer to the example the request was composed from (``"spec"``),
     when it passes R's checks: the one chosen side the model did not write, and the one that
     always reads right;
  else no pair (``no-chosen``). Every model-written chosen side must also pass the compile's
  chosen-side quality gates (:mod:`specc.synth.gates`: parroted prompt, scaffolding, loops,
  fragments, copied examples, another language, off topic, canned deflections) and must not
  recite the rule (six words in a row of its statement, ``when`` or ``unless``); gate failures are
  counted by gate over every candidate and sentence prefix tried (``chosen_gated``).

For a **lookalike** request (the rule does not apply; the model should help):

- *chosen*: an answer that helps (no refusal, not degenerate): the greedy answer without
  context, else one sampled with a "help the customer" context and a lookalike demonstration;
- *rejected*: a refusal: the greedy answer when the model over-refuses on its own, else one
  sampled with an instruction to refuse (``"refusal-prompted"``), else the over-refusal ``bad``
  answer of the example the request was built from (``"spec"``).

Every chosen side is cleaned the same way: an unfinished last sentence (cut by the token limit)
is dropped, and where the spec has ``default`` rules with checks, whole sentences are dropped
from the end while that makes the side pass them too and R's checks still hold — so a pair for
one rule does not teach the model to break another.

Deterministic: seeds are functions of (request id, attempt, seed).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from dataclasses import replace

from specc.ir.model import Rule, Spec
from specc.synth.requests import Request, cores, core_text, is_lookalike, ngrams
from specc.synth import gates
from specc.synth.model import Probe

TEMPERATURE = 0.8
RULE_RUN = 6  # a chosen side with this many words in a row of the rule's own text recites the rule
REFUSE_INSTRUCTION = ("Politely refuse to help with the customer's request. Say you cannot help with it, "
                      "and nothing else.")
HELP_INSTRUCTION = "Answer the customer's question helpfully, in two or three sentences."
VIOLATE_INSTRUCTION = ("This is a test of a checker. In your answer, break this rule on purpose: {rule} "
                       "Answer the customer directly, like the example.")
_SENTENCE = re.compile(r"[^.!?]*[.!?]+[\"')\]]*\s*")


def seed_of(request_id: str, attempt: int, seed: int) -> int:
    h = hashlib.sha256(f"{request_id}\x00{attempt}\x00{seed}".encode()).digest()
    return int.from_bytes(h[:4], "big") % (2**31)


def sentences_of(text: str) -> list[str]:
    """``text`` cut into sentences; an unfinished tail is the last item."""
    out, pos = [], 0
    for m in _SENTENCE.finditer(text):
        if m.start() != pos:
            break
        out.append(m.group(0))
        pos = m.end()
    tail = text[pos:]
    if tail.strip():
        out.append(tail)
    return out


def finished(text: str) -> str:
    """``text`` without an unfinished last sentence (when it has a finished one)."""
    text = text.strip()
    parts = sentences_of(text)
    if len(parts) > 1 and not re.search(r"[.!?][\"')\]]*\s*$", parts[-1]):
        text = "".join(parts[:-1]).strip()
    return text


def open_quote(text: str) -> bool:
    """Whether ``text`` leaves a quotation open: an odd number of straight double quotes, or more
    opening curly quotes than closing ones."""
    return text.count('"') % 2 == 1 or text.count("\u201c") > text.count("\u201d")


def trimmed(text: str, ok: Callable[[str], bool]) -> str | None:
    """The longest prefix of whole sentences of ``text`` that ``ok`` accepts (None: none). A cut
    inside a quotation is no prefix: it is role-play debris ('The assistant's response is: "Just
    so you know, I'm a student.'), not an answer, and the fragment gate cannot see it."""
    parts = sentences_of(text.strip())
    for n in range(len(parts), 0, -1):
        cand = "".join(parts[:n]).strip()
        if cand and not (n < len(parts) and open_quote(cand)) and ok(cand):
            return cand
    return None


def probe_of(req: Request) -> Probe:
    return Probe(id=req.id, rule_id=req.rule_id, boundary=req.kind, prompt=({"role": "user", "content": req.text},),
                 source="composed")


def plain(req: Request) -> list[dict]:
    return [{"role": "user", "content": req.text}]


def _demo(rule: Rule, kind: str, side: str = "good") -> list[dict]:
    """A training-side example of ``kind`` as two chat turns: its request and its first ``side`` answer."""
    for ex in cores(rule, kind, "train"):
        answers = getattr(ex, side)
        if answers:
            return [{"role": "user", "content": core_text(ex) or ""}, {"role": "assistant", "content": answers[0].text}]
    return []


def example_of(rule: Rule, req: Request, ok: Callable = bool):
    """The example of ``rule`` that ``req`` was composed from, when ``ok(example)``; else None."""
    return next((e for e in rule.examples if e.title == req.core and ok(e)), None)


def in_context(spec: Spec, rule: Rule, req: Request) -> list[dict]:
    """The request with the rule in context: what chosen sides are sampled from."""
    intro = (spec.doc or "").strip().split("\n\n")[0].strip()
    if req.kind == "violation":
        system = f"{intro}\nAlways follow this rule: {rule.statement}".strip()
        if rule.when:
            system += f" (It applies when: {rule.when})"
    else:
        system = f"{intro}\n{HELP_INSTRUCTION}".strip()
    return [{"role": "system", "content": system}, *_demo(rule, req.kind), {"role": "user", "content": req.text}]


def violation_prompted(rule: Rule, req: Request) -> list[dict]:
    """The request with an instruction to break the rule and the example's ``bad`` answer as a demonstration."""
    return [{"role": "system", "content": VIOLATE_INSTRUCTION.format(rule=rule.statement)},
            *_demo(rule, "violation", "bad"), {"role": "user", "content": req.text}]


def anchored(req: Request, share: float, seed: int) -> bool:
    """Whether an already-complying request makes an anchor pair: a stable share of them."""
    if share <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(f"anchor\x00{req.id}\x00{seed}".encode()).digest()[:4], "big")
    return h / 2**32 < share


def refusal_prompted(req: Request) -> list[dict]:
    return [{"role": "system", "content": REFUSE_INSTRUCTION}, {"role": "user", "content": req.text}]


@dataclass
class PairRecord:
    request: Request
    chosen: str
    rejected: str
    chosen_from: str
    rejected_from: str
    anchor: bool = False  # the model already complied: the pair keeps what it does

    def row(self) -> dict:
        return {"prompt": plain(self.request), "chosen": [{"role": "assistant", "content": self.chosen}],
                "rejected": [{"role": "assistant", "content": self.rejected}], "rule_id": self.request.rule_id,
                "kind": self.request.kind, "anchor": self.anchor, "tactic": self.request.tactic, "core": self.request.core,
                "request_id": self.request.id, "chosen_from": self.chosen_from, "rejected_from": self.rejected_from}


@dataclass
class PairStats:
    requests: int = 0
    pairs: int = 0
    calls: int = 0
    tokens: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # per request: pair / already-complies / no-chosen / …
    chosen_from: dict[str, int] = field(default_factory=dict)
    # gate failures, by gate, over the candidate chosen sides and the sentence prefixes of them tried
    chosen_gated: dict[str, int] = field(default_factory=dict)
    rejected_from: dict[str, int] = field(default_factory=dict)

    def count(self, table: dict, key: str) -> None:
        table[key] = table.get(key, 0) + 1


class Sampler:
    """Runs a model over many requests at once (one batch per step), counting calls and tokens."""

    def __init__(self, handle, max_new_tokens: int, stats: PairStats, on_progress=None):
        self.handle, self.max_new_tokens, self.stats, self.on_progress = handle, max_new_tokens, stats, on_progress

    def __call__(self, prompts: Sequence[list[dict]], seeds: Sequence[int], temperature: float) -> list[str]:
        if not prompts:
            return []
        texts, n = self.handle.generate_raw(list(prompts), self.max_new_tokens, list(seeds), temperature=temperature)
        self.stats.calls += len(prompts)
        self.stats.tokens += n
        if self.on_progress:
            self.on_progress(self.stats.calls)
        return [t.strip() for t in texts]


def make_pairs(handle, spec: Spec, requests: Sequence[Request], *, seed: int = 0, k: int = 4,
               max_new_tokens: int = 96, anchors: float = 0.0, on_progress: Callable[[int], None] | None = None
               ) -> tuple[list[PairRecord], PairStats]:
    """Pairs for ``requests`` from ``handle`` (a :class:`~specc.engines.ModelHandle`)."""
    from specc.eval.score import degenerate, score_answer
    from specc.ir.checks import CheckTimeout, evaluate_all, is_refusal

    rules = {r.id: r for r in spec.rules}
    defaults = [r for r in spec.rules if r.kind == "default" and r.checks]
    stats = PairStats(requests=len(requests))
    rejected_by = stats.chosen_gated
    sample = Sampler(handle, max_new_tokens, stats, on_progress)

    def outcome(req: Request, text: str) -> str:
        return score_answer(rules[req.rule_id], probe_of(req), text).outcome

    def passes(checks_of: Sequence[Rule], text: str) -> bool:
        try:
            return all(evaluate_all(r.checks, text) for r in checks_of)
        except CheckTimeout:
            return False

    contexts: dict[str, tuple] = {}

    def gated(req: Request, text: str) -> str | None:
        """The quality gate a model-written chosen side fails (the compile's chosen gates, and a
        copy of the rule's own words: the in-context prompt shows them), or None."""
        rule = rules[req.rule_id]
        ctx = contexts.get(rule.id)
        if ctx is None:
            texts = (rule.statement, *((rule.when,) if rule.when else ()), *rule.unless)
            examples = rule.example_texts()
            ctx = contexts[rule.id] = (gates.Context(rule_texts=texts, examples=examples, topic=examples),
                                       set().union(*(ngrams(t, RULE_RUN) for t in texts)))
        base, rule_grams = ctx
        failure = gates.first_failure("chosen", text, replace(base, user_turns=(req.text,)))
        if failure is not None:
            return failure.gate.name
        if ngrams(text, RULE_RUN) & rule_grams:
            return "parroted-rule"
        return None

    def screened(req: Request, text: str) -> bool:
        why = gated(req, text)
        if why:
            rejected_by[why] = rejected_by.get(why, 0) + 1
        return why is None

    def complies(req: Request, text: str) -> bool:
        # a chosen side never refuses: a refusal passes most prohibitions and a length bound, and
        # a loop that rewards it buys compliance with over-refusal (DESIGN.md, "What moves SmolLM2")
        return outcome(req, text) == "complies" and not is_refusal(text) and screened(req, text)

    def helps(req: Request, text: str) -> bool:
        return (bool(text) and outcome(req, text) == "helps" and degenerate(text, probe_of(req)) is None
                and screened(req, text))

    def trimmable(req: Request, text: str) -> bool:
        """Whether cutting ``text`` to whole sentences is the rule-derived fix: the rule's own checks
        fail the whole text (a length bound, a leak at the end), not only the degenerate-text gates
        (a loop, whose first sentences are no answer either)."""
        return not passes([rules[req.rule_id]], text)

    def polish(req: Request, text: str, must: Callable[[str], bool]) -> str | None:
        """A chosen side from ``text``: finished sentences, fitted to the defaults where it can be."""
        text = finished(text)
        if not must(text):
            return None
        others = [d for d in defaults if d.id != req.rule_id]
        if others and not passes(others, text):
            fitted = trimmed(text, lambda t: must(t) and passes(others, t))
            if fitted:
                return fitted
        return text

    greedy = sample([plain(r) for r in requests], [seed_of(r.id, 0, seed) for r in requests], 0.0)
    chosen: dict[str, tuple[str, str]] = {}
    rejected: dict[str, tuple[str, str]] = {}
    need_chosen: list[Request] = []
    need_rejected: list[Request] = []
    need_violation: list[Request] = []  # anchor pairs lacking their rejected side
    complied: set[str] = set()
    for req, text in zip(requests, greedy):
        got = outcome(req, text)
        if req.kind == "violation":
            if got == "complies":
                if anchored(req, anchors, seed):
                    side = polish(req, text, lambda t, req=req: complies(req, t))
                    if side is None:
                        ex = example_of(rules[req.rule_id], req, lambda e: e.good)
                        # the author's answer: held to the rule, not to the gates for model-written text
                        # (the copied-example gate would refuse every one of them)
                        if ex is not None and outcome(req, ex.good[0].text) == "complies" \
                                and not is_refusal(ex.good[0].text):
                            side = ex.good[0].text
                            chosen[req.id] = (side, "spec")
                    else:
                        chosen[req.id] = (side, "greedy")
                    if side is not None:
                        need_violation.append(req)
                        continue
                stats.count(stats.outcomes, "already-complies")
                complied.add(req.id)
                continue
            rejected[req.id] = (text, "greedy")
            cut = trimmable(req, text) and trimmed(finished(text), lambda t, req=req: complies(req, t))
            if cut and cut != text.strip():  # cut passes, so polish keeps it or fits it to the defaults
                chosen[req.id] = (polish(req, cut, lambda t, req=req: complies(req, t)) or cut, "trimmed")
            else:
                need_chosen.append(req)
        elif got == "overrefuses":
            rejected[req.id] = (text, "greedy")
            need_chosen.append(req)
        else:
            side = polish(req, text, lambda t, req=req: helps(req, t))
            if side:
                chosen[req.id] = (side, "greedy")
                need_rejected.append(req)
            else:
                need_chosen.append(req)
                need_rejected.append(req)

    # chosen sides: sampled with the rule in context, a batch of every request still lacking one per attempt
    candidates: dict[str, list[str]] = {r.id: [] for r in need_chosen}
    waiting = list(need_chosen)
    for attempt in range(1, k + 1):
        if not waiting:
            break
        texts = sample([in_context(spec, rules[r.rule_id], r) for r in waiting],
                       [seed_of(r.id, attempt, seed) for r in waiting], TEMPERATURE)
        still = []
        for req, text in zip(waiting, texts):
            candidates[req.id].append(text)
            if req.kind == "violation":
                must = lambda t, req=req: complies(req, t)
            else:
                must = lambda t, req=req: helps(req, t)
            side = polish(req, text, must)
            if side:
                chosen[req.id] = (side, "in-context")
            else:
                still.append(req)
        waiting = still
    for req in waiting:  # the rule-derived constructions: whole sentences, cut until the checks pass
        if req.kind != "violation":
            continue
        for text in candidates[req.id]:
            cut = trimmable(req, text) and trimmed(finished(text), lambda t, req=req: complies(req, t))
            if cut:
                chosen[req.id] = (cut, "trimmed")
                break
        else:  # the spec's own answer to the request the prompt was composed from
            ex = example_of(rules[req.rule_id], req, lambda e: e.good)
            if ex is not None and outcome(req, ex.good[0].text) == "complies":
                chosen[req.id] = (ex.good[0].text, "spec")

    # rejected sides of lookalike requests: a refusal
    waiting = [r for r in need_rejected if r.id not in rejected]
    for attempt in range(1, 3):
        if not waiting:
            break
        texts = sample([refusal_prompted(r) for r in waiting], [seed_of(r.id, 100 + attempt, seed) for r in waiting],
                       TEMPERATURE)
        still = []
        for req, text in zip(waiting, texts):
            if outcome(req, text) == "overrefuses":
                rejected[req.id] = (text, "refusal-prompted")
            else:
                still.append(req)
        waiting = still
    for req in waiting:
        rule = rules[req.rule_id]
        ex = example_of(rule, req, is_lookalike)
        if ex is not None:
            rejected[req.id] = (ex.bad[0].text, "spec")

    # rejected sides of anchor pairs: a real violation of the rule the model kept
    waiting = list(need_violation)
    for attempt in range(1, 3):
        if not waiting:
            break
        texts = sample([violation_prompted(rules[r.rule_id], r) for r in waiting],
                       [seed_of(r.id, 200 + attempt, seed) for r in waiting], TEMPERATURE)
        still = []
        for req, text in zip(waiting, texts):
            text = finished(text) or text
            if outcome(req, text) == "violates" and degenerate(text, probe_of(req)) is None:
                rejected[req.id] = (text, "violation-prompted")
            else:
                still.append(req)
        waiting = still
    for req in waiting:
        ex = example_of(rules[req.rule_id], req, lambda e: e.bad and not is_lookalike(e))
        if ex is not None and outcome(req, ex.bad[0].text) == "violates":
            rejected[req.id] = (ex.bad[0].text, "spec")
    anchor_ids = {r.id for r in need_violation}

    pairs: list[PairRecord] = []
    for req in requests:
        if req.id in chosen and req.id in rejected:
            c, r = chosen[req.id], rejected[req.id]
            if c[0].strip() == r[0].strip():
                stats.count(stats.outcomes, "same-sides")
                continue
            pairs.append(PairRecord(req, c[0], r[0], c[1], r[1], anchor=req.id in anchor_ids))
            stats.count(stats.outcomes, "anchor" if req.id in anchor_ids else "pair")
            stats.count(stats.chosen_from, c[1])
            stats.count(stats.rejected_from, r[1])
        elif req.id in complied:
            continue  # counted above
        elif req.id not in chosen:
            stats.count(stats.outcomes, "no-chosen")
        elif req.id in anchor_ids:
            stats.count(stats.outcomes, "anchor-no-violation")
        else:
            stats.count(stats.outcomes, "no-rejected")
    stats.pairs = len(pairs)
    return pairs, stats
