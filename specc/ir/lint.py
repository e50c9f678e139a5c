"""Lints: warnings about specs that are valid but probably not what the author meant.

Each lint is a small function ``(spec, units) -> Iterable[Diagnostic]`` in :data:`LINTS`;
adding a lint is adding a function to that tuple. ``units`` are the parsed files, for lints
that need the written structure (sections, axes) rather than the resolved rules.
"""

from __future__ import annotations

from typing import Iterable

from specc.diagnostics import Diagnostic, Span
from specc.ir import checks as checklib
from specc.ir.model import Rule, Spec
from specc.syntax import ast


def _span(r: Rule) -> Span:
    s = r.span
    return Span(s.file, s.start_line, s.start_col, s.start_line, s.start_col + len(r.kind))


def rule_without_check_or_example(spec: Spec, units) -> Iterable[Diagnostic]:
    for r in spec.rules:
        if not r.checks and not r.examples:
            yield Diagnostic("W401", f"rule `{r.name}` has neither a check nor an example", _span(r))


def unless_without_when(spec: Spec, units) -> Iterable[Diagnostic]:
    for r in spec.rules:
        if r.unless and not r.when:
            yield Diagnostic("W402", f"rule `{r.name}` has `unless` but no `when`", _span(r))


def duplicate_statement(spec: Spec, units) -> Iterable[Diagnostic]:
    first: dict[str, Rule] = {}
    for r in sorted(spec.rules, key=lambda r: (r.span.file, r.span.start_line)):
        key = " ".join(r.statement.casefold().split())
        if key in first:
            o = first[key]
            yield Diagnostic("W404", f"rule `{r.name}` has the same statement as `{o.name}`", _span(r),
                             (("that rule is here", _span(o)),))
        else:
            first[key] = r


def default_with_root(spec: Spec, units) -> Iterable[Diagnostic]:
    for r in spec.rules:
        if r.kind == "default" and r.authority == "root":
            yield Diagnostic("W407", f"default `{r.name}` has root authority, so nothing can override it", _span(r))


def _examples_by_span(units) -> dict[tuple, ast.Example]:
    """The written examples of every file, keyed by where they start."""
    out: dict[tuple, ast.Example] = {}

    def walk(items):
        for it in items:
            if isinstance(it, ast.Section):
                walk(it.items)
            elif isinstance(it, ast.RuleDecl):
                for f in it.fields:
                    if f.key == "example":
                        s = f.value.span
                        out[(s.file, s.start_line, s.start_col)] = f.value

    for u in units:
        walk(u.ast.items)
    del walk  # a function that calls itself is a reference cycle: free it now
    return out


def example_contradicts_check(spec: Spec, units) -> Iterable[Diagnostic]:
    written = _examples_by_span(units)
    skipped: list = []
    for r in spec.rules:
        if not r.checks or not r.examples:
            continue
        check = " and ".join(r.check_sources)
        for e in r.examples:
            span = Span(e.span.file, e.span.start_line, e.span.start_col, e.span.start_line,
                        e.span.start_col + len("example")) if e.span else _span(r)
            node = written.get((e.span.file, e.span.start_line, e.span.start_col)) if e.span else None
            answers = [a for a in node.items if isinstance(a, ast.Answer)] if node else []
            good_spans = [a.text.span for a in answers if a.kind == "good"]
            bad_spans = [a.text.span for a in answers if a.kind == "bad"]
            # a lookalike example (every `bad` answer an over-refusal) is a request the rule does not
            # apply to: its `good` answer helps and owes the rule's check nothing
            lookalike = bool(e.bad) and all(b.overrefusal for b in e.bad)
            try:
                for i, g in enumerate(() if lookalike else e.good):
                    if not checklib.evaluate_all(r.checks, g.text):
                        yield Diagnostic("W408", f"this `good` answer of example {e.title!r} fails the check of "
                                         f"`{r.name}`: {check}", good_spans[i] if i < len(good_spans) else span)
                for i, b in enumerate(e.bad):
                    if b.overrefusal:
                        continue
                    if checklib.evaluate_all(r.checks, b.text):
                        yield Diagnostic("W408", f"this `bad` answer of example {e.title!r} passes the check of "
                                         f"`{r.name}`: {check}", bad_spans[i] if i < len(bad_spans) else span)
            except checklib.BudgetSpent as t:
                skipped.append((r, span, t))
                break
            except checklib.CheckTimeout as t:
                yield Diagnostic("W408", f"the check of `{r.name}` did not finish on example {e.title!r}: {t}", span)
    if skipped:  # one warning, not one per rule: the budget is the run's
        r, span, t = skipped[0]
        others = f" and {len(skipped) - 1} more rule(s)" if len(skipped) > 1 else ""
        yield Diagnostic("W410", f"{t}: the examples of `{r.name}`{others} were not checked", span)


def missing_doc(spec: Spec, units) -> Iterable[Diagnostic]:
    for u in units:
        if u.ast.header.doc is None:
            yield Diagnostic("W405", f"spec `{u.ast.header.id.value}` has no doc string", u.ast.header.id.span)


def _walk_sections(items, out):
    for it in items:
        if isinstance(it, ast.Section):
            out.append(it)
            _walk_sections(it.items, out)


def _has_rules(items) -> bool:
    for it in items:
        if isinstance(it, ast.RuleDecl):
            return True
        if isinstance(it, ast.Section) and _has_rules(it.items):
            return True
    return False


def empty_section(spec: Spec, units) -> Iterable[Diagnostic]:
    for u in units:
        sections: list[ast.Section] = []
        _walk_sections(u.ast.items, sections)
        for s in sections:
            if not _has_rules(s.items):
                yield Diagnostic("W406", f"section `{s.name.value}` has no rules", s.name.span)


def unused_axis(spec: Spec, units) -> Iterable[Diagnostic]:
    for u in units:
        scopes: list[tuple[list, bool]] = [(u.ast.items, _has_rules(u.ast.items) or u.base is not None)]
        sections: list[ast.Section] = []
        _walk_sections(u.ast.items, sections)
        scopes += [(s.items, _has_rules(s.items)) for s in sections]
        for items, used in scopes:
            if used:
                continue
            for it in items:
                if isinstance(it, ast.AxisDecl):
                    yield Diagnostic("W403", f"axis `{it.name.value}` applies to no rule", it.name.span)


LINTS = (
    rule_without_check_or_example,
    unless_without_when,
    unused_axis,
    duplicate_statement,
    missing_doc,
    empty_section,
    default_with_root,
    example_contradicts_check,
)


def run_lints(spec: Spec, units) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for lint in LINTS:
        out.extend(lint(spec, units))
    return out
