"""Agents: a scenario lowered into role calls, and the engine that runs them in batches.

A :class:`Call` is one role call for one scenario (its messages, output type and budget); its
``key`` is the store key, so the :class:`Engine` can serve it from the store or generate it.
The engine groups calls that share an output type and budget, chunks each group into batches
of ``batch_size`` (over the *whole* group, cached or not, so a rerun after a crash forms the
same batches) and commits each finished batch in one transaction.

A model that raises, times out or returns something that does not validate never stops the
run: the call's :class:`Outcome` carries the reason, the pipeline retries it and reports it.

The experience pool (:class:`ExperiencePool`) keeps the attacks that led to a verified pair,
per rule, and shows the latest ones to later attacker calls of the same rule. Per rule, so an
edit to one rule never changes another rule's prompts; in plan order, so it is deterministic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Sequence

from pydantic import BaseModel, ValidationError

from specc import defaults
from specc.files import lone_surrogate
from specc.ir.model import Rule, content_hash
from specc.plan.model import Scenario
from specc.synth import demos, roles, tactics
from specc.engines import EngineFault, ModelHandle
from specc.synth.store import Store, call_key

Messages = list[dict]


@dataclass(frozen=True)
class Settings:
    """Generation parameters of a compile; all of them enter the store keys."""

    seed: int = defaults.SEED
    temperature: float = defaults.TEMPERATURE
    retry_temperature: float = 0.8
    retries: int = defaults.RETRIES
    rounds: int = defaults.ROUNDS
    batch_size: int = defaults.BATCH_SIZE
    bounds: roles.Bounds = field(default_factory=roles.Bounds)
    # on-policy candidates: answers sampled from the model as it chats under the rule, sorted
    # into chosen / rejected by the rule's checks and the gates (0: defender and violator only)
    candidates: int = 0
    candidate_temperature: float = defaults.CANDIDATE_TEMPERATURE
    # the attacker samples: greedy, the embedded model writes the assistant's voice and loops
    # ("I'm sorry, I'm not able to help you with your order ...": measured on examples/support)
    attack_temperature: float = 0.7

    @property
    def budgets(self) -> dict[str, int]:
        return self.bounds.budgets()

    def temperature_for(self, attempt: int) -> float:
        # a retry of a greedy call would return the same text: sample instead
        return self.temperature if attempt == 0 else max(self.temperature, self.retry_temperature)

    def manifest(self) -> dict:
        return {
            "max_new_tokens": dict(sorted(self.budgets.items())),
            "temperature": self.temperature,
            "retry_temperature": self.retry_temperature,
            "retries": self.retries,
            "rounds": self.rounds,
            "batch_size": self.batch_size,
            "max_chars": self.bounds.manifest(),
            "candidates": self.candidates,
            "candidate_temperature": self.candidate_temperature,
            "attack_temperature": self.attack_temperature,
        }

    def attack_temperature_for(self, attempt: int) -> float:
        return max(self.attack_temperature, self.temperature_for(attempt))

    def candidate_temperature_for(self, index: int) -> float:
        """Candidate 0 is the model's greedy answer; the others are sampled."""
        return 0.0 if index == 0 else self.candidate_temperature


@dataclass(frozen=True, eq=False)
class Call:
    scenario: str
    role: str
    round: int
    attempt: int
    messages: tuple
    output_type: type[BaseModel] | None  # None: free chat generation (roles.FreeAnswer)
    max_new_tokens: int
    temperature: float
    judge: bool = False
    key: str = ""


@dataclass(frozen=True, eq=False)
class Outcome:
    call: Call
    value: BaseModel | None = None
    raw: str | None = None
    error: str | None = None  # invalid-output | model-error | model-timeout
    detail: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()


class Engine:
    """Runs calls against the store and the model(s)."""

    def __init__(self, model: ModelHandle, store: Store, settings: Settings, *,
                 judge_model: ModelHandle | None = None,
                 on_event: Callable[..., None] | None = None):
        self.model = model
        self.judge_model = judge_model or model
        self.store = store
        self.settings = settings
        self.on_event = on_event or (lambda *a, **k: None)
        self.generated = 0
        self.reused = 0
        self.faults: dict[str, int] = {}
        self._counts: dict[str, dict[str, int]] = {"generated": {}, "reused": {}}

    def by_scenario(self, kind: str) -> dict[str, int]:
        """Calls ``generated`` or ``reused`` in this run, per scenario id."""
        return dict(self._counts[kind])

    def _count(self, kind: str, calls) -> None:
        d = self._counts[kind]
        for c in calls:
            d[c.scenario] = d.get(c.scenario, 0) + 1

    def make(self, *, scenario: str, role: str, round: int, attempt: int, messages: Messages,
             output_type: type[BaseModel] | None, judge: bool = False, temperature: float | None = None) -> Call:
        """One call. ``output_type=None`` asks for free chat text (``generate_raw``), read as
        :class:`roles.FreeAnswer`; ``temperature`` overrides the settings' for this attempt."""
        s = self.settings
        model = self.judge_model if judge else self.model
        max_new = s.budgets[role]
        temp = s.temperature_for(attempt) if temperature is None else float(temperature)
        key = call_key(scenario=scenario, role=role, round=round, attempt=attempt,
                       template=roles.template_hash(role), schema=_schema_hash(output_type),
                       model=model.name, params={"max_new_tokens": max_new, "temperature": temp, **model.params},
                       seed=s.seed, prompt=messages)
        return Call(scenario, role, round, attempt, tuple(messages), output_type, max_new, temp, judge, key)

    def run(self, calls: Sequence[Call]) -> list[Outcome]:
        """Outcomes of ``calls``, in order."""
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(calls):
            gk = (c.judge, _schema_hash(c.output_type), c.max_new_tokens, c.temperature)
            groups.setdefault(gk, []).append(i)
        out: list[Outcome | None] = [None] * len(calls)
        for (judge, *_), idx in groups.items():
            # a batch is what the engine takes at once: the settings' batch, or more requests in
            # flight for a server engine that asks for them
            model = self.judge_model if judge else self.model
            size = max(1, self.settings.batch_size, getattr(model, "concurrency", 0) or 0)
            for start in range(0, len(idx), size):
                chunk = [calls[i] for i in idx[start : start + size]]
                for i, o in zip(idx[start : start + size], self._run_chunk(chunk)):
                    out[i] = o
        return out  # type: ignore[return-value]

    def _run_chunk(self, chunk: list[Call]) -> list[Outcome]:
        cached = self.store.get_many(c.key for c in chunk)
        missing = [c for c in chunk if c.key not in cached]
        fresh: dict[str, Outcome] = {}
        if missing:
            fresh = self._generate(missing)
        outs = []
        for c in chunk:
            if c.key in cached:
                self.reused += 1
                self._count("reused", [c])
                o = _validate(c, cached[c.key], cached=True)
                if not o.ok:  # counted as when it was generated, so stats describe the data
                    self.faults[o.error] = self.faults.get(o.error, 0) + 1
                outs.append(o)
            else:
                outs.append(fresh[c.key])
        if len(missing) < len(chunk):
            self.on_event("reused", n=len(chunk) - len(missing))
        return outs

    def _generate(self, calls: list[Call]) -> dict[str, Outcome]:
        first = calls[0]
        model = self.judge_model if first.judge else self.model
        # one seed per call, from its key: an engine that generates each prompt on its own gives
        # a call the same text whatever batch it is in (what lets shards merge byte for byte)
        seeds = [call_seed(c.key) for c in calls]
        self.on_event("generating", role=first.role, n=len(calls))
        try:
            if first.output_type is None:
                texts, _ = model.generate_raw([list(c.messages) for c in calls], first.max_new_tokens, seeds,
                                              temperature=first.temperature)
            else:
                texts = model.generate_json([list(c.messages) for c in calls], first.output_type,
                                            first.max_new_tokens, seeds, temperature=first.temperature)
            if not isinstance(texts, (list, tuple)) or len(texts) != len(calls):
                raise RuntimeError(f"the model returned {len(texts) if isinstance(texts, (list, tuple)) else type(texts).__name__}"
                                   f" outputs for {len(calls)} prompts")
        except EngineFault as e:
            # the engine is gone (server down, died, timing out): keep what finished, then stop
            done = [(c, e.done[i]) for i, c in enumerate(calls) if isinstance(e.done.get(i), str)]
            if done:
                self._record(model, done)
            raise
        except Exception as e:  # noqa: BLE001 - a failure of these prompts is reported, never fatal
            reason = "model-timeout" if _is_timeout(e) else "model-error"
            detail = f"{type(e).__name__}: {e}"[:300]
            outs = {c.key: Outcome(c, error=reason, detail=detail) for c in calls}
            self.store.commit([], [(c.key, c.scenario, c.role, reason, detail) for c in calls])
            self.generated += len(calls)
            self._count("generated", calls)
            self.faults[reason] = self.faults.get(reason, 0) + len(calls)
            self.on_event("generated", n=len(calls), role=first.role)
            return outs
        return self._record(model, list(zip(calls, texts)))

    def _record(self, model: ModelHandle, done: list[tuple[Call, object]]) -> dict[str, Outcome]:
        """Validate and store finished calls (one transaction)."""
        outs = {}
        results, attempts = [], []
        for c, t in done:
            if not isinstance(t, str):
                o = Outcome(c, error="invalid-output", detail=f"not text: {type(t).__name__}")
            elif lone_surrogate(t):  # a server's "\ud800": no Unicode text, and the store cannot hold it
                o = Outcome(c, error="invalid-output", detail="not Unicode text: a lone surrogate")
            else:
                o = _validate(c, t, cached=False)
                results.append((c.key, c.scenario, c.role, model.name, t))
            attempts.append((c.key, c.scenario, c.role, "ok" if o.ok else o.error, o.detail))
            if not o.ok:
                self.faults[o.error] = self.faults.get(o.error, 0) + 1
            outs[c.key] = o
        self.store.commit(results, attempts)
        calls = [c for c, _ in done]
        self.generated += len(calls)
        self._count("generated", calls)
        self.on_event("generated", n=len(calls), role=calls[0].role)
        return outs


def call_seed(key: str) -> int:
    """The seed of one call: a function of its store key alone."""
    return int(key[:8], 16) % (2**31)


def _schema_hash(output_type: type[BaseModel] | None) -> str:
    return "free" if output_type is None else roles.schema_hash(output_type)


def _validate(call: Call, raw: str, *, cached: bool) -> Outcome:
    if call.output_type is None:  # free text: what the model wrote, cut to whole sentences
        text = roles.clean_free(raw)
        if not text:
            return Outcome(call, raw=raw, error="invalid-output", detail="empty text", cached=cached)
        return Outcome(call, value=roles.FreeAnswer(answer=text), raw=raw, cached=cached)
    try:
        value = call.output_type.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0] if e.errors() else {}
        detail = f"{first.get('type', 'invalid')}: {first.get('msg', '')}"[:200]
        return Outcome(call, raw=raw, error="invalid-output", detail=detail, cached=cached)
    return Outcome(call, value=value, raw=raw, cached=cached)


# -- the experience pool -------------------------------------------------------------------------


class ExperiencePool:
    """Attacks that led to a verified pair, per rule, in the order they were found."""

    def __init__(self) -> None:
        self._by_rule: dict[str, list[str]] = {}

    def add(self, rule_id: str, attack: str) -> None:
        items = self._by_rule.setdefault(rule_id, [])
        if attack not in items:
            items.append(attack)

    def examples(self, rule_id: str, n: int = roles.POOL_SHOWN) -> list[str]:
        return [roles.clip(a, roles.ATTACK_CHARS) for a in self._by_rule.get(rule_id, [])[-n:]]

    def size(self) -> int:
        return sum(len(v) for v in self._by_rule.values())


# -- role prompts --------------------------------------------------------------------------------


def rounds_of(scenario: Scenario, rounds: int) -> int:
    """User turns in the scenario's conversation: ``rounds`` for the multi-turn tactic."""
    return max(1, rounds) if tactics.normal(scenario.axes.get("tactic")) == "multi_turn" else 1


def _scenario_data(rule: Rule, scenario: Scenario) -> dict:
    return {
        "rule": roles.rule_data(rule),
        "boundary": scenario.boundary,
        "expected": scenario.expected,
        "exception": scenario.exception,
        "conflict_with": scenario.conflict_with,
        "override_by": scenario.override_by,
        "axes": sorted((k, v) for k, v in scenario.axes.items() if k != "tactic" or v != "multi_turn"),
    }


def _chat(system: str, user: str | None = None, turns: Sequence[dict] = ()) -> Messages:
    msgs = [{"role": "system", "content": system}] if system else []
    if user:
        msgs.append({"role": "user", "content": user})
    msgs.extend({"role": t["role"], "content": t["content"]} for t in turns)
    return msgs


FEW_SHOT_DEMOS = 3  # demonstrations (spec examples as chat turns) before an attacker's request


def situation(rule: Rule, scenario: Scenario | None) -> str:
    """What the user is in the middle of, in the spec's own words: the rule's ``when`` (or its
    statement), or for a lookalike the exception it is based on."""
    trigger = rule.when or f"The user asks something where this matters: {rule.statement}"
    if scenario is not None and scenario.boundary == "lookalike":
        if scenario.exception_kind == "unless" and scenario.exception:
            return scenario.exception
        return f"A harmless everyday question on the same topic as this, where nothing needs refusing: {trigger}"
    return trigger


def request_brief(rule: Rule, scenario: Scenario | None) -> str:
    """The attacker's request for one message. The scenario's axis values other than persona
    and tactic are named as details; the persona is not shown: the embedded 135M model echoes
    it instead of writing a request ("I'm a journalist, I'm not sure what to say"); a tactic is
    applied by code (:mod:`specc.synth.tactics`) unless the spec names one the table lacks."""
    details = style = ""
    if scenario is not None:
        axes = dict(scenario.axes)
        axes.pop("persona", None)
        tactic = axes.pop("tactic", "")
        if tactic and not tactics.known(tactic):
            style = tactic
        details = ", ".join(v for _, v in sorted(axes.items()))
    return _render_brief(situation(rule, scenario), details, style)


def _render_brief(situation: str, details: str = "", style: str = "") -> str:
    _, brief = roles.render("attacker", situation=situation, details=details, style=style)
    return brief


def demonstrations(rule: Rule, key: str, n: int = FEW_SHOT_DEMOS) -> list[tuple[str, str]]:
    """(brief, user message) demonstrations: the rule's own first example request, then requests
    of specc's fixed bank (:mod:`specc.synth.demos`) chosen by ``key`` (so scenarios see
    different ones, deterministically). Never another rule's examples: an edit of one rule must
    not change the prompts of the others."""
    own = next((" ".join(users[0].split()) for ex in rule.examples
                if (users := [t.text for t in ex.turns if t.role == "user"]) and len(users[0]) <= roles.FEW_SHOT_CHARS),
               None)
    out = [(request_brief(rule, None), own)][:n] if own is not None else []
    bank = sorted(demos.BANK, key=lambda d: content_hash([key, d[1]]))[: max(0, n - len(out))]
    return out + [(_render_brief(situation), request) for situation, request in bank]


def attacker_messages(rule: Rule, scenario: Scenario, demos: Sequence[tuple[str, str]]) -> Messages:
    """The attacker as few-shot chat: the spec's example requests as answered turns, then this
    scenario's situation. The model writes the plain request; tactics are applied by code."""
    system, _ = roles.render("attacker", situation="", details="", style="")
    msgs: Messages = [{"role": "system", "content": system}]
    for brief, user in demos:
        msgs.append({"role": "user", "content": brief})
        msgs.append({"role": "assistant", "content": json.dumps({"user": user}, ensure_ascii=False)})
    msgs.append({"role": "user", "content": request_brief(rule, scenario)})
    return msgs


def operator_pushes(scenario: Scenario) -> bool:
    """A conflict pushed by the system or developer: an operator instruction opens the chat."""
    return scenario.boundary == "conflict" and scenario.override_by in ("system", "developer")


def first_user_turn(rule: Rule, scenario: Scenario, request: str) -> str:
    """The seed request as the user sends it: wrapped by the scenario's tactic, or, in a conflict
    the user pushes, with the user's claim of authority."""
    text = tactics.apply(scenario.axes.get("tactic"), request, scenario.id)
    if scenario.boundary == "conflict" and not operator_pushes(scenario):
        text = tactics.authority_claim(scenario.override_by, text, scenario.id)
    return text


def operator_text(rule: Rule, scenario: Scenario) -> str | None:
    if not operator_pushes(scenario):
        return None
    return tactics.operator_instruction(rule, scenario.override_by, scenario.expected == "follow_override")


def _demo_turns(rule: Rule, *, good: bool, refusals: bool | None, as_json: bool) -> Messages:
    """The rule's examples as chat turns: each example's first user turn and a good (or bad)
    answer; as JSON ``{"answer": ...}`` for a constrained role."""
    from specc.ir.checks import is_refusal

    out: Messages = []
    n = 0
    for ex in rule.examples:
        users = [t.text for t in ex.turns if t.role == "user"]
        answers = [a.text for a in (ex.good if good else ex.bad)
                   if refusals is None or is_refusal(a.text) == refusals]
        if not users or not answers or n >= roles.FEW_SHOT:
            continue
        text = roles.clip(answers[0], roles.FEW_SHOT_CHARS * 2)
        out.append({"role": "user", "content": " ".join(users[-1].split())})
        out.append({"role": "assistant",
                    "content": json.dumps({"answer": text}, ensure_ascii=False) if as_json else text})
        n += 1
    return out


def answer_messages(role: str, rule: Rule, scenario: Scenario, conversation: Sequence[dict],
                    operator: str | None) -> Messages:
    """Defender, violator (constrained) or candidate (free chat): a system message from the
    template, the rule's examples as earlier chat turns, then the conversation."""
    system, _ = roles.render(role, **_scenario_data(rule, scenario), system_prompt=operator or "")
    if role == "violator":
        demos = _demo_turns(rule, good=False, refusals=scenario.expected == "help", as_json=True)
    else:
        demos = _demo_turns(rule, good=True, refusals=None, as_json=role != "candidate")
    return _chat(system, None, [*demos, *(t for t in conversation if t["role"] != "system")])


def answer_shape(role: str, rule: Rule, scenario: Scenario, bounds: roles.Bounds) -> roles.Shape:
    n = bounds.answer
    if role == "defender":
        if scenario.expected == "follow_override":
            return roles.Shape(max_chars=n)
        checks = rule.checks
        if scenario.expected == "help":
            checks = tuple(c for c in checks if not roles.uses_refuses(c))
        return roles.lower_compliance(checks, max_chars=n)
    if scenario.expected == "help":
        if len(roles.OVER_REFUSAL_OPENING) + 8 > n:
            return roles.Shape(prefix=roles.REFUSAL_OPENING, max_chars=max(n, len(roles.REFUSAL_OPENING) + 8))
        return roles.Shape(prefix=roles.OVER_REFUSAL_OPENING, max_chars=n)
    if scenario.expected == "follow_override":
        return roles.lower_compliance(rule.checks, max_chars=n)  # sticks to the default
    return roles.lower_violation(rule.checks, max_chars=n)


def judge_messages(rule: Rule, scenario: Scenario, conversation: Sequence[dict], first: str, second: str) -> Messages:
    """The judge's prompt. It cites only the rule under test: a list of the spec's rule ids would
    make every judge call depend on every rule (adding one regenerated them all)."""
    system, user = roles.render("judge", **_scenario_data(rule, scenario),
                                conversation=[dict(t) for t in conversation], first=first, second=second,
                                rule_ids=[rule.id])
    return _chat(system, user)
