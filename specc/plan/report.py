"""The plan for people: what ``specc plan`` prints, a table of counts per rule and boundary,
then per axis value, then what was skipped and why."""

from __future__ import annotations

from specc.plan.model import Plan
from specc.plan.planner import plan_counts


def render_text(plan: Plan) -> str:
    counts = plan_counts(plan)
    lines = [
        f"plan for {plan.spec_id} {plan.spec_version}  hash {plan.spec_hash[:12]}",
        f"seed {plan.seed} · per rule {plan.per_rule} · coverage {plan.coverage} · "
        f"system prompt {plan.system_prompt} · test fraction {plan.test_fraction:g}",
        "",
    ]
    boundaries = list(plan.boundaries)
    header = ["rule", *boundaries, "total"]
    rows = []
    for rid, entry in counts["rules"].items():
        cells = []
        for b in boundaries:
            cells.append("-" if b in entry["skipped"] else str(entry["boundaries"].get(b, {}).get("total", 0)))
        rows.append([rid, *cells, str(entry["total"])])
    rows.append(["total", *(str(counts["boundaries"][b]) for b in boundaries), str(counts["total"])])
    lines += _table(header, rows)

    if counts["axes"]:
        lines += ["", "scenarios per axis value:"]
        header = ["axis", "value", *boundaries, "total"]
        rows = []
        for axis, values in counts["axes"].items():
            for value, total in values.items():
                per_b = [sum(e["boundaries"].get(b, {}).get("axes", {}).get(axis, {}).get(value, 0)
                             for e in counts["rules"].values()) for b in boundaries]
                rows.append([axis, value, *map(str, per_b), str(total)])
        lines += _table(header, rows)

    if plan.skipped:
        lines += ["", "skipped:"]
        lines += [f"  {s.rule_id} {s.boundary}: {s.reason}" for s in plan.skipped]
    lines += ["", f"{counts['total']} scenarios for {len(counts['rules'])} rules: "
                  f"{counts['train']} train, {counts['test']} test"]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-align the first columns that hold text, right-align the counts."""
    text_cols = sum(1 for h in header if h in ("rule", "axis", "value"))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        cells = [c.ljust(w) if i < text_cols else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        return "  " + "  ".join(cells).rstrip()

    return [fmt(header), *(fmt(r) for r in rows)]
