"""Renderers for diffs: ``text`` for a terminal, ``json`` for machines, ``markdown`` for a PR
comment. Each is a pure function of the diff data, so their output is golden-tested."""

from __future__ import annotations

import json

from specc import markdown
from specc.diff.model import (
    CLASSES,
    KINDS,
    LOOSENED,
    INVERTED,
    DataImpact,
    DatasetDiff,
    FieldChange,
    RuleChange,
    SpecDiff,
)

_PROSE = {"statement", "when", "unless", "doc"}  # free text: shown quoted
_EXAMPLE_WIDTH = 200  # examples and details can be pages long; cut in text and markdown (not JSON)
_WATCH = ("removed", LOOSENED, INVERTED)  # what a reviewer should look at first


def render(diff: SpecDiff | DatasetDiff, fmt: str, impact: DataImpact | None = None) -> str:
    if isinstance(diff, DatasetDiff):
        return {"text": dataset_text, "json": dataset_json, "markdown": dataset_markdown}[fmt](diff)
    return {"text": spec_text, "json": spec_json, "markdown": spec_markdown}[fmt](diff, impact)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _value(f: FieldChange, v) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, tuple):
        return "[" + ", ".join(v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    if f.field in _PROSE:
        return json.dumps(v, ensure_ascii=False)
    if f.field == "details":
        v = " ".join(v.split())  # paragraphs on one line
    if (f.field.startswith("example") or f.field == "details") and len(v) > _EXAMPLE_WIDTH:
        return v[: _EXAMPLE_WIDTH - 1] + "…"
    return str(v)


def _summary_line(d: SpecDiff) -> str:
    counts = d.counts()
    n = sum(counts.values())
    if not n:
        return f"no rule differs ({_plural(d.unchanged, 'rule')} unchanged)"
    parts = [f"{counts[k]} {k}" for k in KINDS if counts[k]]
    return f"{_plural(n, 'rule')} differ{'s' if n == 1 else ''}: {', '.join(parts)}; {d.unchanged:,} unchanged"


def _classes_line(d: SpecDiff, bold: bool = False) -> str:
    cc = d.class_counts()
    b = "**" if bold else ""
    return ", ".join(f"{b}{c}{b} {cc[c]}" for c in CLASSES if c in cc)


# -- text --------------------------------------------------------------------------------------

_MARK = {"added": "+", "removed": "-", "renamed": ">", "changed": "~"}


def _field_text(f: FieldChange) -> str:
    cls = f"  ({', '.join(f.classes)})" if f.classes else ""
    if f.old is None:
        body = f"+ {_value(f, f.new)}"
    elif f.new is None:
        body = f"- {_value(f, f.old)}"
    else:
        body = f"{_value(f, f.old)} -> {_value(f, f.new)}"
    return f"{f.field}: {body}{cls}"


def _rule_head_text(c: RuleChange) -> str:
    if c.kind == "renamed":
        ident = f"{c.old_id} -> {c.new_id}"
        extra = "identical" if c.similarity == 1.0 and not c.fields else f"similarity {c.similarity:.2f}"
        ident += f"  ({extra})"
    else:
        ident = c.id
    cls = f"  [{', '.join(c.classes)}]" if c.classes else ""
    return f"{_MARK[c.kind]} {c.kind:<8} {ident}{cls}"


def spec_text(d: SpecDiff, impact: DataImpact | None = None) -> str:
    out = [f"specc diff {d.old.label()} ({d.old.source}) -> {d.new.label()} ({d.new.source})"]
    for f in d.spec_fields:
        out.append(f"  spec {_field_text(f)}")
    out.append(_summary_line(d))
    if d.class_counts():
        out.append(f"classes: {_classes_line(d)}")
    for c in d.rules:
        out.append("")
        out.append(_rule_head_text(c))
        if c.kind in ("added", "removed"):
            r = c.new if c.kind == "added" else c.old
            out.append(f"    {r.kind} {r.modality} · {r.authority} · {r.severity}  "
                       f"{json.dumps(r.statement, ensure_ascii=False)}")
        for f in c.fields:
            out.append(f"    {_field_text(f)}")
    if impact is not None:
        out.append("")
        out += impact_text(impact)
    return "\n".join(out) + "\n"


_STATUS_WHY = {
    "stale": "the rule changed",
    "replanned": "the rule is unchanged, the new plan lacks the record's scenario",
    "renamed": "renamed, content unchanged; regenerated because a rule's hash covers its id",
    "orphaned": "the rule was removed",
    "fresh": "reused as they are",
}


def impact_text(i: DataImpact) -> list[str]:
    out = [f"dataset impact ({i.dataset.source}: {_plural(i.records, 'record')} from {i.dataset.label()}):"]
    for status in i.shown_statuses():
        n, k = i.count(status)
        out.append(f"  {status:<9}{n:>10,} records  {_plural(k, 'rule'):<10}  {_STATUS_WHY[status]}")
    if i.new_rules:
        out.append(f"  new rules: {', '.join(i.new_rules)}")
    if i.scenarios_planned is not None:
        out.append(f"  scenarios: {i.scenarios_new:,} new, {i.scenarios_reused:,} reused, "
                   f"{i.scenarios_planned:,} planned")
    for r in i.rules:
        if r.status != "fresh":
            to = f" -> {r.new_id}" if r.new_id else ""
            out.append(f"    {r.status:<9}{r.rule_id}{to}  ({_plural(r.records, 'record')})")
    if i.review_again:
        out.append(f"  needs review again: {_plural(len(i.review_again), 'reviewed record')} of changed rules "
                   "(their verdicts lapse on recompile)")
        for rid, rule, verdict in i.review_again:
            out.append(f"    {rid}  {rule}  (was {'accepted' if verdict == 'accept' else 'rejected'})")
    if i.note:
        out.append(f"  note: {i.note}")
    return out


# -- json --------------------------------------------------------------------------------------


def spec_json(d: SpecDiff, impact: DataImpact | None = None) -> str:
    obj = d.to_json()
    if impact is not None:
        obj["data"] = impact.to_json()
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


# -- markdown ----------------------------------------------------------------------------------


md_code = markdown.code


def md_text(s: str) -> str:
    """Prose in a table cell: markup escaped (:mod:`specc.markdown`), line breaks as <br>."""
    return markdown.text(s, breaks="<br>")


def _md_value(f: FieldChange, v) -> str:
    if v is None:
        return "—"
    if f.field in _PROSE and isinstance(v, str):
        return "“" + md_text(v) + "”"
    return md_code(_value(f, v))


def _md_field_rows(fields) -> list[str]:
    rows = ["| Field | Old | New | Class |", "|---|---|---|---|"]
    for f in fields:
        rows.append(f"| {md_text(f.field)} | {_md_value(f, f.old)} | {_md_value(f, f.new)} | {', '.join(f.classes)} |")
    return rows


def _md_rule_ident(c: RuleChange) -> str:
    if c.kind == "renamed":
        return f"{md_code(c.old_id)} → {md_code(c.new_id)}"
    return md_code(c.id)


def spec_markdown(d: SpecDiff, impact: DataImpact | None = None) -> str:
    old, new = d.old, d.new
    title = f"{md_code(new.id)} {old.version} → {new.version}" if old.id == new.id else \
        f"{md_code(old.id)} {old.version} → {md_code(new.id)} {new.version}"
    out = [f"### specc diff: {title}", "",
           f"Old: {md_code(old.source)} · New: {md_code(new.source)}", ""]
    counts = d.counts()
    out.append(f"**{_summary_line(d)[0].upper()}{_summary_line(d)[1:]}.**")
    if d.class_counts():
        out += ["", f"Classes: {_classes_line(d, bold=True)}."]
    present = d.present()
    watch = [w for w in _WATCH if w in present]
    if watch:
        n = {w: counts[w] if w in counts else d.class_counts().get(w, 0) for w in watch}
        out += ["", "> [!WARNING]", "> This change " + ", ".join(f"{w} {_plural(n[w], 'rule')}" for w in watch)
                + ": review it before it ships."]
    if d.spec_fields:
        out += ["", "**Spec header**", ""] + _md_field_rows(d.spec_fields)
    if d.rules:
        out += ["", "| Rule | Change | Classes |", "|---|---|---|"]
        for c in d.rules:
            out.append(f"| {_md_rule_ident(c)} | {c.kind} | {', '.join(c.classes)} |")
        out += ["", "<details><summary>Details per rule</summary>", ""]
        for c in d.rules:
            cls = f" — {', '.join(c.classes)}" if c.classes else ""
            out += [f"#### {c.kind}: {_md_rule_ident(c)}{cls}", ""]
            if c.kind in ("added", "removed"):
                r = c.new if c.kind == "added" else c.old
                out += [f"{r.kind} **{r.modality}** · authority {r.authority} · severity {r.severity}: "
                        f"“{md_text(r.statement)}”", ""]
            elif c.kind == "renamed" and not c.fields:
                out += ["Renamed only: the content is identical.", ""]
            if c.fields:
                out += _md_field_rows(c.fields) + [""]
        out += ["</details>"]
    if impact is not None:
        out += [""] + impact_markdown(impact)
    return "\n".join(out) + "\n"


def impact_markdown(i: DataImpact) -> list[str]:
    out = [f"#### Dataset impact: {md_code(i.dataset.source)}", "",
           f"{_plural(i.records, 'record')} compiled from {md_code(i.dataset.label())}.", "",
           "| Records | Count | Rules | Why |", "|---|---:|---:|---|"]
    for status in i.shown_statuses():
        n, k = i.count(status)
        out.append(f"| {status} | {n:,} | {k:,} | {_STATUS_WHY[status]} |")
    out.append("")
    if i.scenarios_planned is not None:
        out += [f"A recompile plans {i.scenarios_planned:,} scenarios: **{i.scenarios_new:,} new**, "
                f"{i.scenarios_reused:,} reused.", ""]
    if i.new_rules:
        out += ["New rules without records: " + ", ".join(md_code(r) for r in i.new_rules) + ".", ""]
    affected = [r for r in i.rules if r.status != "fresh"]
    if affected:
        out += ["| Rule | Status | Records |", "|---|---|---:|"]
        for r in affected:
            ident = md_code(r.rule_id) + (f" → {md_code(r.new_id)}" if r.new_id else "")
            out.append(f"| {ident} | {r.status} | {r.records:,} |")
        out.append("")
    if i.review_again:
        out += [f"{_plural(len(i.review_again), 'reviewed record')} of changed rules **need review again** "
                "(`specc review`): " + ", ".join(md_code(rid) for rid, _, _ in i.review_again[:20])
                + (" …" if len(i.review_again) > 20 else "") + ".", ""]
    if i.note:
        out += [f"_Note: {md_text(i.note)}._", ""]
    while out and out[-1] == "":
        out.pop()
    return out


# -- dataset vs dataset --------------------------------------------------------------------------


def _dataset_summary(d: DatasetDiff) -> str:
    changed = "not compared" if d.changed is None else f"{d.changed:,} changed"
    return (f"records: {d.old_records:,} -> {d.new_records:,}: {d.added:,} added, {d.removed:,} removed, "
            f"{changed}, {d.unchanged:,} unchanged")


def _rule_counts(r) -> str:
    ch = "?" if r.changed is None else f"{r.changed:,}"
    return f"+{r.added:,} -{r.removed:,} ~{ch}"


def dataset_text(d: DatasetDiff) -> str:
    out = [f"specc diff {d.old.label()} ({d.old.source}) -> {d.new.label()} ({d.new.source})",
           _dataset_summary(d)]
    rows = [r for r in d.rules if r.differs]
    if rows:
        out.append("by rule (records +added -removed ~changed):")
        width = max(len(r.rule_id) for r in rows)
        for r in rows:
            out.append(f"  {r.rule_id:<{width}}  {r.status:<8} {_rule_counts(r)}")
    if d.note:
        out.append(f"note: {d.note}")
    return "\n".join(out) + "\n"


def dataset_json(d: DatasetDiff) -> str:
    return json.dumps(d.to_json(), indent=2, ensure_ascii=False) + "\n"


def dataset_markdown(d: DatasetDiff) -> str:
    changed = "not compared" if d.changed is None else f"{d.changed:,}"
    out = [f"### specc diff: datasets {md_code(d.old.source)} → {md_code(d.new.source)}", "",
           f"Old: {md_code(d.old.label())} · New: {md_code(d.new.label())}", "",
           "| Records | Old | New | Added | Removed | Changed | Unchanged |",
           "|---|---:|---:|---:|---:|---:|---:|",
           f"| all | {d.old_records:,} | {d.new_records:,} | {d.added:,} | {d.removed:,} | {changed} | "
           f"{d.unchanged:,} |"]
    rows = [r for r in d.rules if r.differs]
    if rows:
        out += ["", "| Rule | Rule status | Added | Removed | Changed |", "|---|---|---:|---:|---:|"]
        for r in rows:
            ch = "—" if r.changed is None else f"{r.changed:,}"
            out.append(f"| {md_code(r.rule_id)} | {r.status} | {r.added:,} | {r.removed:,} | {ch} |")
    if d.note:
        out += ["", f"_Note: {md_text(d.note)}._"]
    return "\n".join(out) + "\n"
