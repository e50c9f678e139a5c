"""Resolve parsed spec files into the IR: imports, ``extends``, overrides, validation, hashes.

Entry point: :func:`load`. Files are read through a :class:`Reader`, so the same code resolves
a spec on disk and a spec at a git revision (``specc diff main:specs/x.spec ...``).

Semantics (documented in the README's language reference):

* ``import std.NAME`` brings in the stdlib module ``stdlib/NAME.spec``; ``import "./x.spec"``
  a file relative to the importing one, never outside the root spec's directory. Imported
  rules keep their own qualified ids.
* ``extends BASE`` takes every effective rule of BASE; ``override NAME { ... }`` replaces the
  fields it lists (fields that may repeat are replaced as a whole, except axes, which replace
  the base's of the same name: ``FieldSpec.override`` in :mod:`specc.language`); ``remove
  NAME`` drops a rule. A ``root`` rule may not be weakened.
* Axes: a rule's effective axes are the root spec's global axes, then its own spec's global
  axes, then its sections', then its own, the inner scope winning by name.
"""

from __future__ import annotations

import difflib
import errno
import functools
import gc
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from specc.diagnostics import Diagnostic, SourceCache, Span, dedupe
from specc.files import SpecReadError, is_within, read_spec
from specc.language import ARG_KINDS, FIELD, FIELDS
from specc.ir import checks as checklib
from specc.ir.model import (
    AUTHORITIES,
    AUTHORITY_RANK,
    DEFAULT_AUTHORITY,
    DEFAULT_SEVERITY,
    DEFAULT_WEIGHT,
    MODALITY_POLARITY,
    MODALITY_STRENGTH,
    SEVERITIES,
    SEVERITY_RANK,
    Answer,
    Axis,
    CheckCall,
    CheckNot,
    Example,
    Rule,
    Spec,
    Turn,
    chain,
)
from specc.resources import stdlib_dir
from specc.syntax import ast
from specc.syntax.direct import ParseCache
from specc.syntax.parser import parse

SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.\-+]+)?$")
STDLIB_PREFIX = "std."
# Files in one chain of imports / extends (docs/language.md, Limits): loading follows a chain by
# recursion, and a chain this long is a generated or hostile spec, not a written one.
MAX_IMPORT_DEPTH = 32
MAX_WEIGHT = 100  # a rule's weight scales its scenarios; beyond this a plan is mostly one rule


class Reader:
    """Reads spec files from the file system. Subclass to read from elsewhere (git)."""

    on_disk = True  # paths are files on this machine (symlinks and file types can be checked)

    def read(self, path: Path) -> str:
        return read_spec(path)  # regular files only, size-limited, one decoder (specc.files)

    def identity(self, path: Path) -> str:
        """What makes two paths the same file: its real path, so that a file reached through a
        symlink (``d -> .``) is loaded once and a loop through links is a cycle."""
        return os.path.realpath(path)

    def display(self, path: Path) -> str:
        try:
            rel = os.path.relpath(path)
        except ValueError:
            return str(path)
        return str(path) if rel.startswith("..") else rel

    def resolve(self, path: Path) -> Path:
        return Path(os.path.normpath(path if path.is_absolute() else Path.cwd() / path))


@dataclass
class LoadResult:
    spec: Spec | None
    diagnostics: list[Diagnostic]
    sources: SourceCache
    files: dict[str, ast.SpecFile] = field(default_factory=dict)  # display path -> AST

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "warning"]

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.errors


def _gc_paused(fn):
    """Run ``fn`` with the cyclic garbage collector off.

    Loading builds hundreds of thousands of small acyclic objects (tokens, AST nodes, IR
    models); each full collection walks all of them, which made load time grow faster than
    the spec (measured in bench/README.md). Nothing cyclic is left behind worth collecting
    mid-load; the collector is back on as soon as ``fn`` returns.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return wrapper


class RuleCache:
    """What an editor's checks of one spec can reuse from the check before (``specc lsp``):
    the parsed rule blocks (:class:`~specc.syntax.direct.ParseCache`) and each block's rule as
    lowered in its context (spec id, sections, the scope's axes) with the diagnostics lowering
    gave it. A check with the cache gives what one without it gives; only a rule block whose
    text changed, or that moved to another context, is parsed and lowered again.
    """

    def __init__(self) -> None:
        self.parse = ParseCache()
        self.lowered: dict[tuple, list] = {}  # (block key, spec id, section, axes) -> [line, rule, diags, last used]

    def sweep(self) -> None:
        """End a check: drop the blocks and rules it did not use (and the few before it did not)."""
        self.parse.sweep()
        keep = self.parse.generation - self.parse.keep
        for key in [k for k, e in self.lowered.items() if e[3] < keep or k[0] not in self.parse.entries]:
            del self.lowered[key]


@_gc_paused
def load(path: str | Path, reader: Reader | None = None, lint: bool = True,
         cache: RuleCache | None = None) -> LoadResult:
    """Load, resolve and validate the spec at ``path`` (and everything it imports). ``cache``:
    see :class:`RuleCache`; the result is the same with or without it."""
    reader = reader or Reader()
    r = _Resolver(reader, cache)
    entry = reader.resolve(Path(path))
    r.root_dir = entry.parent
    unit = r.unit(entry, None, ())
    spec = None
    if unit is not None:
        spec = r.build_spec(unit)  # also validates every rule, so errors after a syntax error show
    if spec is not None and lint and not any(d.level == "error" for d in r.diags):
        from specc.ir.lint import run_lints

        with checklib.regex_budget(own=True):  # REGEX_BUDGET_S for the lints of this spec
            r.diags.extend(run_lints(spec, r.units_in_order()))
    diags = dedupe(r.diags)
    if any(d.level == "error" for d in diags):
        spec = None
    if cache is not None:
        cache.sweep()
    return LoadResult(spec, diags, r.sources, {u.display: u.ast for u in r.units.values()})


def load_text(text: str, file: str = "<string>.spec", lint: bool = True) -> LoadResult:
    """Resolve a spec given as text (no relative imports unless ``file`` is real)."""
    reader = _TextReader(Path(file).resolve(), text)
    return load(Path(file), reader, lint=lint)


class _TextReader(Reader):
    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def read(self, path: Path) -> str:
        if path == self.path:
            return self.text
        return super().read(path)

    def display(self, path: Path) -> str:
        return path.name if path == self.path else super().display(path)




# -- units: one parsed file and what it references -------------------------------------


@dataclass
class _Unit:
    path: Path
    display: str
    ast: ast.SpecFile
    imports: list["_Unit"] = field(default_factory=list)
    base: "_Unit | None" = None
    base_span: Span | None = None
    rules: list[Rule] | None = None  # effective rules, built lazily


class _Resolver:
    def __init__(self, reader: Reader, cache: RuleCache | None = None):
        self.reader = reader
        self.cache = cache
        self.sources = SourceCache()
        self.diags: list[Diagnostic] = []
        self.units: dict[str, _Unit] = {}  # by the reader's identity of the file
        self.spec_ids: dict[str, _Unit] = {}
        self.root_dir = Path.cwd()
        self.root_axes: dict[str, Axis] = {}

    def units_in_order(self) -> list[_Unit]:
        return list(self.units.values())

    # loading ----------------------------------------------------------------------
    def unit(self, path: Path, ref_span: Span | None, stack: tuple[tuple[str, Path], ...]) -> _Unit | None:
        key = self.reader.identity(path)
        keys = [k for k, _ in stack]
        if key in keys:
            cycle = " -> ".join(self.reader.display(p) for _, p in stack[keys.index(key):] + ((key, path),))
            self.diags.append(Diagnostic("E203", f"import cycle: {cycle}", ref_span or _file_span(str(path))))
            return None
        if key in self.units:
            return self.units[key]
        display = self.reader.display(path)
        if len(stack) >= MAX_IMPORT_DEPTH:
            self.diags.append(Diagnostic(
                "E502", f"imports nest more than {MAX_IMPORT_DEPTH} files deep; {display} is not loaded",
                ref_span or _file_span(display)))
            return None
        try:
            text = self.reader.read(path)
        except FileNotFoundError:
            self.diags.append(Diagnostic("E201", f"no such spec file: {display}", ref_span or _file_span(display)))
            return None
        except SpecReadError as e:
            code = "E501" if e.errno == errno.EFBIG else "E201"
            self.diags.append(Diagnostic(code, f"cannot read {display}: {e.strerror}", ref_span or _file_span(display)))
            return None
        except UnicodeDecodeError as e:
            self.diags.append(Diagnostic("E201", f"cannot read {display}: not UTF-8 text (byte {e.start})",
                                         ref_span or _file_span(display)))
            return None
        except OSError as e:
            self.diags.append(Diagnostic("E201", f"cannot read {display}: {e.strerror or e}",
                                         ref_span or _file_span(display)))
            return None
        self.sources.add(display, text)
        tree, diags = parse(text, display, self.cache.parse if self.cache is not None else None)
        self.diags.extend(diags)
        if tree is None:
            return None
        u = _Unit(path, display, tree)
        self.units[key] = u
        sid = tree.header.id.value
        if sid in self.spec_ids and self.spec_ids[sid].path != path:
            other = self.spec_ids[sid]
            self.diags.append(Diagnostic(
                "E216", f"spec id `{sid}` is also declared by {other.display}", tree.header.id.span,
                (("declared there", other.ast.header.id.span),),
            ))
        self.spec_ids.setdefault(sid, u)
        if not SEMVER.match(tree.header.version.value):
            self.diags.append(Diagnostic(
                "E214", f"version {tree.header.version.value!r} is not MAJOR.MINOR.PATCH", tree.header.version.span))
        inner = stack + ((key, path),)
        for item in tree.items:
            if isinstance(item, (ast.Import, ast.Extends)):
                target = self.locate(u, item)
                if target is None:
                    continue
                child = self.unit(target, item.span, inner)
                if child is None:
                    continue
                if isinstance(item, ast.Import):
                    u.imports.append(child)
                elif u.base is not None:
                    self.diags.append(Diagnostic("E208", "a spec extends at most one base spec", item.span))
                else:
                    u.base, u.base_span = child, item.span
        return u

    def locate(self, u: _Unit, item: ast.Import | ast.Extends) -> Path | None:
        kw = "import" if isinstance(item, ast.Import) else "extends"
        if not item.is_path:
            name = item.target
            if not name.startswith(STDLIB_PREFIX):
                self.diags.append(Diagnostic(
                    "E204", f"`{kw} {name}`: a module name must start with `std.` (stdlib); "
                    f"import a file with `{kw} \"./path.spec\"`", item.span))
                return None
            rel = name[len(STDLIB_PREFIX):].replace(".", "/") + ".spec"
            path = stdlib_dir() / rel
            if not path.is_file():
                known = sorted(STDLIB_PREFIX + p.relative_to(stdlib_dir()).with_suffix("").as_posix().replace("/", ".")
                               for p in stdlib_dir().rglob("*.spec"))
                close = difflib.get_close_matches(name, known, n=1)
                if close:
                    hint = f"; did you mean `{close[0]}`?"
                elif known:
                    hint = f"; available: {', '.join(known)}"
                else:
                    hint = " (the standard library has no modules)"
                self.diags.append(Diagnostic("E204", f"no stdlib module `{name}`{hint}", item.span))
                return None
            return path
        target = PurePosixPath(item.target)
        if target.is_absolute():
            self.diags.append(Diagnostic("E202", f"`{kw}` takes a relative path, not {item.target!r}", item.span))
            return None
        path = Path(os.path.normpath(u.path.parent / target))
        in_stdlib = _is_within(u.path, stdlib_dir())
        root = stdlib_dir() if in_stdlib else self.root_dir
        if not _is_within(path, root):
            self.diags.append(Diagnostic(
                "E202", f"{item.target!r} is outside the spec's root directory {self.reader.display(root) or '.'}",
                item.span))
            return None
        if self.reader.on_disk and not is_within(path, root):
            # the text stays inside, but a symlink on the way leads out: never read (or quote) it
            self.diags.append(Diagnostic(
                "E202", f"{item.target!r} leads outside the spec's root directory {self.reader.display(root) or '.'} "
                "through a symlink", item.span))
            return None
        if self.reader.on_disk and os.path.exists(path) and not os.path.isfile(path):
            self.diags.append(Diagnostic("E201", f"{item.target!r} is not a regular file", item.span))
            return None
        return path

    # building ---------------------------------------------------------------------
    def build_spec(self, u: _Unit) -> Spec | None:
        head = u.ast.header
        self.root_axes = self.axes_of(u.ast.items)
        rules = self.effective_rules(u)
        if rules is None:
            return None
        all_rules: dict[str, Rule] = {}
        for imported in self._imports_closure(u):
            for r in self.effective_rules(imported) or []:
                all_rules.setdefault(r.id, r)
        for r in rules:
            all_rules[r.id] = r
        base_axes = self._inherited_axes(u)
        spec = Spec(
            id=head.id.value,
            version=head.version.value,
            doc=head.doc.value if head.doc else None,
            file=u.display,
            extends=u.base.ast.header.id.value if u.base else None,
            imports=tuple(i.ast.header.id.value for i in u.imports),
            axes=tuple(base_axes.values()),
            rules=tuple(sorted(all_rules.values(), key=lambda r: r.id)),
        )
        return spec.with_hash()

    def _imports_closure(self, u: _Unit) -> list[_Unit]:
        seen: dict[Path, _Unit] = {}

        def walk(x: _Unit):
            for i in x.imports:
                if i.path not in seen:
                    seen[i.path] = i
                    walk(i)
            if x.base is not None:
                walk(x.base)

        walk(u)
        del walk  # a function that calls itself is a reference cycle: free it now
        return list(seen.values())

    def _inherited_axes(self, u: _Unit) -> dict[str, Axis]:
        axes = dict(self._inherited_axes(u.base)) if u.base else {}
        axes.update(self.axes_of(u.ast.items))
        return axes

    def axes_of(self, items: Iterable) -> dict[str, Axis]:
        out: dict[str, Axis] = {}
        seen: dict[str, Span] = {}
        for it in items:
            decl = it.value if isinstance(it, ast.Field) and it.key == "axis" else it
            if not isinstance(decl, ast.AxisDecl):
                continue
            name = decl.name.value
            if name in seen:
                self.diags.append(Diagnostic("E211", f"axis `{name}` is declared twice in this scope", decl.name.span,
                                             (("first declared here", seen[name]),)))
                continue
            seen[name] = decl.name.span
            values = [v.value for v in decl.values]
            if not values:
                self.diags.append(Diagnostic("E212", f"axis `{name}` has no values", decl.span))
                continue
            first_seen: dict[str, Span] = {}
            for v in decl.values:
                if v.value in first_seen:
                    self.diags.append(Diagnostic("E212", f"axis `{name}` lists {v.value!r} more than once", v.span,
                                                 (("first listed here", first_seen[v.value]),)))
                else:
                    first_seen[v.value] = v.span
                if not v.value.strip():
                    self.diags.append(Diagnostic("E212", f"axis `{name}` has an empty value", v.span))
            out[name] = Axis(name=name, values=tuple(dict.fromkeys(values)))
        return out

    def effective_rules(self, u: _Unit) -> list[Rule] | None:
        if u.rules is not None:
            return u.rules
        u.rules = []  # guards against re-entry
        sid = u.ast.header.id.value
        spec_axes = dict(self.root_axes)
        if u.base is not None:
            spec_axes.update(self._inherited_axes(u.base))
        spec_axes.update(self.axes_of(u.ast.items))
        base_rules: dict[str, Rule] = {}
        if u.base is not None:
            for r in self.effective_rules(u.base) or []:
                base_rules[r.id] = r
        own: dict[str, Rule] = {}
        names: dict[str, Span] = {}

        def walk(items, section: tuple[str, ...], axes: dict[str, Axis]):
            by_name = tuple(axes[k] for k in sorted(axes))  # the scope's axes, shared by its rules
            context = (sid, section, tuple((a.name, a.values) for a in by_name))  # what lowering depends on
            for it in items:
                if isinstance(it, ast.Section):
                    inner = dict(axes)
                    inner.update(self.axes_of(it.items))
                    walk(it.items, section + (it.name.value,), inner)
                elif isinstance(it, ast.RuleDecl) and it.kind in ("rule", "default"):
                    name = it.name.value
                    qid = f"{sid}.{name}"
                    if name in names:
                        self.diags.append(Diagnostic("E205", f"rule `{name}` is declared twice", it.name.span,
                                                     (("first declared here", names[name]),)))
                        continue
                    if qid in base_rules:
                        self.diags.append(Diagnostic(
                            "E205", f"rule `{qid}` already exists in the base spec; use `override {name}`",
                            it.name.span))
                        continue
                    names[name] = it.name.span
                    rule = self.lower(it, context, by_name)
                    if rule is not None:
                        own[qid] = rule

        walk(u.ast.items, (), spec_axes)
        del walk  # else the cycle keeps this resolver and its ASTs alive until a collection

        # overrides and removals against the base
        for it in u.ast.items:
            if isinstance(it, ast.RuleDecl) and it.kind == "override" or isinstance(it, ast.Remove):
                if u.base is None:
                    kw = "override" if isinstance(it, ast.RuleDecl) else "remove"
                    self.diags.append(Diagnostic("E217", f"`{kw}` needs a base spec: add `extends ...`", it.span))
                    continue
                target = self.find_rule(base_rules, it.name)
                if target is None:
                    continue
                base = base_rules[target]
                if isinstance(it, ast.Remove):
                    if base.authority == "root":
                        self.diags.append(Diagnostic(
                            "E207", f"cannot remove `{target}`: it has root authority", it.span,
                            (("the root rule is declared here", base.span),)))
                        continue
                    del base_rules[target]
                else:
                    new = self.apply_override(base, it)
                    if new is not None:
                        base_rules[target] = new
        rules = list(base_rules.values()) + list(own.values())
        u.rules = rules
        return rules

    def find_rule(self, rules: dict[str, Rule], name: ast.Name) -> str | None:
        if name.value in rules:
            return name.value
        matches = [rid for rid, r in rules.items() if r.name == name.value]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            self.diags.append(Diagnostic(
                "E206", f"`{name.value}` is ambiguous: {', '.join(sorted(matches))}; use the qualified id", name.span))
            return None
        self.diags.append(Diagnostic("E206", f"the base spec has no rule `{name.value}`", name.span))
        return None

    # one rule ---------------------------------------------------------------------
    def lower(self, decl: ast.RuleDecl, context: tuple, axes: tuple[Axis, ...]) -> Rule | None:
        """``rule_from_decl``, or its result (and diagnostics) from the cache where ``decl`` came
        from the cache's parse and was lowered in the same ``context`` (spec id, section, axes)."""
        cache = self.cache
        found = cache.parse.key_of(decl) if cache is not None else None
        if found is None:
            return self.rule_from_decl(decl, context[0], context[1], axes)
        block, line = found
        key = (block, *context)
        entry = cache.lowered.get(key)
        if entry is None:
            n = len(self.diags)
            rule = self.rule_from_decl(decl, context[0], context[1], axes)
            cache.lowered[key] = [line, rule, tuple(self.diags[n:]), cache.parse.generation]
            return rule
        if entry[0] != line:  # the block moved up or down: so do its rule and diagnostics
            delta = line - entry[0]
            entry[0], entry[1] = line, _shifted_rule(entry[1], delta)
            entry[2] = tuple(_shifted_diagnostic(d, delta) for d in entry[2])
        entry[3] = cache.parse.generation
        self.diags.extend(entry[2])
        return entry[1]

    def fields_of(self, decl: ast.RuleDecl) -> dict | None:
        """Validate a rule body; returns the raw field values by key (lists for the fields that
        may repeat, :data:`specc.language.FIELDS`)."""
        seen: dict[str, Span] = {}
        out: dict = {f.key: [] for f in FIELDS if f.many}
        ok = True
        for f in decl.fields:
            if not FIELD[f.key].many:
                if f.key in seen:
                    what = "statement" if f.key == "statement" else f"`{f.key}`"
                    self.diags.append(Diagnostic("E208", f"rule `{decl.name.value}` has more than one {what}",
                                                 f.span, (("first given here", seen[f.key]),)))
                    ok = False
                    continue
                seen[f.key] = f.span
            if f.key == "statement":
                modality, text = f.value
                if not text.value.strip():
                    self.diags.append(Diagnostic("E210", f"the `{modality}` statement is empty", text.span))
                    ok = False
                out["statement"] = (modality, text.value)
            elif f.key in ("authority", "severity"):
                allowed = AUTHORITIES if f.key == "authority" else SEVERITIES
                if f.value.value not in allowed:
                    close = difflib.get_close_matches(f.value.value, allowed, n=1)
                    hint = f"did you mean `{close[0]}`?" if close else f"expected one of {', '.join(allowed)}"
                    self.diags.append(Diagnostic("E218", f"unknown {f.key} `{f.value.value}`; {hint}", f.value.span))
                    ok = False
                out[f.key] = f.value.value
            elif FIELD[f.key].value == "string":
                if not f.value.value.strip():
                    self.diags.append(Diagnostic("E210", f"the `{f.key}` text is empty", f.value.span))
                    ok = False
                if not FIELD[f.key].many:
                    out[f.key] = f.value.value
                else:
                    if f.value.value in out[f.key]:
                        self.diags.append(Diagnostic("W409", "this exception is already listed", f.span))
                        continue
                    out[f.key].append(f.value.value)
            elif f.key == "tags":
                out["tags"].extend(v.value for v in f.value.items if v.value not in out["tags"])
            elif f.key == "weight":
                if not 0 < f.value.value <= MAX_WEIGHT:
                    self.diags.append(Diagnostic("E215", f"weight must be greater than 0 and at most {MAX_WEIGHT}, "
                                                 f"not {f.value.text}", f.value.span))
                    ok = False
                out["weight"] = float(f.value.value)
            elif f.key == "check":
                c = self.check_from_ast(f.value)
                if c is None:
                    ok = False
                else:
                    out["check"].append(c)
            elif f.key == "example":
                e = self.example_from_ast(f.value)
                if e is None:
                    ok = False
                else:
                    out["example"].append(e)
            elif f.key == "axis":
                out["axis"].append(f.value)
        return out if ok else None

    def rule_from_decl(self, decl: ast.RuleDecl, sid: str, section: tuple[str, ...],
                       axes: tuple[Axis, ...]) -> Rule | None:
        """``axes``: the enclosing scope's effective axes, sorted by name."""
        fields = self.fields_of(decl)
        if fields is None:
            return None
        if "statement" not in fields:
            self.diags.append(Diagnostic(
                "E209", f"rule `{decl.name.value}` has no statement; add `must \"...\"`, `must_not`, `should` "
                "or `should_not`", decl.name.span))
            return None
        effective_axes = axes
        if fields["axis"]:
            rule_axes = {a.name: a for a in axes}
            rule_axes.update(self.axes_of(fields["axis"]))
            effective_axes = tuple(rule_axes[k] for k in sorted(rule_axes))
        modality, statement = fields["statement"]
        return Rule.hashed(
            id=f"{sid}.{decl.name.value}",
            name=decl.name.value,
            spec=sid,
            kind=decl.kind,
            modality=modality,
            statement=statement,
            authority=fields.get("authority", DEFAULT_AUTHORITY[decl.kind]),
            severity=fields.get("severity", DEFAULT_SEVERITY),
            when=fields.get("when"),
            unless=tuple(fields["unless"]),
            details=fields.get("details"),
            tags=tuple(fields["tags"]),
            weight=fields.get("weight", DEFAULT_WEIGHT),
            checks=tuple(fields["check"]),
            examples=tuple(fields["example"]),
            axes=effective_axes,
            section=section,
            span=decl.span,
        )

    def apply_override(self, base: Rule, decl: ast.RuleDecl) -> Rule | None:
        fields = self.fields_of(decl)
        if fields is None:
            return None
        update: dict = {}
        spans = {f.key: f.span for f in decl.fields}
        for spec in FIELDS:  # what an override does with each field it lists (the language table)
            if spec.key not in spans:
                continue
            value = fields[spec.key]
            if spec.override == "merge":  # axes: the override's replace the base's of the same name
                axes = {a.name: a for a in base.axes}
                axes.update(self.axes_of(value))
                update["axes"] = tuple(axes[k] for k in sorted(axes))
            elif spec.override == "replace-all":
                update[spec.attrs[0]] = tuple(value)
            elif len(spec.attrs) > 1:  # the statement: its modality and its text
                update.update(zip(spec.attrs, value))
            else:
                update[spec.attrs[0]] = value
        new = base.model_copy(update=update)
        if base.authority == "root":
            ok = True
            note = (("the root rule is declared here", base.span),)

            def weakened(key: str, msg: str):
                nonlocal ok
                ok = False
                self.diags.append(Diagnostic("E207", f"override weakens root rule `{base.id}`: {msg}",
                                             spans.get(key, decl.span), note))

            if SEVERITY_RANK[new.severity] < SEVERITY_RANK[base.severity]:
                weakened("severity", f"severity lowered from {base.severity} to {new.severity}")
            if AUTHORITY_RANK[new.authority] < AUTHORITY_RANK[base.authority]:
                weakened("authority", f"authority lowered from {base.authority} to {new.authority}")
            if MODALITY_POLARITY[new.modality] != MODALITY_POLARITY[base.modality]:
                weakened("statement", f"modality flipped from {base.modality} to {new.modality}")
            elif MODALITY_STRENGTH[new.modality] < MODALITY_STRENGTH[base.modality]:
                weakened("statement", f"modality weakened from {base.modality} to {new.modality}")
            added = [x for x in new.unless if x not in base.unless]
            if added:
                weakened("unless", f"adds the exception {added[0]!r}")
            if not ok:
                return None
        return new.with_hash()

    # checks and examples ----------------------------------------------------------
    def check_from_ast(self, c: ast.CheckExpr):
        if isinstance(c, ast.CheckNot):
            inner = self.check_from_ast(c.operand)
            return None if inner is None else CheckNot(operand=inner)
        if isinstance(c, ast.CheckBin):
            ops = [self.check_from_ast(o) for o in c.operands]
            if any(o is None for o in ops):
                return None
            return chain(c.op, ops)
        name = c.name.value
        pred = checklib.PREDICATES.get(name)
        if pred is None:
            close = difflib.get_close_matches(name, checklib.PREDICATES, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"available: {', '.join(sorted(checklib.PREDICATES))}"
            self.diags.append(Diagnostic("E301", f"unknown check `{name}`; {hint}", c.name.span))
            return None
        if len(c.args) != len(pred.params):
            want = len(pred.params)
            self.diags.append(Diagnostic(
                "E302", f"`{name}` takes {want} argument{'s' if want != 1 else ''}, got {len(c.args)}", c.span))
            return None
        args = []
        for a, t in zip(c.args, pred.params):
            v = self.check_arg(name, a, t)
            if v is None:
                return None
            args.append(v)
        return CheckCall(name=name, args=tuple(args))

    def check_arg(self, fname: str, a, t: str):
        def bad():
            return Diagnostic("E303", f"`{fname}` takes {ARG_KINDS[t].words} here", a.span)

        if t in ("str", "regex"):
            if not isinstance(a, ast.Str):
                self.diags.append(bad())
                return None
            if t == "regex":
                try:
                    checklib.compile_regex(a.value)
                except checklib.RegexTooLarge as e:
                    self.diags.append(Diagnostic("E305", f"regular expression refused: {e}", a.span))
                    return None
                except Exception as e:  # regex.error
                    pos = getattr(e, "pos", None)
                    span = a.span
                    if pos is not None and span.start_line == span.end_line:
                        col = span.start_col + (2 if self._raw(a) else 1) + pos
                        span = Span(span.file, span.start_line, col, span.start_line, col + 1)
                    msg = str(e).split(" at position")[0]
                    self.diags.append(Diagnostic("E304", f"invalid regular expression: {msg}", span))
                    return None
            return a.value
        if t == "int":
            if not isinstance(a, ast.Number) or not isinstance(a.value, int) or a.value < 0:
                self.diags.append(bad())
                return None
            return a.value
        if t == "strlist":
            if not isinstance(a, ast.ValueList) or not a.items:
                self.diags.append(bad())
                return None
            return tuple(v.value for v in a.items)
        raise AssertionError(t)

    def _raw(self, s: ast.Str) -> bool:
        line = self.sources.line(s.span.file, s.span.start_line) or ""
        return line[s.span.start_col - 1: s.span.start_col] == "r"

    def example_from_ast(self, e: ast.Example) -> Example | None:
        turns = [Turn(role=i.role, text=i.text.value) for i in e.items if isinstance(i, ast.Turn)]
        good = [Answer(text=i.text.value, reason=i.reason.value if i.reason else None)
                for i in e.items if isinstance(i, ast.Answer) and i.kind == "good"]
        bad = [Answer(text=i.text.value, label=i.label.value if i.label else None,
                      reason=i.reason.value if i.reason else None)
               for i in e.items if isinstance(i, ast.Answer) and i.kind == "bad"]
        if not any(t.role == "user" for t in turns):
            self.diags.append(Diagnostic("E213", f"example {e.title.value!r} has no `user` turn", e.title.span))
            return None
        if not good and not bad:
            self.diags.append(Diagnostic("E213", f"example {e.title.value!r} has no `good` or `bad` answer",
                                         e.title.span))
            return None
        return Example(title=e.title.value, turns=tuple(turns), good=tuple(good), bad=tuple(bad),
                       span=e.span)


def _shifted_rule(rule: Rule | None, lines: int) -> Rule | None:
    if rule is None:
        return None
    examples = tuple(e.model_copy(update={"span": ast.shifted(e.span, lines)}) for e in rule.examples)
    return rule.model_copy(update={"span": ast.shifted(rule.span, lines), "examples": examples})


def _shifted_diagnostic(d: Diagnostic, lines: int) -> Diagnostic:
    return Diagnostic(d.code, d.message, ast.shifted(d.span, lines),
                      tuple((msg, ast.shifted(span, lines)) for msg, span in d.notes))


def _is_within(path: Path, root: Path) -> bool:
    try:
        Path(os.path.normpath(path)).relative_to(Path(os.path.normpath(root)))
        return True
    except ValueError:
        return False


def _file_span(file: str) -> Span:
    return Span(file, 1, 1, 1, 1)


__all__ = ["load", "load_text", "LoadResult", "Reader", "RuleCache"]
