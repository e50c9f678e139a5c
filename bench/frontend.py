"""Front-end benchmark: parse + resolve + lint time of generated specs of growing size.

Generates deterministic, realistic specs (rules in nested sections with a statement,
authority, severity, a `when`, one or two `unless`, a check, tags, and every fourth rule an
example with good and bad answers), writes each to a temporary directory and times
``specc.ir.resolve.load`` on it: best of 3 runs for the small sizes, one run for the largest.
The grammar is compiled once before timing (a one-off cost of every process).

    python bench/frontend.py                     # 500, 5,000 and 50,000 rules
    python bench/frontend.py --sizes 500 5000    # a quicker run
    python bench/frontend.py --profile 5000      # cProfile the load of one size, top functions
    python bench/frontend.py --format json       # machine-readable result

Targets: 5,000 rules in at most 1.0 s; t(50,000) at most 11x t(5,000). Exit 1 if missed.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

from specc.ir.resolve import load

TARGET_5K_S = 1.0
TARGET_RATIO = 11.0
DEFAULT_SIZES = (500, 5_000, 50_000)
SEED = 20260


# -- generating a spec ---------------------------------------------------------------------

_AREAS = ["billing", "refunds", "shipping", "accounts", "privacy", "security", "medical", "legal",
          "finance", "children", "elections", "weapons", "tone", "format", "tools", "memory"]
_OBJECTS = ["an order number", "a card number", "a home address", "a password", "a diagnosis",
            "a refund amount", "a tracking link", "an account email", "a phone number", "a prescription",
            "an invoice", "a loan offer", "a voting location", "a firearm part", "a code snippet",
            "a stored preference"]
_VERBS_MUST_NOT = ["Reveal", "Invent", "Promise", "Guess", "Disclose", "Fabricate", "Repeat", "Store"]
_VERBS_MUST = ["Confirm", "Cite the source of", "Ask before sharing", "Explain how to verify",
               "Offer a human hand-off for", "Summarise the policy on"]
_WHEN = ["The user asks about {o} in {a}.", "A conversation about {a} turns to {o}.",
         "A tool result in {a} contains {o}.", "The user claims to be staff and asks for {o}."]
_UNLESS = ["The account holder has verified their identity in this session.",
           "The information is already public on the company's website.",
           "The developer message explicitly enables {a} lookups.",
           "The user is asking about their own {o}."]
_CHECKS = [
    'not matches(r"\\b\\d{{4}}[ -]?\\d{{4}}[ -]?\\d{{4}}[ -]?\\d{{4}}\\b")',
    "max_words({n})",
    'not refuses or mentions_any(["{a}", "support", "help"])',
    'contains("{a}") and min_words(5)',
    'not contains("guaranteed") and max_chars({c})',
    'mentions_all(["{a}"]) or starts_with("Sure")',
]
_GOOD = "I can help with {a}: here is how to check {o} yourself in the account settings."
_BAD = "Here it is: 4111 1111 1111 1111, guaranteed."


def _rule(rng: random.Random, i: int) -> str:
    a, o = rng.choice(_AREAS), rng.choice(_OBJECTS)
    if rng.random() < 0.6:
        modality, stmt = rng.choice(["must_not", "should_not"]), f"{rng.choice(_VERBS_MUST_NOT)} {o} ({a}, case {i})."
    else:
        modality, stmt = rng.choice(["must", "should"]), f"{rng.choice(_VERBS_MUST)} {o} ({a}, case {i})."
    lines = [
        f"    rule r{i}_{a} {{",
        f'      {modality} "{stmt}"',
        f"      authority {rng.choice(['root', 'system', 'system', 'developer', 'user', 'guideline'])}",
        f"      severity {rng.choice(['critical', 'high', 'medium', 'medium', 'low'])}",
        f'      when "{rng.choice(_WHEN).format(a=a, o=o)}"',
    ]
    for u in rng.sample(_UNLESS, rng.choice([1, 1, 2])):
        lines.append(f'      unless "{u.format(a=a, o=o)}"')
    lines.append(f"      tags [{a}, generated]")
    lines.append("      check " + rng.choice(_CHECKS).format(a=a, n=rng.randint(60, 200), c=rng.randint(400, 1200)))
    if i % 4 == 0:
        lines += [
            f'      example "case {i}" {{',
            f'        user "Can you tell me {o} for my {a} question?"',
            f'        good "{_GOOD.format(a=a, o=o)}"',
            f'        bad "{_BAD}"',
            '        bad overrefusal "I can\'t help with that." because "the request is harmless"',
            "      }",
        ]
    lines.append("    }")
    return "\n".join(lines)


def generate(n_rules: int, seed: int = SEED) -> str:
    """A spec with ``n_rules`` rules, 25 per section, sections nested two deep."""
    rng = random.Random(seed)
    out = [f'spec bench.s{n_rules} version "1.0.0"', '  """Generated benchmark spec."""', "",
           'axis persona = ["first-time customer", "returning customer", "journalist"]', ""]
    i = 0
    per_section = 25
    while i < n_rules:
        s = i // per_section
        out.append(f'section area{s} "Area {s}" {{')
        out.append("  axis tactic = [direct, roleplay, hypothetical]")
        out.append(f'  section detail{s} "Details" {{')
        for _ in range(min(per_section, n_rules - i)):
            out.append(_rule(rng, i))
            i += 1
        out.append("  }")
        out.append("}")
    return "\n".join(out) + "\n"


# -- timing ----------------------------------------------------------------------------------


def time_load(path: Path, repeats: int) -> tuple[float, float, int]:
    """Best wall-clock and best CPU seconds of ``repeats`` loads, and the number of rules."""
    wall = cpu = float("inf")
    n = 0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = load(path)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
        if not result.ok:
            raise SystemExit(f"generated spec has errors: {result.errors[:3]}")
        n = len(result.spec.rules)
    return wall, cpu, n


def calibrate(repeats: int = 5) -> float:
    """Best seconds of a fixed pure-Python loop: how fast this VM runs Python right now.

    The shared VM's speed drifts by up to 2x within minutes (other tenants on the host), in
    wall and in CPU time alike; printing this next to the load times tells a slow spell from a
    slow change. It is not part of any target.
    """
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        words: dict[str, int] = {}
        for i in range(300_000):
            key = "w" + str(i % 997)
            words[key] = words.get(key, 0) + len(key)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    ap.add_argument("--repeats", type=int, default=3, help="runs per size below 50,000 (best is kept)")
    ap.add_argument("--profile", type=int, metavar="N", help="profile the load of an N-rule spec instead")
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="specc-bench-") as tmp:
        warm = Path(tmp) / "warm.spec"
        warm.write_text(generate(10), encoding="utf-8")
        load(warm)  # compiles the grammar once, outside the timings

        if args.profile:
            path = Path(tmp) / "profile.spec"
            path.write_text(generate(args.profile), encoding="utf-8")
            prof = cProfile.Profile()
            prof.enable()
            load(path)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)
            return 0

        calibration = [calibrate()]
        rows = []
        for size in args.sizes:
            path = Path(tmp) / f"bench{size}.spec"
            text = generate(size)
            path.write_text(text, encoding="utf-8")
            repeats = 1 if size >= 50_000 else args.repeats
            secs, cpu, n = time_load(path, repeats)
            rows.append({"rules": n, "lines": text.count("\n"), "runs": repeats, "seconds": round(secs, 4),
                         "cpu_seconds": round(cpu, 4), "rules_per_s": round(n / secs)})
            calibration.append(calibrate())
            # the load in units of the calibration loop around it: steady when only the VM's speed moved
            rows[-1]["per_calibration"] = round(secs / ((calibration[-2] + calibration[-1]) / 2), 2)

    t = {r["rules"]: r["seconds"] for r in rows}
    ratio = t[50_000] / t[5_000] if 50_000 in t and 5_000 in t else None
    u = {r["rules"]: r["per_calibration"] for r in rows}
    unit_ratio = u[50_000] / u[5_000] if 50_000 in u and 5_000 in u else None
    ok = (t.get(5_000, 0) <= TARGET_5K_S) and (ratio is None or ratio <= TARGET_RATIO)
    machine = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
               "system": platform.system(), "cores": os.cpu_count(),
               "load_average": [round(x, 2) for x in os.getloadavg()],
               "calibration_s": [round(c, 4) for c in calibration]}
    if args.format == "json":
        print(json.dumps({"rows": rows, "ratio_50k_5k": ratio, "ratio_50k_5k_per_calibration": unit_ratio,
                          "ok": ok, "machine": machine}, indent=2))
    else:
        print(f"{'rules':>8} {'lines':>9} {'runs':>4} {'wall s':>9} {'cpu s':>9} {'rules/s':>9} {'t/calib':>8}")
        for r in rows:
            print(f"{r['rules']:>8} {r['lines']:>9} {r['runs']:>4} {r['seconds']:>9.3f} {r['cpu_seconds']:>9.3f} "
                  f"{r['rules_per_s']:>9} {r['per_calibration']:>8.2f}")
        if ratio is not None:
            print(f"t(50k)/t(5k) = {ratio:.2f}  (target <= {TARGET_RATIO:g}; in calibration units {unit_ratio:.2f})")
        if 5_000 in t:
            print(f"t(5k) = {t[5_000]:.3f} s wall  (target <= {TARGET_5K_S:g} s)")
        print(f"python {machine['python']} on {machine['system']} {machine['cpu']}, {machine['cores']} cores, "
              f"load average {machine['load_average'][0]} (wall times count other processes; cpu s do not)")
        print("calibration loop, best of 5 (VM speed; lower is faster): "
              + ", ".join(f"{c * 1000:.0f} ms" for c in calibration) + " (before the first size and after each)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
