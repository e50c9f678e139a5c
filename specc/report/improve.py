"""``specc report RUN``, where RUN is a ``specc improve`` run: compliance and over-refusal per rule
per round, each change against the base with its paired 95 % interval, as a plot and tables;
perplexity and the instruction set beside them.

The run's ``report.json`` is read as a hostile file (someone may hand over a run directory): a size
limit, :func:`specc.files.load_json`'s depth and number limits, and a strict schema with finite
numbers in range, before anything is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specc import markdown
from specc.files import load_json, validation_problem
from specc.improve.loop import FORMAT
from specc.report.inputs import ReportError

MAX_REPORT_BYTES = 32 * 1024 * 1024  # a run's report.json is a few kilobytes per rule and round
_Name = Field(max_length=300)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)


class Paired(_Strict):
    """A paired change (specc.improve.measure.Paired.as_dict)."""

    n: int = Field(ge=0)
    before: float = Field(ge=0, le=1)
    after: float = Field(ge=0, le=1)
    change: float = Field(ge=-1, le=1)
    interval: tuple[float, float]
    only_before: int = Field(ge=0)
    only_after: int = Field(ge=0)

    def pts(self) -> str:
        lo, hi = self.interval
        return f"{100 * self.change:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]"


class VsBase(_Strict):
    compliance: Paired | None = None
    overrefusal: Paired | None = None
    rules: dict[str, Paired] = Field(default_factory=dict, max_length=100_000)


class Perplexity(_Strict):
    base: float | None = Field(None, gt=0)
    after: float | None = Field(None, gt=0)
    change: float | None = None


class Instructions(Paired):
    set: str = Field(max_length=128)


class Training(_Strict):
    steps: int | None = Field(None, ge=0)
    loss: float | None = None


class Round(_Strict):
    round: int = Field(ge=1, le=1000)
    pairs: int = Field(ge=0)
    vs_base: VsBase
    vs_previous: VsBase | None = None
    perplexity: Perplexity = Perplexity()
    instructions: Instructions | None = None
    training: Training = Training()
    chosen_from: dict[str, int] | None = Field(None, max_length=64)


class Requests(_Strict):
    train: int = Field(ge=0)
    probes: int = Field(ge=0)
    probes_dropped_by_decontamination: int = Field(ge=0)
    rules: list[str] = Field(max_length=100_000)


class ImproveReport(_Strict):
    format: Literal["specc-improve/1"]
    spec: str = _Name
    base: str = _Name
    requests: Requests
    rounds: list[Round] = Field(max_length=1000)
    done: bool
    stopped: str | None = Field(None, max_length=2000)
    best_round: int = Field(ge=0)
    best_model: str | None = Field(None, max_length=4096)


def is_improve_run(directory: Path) -> bool:
    """Whether ``directory`` is a ``specc improve`` run (its ``improve.json``) and not a dataset."""
    d = Path(directory)
    return (d / "improve.json").is_file() and not (d / "manifest.json").exists()


def read_improve(directory: Path) -> ImproveReport:
    path = Path(directory) / "report.json"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_REPORT_BYTES + 1)
    except FileNotFoundError:
        raise ReportError(f"{directory}: a `specc improve` run with no report.json yet (rerun `specc improve` "
                          "to finish a round)") from None
    except OSError as e:
        raise ReportError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(f"{path}: over {MAX_REPORT_BYTES // (1024 * 1024)} MiB: not a report `specc improve` wrote")
    try:
        value = load_json(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ReportError(f"{path}: not JSON ({e})") from None
    if isinstance(value, dict) and value.get("format") != FORMAT:
        raise ReportError(f"{path}: format {str(value.get('format'))[:40]!r}, not {FORMAT!r}")
    try:
        return ImproveReport.model_validate(value)
    except ValidationError as e:
        raise ReportError(f"{path} is not a `specc improve` report ({validation_problem(e)})") from None


def _rules(r: ImproveReport) -> list[str]:
    return sorted({rid for row in r.rounds for rid in row.vs_base.rules})


def plot_changes(r: ImproveReport) -> str | None:
    """A forest plot: for each rule (and pooled, and over-refusal), each round's change against the
    base with its paired 95 % interval; a vertical line at no change."""
    from specc.report import plots

    if not r.rounds:
        return None
    _, Figure, _ = plots.mpl()
    rules, note = plots.worst(_rules(r), lambda rid: -min(
        (row.vs_base.rules[rid].change for row in r.rounds if rid in row.vs_base.rules), default=0.0))
    rows = ["pooled compliance", "over-refusal (lower is better)", *rules]
    k = len(r.rounds)
    with plots.style():
        fig = Figure(figsize=(7.5, 1.3 + 0.42 * len(rows) * max(1, k) ** 0.5 + (0.3 if note else 0)),
                     layout="constrained")
        if note:
            fig.supxlabel(note.format("that lost the most in any round"), fontsize=8)
        ax = fig.add_subplot()
        for i, row in enumerate(r.rounds):
            values = [row.vs_base.compliance, row.vs_base.overrefusal, *(row.vs_base.rules.get(rid) for rid in rules)]
            ys, xs, lo, hi = [], [], [], []
            for j, p in enumerate(values):
                if p is None:
                    continue
                ys.append(len(rows) - 1 - j - (i - (k - 1) / 2) * (0.6 / max(k, 1)))
                xs.append(100 * p.change)
                lo.append(max(0.0, 100 * (p.change - p.interval[0])))
                hi.append(max(0.0, 100 * (p.interval[1] - p.change)))
            colour = plots.EVAL_COLOURS[(i + 1) % len(plots.EVAL_COLOURS)]
            ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", color=colour, label=f"round {row.round} ({row.pairs} pairs)",
                        capsize=2, markersize=4, linewidth=1)
        ax.axvline(0, color=plots.GREY, linewidth=0.8)
        ax.set_yticks(range(len(rows)), rows[::-1])
        ax.set_xlabel("change against the base, points (paired 95% interval)")
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        fig.legend(loc="outside upper center", ncols=min(k, 3), frameon=False, fontsize=8)
        return plots.svg(fig, "improve")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def render_html(r: ImproveReport) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined
    from markupsafe import Markup

    env = Environment(loader=PackageLoader("specc.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    svg = plot_changes(r)
    return env.get_template("improve.html.j2").render(r=r, plot=Markup(svg) if svg else None, rules=_rules(r),
                                                      pct=_pct)


def render_markdown(r: ImproveReport) -> str:
    md, code = markdown.text, markdown.code
    q = r.requests
    out = [f"### specc improve: {code(r.spec)} on {code(r.base)}", "",
           f"{md(q.train)} training requests, {md(q.probes)} held-out probes over {len(q.rules)} rule(s) "
           f"({md(q.probes_dropped_by_decontamination)} dropped by the 8-word decontamination check).", ""]
    if r.rounds:
        head = "| | " + " | ".join(f"round {row.round} ({row.pairs} pairs)" for row in r.rounds) + " |"
        out += [head, "|---|" + "---:|" * len(r.rounds)]

        def line(name: str, get) -> str:
            cells = []
            for row in r.rounds:
                p = get(row)
                cells.append(f"{_pct(p.before)} → {_pct(p.after)}, {p.pts()}" if p else "n/a")
            return f"| {name} | " + " | ".join(cells) + " |"

        out.append(line("**pooled compliance**", lambda row: row.vs_base.compliance))
        out.append(line("over-refusal (lookalikes)", lambda row: row.vs_base.overrefusal))
        for rid in _rules(r):
            out.append(line(code(rid), lambda row, rid=rid: row.vs_base.rules.get(rid)))
        out.append(line("instruction set (capability)", lambda row: row.instructions))
        out.append("| perplexity (capability) | " + " | ".join(
            f"{row.perplexity.base:.2f} → {row.perplexity.after:.2f} ({100 * row.perplexity.change:+.1f} %)"
            if row.perplexity.change is not None and row.perplexity.base and row.perplexity.after else "n/a"
            for row in r.rounds) + " |")
        out.append("")
    status = r.stopped or ("all rounds done" if r.done else "not finished")
    out.append(f"Stopped: {md(status)}. Best round: {r.best_round}"
               + (f" ({code(r.best_model)})." if r.best_model else " (the base)."))
    return "\n".join(out) + "\n"


def make_improve_report(directory: Path, fmt: str = "html") -> str:
    r = read_improve(directory)
    return render_markdown(r) if fmt == "markdown" else render_html(r)
