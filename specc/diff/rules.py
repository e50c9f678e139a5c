"""Spec vs spec on the resolved IR: which rules were added, removed, renamed or changed, and how.

:func:`diff_specs` is pure: two :class:`~specc.ir.model.Spec` in, a
:class:`~specc.diff.model.SpecDiff` out. It never looks at text, so formatting, comments,
the order of declarations, of sections, of ``unless`` clauses, tags, examples and check
conjuncts make no difference; only the meaning-bearing fields of the IR do.

Classification, field by field (documented in ``docs/ci.md``):

==============  ===========================================================================
field           classes
==============  ===========================================================================
kind            default -> rule tightened; rule -> default loosened
modality        same polarity: should -> must tightened, must -> should loosened;
                polarity flip (must <-> must_not, should -> must_not ...): inverted
statement       reworded
details         reworded (only the paragraphs that differ are shown)
authority       authority-changed, plus tightened (up) or loosened (down)
severity        tightened (up) or loosened (down)
when            added: loosened (the rule now applies only in that situation);
                removed: tightened; rewritten: trigger-changed (the direction is unknowable)
unless          added: loosened; removed: tightened; rewritten (similarity >= 0.8): reworded
check           conjuncts (``check a and b`` and two ``check`` lines are the same thing):
                added tightened, removed loosened, edited: checks-changed plus the direction
                where it is knowable (a lower ``max_words``, fewer ``or`` branches, ...)
example         examples-changed
axis            axes-changed
tags, weight    metadata-changed
==============  ===========================================================================

Renames: a removed and an added rule are paired as one renamed rule when they are identical
apart from their id, or when their statements are alike (difflib ratio >= 0.8). Pairs are
taken best first (identical, then by similarity), ties broken by old id then new id.
"""

from __future__ import annotations

import difflib
import json

from specc.diff.model import (
    AUTHORITY_CHANGED,
    AXES_CHANGED,
    CHECKS_CHANGED,
    EXAMPLES_CHANGED,
    INVERTED,
    LOOSENED,
    METADATA_CHANGED,
    REWORDED,
    TIGHTENED,
    TRIGGER_CHANGED,
    FieldChange,
    RuleChange,
    RuleSummary,
    SideInfo,
    SpecDiff,
)
from specc.ir.model import (
    AUTHORITY_RANK,
    MODALITY_POLARITY,
    MODALITY_STRENGTH,
    SEVERITY_RANK,
    Axis,
    Check,
    CheckAnd,
    CheckCall,
    CheckNot,
    CheckOr,
    Example,
    Rule,
    Spec,
    canonical_json,
    check_source,
    conjuncts,
)
from specc.language import FIELDS, PREDICATE, FieldSpec

RENAME_SIMILARITY = 0.8  # statement similarity above which a removed + added rule is a rename
REWORD_SIMILARITY = 0.8  # `unless` similarity above which a removed + added clause is a rewording
CHECK_SIMILARITY = 0.8  # source similarity above which two check conjuncts are one edited check
_FUZZY_PAIR_LIMIT = 250_000  # beyond this many removed x added pairs, only identical rules pair


def side_of(spec: Spec, source: str | None = None, kind: str = "spec") -> SideInfo:
    return SideInfo(kind=kind, source=source or spec.file, id=spec.id, version=spec.version, hash=spec.hash)


def diff_specs(old: Spec, new: Spec, old_side: SideInfo | None = None,
               new_side: SideInfo | None = None) -> SpecDiff:
    """The rule-level difference from ``old`` to ``new``."""
    old_rules = {r.id: r for r in old.rules}
    new_rules = {r.id: r for r in new.rules}
    changes: list[RuleChange] = []
    unchanged = 0
    for rid in sorted(old_rules.keys() & new_rules.keys()):
        o, n = old_rules[rid], new_rules[rid]
        fields = () if o.hash == n.hash and o.hash else diff_rule(o, n)
        if fields:
            changes.append(RuleChange("changed", rid, rid, fields, summary(o), summary(n)))
        else:
            unchanged += 1
    removed = [old_rules[i] for i in sorted(old_rules.keys() - new_rules.keys())]
    added = [new_rules[i] for i in sorted(new_rules.keys() - old_rules.keys())]
    pairs = pair_renames(removed, added)
    paired_old = {o.id for o, _, _ in pairs}
    paired_new = {n.id for _, n, _ in pairs}
    for o, n, sim in pairs:
        changes.append(RuleChange("renamed", o.id, n.id, diff_rule(o, n), summary(o), summary(n), sim))
    changes += [RuleChange("removed", r.id, None, old=summary(r)) for r in removed if r.id not in paired_old]
    changes += [RuleChange("added", None, r.id, new=summary(r)) for r in added if r.id not in paired_new]
    order = {"added": 0, "removed": 1, "renamed": 2, "changed": 3}
    changes.sort(key=lambda c: (order[c.kind], c.id, c.old_id or ""))
    return SpecDiff(
        old=old_side or side_of(old),
        new=new_side or side_of(new),
        spec_fields=tuple(_diff_header(old, new)),
        rules=tuple(changes),
        unchanged=unchanged,
    )


def summary(r: Rule) -> RuleSummary:
    return RuleSummary(id=r.id, kind=r.kind, modality=r.modality, statement=r.statement,
                       authority=r.authority, severity=r.severity, hash=r.hash)


# -- renames ---------------------------------------------------------------------------------


def _content_key(r: Rule) -> str:
    m = r.meaning()
    del m["id"]
    return canonical_json(m)


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def pair_renames(removed: list[Rule], added: list[Rule]) -> list[tuple[Rule, Rule, float]]:
    """Pair removed with added rules that are recognisably the same rule; deterministic."""
    if not removed or not added:
        return []
    new_keys: dict[str, list[Rule]] = {}
    for a in added:
        new_keys.setdefault(_content_key(a), []).append(a)
    candidates: list[tuple[int, float, float, str, str, Rule, Rule]] = []
    fuzzy = len(removed) * len(added) <= _FUZZY_PAIR_LIMIT
    for o in removed:
        exact = new_keys.get(_content_key(o), [])
        for a in exact:
            candidates.append((1, 1.0, _ratio(o.name, a.name), o.id, a.id, o, a))
        if not fuzzy:
            continue
        exact_ids = {a.id for a in exact}
        for a in added:
            if a.id in exact_ids:
                continue
            sm = difflib.SequenceMatcher(None, o.statement, a.statement, autojunk=False)
            if sm.real_quick_ratio() < RENAME_SIMILARITY or sm.quick_ratio() < RENAME_SIMILARITY:
                continue
            ratio = sm.ratio()
            if ratio >= RENAME_SIMILARITY:
                candidates.append((0, ratio, _ratio(o.name, a.name), o.id, a.id, o, a))
    candidates.sort(key=lambda c: (-c[0], -c[1], -c[2], c[3], c[4]))
    used_old: set[str] = set()
    used_new: set[str] = set()
    pairs = []
    for exact, ratio, _, oid, nid, o, a in candidates:
        if oid in used_old or nid in used_new:
            continue
        used_old.add(oid)
        used_new.add(nid)
        pairs.append((o, a, 1.0 if exact else round(ratio, 3)))
    return pairs


# -- one rule, field by field ----------------------------------------------------------------


def diff_rule(o: Rule, n: Rule) -> tuple[FieldChange, ...]:
    """Every meaning-bearing difference between two versions of a rule, classified."""
    out: list[FieldChange] = []
    if o.kind != n.kind:
        out.append(FieldChange("kind", o.kind, n.kind, (TIGHTENED if n.kind == "rule" else LOOSENED,)))
    if o.modality != n.modality:
        if MODALITY_POLARITY[o.modality] != MODALITY_POLARITY[n.modality]:
            cls = INVERTED
        else:
            cls = TIGHTENED if MODALITY_STRENGTH[n.modality] > MODALITY_STRENGTH[o.modality] else LOOSENED
        out.append(FieldChange("modality", o.modality, n.modality, (cls,)))
    if o.statement != n.statement:
        out.append(FieldChange("statement", o.statement, n.statement, (REWORDED,)))
    if o.authority != n.authority:
        up = AUTHORITY_RANK[n.authority] > AUTHORITY_RANK[o.authority]
        out.append(FieldChange("authority", o.authority, n.authority,
                               (TIGHTENED if up else LOOSENED, AUTHORITY_CHANGED)))
    if o.severity != n.severity:
        up = SEVERITY_RANK[n.severity] > SEVERITY_RANK[o.severity]
        out.append(FieldChange("severity", o.severity, n.severity, (TIGHTENED if up else LOOSENED,)))
    if o.when != n.when:
        if o.when is None:
            cls = (LOOSENED, TRIGGER_CHANGED)
        elif n.when is None:
            cls = (TIGHTENED, TRIGGER_CHANGED)
        else:
            cls = (TRIGGER_CHANGED,)
        out.append(FieldChange("when", o.when, n.when, cls))
    if o.details != n.details:
        out.append(_diff_details(o.details, n.details))
    out += _diff_texts("unless", o.unless, n.unless)
    out += _diff_checks(o.checks, n.checks)
    out += _diff_examples(o.examples, n.examples)
    out += _diff_axes(o.axes, n.axes, "axis")
    for f in FIELDS:  # the fields whose change is only metadata-changed (the language table)
        if f.diff == (METADATA_CHANGED,):
            out += _diff_metadata(f, o, n)
    return tuple(out)


def _diff_metadata(f: FieldSpec, o: Rule, n: Rule) -> list[FieldChange]:
    """A field that repeats compares as a set (tags), a one-time field as a value (weight)."""
    a, b = getattr(o, f.attrs[0]), getattr(n, f.attrs[0])
    if f.many:
        if set(a) == set(b):
            return []
        a, b = tuple(sorted(a)), tuple(sorted(b))
    elif a == b:
        return []
    return [FieldChange(f.key, a, b, (METADATA_CHANGED,))]


def _diff_details(old: str | None, new: str | None) -> FieldChange:
    """A rule's long text, paragraph by paragraph: the change shows the paragraphs that differ."""
    if old is None or new is None:
        return FieldChange("details", old, new, (REWORDED,))
    a, b = old.split("\n\n"), new.split("\n\n")
    gone = [p for p in a if p not in b]
    came = [p for p in b if p not in a]
    if not gone and not came:  # the same paragraphs in another order
        gone, came = a, b
    return FieldChange("details", "\n\n".join(gone) or None, "\n\n".join(came) or None, (REWORDED,))


def _diff_texts(name: str, old: tuple[str, ...], new: tuple[str, ...]) -> list[FieldChange]:
    """``unless`` clauses: each added one loosens, each removed one tightens, a rewrite rewords."""
    gone = sorted(set(old) - set(new))
    came = sorted(set(new) - set(old))
    out: list[FieldChange] = []
    scored = sorted(((-_ratio(g, c), g, c) for g in gone for c in came), key=lambda t: t)
    used_g: set[str] = set()
    used_c: set[str] = set()
    for neg, g, c in scored:
        if -neg < REWORD_SIMILARITY:
            break
        if g in used_g or c in used_c:
            continue
        used_g.add(g)
        used_c.add(c)
        out.append(FieldChange(name, g, c, (REWORDED,)))
    out += [FieldChange(name, g, None, (TIGHTENED,)) for g in gone if g not in used_g]
    out += [FieldChange(name, None, c, (LOOSENED,)) for c in came if c not in used_c]
    return sorted(out, key=lambda f: (f.old or f.new or "", f.new or ""))


# -- checks ----------------------------------------------------------------------------------


def _canon(c: Check) -> str:
    """A check's text with the operands of every `and` / `or` sorted: `a or b` is `b or a`."""
    if isinstance(c, CheckNot):
        return f"not {_canon(c.operand)}"
    if isinstance(c, (CheckAnd, CheckOr)):
        return "(" + f" {c.op} ".join(sorted(_canon(o) for o in c.operands)) + ")"
    return check_source(c)


def _conjuncts(checks: tuple[Check, ...]) -> dict[str, Check]:
    """All top-level conjuncts of a rule's checks (``check a and b`` is ``check a`` plus
    ``check b``), by canonical text."""
    out: dict[str, Check] = {}
    for part in conjuncts(checks):
        out.setdefault(_canon(part), part)
    return out


def _skeleton(c: Check) -> str:
    """A check with its arguments blanked: two conjuncts with one skeleton are one edited check."""
    if isinstance(c, CheckCall):
        return f"{c.name}({','.join('_' for _ in c.args)})"
    if isinstance(c, CheckNot):
        return f"not {_skeleton(c.operand)}"
    return f"{c.op}[{len(c.operands)}]"


def _widens(x: Check, y: Check) -> bool:
    """``y`` is ``x or ...``: every answer that passes ``x`` passes ``y``."""
    return isinstance(y, CheckOr) and _canon(x) in {_canon(o) for o in y.operands}


def _direction(o: Check, n: Check) -> str | None:
    """TIGHTENED if ``n`` is stricter than ``o``, LOOSENED if laxer, None if not knowable."""
    if _widens(o, n):
        return LOOSENED
    if _widens(n, o):
        return TIGHTENED
    if isinstance(o, CheckNot) and isinstance(n, CheckNot):
        inner = _direction(o.operand, n.operand)
        return {TIGHTENED: LOOSENED, LOOSENED: TIGHTENED}.get(inner) if inner else None
    if isinstance(o, CheckCall) and isinstance(n, CheckCall) and o.name == n.name and len(o.args) == 1 == len(n.args):
        return _argument_direction(PREDICATE[o.name].tighter, o.args[0], n.args[0])
    if type(o) is type(n) and isinstance(o, (CheckAnd, CheckOr)):
        a = {_canon(x) for x in o.operands}
        b = {_canon(x) for x in n.operands}
        if a == b:
            return None
        if isinstance(o, CheckAnd):
            return TIGHTENED if b > a else LOOSENED if b < a else None
        return TIGHTENED if b < a else LOOSENED if b > a else None
    return None


def _argument_direction(tighter: str | None, a, b) -> str | None:
    """The direction of a change of a predicate's one argument from ``a`` to ``b``, by what
    makes that predicate stricter (``PredicateSpec.tighter``): a lower or higher number, fewer
    or more terms (fewer `mentions_any` terms are fewer ways to satisfy it)."""
    if isinstance(a, int) and isinstance(b, int) and a != b:
        if tighter == "lower":
            return TIGHTENED if b < a else LOOSENED
        if tighter == "higher":
            return TIGHTENED if b > a else LOOSENED
    if isinstance(a, tuple) and isinstance(b, tuple) and set(a) != set(b):
        fewer, more = set(b) < set(a), set(b) > set(a)
        if tighter == "fewer" and (fewer or more):
            return TIGHTENED if fewer else LOOSENED
        if tighter == "more" and (fewer or more):
            return TIGHTENED if more else LOOSENED
    return None


def _diff_checks(old: tuple[Check, ...], new: tuple[Check, ...]) -> list[FieldChange]:
    a, b = _conjuncts(old), _conjuncts(new)
    gone = sorted(a.keys() - b.keys())
    came = sorted(b.keys() - a.keys())
    if not gone and not came:  # the same conjuncts, perhaps grouped or ordered differently
        return []
    out: list[FieldChange] = []
    used_c: set[str] = set()
    matched: dict[str, str] = {}
    # Pair a removed with an added conjunct: first the same predicates with other arguments,
    # then one that is the other `or` something, then the same predicates negated, then by text
    # similarity.
    def unnegated(x: Check) -> str:
        return _skeleton(x).removeprefix("not ")

    relations = (lambda x, y: _skeleton(x) == _skeleton(y), lambda x, y: _widens(x, y) or _widens(y, x),
                 lambda x, y: unnegated(x) == unnegated(y))
    for related in relations:
        for g in gone:
            if g in matched:
                continue
            for c in came:
                if c not in used_c and related(a[g], b[c]):
                    matched[g] = c
                    used_c.add(c)
                    break
    for g in gone:
        if g in matched:
            continue
        best = max(((_ratio(check_source(a[g]), check_source(b[c])), c) for c in came if c not in used_c),
                   default=(0.0, ""))
        if best[0] >= CHECK_SIMILARITY:
            matched[g] = best[1]
            used_c.add(best[1])
    for g in gone:
        if g in matched:
            c = matched[g]
            d = _direction(a[g], b[c])
            out.append(FieldChange("check", check_source(a[g]), check_source(b[c]),
                                   ((d,) if d else ()) + (CHECKS_CHANGED,)))
        else:
            out.append(FieldChange("check", check_source(a[g]), None, (LOOSENED, CHECKS_CHANGED)))
    out += [FieldChange("check", None, check_source(b[c]), (TIGHTENED, CHECKS_CHANGED))
            for c in came if c not in used_c]
    return sorted(out, key=lambda f: (f.old or f.new or "", f.new or ""))


# -- examples, axes --------------------------------------------------------------------------


def example_parts(e: Example) -> list[str]:
    """An example's turns and answers, each as the formatter would write it."""
    q = lambda s: json.dumps(s, ensure_ascii=False)  # noqa: E731
    parts = [f"{t.role} {q(t.text)}" for t in e.turns]
    for g in e.good:
        parts.append(f"good {q(g.text)}" + (f" because {q(g.reason)}" if g.reason else ""))
    for b in e.bad:
        label = f" {b.label}" if b.label else ""
        parts.append(f"bad{label} {q(b.text)}" + (f" because {q(b.reason)}" if b.reason else ""))
    return parts


def _diff_examples(old: tuple[Example, ...], new: tuple[Example, ...]) -> list[FieldChange]:
    """Examples by title: added, removed, or edited (then only the turns and answers that differ)."""
    def key(e: Example) -> str:
        return canonical_json(e.model_dump(mode="json", exclude={"span"}))

    a, b = {key(e): e for e in old}, {key(e): e for e in new}
    gone = sorted((a[k] for k in a.keys() - b.keys()), key=key)
    came = sorted((b[k] for k in b.keys() - a.keys()), key=key)
    out: list[FieldChange] = []
    used: set[int] = set()
    for g in gone:  # an example with the same title is the same example, edited
        j = next((j for j, c in enumerate(came) if j not in used and c.title == g.title), None)
        name = f"example {json.dumps(g.title, ensure_ascii=False)}"
        if j is None:
            out.append(FieldChange(name, " ".join(example_parts(g)), None, (EXAMPLES_CHANGED,)))
            continue
        used.add(j)
        pg, pc = example_parts(g), example_parts(came[j])
        only_g = [p for p in pg if p not in pc]
        only_c = [p for p in pc if p not in pg]
        if not only_g and not only_c:  # the same turns and answers in another order
            only_g, only_c = pg, pc
        out.append(FieldChange(name, " ".join(only_g) or None, " ".join(only_c) or None, (EXAMPLES_CHANGED,)))
    for j, c in enumerate(came):
        if j not in used:
            out.append(FieldChange(f"example {json.dumps(c.title, ensure_ascii=False)}", None,
                                   " ".join(example_parts(c)), (EXAMPLES_CHANGED,)))
    return sorted(out, key=lambda f: (f.field, f.old or "", f.new or ""))


def axis_source(a: Axis) -> str:
    return f"{a.name} = [{', '.join(a.values)}]"


def _diff_axes(old: tuple[Axis, ...], new: tuple[Axis, ...], name: str) -> list[FieldChange]:
    a = {x.name: x for x in old}
    b = {x.name: x for x in new}
    out = []
    for k in sorted(a.keys() | b.keys()):
        x, y = a.get(k), b.get(k)
        if x is not None and y is not None and set(x.values) == set(y.values):
            continue
        out.append(FieldChange(name, axis_source(x) if x else None, axis_source(y) if y else None, (AXES_CHANGED,)))
    return out


def _diff_header(old: Spec, new: Spec) -> list[FieldChange]:
    out = []
    for f in ("id", "version", "doc", "extends"):
        x, y = getattr(old, f), getattr(new, f)
        if x != y:
            out.append(FieldChange(f, x, y))
    if set(old.imports) != set(new.imports):
        out.append(FieldChange("imports", tuple(sorted(old.imports)), tuple(sorted(new.imports))))
    out += _diff_axes(old.axes, new.axes, "axis")
    return out
