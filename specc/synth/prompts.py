"""What the roles are asked: a scenario and its rule rendered into chat messages.

The attacker's few-shot request, the defender's, violator's and candidate's answer prompts and
their output shapes, the judge's prompt, and the experience pool that later attacker prompts
show. Pure functions of the rule, the scenario and the conversation so far (the templates are
:mod:`specc.synth.roles`'); :mod:`specc.synth.calls` runs what they build.

The experience pool (:class:`ExperiencePool`) keeps the attacks that led to a verified pair,
per rule, and shows the latest ones to later attacker calls of the same rule. Per rule, so an
edit to one rule never changes another rule's prompts; in plan order, so it is deterministic.
"""

from __future__ import annotations

import json
from typing import Sequence

from specc.ir.model import Rule, content_hash
from specc.plan.model import Scenario
from specc.synth import demos, roles, tactics
from specc.synth.model import Message


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



# -- the roles' prompts --------------------------------------------------------------------------------


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


def _chat(system: str, user: str | None = None, turns: Sequence[dict] = ()) -> list[Message]:
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


def attacker_messages(rule: Rule, scenario: Scenario, demos: Sequence[tuple[str, str]]) -> list[Message]:
    """The attacker as few-shot chat: the spec's example requests as answered turns, then this
    scenario's situation. The model writes the plain request; tactics are applied by code."""
    system, _ = roles.render("attacker", situation="", details="", style="")
    msgs: list[Message] = [{"role": "system", "content": system}]
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


def _demo_turns(rule: Rule, *, good: bool, refusals: bool | None, as_json: bool) -> list[Message]:
    """The rule's examples as chat turns: each example's first user turn and a good (or bad)
    answer; as JSON ``{"answer": ...}`` for a constrained role."""
    from specc.ir.checks import is_refusal

    out: list[Message] = []
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
                    operator: str | None) -> list[Message]:
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


def judge_messages(rule: Rule, scenario: Scenario, conversation: Sequence[dict], first: str, second: str) -> list[Message]:
    """The judge's prompt. It cites only the rule under test: a list of the spec's rule ids would
    make every judge call depend on every rule (adding one regenerated them all)."""
    system, user = roles.render("judge", **_scenario_data(rule, scenario),
                                conversation=[dict(t) for t in conversation], first=first, second=second,
                                rule_ids=[rule.id])
    return _chat(system, user)
