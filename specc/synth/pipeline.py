"""Synthesis of a plan: scenarios -> role calls -> verified pairs (plus the spec's own examples).

Scenarios are processed in *waves* (:func:`plan_waves`): wave ``w`` holds the ``w``-th
adversarial (violation / conflict) scenario of every rule, and wave 0 also every lookalike. All
scenarios of a wave advance together, step by step, so every step is one batched model call per
output type. Steps of a wave:

1. the seed user turn: composed by seeded code from the rule's own examples
   (``--requests composed``, :func:`specc.synth.requests.seed_request`) or written by the
   attacker (``--requests model``, and where a rule has no example of the scenario's kind);
   its tactic is applied by code. In a multi-turn scenario the model answers and the user
   escalates (by code), up to ``rounds`` user turns;
2. defender (chosen) and violator (rejected) answer the conversation;
3. the quality gates (:mod:`specc.synth.gates`) on every user turn and answer as it arrives,
   then verification (:mod:`specc.synth.verify`): checks by code, the judge otherwise;
4. what failed is regenerated (only the failed side), up to ``retries`` times, then dropped
   with its reason. Model faults (exceptions, timeouts, invalid output) and gated texts
   (``gate:NAME:ROLE``) take the same path.

After a wave, the adversarial attacks that gave a verified pair enter the experience pool, which
later waves' attackers of the same rule see.
Before the first wave the judge is scored on the spec's labelled examples
(:mod:`specc.synth.calibrate`); while it is not trusted, every scenario that only the judge could
verify is dropped as ``judge-uncalibrated`` before any call is made for it.
Everything is a function of the plan, the settings and the stored outputs, so a rerun replays
the same control flow and finds every finished call in the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable, Sequence

from specc.ir.checks import CheckTimeout, evaluate_all, is_refusal
from specc.ir.model import Example, Rule, Spec, content_hash
from specc.plan.model import Plan, Scenario
from specc.synth import calibrate, demos, gates, prompts, requests, roles, tactics, verify
from specc.synth.calls import CallRunner
from specc.synth.model import Pair, Probe, RuleStats, SynthResult, SynthStats
from specc.synth.prompts import ExperiencePool


@dataclass(eq=False)
class _State:
    scenario: Scenario
    rule: Rule
    rounds: int
    system: str  # the scenario's system prompt (rule / instance), may be empty
    operator: str | None = None
    turns: list = field(default_factory=list)
    chosen: str | None = None
    rejected: str | None = None
    chosen_from: str | None = None
    rejected_from: str | None = None
    request: str | None = None  # the seed request, before its tactic
    request_from: str | None = None  # who wrote it: composed (by code) | attacker (the model)
    example: Example | None = None  # the rule's example a composed request was built from
    spec_tried: set = field(default_factory=set)  # sides already taken from that example's answers
    candidates: list = field(default_factory=list)  # on-policy answers, in candidate order
    need: set = field(default_factory=set)
    status: str | None = None  # verified | dropped
    reason: str | None = None
    verified_by: str | None = None

    @property
    def alive(self) -> bool:
        return self.status is None

    def prompt(self) -> list[dict]:
        system = "\n\n".join(x for x in (self.system, self.operator) if x)
        return ([{"role": "system", "content": system}] if system else []) + [dict(t) for t in self.turns]

    def operator_text(self) -> str | None:
        return "\n\n".join(x for x in (self.system, self.operator) if x) or None


def system_prompt_text(spec: Spec, scenario: Scenario) -> str:
    """The system prompt a scenario's conversation starts with (``--system-prompt``)."""
    if scenario.system_prompt == "none" or not scenario.instance_rules:
        return ""
    lines = []
    for rid in scenario.instance_rules:
        r = spec.rule(rid)
        lines.append(f"- You {roles.MODALITY_WORDS[r.modality]} {r.statement}")
    head = "Follow this rule:" if len(lines) == 1 else "Follow these rules:"
    return head + "\n" + "\n".join(lines)


class Synthesizer:
    def __init__(self, spec: Spec, plan: Plan, runner: CallRunner, *,
                 on_event: Callable[..., None] | None = None,
                 min_judge_agreement: float = calibrate.DEFAULT_MIN_AGREEMENT, judge_needed: bool | None = None,
                 reviewed: Sequence[Pair] = ()):
        self.spec = spec
        # pairs a person reviewed (specc review), oriented as judged: the judge is scored on them too
        self.reviewed = tuple(reviewed)
        self.min_judge_agreement = min_judge_agreement
        # whether any scenario needs the judge; None: this plan's. A shard passes the whole plan's,
        # so every shard measures (or skips) the judge alike and their manifests agree
        self.judge_needed = judge_needed
        self.calibration: calibrate.Calibration | None = None
        self.plan = plan
        self.runner = runner
        self.settings = runner.settings
        self.on_event = on_event or (lambda *a, **k: None)
        self.pool = ExperiencePool()
        self.gated: Counter = Counter()  # gate:NAME:ROLE -> texts it failed, retried ones included

    # -- driver

    def run(self) -> SynthResult:
        by_rule: dict[str, list[Scenario]] = {}
        for s in self.plan.scenarios:
            by_rule.setdefault(s.rule_id, []).append(s)
        waves = plan_waves(self.plan.scenarios)
        states: list[_State] = []
        self.on_event("start", scenarios=len(self.plan.scenarios), waves=len(waves))
        # the judge is scored on all the spec's labelled examples before it judges anything
        needed = self.judge_needed
        if needed is None:
            needed = any(verify.needs_judge(self.spec.rule(s.rule_id), s) for s in self.plan.scenarios)
        self.calibration = calibrate.calibrate(self.spec, self.runner, spec_example_pairs(self.spec),
                                               min_agreement=self.min_judge_agreement, needed=needed)
        if self.reviewed:
            self.calibration = calibrate.with_reviewed(self.calibration, self.spec, self.runner, self.reviewed)
        for w, wave in enumerate(waves):
            ws = [self._state(s) for s in wave]
            if not self.calibration.trusted:  # dropped before any call is made for them
                for st in ws:
                    if verify.needs_judge(st.rule, st.scenario):
                        self._finish(st, "dropped", calibrate.UNCALIBRATED)
            self.on_event("wave", index=w, waves=len(waves), scenarios=len(ws))
            self._converse(ws)
            self._answer_and_verify(ws)
            for st in ws:
                if st.status == "verified" and st.scenario.boundary != "lookalike":
                    users = [t["content"] for t in st.turns if t["role"] == "user"]
                    self.pool.add(st.rule.id, users[-1])
            states.extend(ws)
        pairs = [self._pair(st) for st in states if st.status == "verified"]
        # the planned rules' examples only: none for a plan (a shard) without rules
        pairs.extend(spec_example_pairs(self.spec, self.plan.rules))
        outcomes = {st.scenario.id: (st.rule.id, "verified" if st.status == "verified" else f"dropped:{st.reason}")
                    for st in states}
        cost = self.runner.ledger.cost(outcomes, sum(1 for st in states if st.status == "verified"))
        cost = cost.model_copy(update={"requests": _requests_from(states)})
        return SynthResult(pairs=sorted(pairs, key=lambda p: p.record_id), stats=self._stats(states, pairs),
                           scenarios_by_rule={r: [s.id for s in v] for r, v in by_rule.items()},
                           judge=self.calibration.manifest(), calibration=self.calibration, cost=cost)

    def _state(self, s: Scenario) -> _State:
        return _State(scenario=s, rule=self.spec.rule(s.rule_id), rounds=prompts.rounds_of(s, self.settings.rounds),
                      system=system_prompt_text(self.spec, s))

    def _finish(self, st: _State, status: str, reason: str | None = None, by: str | None = None) -> None:
        st.status, st.reason, st.verified_by = status, reason, by
        self.on_event("scenario", status=status, rule=st.rule.id, reason=reason)

    # -- step 1: the conversation

    def _converse(self, states: list[_State]) -> None:
        """The seed request, composed by code or written by the attacker (its tactic applied by
        code); in a multi-turn scenario the model answers under the rule and the user escalates
        (by code), up to ``rounds`` user turns."""
        self._attack(self._compose([st for st in states if st.alive]))
        for r in range(1, max((st.rounds for st in states), default=0)):
            active = [st for st in states if st.alive and r < st.rounds]
            self._reply(active, r - 1)
            for st in active:
                if st.alive:
                    st.turns.append({"role": "user", "content": tactics.escalation(st.scenario.id, r)})

    def _with_retries(self, states: list[_State], role: str, make_call, accept, screen=None) -> None:
        """One call per state, failed calls retried up to --retries; a state whose call never
        succeeds is dropped with the last failure as its reason. ``screen(st, call, value)``
        gives the gate failure of an output (retried like a fault) or None."""
        todo = list(states)
        failure: dict[int, str] = {}
        for attempt in range(self.settings.retries + 1):
            if not todo:
                break
            left = []
            calls = [make_call(st, attempt) for st in todo]
            for st, c, o in zip(todo, calls, self.runner.run(calls)):
                gated = screen(st, c, o.value) if o.ok and screen else None
                if gated is not None:
                    failure[id(st)] = self._gate_reason(gated, role)
                    left.append(st)
                elif o.ok:
                    accept(st, o.value)
                else:
                    failure[id(st)] = f"{o.error}:{role}"
                    left.append(st)
            todo = left
        for st in todo:
            self._finish(st, "dropped", failure[id(st)])

    def _compose(self, states: list[_State]) -> list[_State]:
        """Under ``--requests composed``, the seed request of every scenario whose rule has an
        example of the scenario's kind (violation cores for violations and conflicts, lookalike
        cores for lookalikes), composed by seeded code with the scenario's persona: no model call.
        Returns the states left to the attacker (all of them under ``--requests model``)."""
        if self.settings.requests != "composed":
            return states
        left = []
        for st in states:
            s = st.scenario
            req = requests.seed_request(st.rule, requests.kind_of(s.boundary), f"{self.settings.seed}\x00{s.id}", s.axes.get("persona", ""))
            if req is None:
                left.append(st)
                continue
            st.request, st.request_from, st.example = req.text, "composed", req.example
            st.operator = prompts.operator_text(st.rule, s)
            st.turns.append({"role": "user", "content": prompts.first_user_turn(st.rule, s, st.request)})
        return left

    def _attack(self, states: list[_State]) -> None:
        limits = _bound(roles.attacker_type(self.settings.bounds.attack), "user")

        def request(value) -> str:
            """The seed request; one that its bound cut mid-sentence is trimmed to its whole
            sentences (a cut one with none is left whole, and the fragment gate fails it)."""
            text = value.user.strip()
            if gates.Context(limits=limits).cut_by_bound(text):
                text = roles.whole_sentences(text)
            return text

        def call(st: _State, attempt: int):
            shown = prompts.demonstrations(st.rule, st.scenario.id)
            if st.scenario.boundary != "lookalike":  # attacks that worked are no model for a benign request
                shown = [*shown[:1], *((prompts.request_brief(st.rule, None), p) for p in self.pool.examples(st.rule.id, 1)),
                         *shown[1:]][: prompts.FEW_SHOT_DEMOS]
            return self.runner.make(
                scenario=st.scenario.id, role="attacker", round=0, attempt=attempt,
                messages=prompts.attacker_messages(st.rule, st.scenario, shown),
                output_type=roles.attacker_type(self.settings.bounds.attack),
                temperature=self.settings.attack_temperature_for(attempt))

        def accept(st: _State, value) -> None:
            st.request, st.request_from = request(value), "attacker"
            st.operator = prompts.operator_text(st.rule, st.scenario)
            st.turns.append({"role": "user", "content": prompts.first_user_turn(st.rule, st.scenario, st.request)})

        def screen(st: _State, c, value) -> gates.Failure | None:
            ctx = replace(self._gate_context(st), limits=_bound(c.output_type, "user"))
            return gates.first_failure("user", request(value), ctx)

        self._with_retries(states, "attacker", call, accept, screen)

    def _reply(self, states: list[_State], r: int) -> None:
        """The model's answer in the middle of a multi-turn conversation (free chat under the rule)."""
        self._with_retries(
            states, "defender",
            lambda st, attempt: self._candidate_call(st, r, attempt, None),
            lambda st, value: st.turns.append({"role": "assistant", "content": value.answer.strip()}),
            lambda st, c, value: self._screen_answer(st, "candidate", value.answer.strip()),
        )

    def _candidate_call(self, st: _State, r: int, attempt: int, temperature: float | None):
        return self.runner.make(
            scenario=st.scenario.id, role="candidate", round=r, attempt=attempt,
            messages=prompts.answer_messages("candidate", st.rule, st.scenario, st.turns, st.operator_text()),
            output_type=None, temperature=temperature)

    def _answer_call(self, role: str, st: _State, r: int, attempt: int):
        shape = prompts.answer_shape(role, st.rule, st.scenario, self.settings.bounds)
        return self.runner.make(
            scenario=st.scenario.id, role=role, round=r, attempt=attempt,
            messages=prompts.answer_messages(role, st.rule, st.scenario, st.turns, st.operator_text()),
            output_type=roles.answer_type(shape))

    # -- steps 2-4: answers, verification, retries

    def _answer_and_verify(self, states: list[_State]) -> None:
        todo = [st for st in states if st.alive]
        for st in todo:
            st.need = {"chosen", "rejected"}
        self._sample_candidates([st for st in todo if not verify.needs_judge(st.rule, st.scenario)])
        for attempt in range(self.settings.retries + 1):
            todo = [st for st in todo if st.alive]
            if not todo:
                break
            for st in todo:
                self._fill_from_example(st)
            calls, owners = [], []
            for st in todo:
                final = st.rounds - 1
                if "chosen" in st.need:
                    calls.append(self._answer_call("defender", st, final, attempt))
                    owners.append((st, "chosen"))
                if "rejected" in st.need:
                    calls.append(self._answer_call("violator", st, final, attempt))
                    owners.append((st, "rejected"))
            for st in todo:
                st.reason = None  # this attempt's first failure names the scenario's drop reason
            for (st, side), o in zip(owners, self.runner.run(calls)):
                if o.ok:
                    # a constrained answer the bound cut mid-sentence, trimmed to its whole sentences
                    text = roles.clean_free(o.value.answer)
                    setattr(st, side, text)
                    setattr(st, f"{side}_from", o.call.role)
                    gated = self._screen_answer(st, o.call.role, text)
                    if gated is None:
                        st.need.discard(side)
                    else:  # kept in `need`: regenerated next attempt, never judged
                        reason = self._gate_reason(gated, o.call.role)
                        st.reason = st.reason or reason
                else:
                    st.reason = st.reason or f"{o.error}:{o.call.role}"
            judge_calls, judge_owners = [], []
            for st in todo:
                if st.need:
                    continue  # a side is missing (model fault) or gated: regenerate it next attempt
                gated = gates.pair_failure(st.chosen, st.rejected, self._gate_context(st))
                if gated is not None:  # which side is at fault is unknown: both are regenerated
                    st.reason = self._gate_reason(gated, "pair")
                    st.need = {"chosen", "rejected"}
                    continue
                if verify.needs_judge(st.rule, st.scenario):
                    first = verify.judge_order(st.scenario.id, attempt)
                    a, b = (st.chosen, st.rejected) if first else (st.rejected, st.chosen)
                    judge_calls.append(self.runner.make(
                        scenario=st.scenario.id, role="judge", round=st.rounds - 1, attempt=attempt,
                        messages=prompts.judge_messages(st.rule, st.scenario, st.prompt(), a, b),
                        output_type=roles.verdict_type((st.rule.id,), self.settings.bounds.reason),
                        judge=True))
                    judge_owners.append((st, first))
                else:
                    self._settle(st, verify.by_checks(st.rule, st.scenario, st.chosen, st.rejected))
            for (st, first), o in zip(judge_owners, self.runner.run(judge_calls)):
                if o.ok:
                    self._settle(st, verify.by_verdict(o.value, first))
                else:
                    st.reason = f"{o.error}:judge"
        for st in todo:
            if st.alive:
                self._finish(st, "dropped", st.reason or "unverified")

    # -- on-policy candidates

    def _sample_candidates(self, states: list[_State]) -> None:
        """``--candidates K`` free answers per scenario from the model chatting under the rule
        (the first greedy, the others sampled), sorted by the rule's checks and the gates: the
        first that passes becomes the chosen side, the first that fails the rule (at a lookalike:
        the first that refuses) the rejected side, a violation this model really makes. A side no
        candidate gives is left to the defender or violator role."""
        k = self.settings.candidates
        if k <= 0 or not states:
            return
        # candidate i is asked only of the scenarios that candidates 0..i-1 left without a side: the
        # sides are the first good and the first bad candidate in order, so the later ones could not
        # change them. The data is that of asking all K at once wherever a prompt's text does not
        # depend on its batch (llama.cpp, a server; transformers at --batch-size 1)
        for i in range(k):
            todo = [st for st in states if None in self._first_sides(st)]
            if not todo:
                break
            calls = [self._candidate_call(st, st.rounds - 1, i, self.settings.candidate_temperature_for(i))
                     for st in todo]
            for st, o in zip(todo, self.runner.run(calls)):
                if o.ok:
                    st.candidates.append(o.value.answer.strip())
        for st in states:
            self._sort_candidates(st)

    def _first_sides(self, st: _State) -> tuple[str | None, str | None]:
        """The first candidate that is a chosen side (passes the rule's checks and the gates; at a
        lookalike: a helpful answer) and the first that is a rejected side (fails them; at a
        lookalike: a refusal), in candidate order."""
        help_ = st.scenario.expected == "help"
        checks = tuple(c for c in st.rule.checks if not (help_ and roles.uses_refuses(c)))
        ctx = self._gate_context(st)
        chosen = rejected = None
        for text in st.candidates:
            if not text:
                continue
            try:
                passes = evaluate_all(checks, text) if checks else True
            except CheckTimeout:
                continue
            good = (not is_refusal(text) and passes) if help_ else passes
            bad = is_refusal(text) if help_ else not passes
            if good and chosen is None and gates.first_failure("chosen", text, ctx) is None:
                chosen = text
            elif bad and rejected is None and gates.first_failure("rejected", text, ctx) is None:
                rejected = text
        return chosen, rejected

    def _sort_candidates(self, st: _State) -> None:
        chosen, rejected = self._first_sides(st)
        if chosen is not None:
            st.chosen, st.chosen_from = chosen, "sampled"
        if rejected is not None:
            st.rejected, st.rejected_from = rejected, "sampled"
        if st.chosen is not None and st.rejected is not None \
                and gates.pair_failure(st.chosen, st.rejected, self._gate_context(st)) is not None:
            st.rejected = st.rejected_from = None  # too close to the chosen side: the violator writes one
        st.need = {side for side in ("chosen", "rejected") if getattr(st, side) is None}

    # -- the example's own answers

    def _fill_from_example(self, st: _State) -> None:
        """Where one side is missing and the other is the model's, the missing side is the spec's
        own answer to the example the seed request was composed from (``"spec"``, no call): its
        ``good`` answer (at a lookalike: one that helps) for the chosen side, its ``bad`` answer (at
        a lookalike: an over-refusal; else a violation) for the rejected one. Only in a single-turn
        conversation (the answer is to the request the user sent), once per side (verification
        and the pair gate still judge it; what they fail goes to the roles), and never both sides:
        a pair with no model side would be the example again. Not where the scenario expects an
        override to be followed (the example's answers are for the rule as it applies). A model's
        chosen side that refuses where the example's good answer does not is no chosen side: it
        goes (the spec's answer takes its place, or the roles try again).
        ``--no-example-sides``: never."""
        s = st.scenario
        if not self.settings.example_sides or st.example is None or not takes_example_sides(s, st.rounds):
            return
        help_ = s.expected == "help"
        good = example_answer(st.example, "chosen", help_)
        if st.chosen is not None and st.chosen_from != "spec" and "chosen" not in st.need and is_refusal(st.chosen) \
                and good is not None and not is_refusal(good):
            # the model deflected where the spec's own answer to this request helps: the rule's checks
            # pass a refusal, but it is no answer to learn (measured: "I'm sorry, but as a customer
            # service AI, I'm unable to access your account" for a length rule)
            st.chosen = st.chosen_from = None
            st.need.add("chosen")
        if len(st.need) != 1:
            return
        side = next(iter(st.need))
        if side in st.spec_tried:
            return
        st.spec_tried.add(side)
        text = good if side == "chosen" else example_answer(st.example, side, help_)
        if text is not None:
            setattr(st, side, text)
            setattr(st, f"{side}_from", "spec")
            st.need.discard(side)

    # -- quality gates

    def _gate_context(self, st: _State) -> gates.Context:
        r = st.rule
        texts = (f"{roles.MODALITY_WORDS[r.modality]} {r.statement}", *((r.when,) if r.when else ()),
                 *r.unless)
        users = tuple(t["content"] for t in st.turns if t["role"] == "user")
        topic = r.example_texts()
        # gate Q110 (copied-example) compares with what the roles were shown: the rule's own
        # examples and the attacker's bank, never another rule's (an edit there changes nothing here)
        return gates.Context(rule_texts=texts, axes=tuple(sorted(st.scenario.axes.items())), user_turns=users,
                             examples=topic + demos.REQUESTS, topic=topic)

    def _screen_answer(self, st: _State, role: str, text: str) -> gates.Failure | None:
        """The first gate a defender, violator or candidate answer fails; a constrained answer's
        bound is its shape's (free text has none)."""
        if role == "candidate":
            return gates.first_failure("chosen", text, self._gate_context(st))
        shape = prompts.answer_shape(role, st.rule, st.scenario, self.settings.bounds)
        ctx = replace(self._gate_context(st), limits=(shape.max_chars,), max_words=shape.max_words)
        return gates.first_failure("chosen" if role == "defender" else "rejected", text, ctx)

    def _gate_reason(self, failure: gates.Failure, role: str) -> str:
        reason = failure.reason(role)
        self.gated[reason] += 1
        return reason

    def _settle(self, st: _State, res: verify.Result) -> None:
        if res.ok:
            self._finish(st, "verified", by=res.by)
        else:
            st.reason = res.reason
            st.need = set(res.redo)

    # -- results

    def _pair(self, st: _State) -> Pair:
        s = st.scenario
        return Pair(record_id=s.id, rule_ids=(s.rule_id,), boundary=s.boundary, axes=dict(s.axes),
                    scenario_id=s.id, source="generated", verified_by=st.verified_by or "check",
                    prompt=tuple(st.prompt()), chosen=st.chosen, rejected=st.rejected, split=s.split,
                    chosen_from=st.chosen_from, rejected_from=st.rejected_from, request_from=st.request_from)

    def _stats(self, states: list[_State], pairs: list[Pair]) -> SynthStats:
        gen, reuse = self.runner.by_scenario("generated"), self.runner.by_scenario("reused")
        by_rule: dict[str, list[_State]] = {rid: [] for rid in (self.plan.rules or
                                                                 sorted({s.rule_id for s in self.plan.scenarios}))}
        for st in states:
            by_rule.setdefault(st.rule.id, []).append(st)
        examples = Counter(rid for p in pairs if p.source == "spec-example" for rid in p.rule_ids)
        per_rule = {rid: RuleStats(scenarios=len(sts), generated=sum(gen.get(st.scenario.id, 0) for st in sts),
                                   reused=sum(reuse.get(st.scenario.id, 0) for st in sts), **_outcomes(sts),
                                   examples=examples[rid])
                    for rid, sts in sorted(by_rule.items())}
        verified = [st for st in states if st.status == "verified"]
        # "chosen:sampled", "rejected:violator", ...: how the verified pairs' sides were obtained
        sides = Counter(f"{side}:{getattr(st, f'{side}_from')}" for st in verified for side in ("chosen", "rejected"))
        return SynthStats(
            scenarios=len(states), generated=self.runner.generated, reused=self.runner.reused, **_outcomes(states),
            verified_by=_table(Counter(st.verified_by for st in verified)),
            sides_from=_table(sides),
            requests_from=_requests_from(states),
            faults=_table(self.runner.faults),
            gate_failures=_table(self.gated),
            spec_example_gate_warnings=spec_example_warnings(pairs),
            spec_examples=sum(1 for p in pairs if p.source == "spec-example"),
            experience_pool=self.pool.size(),
            per_rule=per_rule,
        )


def _outcomes(states: list[_State]) -> dict:
    """The verified and dropped counts of finished scenarios, and why they were dropped."""
    dropped = [st.reason for st in states if st.status == "dropped"]
    return {"verified": sum(1 for st in states if st.status == "verified"), "dropped": len(dropped),
            "dropped_reasons": _table(Counter(dropped))}


def _requests_from(states: list[_State]) -> dict[str, int]:
    """Scenarios by who wrote their seed request (composed, attacker); a scenario dropped before
    it had one (judge-uncalibrated, an attacker that never passed the gates) is in neither."""
    return _table(Counter(st.request_from for st in states if st.request_from and st.turns))


def _table(counts) -> dict[str, int]:
    """Counts by name, in name order (as the manifest writes them)."""
    return dict(sorted(counts.items()))


@lru_cache(maxsize=256)
def _bound(output_type, name: str) -> tuple[int, ...]:
    """The ``maxLength`` of an output type's string field (empty when a pattern bounds it)."""
    prop = output_type.model_json_schema().get("properties", {}).get(name, {})
    return (int(prop["maxLength"]),) if "maxLength" in prop else ()


def spec_example_warnings(pairs: list[Pair]) -> dict[str, int]:
    """Gate names -> spec-example pairs that fail them. The author's examples are never dropped
    (they are the spec), only reported: an example that fails a gate is probably a poor one."""
    out: Counter = Counter()
    for p in pairs:
        if p.source != "spec-example":
            continue
        users = tuple(m["content"] for m in p.prompt if m["role"] == "user")
        ctx = gates.Context(user_turns=users)
        found = {f.gate.name for u in users for f in gates.failures("user", u, ctx)}
        if p.chosen is not None:
            found |= {f.gate.name for f in gates.failures("chosen", p.chosen, ctx)}
        if p.rejected is not None:
            found |= {f.gate.name for f in gates.failures("rejected", p.rejected, ctx)}
        if p.chosen is not None and p.rejected is not None:
            found |= {f.gate.name for f in gates.failures("pair", p.chosen, replace(ctx, other=p.rejected))}
        out.update(found)
    return dict(sorted(out.items()))


def plan_waves(scenarios) -> list[list[Scenario]]:
    """Scenarios grouped into waves, each in plan order.

    Only attacks at the adversarial boundaries (violation, conflict) feed and read the
    experience pool, so the ``k``-th adversarial scenario of each rule goes to wave ``k``;
    lookalikes depend on nothing and all go to wave 0, where they fill the batches.
    """
    waves: list[list[Scenario]] = []
    seen: dict[str, int] = {}
    for s in scenarios:
        if s.boundary == "lookalike":
            w = 0
        else:
            w = seen.get(s.rule_id, 0)
            seen[s.rule_id] = w + 1
        while len(waves) <= w:
            waves.append([])
        waves[w].append(s)
    return waves


def synthesize_probes(spec: Spec, plan: Plan, runner: CallRunner, *, on_event=None) -> list[Probe]:
    """The conversations the pipeline would answer for ``plan``, without answers: the attacker's
    user turns (tactics applied, gated and retried like a compile's). A scenario whose attack never
    passes the gates gives no probe. Multi-turn replies come from ``runner``'s model."""
    syn = Synthesizer(spec, plan, runner, on_event=on_event)
    states = [syn._state(s) for s in plan.scenarios]
    syn._converse(states)
    return [Probe(id=st.scenario.id, rule_id=st.rule.id, boundary=st.scenario.boundary,
                  prompt=tuple({"role": m["role"], "content": m["content"]} for m in st.prompt()),
                  scenario_id=st.scenario.id, source="fresh", expected=st.scenario.expected)
            for st in states if st.alive]


def synthesize(spec: Spec, plan: Plan, runner: CallRunner, *, on_event=None,
               min_judge_agreement: float = calibrate.DEFAULT_MIN_AGREEMENT,
               judge_needed: bool | None = None, reviewed: Sequence[Pair] = ()) -> SynthResult:
    return Synthesizer(spec, plan, runner, on_event=on_event, min_judge_agreement=min_judge_agreement,
                       judge_needed=judge_needed, reviewed=reviewed).run()


def takes_example_sides(scenario: Scenario, rounds: int) -> bool:
    """Whether a composed scenario of ``rounds`` user turns may take a missing side from its
    example (``--example-sides``): a single-turn conversation (the example answers the request the
    user sent, not an escalation) where the rule is to be followed (at a lookalike: helped)."""
    return rounds == 1 and scenario.expected == ("help" if scenario.boundary == "lookalike" else "follow_rule")


def example_answer(example: Example, side: str, help_: bool) -> str | None:
    """The answer of ``example`` a pair's ``side`` may take (None: it has none): the first good
    answer (at a lookalike, ``help_``: the first that is not a refusal) for the chosen side; for
    the rejected side the first bad answer that is an over-refusal at a lookalike, a violation
    (not an over-refusal) elsewhere."""
    if side == "chosen":
        return next((a.text for a in example.good if not (help_ and is_refusal(a.text))), None)
    return next((b.text for b in example.bad if b.overrefusal == help_), None)


# -- the spec's own examples ----------------------------------------------------------------------

def spec_example_pairs(spec: Spec, rule_ids=None) -> list[Pair]:
    """Pairs from the rules' ``example`` blocks: every good answer against every bad one (a
    block with only good or only bad answers gives one-sided records, used by KTO and SFT)."""
    wanted = set(rule_ids) if rule_ids is not None else None
    out = []
    for rule in spec.rules:
        if wanted is not None and rule.id not in wanted:
            continue
        for ex in rule.examples:
            prompt = tuple({"role": "system" if t.role == "developer" else t.role, "content": t.text}
                           for t in ex.turns)
            if not prompt or prompt[-1]["role"] == "assistant":
                continue
            goods = [a.text for a in ex.good] or [None]
            bads = list(ex.bad) or [None]
            i = 0
            for g in goods:
                for b in bads:
                    bad_text = b.text if b is not None else None
                    lookalike = b is not None and (
                        b.overrefusal
                        or (is_refusal(b.text) and (g is None or not is_refusal(g))))
                    out.append(Pair(
                        record_id=content_hash(["spec-example", rule.id, ex.title, i]),
                        rule_ids=(rule.id,), boundary="lookalike" if lookalike else "violation", axes={},
                        scenario_id=None, source="spec-example", verified_by="spec", prompt=prompt,
                        chosen=g, rejected=bad_text, split="train",
                        chosen_from="spec" if g is not None else None,
                        rejected_from="spec" if bad_text is not None else None, request_from="spec"))
                    i += 1
    return out
