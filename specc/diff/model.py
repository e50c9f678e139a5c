"""The data of a diff: what changed between two specs or two datasets, ready to render.

A :class:`SpecDiff` lists :class:`RuleChange` s, each with the :class:`FieldChange` s that
make it up and the change classes they carry. A :class:`DataImpact` says what a spec change
does to a compiled dataset; a :class:`DatasetDiff` compares two compiled datasets. All of
them are frozen dataclasses with a ``to_json()`` that gives plain, deterministic JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

# -- change classes ----------------------------------------------------------------------
# The order here is the order in which classes are listed everywhere (summary, tables).

TIGHTENED = "tightened"
LOOSENED = "loosened"
INVERTED = "inverted"
REWORDED = "reworded"
TRIGGER_CHANGED = "trigger-changed"
AUTHORITY_CHANGED = "authority-changed"
CHECKS_CHANGED = "checks-changed"
EXAMPLES_CHANGED = "examples-changed"
AXES_CHANGED = "axes-changed"
METADATA_CHANGED = "metadata-changed"

CLASSES: tuple[str, ...] = (
    TIGHTENED, LOOSENED, INVERTED, REWORDED, TRIGGER_CHANGED, AUTHORITY_CHANGED,
    CHECKS_CHANGED, EXAMPLES_CHANGED, AXES_CHANGED, METADATA_CHANGED,
)

CLASS_DOCS: dict[str, str] = {
    TIGHTENED: "the rule binds harder: severity or authority up, should -> must, a check or conjunct "
               "added, a limit lowered, an `unless` removed, a `when` removed, default -> rule",
    LOOSENED: "the reverse of tightened",
    INVERTED: "the modality's polarity flipped (must <-> must_not, should <-> should_not): the rule now "
              "asks for the opposite",
    REWORDED: "statement or details text changed (or an `unless` reworded) with the same modality",
    TRIGGER_CHANGED: "the `when` trigger was added, removed or rewritten",
    AUTHORITY_CHANGED: "the authority level moved (also tightened when up, loosened when down)",
    CHECKS_CHANGED: "a check was added, removed or edited",
    EXAMPLES_CHANGED: "an example was added, removed or edited",
    AXES_CHANGED: "the rule's effective axes (scenario dimensions) changed",
    METADATA_CHANGED: "tags or weight changed",
}

ChangeKind = Literal["added", "removed", "renamed", "changed"]
KINDS: tuple[str, ...] = ("added", "removed", "renamed", "changed")

# Names `--fail-on` accepts: a change kind or a change class, or `any`.
GATES: tuple[str, ...] = KINDS + CLASSES + ("any",)

Value = Union[str, float, int, None, tuple[str, ...]]


def order_classes(classes) -> tuple[str, ...]:
    present = set(classes)
    return tuple(c for c in CLASSES if c in present)


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Value
    new: Value
    classes: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"field": self.field, "old": _jsonable(self.old), "new": _jsonable(self.new),
                "classes": list(self.classes)}


@dataclass(frozen=True)
class RuleSummary:
    """What a reader needs to recognise a rule in a report."""

    id: str
    kind: str
    modality: str
    statement: str
    authority: str
    severity: str
    hash: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RuleChange:
    kind: ChangeKind
    old_id: str | None
    new_id: str | None
    fields: tuple[FieldChange, ...] = ()
    old: RuleSummary | None = None
    new: RuleSummary | None = None
    similarity: float | None = None  # renames only: how alike the two rules are (0..1)

    @property
    def id(self) -> str:
        return self.new_id or self.old_id or ""

    @property
    def classes(self) -> tuple[str, ...]:
        return order_classes(c for f in self.fields for c in f.classes)

    def to_json(self) -> dict:
        out = {"change": self.kind, "old_id": self.old_id, "new_id": self.new_id,
               "classes": list(self.classes), "fields": [f.to_json() for f in self.fields]}
        if self.similarity is not None:
            out["similarity"] = self.similarity
        out["old"] = self.old.to_json() if self.old else None
        out["new"] = self.new.to_json() if self.new else None
        return out


@dataclass(frozen=True)
class SideInfo:
    """One side of a diff as the user named it, and what it resolved to."""

    kind: Literal["spec", "git", "dataset"]
    source: str
    id: str | None = None
    version: str | None = None
    hash: str | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def label(self) -> str:
        if self.id is None:
            return self.source
        return f"{self.id} {self.version}" if self.version else self.id


@dataclass(frozen=True)
class SpecDiff:
    old: SideInfo
    new: SideInfo
    spec_fields: tuple[FieldChange, ...]  # header-level: id, version, doc, global axes, imports
    rules: tuple[RuleChange, ...]
    unchanged: int

    @property
    def empty(self) -> bool:
        return not self.rules and not self.spec_fields

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in KINDS}
        for r in self.rules:
            out[r.kind] += 1
        return out

    def class_counts(self) -> dict[str, int]:
        out = {c: 0 for c in CLASSES}
        for r in self.rules:
            for c in r.classes:
                out[c] += 1
        return {c: n for c, n in out.items() if n}

    def present(self) -> set[str]:
        """Every kind and class present (what `--fail-on` matches against)."""
        out = {r.kind for r in self.rules} | {c for r in self.rules for c in r.classes}
        out |= {c for f in self.spec_fields for c in f.classes}
        return out

    def to_json(self) -> dict:
        return {
            "old": self.old.to_json(),
            "new": self.new.to_json(),
            "summary": {**self.counts(), "unchanged": self.unchanged, "classes": self.class_counts()},
            "spec_changes": [f.to_json() for f in self.spec_fields],
            "rules": [r.to_json() for r in self.rules],
        }


# -- datasets ------------------------------------------------------------------------------


IMPACT_STATUSES = ("stale", "replanned", "renamed", "orphaned", "fresh")


@dataclass(frozen=True)
class RuleImpact:
    """Records of one rule of the dataset with one status. A rule whose content is unchanged but
    some of whose records' scenarios the new plan lacks has two: its ``replanned`` records
    (regenerated) and its ``fresh`` ones."""

    rule_id: str
    status: Literal["fresh", "stale", "replanned", "renamed", "orphaned"]
    records: int
    new_id: str | None = None  # for renamed rules, the id in the new spec

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DataImpact:
    """What a new spec does to a dataset compiled from an earlier one."""

    dataset: SideInfo
    records: int
    rules: tuple[RuleImpact, ...]  # by rule id: one per rule of the manifest (two where it was replanned)
    new_rules: tuple[str, ...]  # rules of the new spec with no records in the dataset
    scenarios_new: int | None  # scenarios of the new plan not in the dataset (None: no planner)
    scenarios_reused: int | None
    scenarios_planned: int | None
    note: str | None = None
    # (record id, rule id, verdict): records a person reviewed (`specc review`) whose rule is no longer
    # fresh: a recompile makes them again, and they need review again
    review_again: tuple[tuple[str, str, str], ...] = ()

    def count(self, status: str) -> tuple[int, int]:
        """(records, rules) with the given status."""
        rs = [r for r in self.rules if r.status == status]
        return sum(r.records for r in rs), len(rs)

    def shown_statuses(self) -> tuple[str, ...]:
        """The statuses a rendering lists: all of them, `replanned` only where a rule has it."""
        return tuple(s for s in IMPACT_STATUSES if s != "replanned" or self.count(s)[1])

    def to_json(self) -> dict:
        out = {"dataset": self.dataset.to_json(), "records": self.records}
        for status in IMPACT_STATUSES:
            n, k = self.count(status)
            out[status] = {"records": n, "rules": k}
        out["scenarios"] = {"new": self.scenarios_new, "reused": self.scenarios_reused,
                            "planned": self.scenarios_planned}
        out["new_rules"] = list(self.new_rules)
        out["by_rule"] = [r.to_json() for r in self.rules if r.status != "fresh"]
        out["note"] = self.note
        if self.review_again:
            out["review_again"] = [{"record_id": r, "rule_id": rule, "verdict": v} for r, rule, v in self.review_again]
        return out


@dataclass(frozen=True)
class RuleRecords:
    rule_id: str
    status: Literal["added", "removed", "changed", "same"]  # the rule itself, by its hash
    added: int
    removed: int
    changed: int | None  # None: contents not compared
    unchanged: int
    old_hash: str | None = None
    new_hash: str | None = None

    @property
    def differs(self) -> bool:
        return self.status != "same" or bool(self.added or self.removed or self.changed)

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DatasetDiff:
    """Two compiled datasets, record by record (by record id), grouped by rule."""

    old: SideInfo
    new: SideInfo
    old_records: int
    new_records: int
    added: int
    removed: int
    changed: int | None  # records with the same id and other contents; None: not compared
    unchanged: int
    rules: tuple[RuleRecords, ...] = field(default=())
    note: str | None = None

    @property
    def compared_contents(self) -> bool:
        return self.changed is not None

    @property
    def empty(self) -> bool:
        return not self.present()

    def present(self) -> set[str]:
        """Kinds present: `added` / `removed` / `changed` records or rules."""
        out = {k for k in ("added", "removed") if getattr(self, k)}
        if self.changed:
            out.add("changed")
        for r in self.rules:
            if r.status != "same":
                out.add(r.status)
        return out

    def to_json(self) -> dict:
        return {
            "old": self.old.to_json(), "new": self.new.to_json(),
            "records": {"old": self.old_records, "new": self.new_records, "added": self.added,
                        "removed": self.removed, "changed": self.changed, "unchanged": self.unchanged},
            "compared_contents": self.compared_contents,
            "rules": [r.to_json() for r in self.rules if r.differs],
            "note": self.note,
        }


def _jsonable(v: Value):
    return list(v) if isinstance(v, tuple) else v
