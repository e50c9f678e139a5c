"""The dataset card: ``README.md`` with YAML front matter that ``datasets.load_dataset(DIR)``
reads to find the train and test files."""

from __future__ import annotations

import json

from specc.synth.model import SynthStats, stop_reason


def _q(s: str) -> str:
    # a JSON string is a valid YAML scalar, quoting and escaping included
    return json.dumps(s, ensure_ascii=False)


def render_card(*, spec_id: str, version: str, spec_hash: str, fmt: str, files: dict[str, str],
                counts: dict[str, int], stats: SynthStats, model: str, seed: int, shard: dict | None = None,
                judge: dict | None = None, judge_model: str | None = None, doc: str | None = None,
                review: dict | None = None) -> str:
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in ("train", "test"):
        if files.get(split):
            lines += [f"  - split: {split}", f"    path: {_q(files[split])}"]
    lines += ["tags:", "- specc", f"- {fmt}", "- preference" if fmt != "sft" else "- sft", "---", ""]
    lines += [
        f"# {spec_id} {version} ({fmt.upper()})",
        "",
        *([doc.strip(), ""] if doc and doc.strip() else []),  # the spec's doc string: its summary
        f"Compiled by specc from the behaviour specification `{spec_id}` version {version} "
        f"(spec hash `{spec_hash}`), with model `{model}` and seed {seed}.",
        "",
        *([f"This is shard {shard['index']} of {shard['count']} ({len(shard['rules'])} of "
           f"{len(shard['planned_rules'])} planned rules), not the whole dataset: `specc merge` combines "
           "all the shards into it.", ""] if shard else []),
        "| split | records |",
        "| --- | --- |",
    ]
    for split in ("train", "test"):
        lines.append(f"| {split} | {counts.get(split, 0)} |")
    lines += [
        "",
        f"Scenarios: {stats.scenarios}, verified: {stats.verified}, dropped: {stats.dropped}, "
        f"spec examples: {stats.spec_examples}.",
        "",
        *([judge_line(judge, judge_model or model, stats), ""] if judge is not None else []),
        review_line(review), "",
        "The test split holds held-out probes for evaluation. Every record carries `rule_ids`, "
        "`boundary` (violation, lookalike, conflict), `axes`, `scenario_id`, `source` "
        "(generated or spec-example), `verified_by` (check, judge or spec) and where each side came "
        "from, `chosen_from` / `rejected_from` (sampled: the model's own answer, sorted by the rule's "
        "checks; defender / violator: a role prompted for that side; spec: the example's own answer) and who wrote the first user "
        "turn, `request_from` (composed: seeded code, from the rule's own example requests; attacker: the "
        "model; spec). "
        "`manifest.json` maps every rule hash to its record ids.",
        "",
        "What `verified` means: a generated pair passed the quality gates (no parroted prompt, "
        "placeholder, loop, fragment, copied example, wrong language, off-topic text or stock "
        "deflection) and its rule's checks (chosen passes, rejected fails; at a lookalike chosen helps and "
        "rejected refuses), or a trusted judge. Code cannot tell whether an answer is coherent or "
        "correct: read a sample before training on it (`specc audit` reruns the gates on any dataset).",
        "",
    ]
    return "\n".join(lines)


def judge_line(judge: dict, judge_model: str, stats: SynthStats) -> str:
    """What the card says about the judge: its agreement with the spec's labelled examples."""
    dropped = stats.dropped_reasons.get("judge-uncalibrated", 0)
    who = f"The judge (`{judge_model}`)"
    if not judge.get("needed", True):
        return (f"{who} was not measured and verified nothing: no planned scenario needed it (every "
                "generated pair is verified by the rules' checks).")
    if judge["agreement"] is None:
        measured = (f"{who} could not be calibrated: the spec has no labelled examples (an example with a "
                    "good and a bad answer).")
    else:
        measured = (f"{who} agreed with the spec's labelled examples on {judge['correct']} of {judge['calls']} "
                    f"calls ({judge['examples']} examples, each shown in both orders): agreement "
                    f"{judge['agreement']:.2f}, minimum {judge['min_agreement']:g}.")
        if judge.get("stopped_early"):
            measured += (f" It was asked {judge['calls']} of {judge.get('planned_calls', '?')} planned calls: the rest "
                         f"was not asked once {stop_reason(judge)}.")
    if judge["trusted"]:
        verdict = ("It was trusted: pairs with `verified_by: judge` rest on its verdicts."
                   if judge["min_agreement"] > 0 else
                   "It was trusted by `--min-judge-agreement 0`, whatever its agreement: pairs with "
                   "`verified_by: judge` rest on its verdicts.")
    else:
        verdict = (f"It was not trusted: {dropped} pair(s) that only the judge could verify were dropped "
                   "(`judge-uncalibrated`); pairs verified by checks are unaffected.")
    rev = judge.get("reviewer")
    if rev and rev.get("calls"):
        verdict += (f" On {rev['examples']} pairs a person reviewed (`specc review`) it agreed with the reviewer on "
                    f"{rev['correct']} of {rev['calls']} calls ({rev['agreement']:.2f}); reported apart, it does not "
                    "decide whether the judge is trusted.")
    return f"{measured} {verdict}"


def review_line(review: dict | None) -> str:
    """What the card says about a person's review (``specc review``; the manifest's ``review``)."""
    if not review or not review.get("reviewed"):
        return ("Not reviewed by a person: no record here has a reviewer's verdict (`specc review DIR` "
                "shows the pairs one by one and records verdicts in `reviews.jsonl`).")
    total = review["records"]
    if review.get("exported"):
        head = (f"Reviewed by a person: these are the {review['accepted']} records a reviewer accepted "
                f"({review['reviewed']} of {total} reviewed; "
                f"{review['rejected']} rejected and {review['pending']} not reviewed, both left out).")
    else:
        head = (f"Reviewed by a person: {review['reviewed']} of {total} records have a verdict; "
                f"{review['accepted']} accepted, {review['rejected']} rejected and left out, "
                f"{review['pending']} not reviewed (emitted as generated).")
    extra = []
    if review.get("edited"):
        extra.append(f"{review['edited']} accepted with a side rewritten by the reviewer (`chosen_from` or "
                     "`rejected_from`: review)")
    if review.get("swapped"):
        extra.append(f"{review['swapped']} with chosen and rejected swapped")
    if review.get("reasons"):
        extra.append("rejected as " + ", ".join(f"{k} {n}" for k, n in review["reasons"].items()))
    return head + (" " + "; ".join(extra) + "." if extra else "")
