"""Attacker requests written after two kinds of demonstrations, side by side, to read.

* ``before``: the rule's own first example request, then the example requests of *other rules of
  the spec* (what specc did before issue 19: editing one rule changed other rules' prompts);
* ``after``: the rule's own first example request, then requests of specc's fixed bank
  (``specc/synth/demos.py``; what a compile does now).

The same scenarios (every k-th of the plan, 20 by default), seeds and model (the embedded SmolLM2
through llama.cpp, constrained to the attacker's output type, sampled at the attacker's
temperature). Each request is printed with its rule, boundary and the first quality gate it fails
(PASS: none). Read them: the gate verdict is not whether a person would keep the request.

    python bench/attacker_demos.py examples/support/assistant.spec          # about a minute
    python bench/attacker_demos.py SPEC --n 40 --threads 2
"""

from __future__ import annotations

import argparse
import sys


def before_demos(spec_rules, rule, key, n):
    """The demonstrations of specc before issue 19: other rules' example requests, by key."""
    from specc.ir.model import content_hash
    from specc.synth import prompts, roles

    own, other = [], []
    for r in spec_rules:
        for ex in r.examples:
            users = [t.text for t in ex.turns if t.role == "user"]
            if not users or len(users[0]) > roles.FEW_SHOT_CHARS:
                continue
            (own if r.id == rule.id else other).append((prompts.request_brief(r, None), " ".join(users[0].split())))
    other.sort(key=lambda d: content_hash([key, d[1]]))
    return (own[:1] + other)[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec")
    ap.add_argument("--n", type=int, default=20, help="scenarios to attack")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    args = ap.parse_args(argv)

    from specc.engines import resolve_model
    from specc.ir.model import content_hash
    from specc.ir.resolve import load
    from specc.plan.planner import make_plan
    from specc.synth import demos, gates, prompts, roles
    from specc.synth.calls import Settings

    spec = load(args.spec).spec
    if spec is None:
        print(f"{args.spec}: does not check", file=sys.stderr)
        return 1
    plan = make_plan(spec, seed=0, per_rule=2)
    scenarios = plan.scenarios[:: max(1, len(plan.scenarios) // args.n)][: args.n]
    model = resolve_model("smollm2", engine="llamacpp", threads=args.threads)
    settings = Settings()
    output_type = roles.attacker_type(settings.bounds.attack)
    kinds = {"before": lambda r, s: before_demos(spec.rules, r, s.id, prompts.FEW_SHOT_DEMOS),
             "after": lambda r, s: prompts.demonstrations(r, s.id)}
    for label, demos_of in kinds.items():
        chats = [prompts.attacker_messages(spec.rule(s.rule_id), s, demos_of(spec.rule(s.rule_id), s))
                 for s in scenarios]
        seeds = [int(content_hash([s.id, "attacker"])[:8], 16) % 2**31 for s in scenarios]
        outs = model.generate_json(chats, output_type, settings.budgets["attacker"], seeds,
                                   temperature=settings.attack_temperature)
        passed = 0
        print(f"== {label}")
        for s, raw in zip(scenarios, outs):
            try:
                text = output_type.model_validate_json(raw).user
            except ValueError:
                text = f"<invalid: {raw[:60]}>"
            r = spec.rule(s.rule_id)
            topic = r.example_texts()
            ctx = gates.Context(rule_texts=(r.statement, *((r.when,) if r.when else ()), *r.unless),
                                axes=tuple(sorted(s.axes.items())), user_turns=(text,), topic=topic,
                                examples=topic + demos.REQUESTS)
            failure = gates.first_failure("user", text, ctx)
            passed += failure is None
            print(f"{s.rule_id.rsplit('.', 1)[-1]:<30} {s.boundary:<10} "
                  f"{'PASS' if failure is None else failure.gate.name:<15} {text}")
        print(f"-- {label}: {passed} of {len(scenarios)} pass the gates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
