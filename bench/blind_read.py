"""A person reads probe answers blind: is the trained model more *responsive* than the base?

``specc improve`` scores answers by the rules' checks, and over-refusal by refusals. Neither can
tell an answer that complies by helping from one that complies by saying nothing ("I'm here to
help. How can I assist you?" passes a length bound and "never name a competitor"). A bag-of-words
"on topic" check was tried and read against a person's labels on bank.spec: it agreed on 44 of
60 answers, and 15 of the 22 it called on topic were not — the embedded model echoes the
request's words ("Welcome to the station. I'm here to help you with your card."). So this
benchmark asks a person.

``sheet`` samples probes of a run, shows each probe with the base's and a round's answers as A
and B in a seeded random order, and writes the key apart (do not open it before scoring).
The reader writes one line per item into a labels file: ``ITEM A B``, each 1 when that answer is
**responsive** — it addresses this request specifically: helps with what was asked (right or
wrong in its facts), or declines what the rule forbids and says what it can do — and 0 when it
is a greeting, a generic offer of help, a stock deflection, a refusal of an allowed request,
off-topic or broken text. ``score`` joins the labels with the key and prints the paired change
(McNemar interval, as the loop's report) per probe kind.

    python bench/blind_read.py sheet /tmp/imp5/run --round 1 -n 60 --seed 3 -o /tmp/read
    $EDITOR /tmp/read/labels.txt          # "0 1 0", "1 0 0", ... one line per item
    python bench/blind_read.py score /tmp/read
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from specc.improve.measure import paired  # noqa: E402


def _answers(run: Path, r: int) -> dict[str, str]:
    return json.loads((run / f"round-{r}" / "eval.json").read_text(encoding="utf-8"))["answers"]


def sheet(run: Path, r: int, n: int, seed: int, out: Path) -> None:
    probes = json.loads((run / "requests.json").read_text(encoding="utf-8"))["probes"]
    base, cur = _answers(run, 0), _answers(run, r)
    probes = [p for p in probes if p["id"] in base and p["id"] in cur]
    rng = random.Random(seed)
    picked = rng.sample(probes, min(n, len(probes)))
    out.mkdir(parents=True, exist_ok=True)
    key, lines = [], []
    for i, p in enumerate(picked):
        flip = rng.random() < 0.5
        a, b = (cur[p["id"]], base[p["id"]]) if flip else (base[p["id"]], cur[p["id"]])
        key.append({"item": i, "id": p["id"], "kind": p["kind"], "rule": p["rule_id"], "A": r if flip else 0,
                    "B": 0 if flip else r})
        lines += [f"## item {i}", f"USER: {p['text']}", "", f"A: {a.strip()}", "", f"B: {b.strip()}", ""]
    (out / "sheet.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "key.json").write_text(json.dumps({"run": str(run), "round": r, "seed": seed, "items": key}, indent=1),
                                  encoding="utf-8")
    print(f"{len(picked)} items: {out / 'sheet.md'}; write {out / 'labels.txt'} (ITEM A B per line), then score")


def score(out: Path) -> dict:
    key = json.loads((out / "key.json").read_text(encoding="utf-8"))
    labels: dict[int, tuple[int, int]] = {}
    for n, line in enumerate((out / "labels.txt").read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split("#")[0].split()
        if not parts:
            continue
        if len(parts) != 3 or any(x not in "01" for x in parts[1:]) or not parts[0].isdigit():
            raise SystemExit(f"labels.txt line {n}: expected 'ITEM A B' with A and B 0 or 1, got {line!r}")
        labels[int(parts[0])] = (int(parts[1]), int(parts[2]))
    rows: dict[str, tuple[list, list]] = {}
    missing = 0
    for it in key["items"]:
        if it["item"] not in labels:
            missing += 1
            continue
        got = dict(zip("AB", labels[it["item"]]))
        base = got["A"] if it["A"] == 0 else got["B"]
        cur = got["B"] if it["A"] == 0 else got["A"]
        for kind in (it["kind"], "all"):
            rows.setdefault(kind, ([], []))
            rows[kind][0].append(base)
            rows[kind][1].append(cur)
    result = {"run": key["run"], "round": key["round"], "unlabelled": missing,
              "responsive": {k: paired(b, c).as_dict() for k, (b, c) in sorted(rows.items())}}
    for kind, p in result["responsive"].items():
        lo, hi = p["interval"]
        print(f"{kind:10s} n={p['n']:3d}  base {100 * p['before']:5.1f}%  round {key['round']} {100 * p['after']:5.1f}%  "
              f"change {100 * p['change']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]")
    if missing:
        print(f"{missing} item(s) not labelled")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheet")
    s.add_argument("run", type=Path)
    s.add_argument("--round", type=int, default=1)
    s.add_argument("-n", type=int, default=60)
    s.add_argument("--seed", type=int, default=3)
    s.add_argument("-o", "--out", type=Path, required=True)
    c = sub.add_parser("score")
    c.add_argument("out", type=Path)
    c.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd == "sheet":
        sheet(a.run, a.round, a.n, a.seed, a.out)
    else:
        result = score(a.out)
        if a.json:
            print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
