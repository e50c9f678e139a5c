"""``specc report``: a compiled dataset, its evals and a spec change, for people to look at.

- :mod:`~specc.report.inputs`: reads the manifest, records, ``EVAL.json`` and diff files (the one
  module that knows their layout);
- :mod:`~specc.report.summary`: what the report says, as data (funnel, coverage, drops, judge,
  samples, evals, diff);
- :mod:`~specc.report.plots`: matplotlib figures as inline SVG;
- :func:`render_html`: one self-contained page (Jinja, autoescaped; no script, no request);
- :func:`render_markdown`: the same summary, short enough for a PR comment.

It reads datasets and results only; nothing else imports it.
"""

from __future__ import annotations

from pathlib import Path

from specc import markdown
from specc.synth.model import format_money
from specc.report.inputs import Inputs, ReportError, read_inputs
from specc.report.plots import PlotsUnavailable
from specc.report.summary import BOUNDARIES, SAMPLES_PER_RULE, STAGE_NAMES, STOPPED_AT, Summary, summarize


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _rate(value, interval, n) -> str:
    if value is None:
        return "n/a"
    iv = f" [{100 * interval[0]:.0f}, {100 * interval[1]:.0f}]" if interval else ""
    return f"{100 * value:.1f}%{iv} n={n}"


def _codespans(text: str):
    """specc's own sentence with its `code` spans as <code>; every part escaped."""
    from markupsafe import Markup, escape

    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no spans
        return escape(text)
    return Markup("").join(escape(p) if i % 2 == 0 else Markup("<code>%s</code>") % p for i, p in enumerate(parts))


def render_html(s: Summary) -> str:
    """The report as one HTML page: every value from a spec, a model or a file is escaped."""
    from jinja2 import Environment, PackageLoader, StrictUndefined
    from markupsafe import Markup

    from specc.report import plots

    env = Environment(loader=PackageLoader("specc.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    # the only unescaped text: SVG that matplotlib wrote (and escaped) from the summary
    env.filters["codespans"] = _codespans
    figures = {"outcomes": plots.outcomes(s), "evals": plots.evals(s)}
    figures = {k: Markup(v) if v else None for k, v in figures.items()}
    return env.get_template("report.html.j2").render(
        s=s, plots=figures, stage_names=STAGE_NAMES, stopped_at=STOPPED_AT, boundaries=BOUNDARIES, samples_per_rule=SAMPLES_PER_RULE,
        eval_rules=s.eval_rules, pct=_pct, rate=_rate, share=_share)


def _md(s) -> str:
    """A value as escaped text on one line (:mod:`specc.markdown`)."""
    return markdown.text(s)


_code = markdown.code


def _prose(s) -> str:
    """specc's own sentence, whose names stand in backticks: the names as code spans, the rest as
    escaped text. A name with a backtick of its own shifts the pairing; every part is then still
    a code span or escaped text, so it stays inert, only less pretty."""
    parts = str(s).split("`")
    if len(parts) % 2 == 0:
        return _md(s)
    return "".join(_md(p) if i % 2 == 0 else _code(p) for i, p in enumerate(parts))


def render_markdown(s: Summary) -> str:
    """The summary for a PR comment: spec, funnel, one table of rules, judge, evals, diff."""
    f = s.funnel
    out = [f"### specc report: {_code(s.spec.get('id'))} {_code(s.spec.get('version', ''))}", "",
           f"Spec hash {_code(s.spec.get('hash'))}, model {_code(s.model.get('name'))}"
           + (f" on {_code(s.model['engine'])}" if s.model.get("engine") else "")
           + f", seed {_code(s.seed)}, {_code(s.fmt)}: {_md(s.counts.get('train', 0))} train, "
             f"{_md(s.counts.get('test', 0))} test records.", "",
           "Funnel (scenarios): " + " → ".join(f"{STAGE_NAMES[k]} **{n}**" for k, n in f.stages()[:-1])
           + f" → emitted **{f.emitted}** records ({f.examples} from spec examples)."
           + (f" Generated pairs: {_md(s.provenance)}." if s.provenance else ""), "",
           "| rule | planned | verified | emitted | " + " | ".join(BOUNDARIES) + " | top drop reason |",
           "|---|---:|---:|---:|" + "---:|" * len(BOUNDARIES) + "---|"]
    for r in s.rules:
        reasons = sorted(((n, reason) for rs in r.funnel.lost.values() for reason, n in rs.items()),
                         key=lambda x: (-x[0], x[1]))
        top = f"{_code(reasons[0][1])} × {reasons[0][0]}" if reasons else ""
        cells = " | ".join(r.boundaries[b].text() for b in BOUNDARIES)
        out.append(f"| {_code(r.id)} | {r.funnel.planned} | {r.funnel.verified} | {r.funnel.emitted} | {cells} | "
                   f"{top} |")
    out.append("")
    if s.judge_text:
        out += [_prose(s.judge_text), ""]
    if s.cost is not None:
        c = s.cost
        out += ["Cost: " + _md(c.lines()[0].removeprefix("cost: ")) + ".", "",
                "| role | calls | prompt tokens | completion tokens | seconds |" + (" money |" if c.total.cost is not None
                                                                                   else ""),
                "|---|---:|---:|---:|---:|" + ("---:|" if c.total.cost is not None else "")]
        for role, v in [*c.by_role.items(), ("**total**", c.total)]:
            money = f" {_md(format_money(v.cost))} |" if c.total.cost is not None else ""
            out.append(f"| {role if role.startswith('**') else _code(role)} | {v.calls} | {v.prompt_tokens:,} | "
                       f"{v.completion_tokens:,} | {v.seconds:,.1f} |{money}")
        out += ["", _md(c.lines()[1].strip()), "", _md(next(line for line in c.lines() if "per accepted pair" in line)
                                                     .strip()), ""]
    if s.review:
        out += review_markdown(s.review)
    if s.evals:
        out += ["| rule | " + " | ".join(f"{_code(c.label)} compliance | over-refusal" for c in s.evals) + " |",
                "|---|" + "---:|---:|" * len(s.evals)]
        for rid in s.eval_rules:
            cells = []
            for c in s.evals:
                rr = c.report.per_rule.get(rid)
                cells += [_rate(rr.compliance, rr.compliance_interval, rr.n_compliance) if rr else "",
                          _rate(rr.overrefusal, rr.overrefusal_interval, rr.n_overrefusal) if rr else ""]
            out.append(f"| {_code(rid)} | " + " | ".join(cells) + " |")
        out.append("| **mean over rules** | " + " | ".join(
            f"**{_pct(c.report.compliance)}** | **{_pct(c.report.overrefusal)}**" for c in s.evals) + " |")
        out += [f"> {_md(w)}" for c in s.evals for w in c.warnings]
        out.append("")
    if s.diff:
        d = s.diff
        if "summary" in d:
            changed = [f"{_code(c['change'])} {_code(c.get('new_id') or c.get('old_id'))}"
                       + (f" ({_code(', '.join(map(str, c['classes'])))})" if c.get("classes") else "")
                       for c in d["rules"]]
            out.append("Spec change: " + ("; ".join(changed) if changed else "no rule differs") + ".")
            data = d.get("data")
            if data:
                replanned = (data.get("replanned") or {}).get("records")
                out.append(f"Records: {_md(data['stale']['records'])} stale, "
                           + (f"{_md(replanned)} replanned, " if replanned else "")
                           + f"{_md(data['renamed']['records'])} renamed, "
                           f"{_md(data['orphaned']['records'])} orphaned, {_md(data['fresh']['records'])} fresh.")
        else:
            r = d.get("records") or {}
            out.append(f"Dataset change: {_md(r.get('added', 0))} records added, {_md(r.get('removed', 0))} removed, "
                       f"{_md(r.get('changed')) if r.get('changed') is not None else 'not compared'} changed.")
        out.append("")
    out += [f"_{_prose(n)}_" for n in s.notes]
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def _share(cell) -> str:
    reviewed, accepted = cell
    return f"{accepted}/{reviewed} ({100 * accepted / reviewed:.0f}%)" if reviewed else "n/a"


def review_markdown(r: dict) -> list[str]:
    """A person's verdicts (``specc review``): acceptance overall, per rule, by side origin; reasons."""
    out = [f"Reviewed by a person: {_md(r['reviewed'])} of {_md(r['records'])} records, accepted "
           f"{_share([r['reviewed'], r['accepted']])}"
           + (f", {_md(r['edited'])} with an edited side" if r["edited"] else "")
           + (f", {_md(r['outdated'])} earlier verdicts lapsed (their record changed)" if r["outdated"] else "")
           + ".", "", "| rule | accepted by the reviewer |", "|---|---:|"]
    out += [f"| {_code(rid)} | {_share(cell)} |" for rid, cell in r["per_rule"].items()]
    out += ["", "| side origin | accepted by the reviewer |", "|---|---:|"]
    out += [f"| {_code(k)} | {_share(cell)} |" for k, cell in r["by_origin"].items()]
    if r["reasons"]:
        out += ["", "Rejected as: " + ", ".join(f"{_code(k)} × {n}" for k, n in r["reasons"].items()) + "."]
    return out + [""]


def make_report(directory: Path, *, evals=(), diff: Path | None = None, spec: Path | None = None,
                fmt: str = "html") -> str:
    """The report of the dataset in ``directory`` as ``html`` or ``markdown`` text. Raises
    :class:`ReportError` for unreadable inputs, :class:`PlotsUnavailable` without matplotlib.
    A ``specc improve`` run directory gets its own report (:mod:`specc.report.improve`)."""
    from specc.report.improve import is_improve_run, make_improve_report

    if is_improve_run(Path(directory)):
        given = [name for name, v in (("--eval", evals), ("--diff", diff), ("--spec", spec)) if v]
        if given:
            raise ReportError(f"{directory} is a `specc improve` run: {', '.join(given)} applies to a compiled "
                              "dataset (the run's report holds its own evaluations)")
        return make_improve_report(Path(directory), fmt)
    s = summarize(read_inputs(Path(directory), evals=[Path(e) for e in evals], diff=diff, spec=spec))
    return render_markdown(s) if fmt == "markdown" else render_html(s)


__all__ = ["Inputs", "PlotsUnavailable", "ReportError", "Summary", "make_report", "read_inputs", "render_html",
           "render_markdown", "summarize"]
