"""Diagnostics: the one error type of specc, its codes, and how it is shown.

Every problem found in a spec is a :class:`Diagnostic` with a code from :data:`CODES`,
a location and a message written for the spec's author. The front end collects them
rather than raising, so one run reports as many as it can find.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from specc import language

Level = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    name: str
    level: Level
    summary: str
    doc: str


def _words_and(words: Iterable[str]) -> str:
    """``a, b and c``."""
    words = list(words)
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


_MODALITIES = ", ".join(f"`{m}`" for m in language.MODALITIES)


def _c(code: str, name: str, summary: str, doc: str) -> Code:
    return Code(code, name, "error" if code.startswith("E") else "warning", summary, doc)


# The catalogue. `specc explain CODE` prints `doc`; keep it a short paragraph with an example.
CODES: dict[str, Code] = {
    c.code: c
    for c in [
        # -- E1xx: syntax ---------------------------------------------------------------
        _c("E101", "syntax", "the text is not valid spec syntax",
           "The parser met a token it did not expect. The message says what was expected "
           "there, e.g. `expected a string after must_not`. After a broken rule the parser "
           "skips to the next rule and keeps checking."),
        _c("E102", "bad-character", "a character that cannot start any token",
           "A character such as `$` or `;` appears outside a string or comment. Strings are "
           "written in double quotes, comments start with `#`."),
        _c("E103", "unterminated-string", "a string is not closed",
           "A string opened with `\"` or `\"\"\"` never closes. Close it on the same line "
           "(single quotes) or with `\"\"\"` (triple quotes)."),
        _c("E104", "unexpected-end", "the file ends inside a block",
           "The file ends before a `{` block was closed with `}`."),
        _c("E105", "bad-escape", "a string contains an unknown escape sequence",
           "Only \\\\, \\\", \\n and \\t are escapes in plain strings. Use a raw string "
           "`r\"...\"` for regular expressions."),
        # -- E2xx: names, imports, structure --------------------------------------------
        _c("E201", "missing-file", "a spec file or imported file does not exist",
           "`import \"./tone.spec\"` names a file relative to the importing spec; it must exist."),
        _c("E202", "import-outside-root", "an import escapes the spec's root directory",
           "Relative imports may not leave the directory of the spec being compiled "
           "(`import \"../../etc/x.spec\"` is refused)."),
        _c("E203", "import-cycle", "specs import each other in a cycle",
           "A spec imports (or extends) itself through a chain of imports. Break the cycle."),
        _c("E204", "unknown-module", "an imported stdlib module does not exist",
           "`import std.NAME` must name a module of the standard library; `specc explain "
           "E204` lists none, but `stdlib/README.md` documents them all."),
        _c("E205", "duplicate-rule", "two rules have the same id",
           "Rule names are unique within a spec, across all sections."),
        _c("E206", "unknown-rule", "an override or remove names a rule that does not exist",
           "`override NAME { ... }` and `remove NAME` must name a rule of the extended spec."),
        _c("E207", "weakened-root-rule", "a derived spec weakens a root rule",
           "A spec that `extends` another may not remove a `root` rule, lower its severity, "
           "flip its modality (must -> should, must_not -> should_not), lower its authority "
           "or add an `unless` exception to it. Root rules are the provider's invariants."),
        _c("E208", "duplicate-field", "a field that may appear once appears twice",
           f"A rule has exactly one statement ({_MODALITIES}) and "
           f"at most one {_words_and(f'`{f.key}`' for f in language.FIELDS if not f.many and f.key != 'statement')}."),
        _c("E209", "missing-statement", "a rule has no statement",
           f"Every rule needs one of {_MODALITIES} with a string."),
        _c("E210", "empty-statement", "a statement, trigger or exception is empty",
           "Strings that carry meaning (`must \"\"`, `when \"\"`, `details \"\"`) may not be empty or blank."),
        _c("E211", "duplicate-axis", "an axis is declared twice in the same scope",
           "Axis names are unique per scope (spec, section, rule)."),
        _c("E212", "bad-axis", "an axis has no values or repeats a value",
           "An axis needs at least one value, each listed once."),
        _c("E213", "bad-example", "an example is incomplete",
           "An example needs at least one `user` turn and at least one `good` or `bad` answer."),
        _c("E214", "bad-version", "the version is not a version number",
           "Write versions as `\"MAJOR.MINOR.PATCH\"` (semantic versioning), e.g. `\"1.3.0\"`."),
        _c("E215", "bad-weight", "a weight is not a number in (0, 100]",
           "`weight` scales how many scenarios a rule gets; it must be > 0 and at most 100 "
           "(`weight 2.5` gives a rule 2.5 times the scenarios of `weight 1`)."),
        _c("E216", "duplicate-spec-id", "two different files declare the same spec id",
           "Every spec file that takes part in a compile needs its own dotted id."),
        _c("E217", "override-without-extends", "override or remove used in a spec that extends nothing",
           "`override` and `remove` change rules of the spec named by `extends`."),
        _c("E218", "unknown-value", "an authority or severity is not one of the known values",
           "`authority` is one of root, system, developer, user, guideline (strongest first); "
           "`severity` is one of critical, high, medium, low."),
        # -- E3xx: checks -----------------------------------------------------------------
        _c("E301", "unknown-check", "a check names a predicate that does not exist",
           f"Checks use a fixed library: {', '.join(language.PREDICATE_NAMES)}. A spec never runs code."),
        _c("E302", "check-arity", "a check predicate gets the wrong number of arguments",
           "e.g. `max_words(120)` takes one argument, `is_json` takes none."),
        _c("E303", "check-arg-type", "a check argument has the wrong type",
           "e.g. `max_words` takes a whole number, `contains` a string, `mentions_any` a "
           "list of strings."),
        _c("E304", "bad-regex", "a regular expression does not compile",
           "The pattern in `matches(r\"...\")` is not a valid regular expression; the message "
           "gives the position inside the pattern."),
        _c("E305", "regex-too-large", "a regular expression would compile into too large a program",
           "Bounded repeats multiply: `a{1000}` is a thousand copies of `a`, `(a{1000}){1000}` a "
           "million. A pattern may expand to at most 100,000 units (docs/language.md, Limits); "
           "use an unbounded repeat (`a+`, `a{1000,}`) or a smaller count."),
        # -- W4xx: lints ------------------------------------------------------------------
        _c("W401", "unverifiable-rule", "a rule has neither a check nor an example",
           "Without a check, pairs for this rule can only be verified by the judge model, and "
           "without an example the agents have nothing to imitate. Add one of them."),
        _c("W402", "unless-without-when", "a rule has exceptions but no trigger",
           "`unless` narrows a `when`; without `when` the exception has nothing to narrow."),
        _c("W403", "unused-axis", "an axis is declared but no rule is in its scope",
           "An axis declared in a section with no rules shapes no scenario."),
        _c("W404", "duplicate-statement", "two rules have the same statement",
           "Two rules say the same thing; merge them or reword one."),
        _c("W405", "missing-doc", "the spec has no doc string",
           "Write a doc string under the `spec` header; it becomes the dataset card's summary."),
        _c("W406", "empty-section", "a section has no rules",
           "Remove the section or put rules in it."),
        _c("W407", "default-with-root", "a default rule has root authority",
           "A `default` is meant to be overridable; give it `user` or `guideline` authority, "
           "or make it a `rule`."),
        _c("W408", "example-contradicts-check", "a spec example disagrees with the rule's check",
           "A `good` answer fails the rule's check, or a `bad` answer (not labelled as an "
           "over-refusal: `overrefusal`, `over_refusal`, `refusal` or `lookalike`) passes it. Either the "
           "example or the check is wrong."),
        _c("W409", "duplicate-unless", "the same exception is listed twice",
           "Remove the repeated `unless`."),
        _c("W410", "regex-budget-spent", "regular expressions used up the run's time budget",
           "The regular-expression evaluations of a spec's lints share a time budget of 2 s; "
           "each evaluation may also take at most 0.25 s (docs/language.md, Limits). Once it is "
           "spent, further `matches` checks fail without running: the examples of the rules "
           "named are not checked. Look for a pattern that backtracks, such as `(a|aa)+$`."),
        # -- E5xx: limits (docs/language.md, Limits) -------------------------------------------
        _c("E501", "file-too-large", "a spec file is larger than the size limit",
           "Spec files are at most 64 MiB; a larger one is refused before it is read."),
        _c("E502", "too-deep", "sections, checks or imports nest too deep",
           "Sections nest at most 32 deep, a check's `not` / `and` / `or` at most 32 deep, and a "
           "chain of imports or `extends` at most 32 files."),
        _c("E503", "plan-too-large", "the plan would have too many scenarios",
           "A compile or plan is refused before any work when it would make more scenarios than "
           "`--max-scenarios` (default 100,000), or when a rule's axes have more value pairs than "
           "a pairwise design can cover (20,000); raise the option, lower `--per-rule` or the "
           "rule's `weight`, or use `--coverage random`."),
    ]
}


@dataclass(slots=True, order=True, unsafe_hash=True)
class Span:
    """A region of a source file; lines and columns are 1-based, end is inclusive-exclusive.

    Treat it as immutable (it is hashed). It is not ``frozen`` only because a frozen
    dataclass's ``__init__`` costs twice as much, and parsing a 5,000-rule spec makes
    about 150,000 spans (bench/frontend.py).
    """

    file: str
    start_line: int
    start_col: int
    end_line: int
    end_col: int

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "start_line": self.start_line,
            "start_col": self.start_col,
            "end_line": self.end_line,
            "end_col": self.end_col,
        }


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    notes: tuple[tuple[str, Span | None], ...] = field(default=())

    @property
    def level(self) -> Level:
        return CODES[self.code].level

    @property
    def name(self) -> str:
        return CODES[self.code].name

    def sort_key(self):
        return (self.span.file, self.span.start_line, self.span.start_col, self.code, self.message)

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "level": self.level,
            "message": self.message,
            "span": self.span.as_dict(),
            "notes": [{"message": m, "span": s.as_dict() if s else None} for m, s in self.notes],
        }


def dedupe(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics in source order, each (code, span, message) once (the first one seen)."""
    seen: set = set()
    out: list[Diagnostic] = []
    for d in diags:
        key = (d.code, d.span, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return sorted(out, key=Diagnostic.sort_key)


def anchor(code: Code) -> str:
    """The fragment of ``code``'s heading in :func:`catalogue` (as GitHub and editors slug it)."""
    return f"{code.code.lower()}-{code.name}"


def catalogue() -> str:
    """``docs/diagnostics.md``: every code's explanation (``specc explain``) under a heading of
    its own, the page that ``specc lsp`` links each diagnostic to (``codeDescription``)."""
    out = ["# Diagnostics", "",
           "Every code `specc check` reports, with what `specc explain CODE` prints for it. Generated from",
           "`specc.diagnostics.CODES` (`tests/test_diagnostics.py` checks that it is current); the",
           "language reference has the table (docs/language.md, Diagnostics).", ""]
    for c in CODES.values():
        out += [f"## {c.code} {c.name}", "", f"{c.level}: {c.summary}.", "", c.doc, ""]
    return "\n".join(out)


def explanation(code: Code) -> str:
    """What ``specc explain CODE`` prints for a code (or a quality gate, which has the same fields)."""
    return f"{code.code} {code.name} ({code.level})\n\n{code.summary}.\n\n{code.doc}"


def format_short(d: Diagnostic) -> str:
    s = d.span
    return f"{s.file}:{s.start_line}:{s.start_col}: {d.level}[{d.code}]: {d.message}"


class SourceCache:
    """Source texts by file name, for drawing the offending line under a diagnostic."""

    def __init__(self) -> None:
        self._texts: dict[str, list[str]] = {}
        self._unsplit: dict[str, str] = {}  # split into lines when a diagnostic first needs one

    def add(self, file: str, text: str) -> None:
        self._unsplit[file] = text
        self._texts.pop(file, None)

    def line(self, file: str, lineno: int) -> str | None:
        lines = self._texts.get(file)
        if lines is None and file in self._unsplit:
            lines = self._texts[file] = _lines(self._unsplit.pop(file))
        if lines is None:
            from specc.files import read_spec  # regular files only, size-limited, the one decoder

            try:
                lines = _lines(read_spec(file))
            except (OSError, UnicodeDecodeError):
                lines = []
            self._texts[file] = lines
        if 1 <= lineno <= len(lines):
            return lines[lineno - 1]
        return None


def _lines(text: str) -> list[str]:
    """Lines as the parser counts them: ended by ``\n`` only (a form feed, NEL or U+2028 in a
    comment is part of its line), without a trailing ``\r``."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


# An excerpt shows at most this many characters of a line, around the span's start.
EXCERPT_CHARS = 160


def _excerpt(line: str, span: Span) -> tuple[str, Span]:
    """``line`` cut to :data:`EXCERPT_CHARS` around the span, and the span moved with it."""
    if len(line) <= EXCERPT_CHARS:
        return line, span
    start = max(0, min(span.start_col - 1 - EXCERPT_CHARS // 4, len(line) - EXCERPT_CHARS))
    cut = line[start:start + EXCERPT_CHARS]
    head = "..." if start > 0 else ""
    tail = "..." if start + EXCERPT_CHARS < len(line) else ""
    shift = start - len(head)
    end_col = span.end_col - shift if span.end_line == span.start_line else span.end_col
    end_col = min(end_col, len(head) + len(cut) + 1)
    return head + cut + tail, Span(span.file, span.start_line, span.start_col - shift, span.end_line, end_col)


def _caret(line: str, span: Span, lineno: int) -> str:
    start = span.start_col if lineno == span.start_line else 1
    if span.end_line == lineno:
        end = max(span.end_col, start + 1)  # a zero-width span (end of file) gets one caret
    else:
        end = max(start + 1, len(line.rstrip()) + 1)
    prefix = "".join(ch if ch == "\t" else " " for ch in line[: start - 1])
    return prefix + "^" + "~" * max(0, end - start - 1)


def render_text(diags: Iterable[Diagnostic], sources: SourceCache) -> str:
    out: list[str] = []
    for d in diags:
        out.append(format_short(d))
        line = sources.line(d.span.file, d.span.start_line)
        if line is not None:
            line, span = _excerpt(line, d.span)
            out.append(f"    {line}")
            out.append(f"    {_caret(line, span, span.start_line)}")
        for msg, span in d.notes:
            if span is None:
                out.append(f"  note: {msg}")
            else:
                out.append(f"  {span.file}:{span.start_line}:{span.start_col}: note: {msg}")
    return "\n".join(out)


def render_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([d.as_dict() for d in diags], indent=2, ensure_ascii=False)


def _gh_escape(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def render_github(diags: Iterable[Diagnostic]) -> str:
    out = []
    for d in diags:
        s = d.span
        kind = "error" if d.level == "error" else "warning"
        out.append(
            f"::{kind} file={s.file},line={s.start_line},col={s.start_col},"
            f"endLine={s.end_line},endColumn={s.end_col},title={d.code} {d.name}::"
            f"{_gh_escape(d.message)}"
        )
    return "\n".join(out)
