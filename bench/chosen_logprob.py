"""How likely is each side of a round's pairs, before and after training? (why a rule does not move)

For ``-n`` pairs of one rule from ``RUN/round-R/train.jsonl``, the mean log-probability per token
of the chosen side, the rejected side and the model's own greedy answer, given the pair's prompt
(as trained: no system prompt), under the base model and under the round's model. A chosen side
that rose in training but stays below the model's greedy answer is never said greedily.

    python bench/chosen_logprob.py /tmp/imp5/run --rule fraud_freeze --contains freeze -n 4
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from specc.train.run import resolve_base

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--rule", required=True, help="the rule id's last part, e.g. fraud_freeze")
    ap.add_argument("--contains", default="", help="only pairs whose chosen side contains this (case-insensitive)")
    ap.add_argument("-n", type=int, default=4)
    ap.add_argument("--base", default="smollm2")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = [json.loads(line) for line in (a.run / f"round-{a.round}" / "train.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if r["rule_id"].split(".")[-1] == a.rule
            and a.contains.lower() in r["chosen"][-1]["content"].lower()][: a.n]
    if not rows:
        print(f"no pair of {a.rule} in {a.run}/round-{a.round}", file=sys.stderr)
        return 1
    base_dir, _ = resolve_base(a.base)
    tok = AutoTokenizer.from_pretrained(base_dir)

    def prompt_ids(msgs):
        return tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), return_tensors="pt",
                   add_special_tokens=False).input_ids

    def mean_logprob(model, msgs, answer: str) -> float:
        p = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        n = prompt_ids(msgs).shape[1]
        full = tok(p + answer, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            logp = model(full).logits[0, :-1].float().log_softmax(-1)
        got = logp[n - 1:].gather(1, full[0, n:, None]).squeeze(1)
        return got.mean().item()

    for label, path in (("base", base_dir), (f"round {a.round}", a.run / f"round-{a.round}" / "model")):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        for r in rows:
            ids = prompt_ids(r["prompt"])
            out = model.generate(ids, max_new_tokens=40, do_sample=False)
            greedy = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
            print(f"{label:8s} chosen {mean_logprob(model, r['prompt'], r['chosen'][-1]['content']):6.2f}  "
                  f"rejected {mean_logprob(model, r['prompt'], r['rejected'][-1]['content']):6.2f}  "
                  f"greedy {mean_logprob(model, r['prompt'], greedy):6.2f}  | {greedy[:80]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
