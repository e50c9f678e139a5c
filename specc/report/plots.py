"""The report's plots, drawn by matplotlib (Agg, no pyplot state) as SVG text to inline in the page.

Deterministic: a fixed hash salt per figure, no date or creator in the metadata, text kept as
text (``svg.fonttype: none``) and never parsed as mathtext, so the same summary gives the same
bytes. Labels come from the spec and the models; matplotlib escapes them as XML text.

A plot shows at most :data:`PLOT_RULES` rules, the worst ones, and says so: a figure with a bar
per rule grew superlinearly (matplotlib's layout and drawing: 6,000 rules took minutes and over
500 MB), and a plot of thousands of bars cannot be read anyway. The page's tables list every rule.
"""

from __future__ import annotations

import io
import re

from specc.report.summary import Summary

# Okabe-Ito: distinguishable with any colour vision
GREEN, ORANGE, VERMILION, GREY, BLUE, SKY, PURPLE = "#009E73", "#E69F00", "#D55E00", "#999999", "#0072B2", \
    "#56B4E9", "#CC79A7"
EVAL_COLOURS = (GREY, BLUE, ORANGE, PURPLE, GREEN, SKY)
PLOT_RULES = 40


def worst(ids: list[str], badness) -> tuple[list[str], str | None]:
    """``ids`` as they are when at most :data:`PLOT_RULES`; else the worst by ``badness`` (worst
    first, ties by id), and the sentence that says which were left out."""
    if len(ids) <= PLOT_RULES:
        return ids, None
    shown = sorted(ids, key=lambda i: (-badness(i), i))[:PLOT_RULES]
    return shown, f"the {PLOT_RULES} rules {{}}, of {len(ids):,}; the tables list every rule"


class PlotsUnavailable(Exception):
    """matplotlib is not installed."""


def mpl():
    try:
        import matplotlib
        from matplotlib.backends.backend_svg import FigureCanvasSVG
        from matplotlib.figure import Figure
    except ImportError as e:
        raise PlotsUnavailable("the HTML report draws its plots with matplotlib: pip install 'specc[report]' "
                               "(or --format markdown, which needs nothing more)") from e
    return matplotlib, Figure, FigureCanvasSVG


def svg(fig, salt: str) -> str:
    matplotlib, _, FigureCanvasSVG = mpl()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"specc-report-{salt}", "svg.fonttype": "none",
                                "svg.id": None}):
        FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None, "Creator": None, "Format": None,
                                                      "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # no XML declaration or DOCTYPE inside HTML
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    return text.strip() + "\n"


def style():
    matplotlib, Figure, _ = mpl()
    return matplotlib.rc_context({"text.parse_math": False, "font.family": "DejaVu Sans", "font.size": 9,
                                  "axes.spines.top": False, "axes.spines.right": False})


def outcomes(s: Summary) -> str | None:
    """Per rule, what became of its planned scenarios: one stacked bar each."""
    if not s.rules:
        return None
    _, Figure, _ = mpl()
    parts = [("verified", GREEN, lambda f: f.verified),
             ("dropped at check / judge", ORANGE, lambda f: sum(f.lost.get("verified", {}).values())),
             ("dropped at the gates", VERMILION, lambda f: sum(f.lost.get("gated", {}).values())),
             ("not generated (judge untrusted, model fault)", GREY,
              lambda f: sum(f.lost.get("generated", {}).values()))]
    by_id = {r.id: r for r in s.rules}
    ids, note = worst(list(by_id), lambda i: by_id[i].funnel.planned - by_id[i].funnel.verified)
    with style():
        fig = Figure(figsize=(7.5, 0.9 + 0.32 * len(ids) + (0.3 if note else 0)), layout="constrained")
        if note:
            fig.supxlabel(note.format("with the most planned scenarios not verified"), fontsize=8)
        ax = fig.add_subplot()
        names = ids[::-1]
        funnels = [by_id[i].funnel for i in names]
        left = [0] * len(names)
        for label, colour, value in parts:
            vals = [value(f) for f in funnels]
            ax.barh(names, vals, left=left, color=colour, label=label, height=0.6)
            left = [a + b for a, b in zip(left, vals)]
        ax.set_xlabel("planned scenarios")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False, fontsize=8)
        return svg(fig, "outcomes")


def evals(s: Summary) -> str | None:
    """Per rule, compliance and over-refusal of each eval with its 95% interval, side by side."""
    if not s.evals:
        return None
    _, Figure, _ = mpl()
    rules = sorted({rid for c in s.evals for rid in c.report.per_rule})
    if not rules:
        return None

    def badness(rid: str) -> float:  # the worst of non-compliance and over-refusal in any eval
        rates = [(1 - rr.compliance) if rr.compliance is not None else 0.0 for c in s.evals
                 if (rr := c.report.per_rule.get(rid))]
        rates += [rr.overrefusal or 0.0 for c in s.evals if (rr := c.report.per_rule.get(rid))]
        return max(rates, default=0.0)

    rules, note = worst(rules, badness)
    with style():
        fig = Figure(figsize=(7.5, 1.2 + 0.4 * len(rules) * max(1, len(s.evals)) ** 0.5 + (0.3 if note else 0)),
                     layout="constrained")
        if note:
            fig.supxlabel(note.format("with the lowest compliance or highest over-refusal in any eval"), fontsize=8)
        axes = fig.subplots(1, 2, sharey=True)
        k = len(s.evals)
        for ax, metric, title in ((axes[0], "compliance", "compliance (higher is better)"),
                                  (axes[1], "overrefusal", "over-refusal (lower is better)")):
            for i, col in enumerate(s.evals):
                ys, xs, lo, hi = [], [], [], []
                for j, rid in enumerate(rules[::-1]):
                    rr = col.report.per_rule.get(rid)
                    v = getattr(rr, metric) if rr else None
                    if v is None:
                        continue
                    iv = getattr(rr, f"{metric}_interval") or (v, v)
                    ys.append(j - (i - (k - 1) / 2) * (0.6 / max(k, 1)))  # the first eval on top
                    xs.append(100 * v)
                    lo.append(max(0.0, 100 * (v - iv[0])))  # Wilson bounds can round past the rate
                    hi.append(max(0.0, 100 * (iv[1] - v)))
                if xs:
                    ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", color=EVAL_COLOURS[i % len(EVAL_COLOURS)],
                                label=col.label, capsize=2, markersize=4, linewidth=1)
            ax.set_xlim(-2, 102)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("% of probes (95% interval)")
            ax.set_yticks(range(len(rules)), rules[::-1])
            ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        handles, labels = axes[0].get_legend_handles_labels()
        if not handles:
            handles, labels = axes[1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncols=min(k, 3), frameon=False, fontsize=8)
        return svg(fig, "evals")
