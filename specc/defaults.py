"""The defaults of a compile, in one place.

``specc compile``'s options, :class:`specc.compile.CompileOptions`, the generation
:class:`specc.synth.calls.Settings`, the planner's :func:`specc.plan.planner.make_plan` and
``specc diff``'s re-plan of a dataset all read them here, so a default cannot say one thing on
the command line and another in the library. No imports: every package may read it.
"""

from __future__ import annotations

SEED = 0
PER_RULE = 1  # scenarios per rule and boundary of a compile (scaled by the rule's weight)
PLAN_PER_RULE = 6  # `specc plan`'s preview, and make_plan's default: a fuller picture of the plan
# The most scenarios per rule and boundary a compile takes; a manifest claiming more is not one
# specc wrote (and would make `specc diff --data` re-plan for hours).
MAX_PER_RULE = 10_000
COVERAGE = "pairwise"
# the boundaries, in their one order; plan.model's `Boundary` type is made from this tuple, and every
# command, the manifest, the planner, eval and the report read one or the other
BOUNDARIES = ("violation", "lookalike", "conflict")
SYSTEM_PROMPT = "none"
TEST_FRACTION = 0.2

FORMAT = "dpo"
FILE_FORMAT = "jsonl"

TEMPERATURE = 0.0
RETRIES = 1  # regenerations of a failed pair before it is dropped
ROUNDS = 2  # user turns of a multi-turn scenario
BATCH_SIZE = 8
ANSWER_CHARS = 160
CANDIDATES = 3  # on-policy candidates per scenario in a compile (Settings without them: 0); 4 gave the README job one more sampled side of 57 pairs for 15 % more tokens (bench/README.md, cost)
CANDIDATE_TEMPERATURE = 0.8
# who writes a scenario's seed user turn in a compile: `composed` (seeded code, from the rule's own
# examples; the attacker only where a rule has no example of the scenario's kind) or `model` (the
# attacker, always). Settings without it: model
REQUESTS = "composed"
REQUEST_SOURCES = ("composed", "model")
EXAMPLE_SIDES = True  # a composed scenario's one missing side may be its example's answer (docs/compile.md)
MIN_JUDGE_AGREEMENT = 0.75
# A plan over this many scenarios is refused before any work (E503; `--max-scenarios`).
MAX_SCENARIOS = 100_000

# specc eval
EVAL_PER_RULE = 3  # fresh probes per rule and boundary (without --data)
EVAL_MAX_NEW_TOKENS = 192  # length bound of each answer under test
EVAL_SAMPLES = 1  # answers per probe: 1 is greedy
EVAL_BATCH_SIZE = 8

# specc improve: the engine that samples pairs and answers probes. transformers (batches of 8,
# column-major weights) sampled the README loop's pairs 1.85x and evaluated its base 2.4x faster than
# llama.cpp on the 2-core VM, and needs no llama-cpp-python (the README's install has none); two
# seeds gave +14.0 and +14.5 pts against llama.cpp's +18.5 [+12.1, +24.9] in its one run, a gap in the
# pairs, not in the measuring (bench/README.md, efficacy, session 11). llama.cpp is `--engine llamacpp`.
IMPROVE_ENGINE = "transformers"
IMPROVE_ENGINES = ("transformers", "llamacpp")
