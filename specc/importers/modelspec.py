"""The OpenAI Model Spec markup (one Markdown file per release) as a specc spec.

The mapping (documented for users in ``docs/import.md``):

* a heading ``## Title {#id authority=LEVEL ...}`` is a rule named ``id`` (qualified id
  ``<spec id>.<id>``); a heading without ``authority=`` is a section named ``id`` with the
  heading as its title; the nesting of headings is the nesting of sections. Sections that hold
  no rule are left out (their prose is counted as skipped).
* ``authority=platform`` (the 2025-04 name) is ``root`` (the document renamed it in 2025-09);
  a comment in the output says so. Other attributes become tags: ``tags=a,b`` gives ``a`` and
  ``b``, any other ``key=value`` the tag ``"key=value"``.
* the statement is the heading; the modality is inferred: a heading that starts with
  "Never" is ``must_not``; one that starts with "Don't" / "Do not" is ``must_not`` at root or
  system authority and ``should_not`` below (the negation is taken off the statement); any
  other is ``must`` at root or system authority and ``should`` below (developer, user and
  guideline principles are defaults that instructions may override).
* the rule's prose, its commentary admonitions (``!!! meta "Commentary"``) included, is its
  ``details``; section links ``[?](#id)`` read as the target's title, other internal links as
  their text, footnote markers go, HTML entities are decoded and ``---`` is an em dash.
* each ``**Example**:`` block is an ``example`` per comparison: its turns are the messages
  before the comparison, where an earlier comparison stands for its first GOOD answer (else its
  first OK answer); GOOD answers are ``good``, OK answers ``good`` with the reason prefixed
  "OK (acceptable):", BAD answers ``bad`` labelled with the rule they violate (``BAD[#id]``).
  Tag attributes (``recipient=``, ``name=``, ``comment=``, ``end_turn=``) open the turn's
  text as ``[key=value ...]``. Message text is kept as written, entities decoded.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from specc.importers.base import Imported, ImportProblem, Summary
from specc.syntax.fmt import encode_string, format_list, format_text

NAME = "modelspec"
SUFFIXES = (".md", ".markdown")

AUTHORITIES = {"root": "root", "platform": "root", "system": "system", "developer": "developer",
               "user": "user", "guideline": "guideline"}
BINDING = ("root", "system")  # authorities whose rules are `must` / `must_not`
ROLES = ("system", "developer", "user", "assistant", "tool")
LABELS = ("GOOD", "BAD", "OK")  # GOOD -> good, BAD -> bad, OK -> good marked "OK (acceptable)"

# Every pattern here runs in time linear in its line: a document may come from anyone (`diff` of
# a pull request's `.md`), and `## T {#` followed by 200,000 letters took minutes with the
# earlier forms. So no two quantifiers that can take the same characters follow each other (a
# lazy `(.*?)` before `[ \t]*$` is one: trailing blanks are stripped in code instead), and no
# class that a repeated opener can start again (`[^\]]+` after `\[` scans past the next `[`).
_HEADING = re.compile(r"(#{1,6})[ \t]+(.*)")  # the title: group 2, right-stripped of blanks
_ATTR = re.compile(r'\s*([A-Za-z_][\w-]*)=(?:"([^"]*)"|\'([^\']*)\'|([^\s"\']+))')
_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)$")
_EXAMPLE = re.compile(r"\*\*Example\*\*:?[ \t]*(.*)")  # group 1 right-stripped
_ADMONITION = re.compile(r'!!![ \t]+(\w+)(?:[ \t]+"([^"]*)")?[ \t]*$')
_TAG_START = r"[ \t]*(?:\*[ \t]*)?<(\w+)((?:\s+[\w-]+=\"[^\"]*\")*)\s*>"  # padded, maybe a stray `*`; attributes
_OPEN_TAG = re.compile(_TAG_START + r"[ \t]*(?:<!--(.*?)-->[ \t]*)?$")
_CLOSE_TAG = re.compile(r"[ \t]*(?:\*[ \t]*)?</(\w+)\s*>[ \t]*$")
_ONE_LINE = re.compile(_TAG_START + r"(.*)</\1\s*>[ \t]*$")
_TAG_ATTR = re.compile(r'(?<![\w-])([\w-]+)="([^"]*)"')  # a name starts once, not at each letter
_LABEL = re.compile(rf"\s*({'|'.join(LABELS)})\s*(?:\[#([^\]]*)\]\s*)?(?:[:,](.*))?", re.S)  # 3: stripped
_FOOTNOTE = re.compile(r"\[\^[^\]\s\[]+\]")
_SECTION_LINK = re.compile(r"\[\?\]\(#([^)\s(\[\]]+)\)")
_LINK_TEXT = re.compile(r"\[([^\]\[]+)\]\(#[^)\s(\[\]]*\)")
_EM_DASH = re.compile(r"(?<!-)---(?!-)")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NEGATIONS = (("never ", "must_not", "must_not"), ("don't ", "must_not", "should_not"),
              ("don’t ", "must_not", "should_not"), ("do not ", "must_not", "should_not"))


def _anchor(text: str) -> tuple[str, str, str] | None:
    r"""``Title {#id key=value ...}`` at the end of a heading: (title, id, the attributes), or None.
    The block is the first ``{#`` after which the only ``}`` is the heading's last character
    (the reading of ``(.*?)[ \t]*\{#([^\s}]*)([^}]*)\}[ \t]*$``, in one pass instead of that
    pattern's cubic backtracking)."""
    s = text.rstrip(" \t")
    if not s.endswith("}"):
        return None
    inner = s[:-1]
    start = inner.find("{#", inner.rfind("}") + 1)
    if start < 0:
        return None
    body = inner[start + 2:]
    hid = re.match(r"[^\s}]*", body)[0]
    return inner[:start].rstrip(" \t"), hid, body[len(hid):]


def _closes(line: str, marker: str) -> bool:
    """Whether ``line`` closes the code fence opened with ``marker`` (the same character, at
    least as many, nothing after it)."""
    m = _FENCE.match(line)
    return bool(m) and m[1][0] == marker[0] and len(m[1]) >= len(marker) and not m[2].strip()


def default_id(path: Path) -> str:
    """The file name without a release date: ``model_spec-2025-09-12.md`` is ``model_spec``, so
    that two releases import under one spec id and their rules compare by id."""
    stem = _DATE.sub("", path.name.rsplit(".", 1)[0])
    name = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "spec"
    return name if _NAME.match(name) else f"spec_{name}"


def default_version(path: Path) -> str:
    """A release date in the file name as a version (``2025-09-12`` is ``2025.9.12``), else 0.1.0."""
    m = _DATE.search(path.name)
    return f"{int(m[1])}.{int(m[2])}.{int(m[3])}" if m else "0.1.0"


# -- the document as blocks ------------------------------------------------------------------


@dataclass
class Heading:
    line: int
    level: int
    title: str
    id: str | None
    attrs: list[tuple[str, str]]
    body: list[tuple[int, str]] = field(default_factory=list)  # (line number, text) up to the next heading
    children: list["Heading"] = field(default_factory=list)

    @property
    def authority(self) -> str | None:
        return next((v for k, v in self.attrs if k == "authority"), None)


class _Doc:
    """The Markdown split at its headings (never at a ``#`` line inside a fence)."""

    def __init__(self, text: str, file: str):
        self.file = file
        self.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.preamble: list[tuple[int, str]] = []
        self.headings: list[Heading] = []
        fence: tuple[str, int] | None = None  # (marker, opening line)
        for n, line in enumerate(self.lines, 1):
            m = _FENCE.match(line)
            if fence is not None:
                if _closes(line, fence[0]):
                    fence = None
            elif m:
                fence = (m[1], n)
            else:
                h = _HEADING.match(line)
                if h:
                    self.headings.append(self.heading(n, len(h[1]), h[2].rstrip(" \t")))
                    continue
            (self.headings[-1].body if self.headings else self.preamble).append((n, line))
        if fence is not None:
            raise ImportProblem(file, fence[1], f"this {fence[0]} code fence is never closed")
        self.by_id = {h.id: h for h in self.headings if h.id}

    def heading(self, n: int, level: int, text: str) -> Heading:
        m = _anchor(text)
        if not m:
            return Heading(n, level, text, None, [])
        title, hid, rest = m
        if not hid:
            raise ImportProblem(self.file, n, "the heading's `{#...}` block has no id")
        attrs, pos = [], 0
        while pos < len(rest.rstrip()):
            a = _ATTR.match(rest, pos)
            if not a:
                raise ImportProblem(self.file, n, f"cannot read the heading attributes {rest.strip()!r}; "
                                                  "expected key=value pairs")
            attrs.append((a[1], next(v for v in a.group(2, 3, 4) if v is not None)))
            pos = a.end()
        auth = [v for k, v in attrs if k == "authority"]
        if len(auth) > 1:
            raise ImportProblem(self.file, n, "the heading gives `authority=` twice")
        if auth and auth[0] not in AUTHORITIES:
            raise ImportProblem(self.file, n, f"unknown authority `{auth[0]}`; expected one of "
                                              f"{', '.join(AUTHORITIES)} (platform is read as root)")
        return Heading(n, level, title, hid, attrs)


def _tree(headings: list[Heading]) -> list[Heading]:
    roots: list[Heading] = []
    stack: list[Heading] = []
    for h in headings:
        while stack and stack[-1].level >= h.level:
            stack.pop()
        (stack[-1].children if stack else roots).append(h)
        stack.append(h)
    return roots


# -- text cleanup ----------------------------------------------------------------------------


class _Text:
    """Inline cleanup of prose and titles, counted in the summary."""

    def __init__(self, doc: _Doc, summary: Summary):
        self.doc, self.summary = doc, summary
        self.counted: set[int] = set()  # source lines whose changes are counted (a line can be read twice)

    def inline(self, s: str, line: int) -> str:
        count = line not in self.counted
        self.counted.add(line)
        s, n = _FOOTNOTE.subn("", s)
        if count:
            self.summary.merged["footnote markers removed (the file has no footnote definitions)"] += n

        def section(m: re.Match) -> str:
            target = self.doc.by_id.get(m[1])
            if target is None:
                if count:
                    self.summary.skip(line, "section links to an unknown id (the id is written instead)", f"#{m[1]}")
                return m[1]
            if count:
                self.summary.merged["section links [?](#id) written as the section's title"] += 1
            return f"“{html.unescape(_FOOTNOTE.sub('', target.title)).strip()}”"

        s = _SECTION_LINK.sub(section, s)
        s = _LINK_TEXT.sub(r"\1", s)
        s = _EM_DASH.sub("—", s)
        return html.unescape(s)

    def prose(self, lines: list[tuple[int, str]]) -> str:
        """Markdown lines as text: inline cleanup outside code fences, blank runs collapsed."""
        out: list[str] = []
        fence = None
        for n, line in lines:
            m = _FENCE.match(line)
            if fence is not None:
                if _closes(line, fence):
                    fence = None
                out.append(line.rstrip())
                continue
            if m:
                fence = m[1]
                out.append(line.rstrip())
                continue
            out.append(self.inline(line, n).rstrip())
        return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


# -- examples --------------------------------------------------------------------------------


@dataclass
class Message:
    line: int
    role: str
    text: str
    label: tuple[str, str | None, str | None] | None  # (GOOD|BAD|OK, rule id, reason)


@dataclass
class SpecExample:
    title: str
    turns: list[tuple[str, str]]
    good: list[tuple[str, str | None]]
    bad: list[tuple[str | None, str, str | None]]


def _messages(block: list[tuple[int, str]], file: str, summary: Summary) -> list[Message | list[Message]]:
    """The messages of one example block; a comparison is a list of labelled messages. Text
    between messages (the documents elide turns with `[...]`) is skipped and counted."""
    items: list[Message | list[Message]] = []
    comparison: list[Message] | None = None
    opened_at = 0  # the line of the open <comparison>
    i = 0
    while i < len(block):
        n, line = block[i]
        i += 1
        if not line.strip():
            continue
        one = _ONE_LINE.match(line)
        opened = _OPEN_TAG.match(line)
        closed = _CLOSE_TAG.match(line)
        if closed and closed[1] == "comparison":
            if comparison is None:
                raise ImportProblem(file, n, "`</comparison>` without a `<comparison>`")
            items.append(comparison)
            comparison = None
            continue
        if opened and opened[1] == "comparison":
            if comparison is not None:
                raise ImportProblem(file, n, "`<comparison>` inside a comparison")
            comparison, opened_at = [], n
            continue
        m = one or opened
        if m is None and not closed:
            summary.skip(n, "text between messages (such as `[...]`)", repr(line.strip()[:60]))
            continue
        if m is None or m[1] not in ROLES:
            what = f"`<{m[1]}>`" if m else f"`</{closed[1]}>`"
            raise ImportProblem(file, n, f"unexpected {what} in an example block; expected a message tag "
                                         f"({', '.join(f'<{r}>' for r in ROLES)}) or <comparison>")
        role = m[1]
        attrs = _TAG_ATTR.findall(m[2])
        if one:
            body, comment = [one[3]], None
        else:
            # The closing tag ends the message even inside a code fence: answers cut short
            # (`def get_` and then `</assistant>`) leave their fence open.
            comment, body = opened[3], []
            while True:
                if i >= len(block):
                    raise ImportProblem(file, n, f"`<{role}>` is never closed with `</{role}>`")
                bn, bl = block[i]
                i += 1
                c = _CLOSE_TAG.match(bl)
                if c and c[1] == role:
                    break
                body.append(bl.rstrip())
        label = None
        if comment is not None:
            lm = _LABEL.fullmatch(comment)
            if not lm:
                raise ImportProblem(file, n, f"unknown answer label <!--{comment}-->; expected GOOD, BAD or OK, "
                                             "optionally [#rule_id] and a reason after `:` or `,`")
            reason = (lm[3] or "").strip()
            label = (lm[1], lm[2] or None, html.unescape(reason) if reason else None)
        text = html.unescape("\n".join(body).strip("\n"))
        if attrs:
            text = "[" + " ".join(f"{k}={v}" for k, v in attrs) + "]" + ("\n" + text if text else "")
        msg = Message(n, role, text, label)
        if comparison is not None:
            comparison.append(msg)
        elif label is not None:
            items.append([msg])  # a labelled answer outside <comparison>: a comparison of one
        else:
            items.append(msg)
    if comparison is not None:
        raise ImportProblem(file, opened_at, "this `<comparison>` is never closed")
    return items


SKIPPED_ANSWERS = "labelled answers of skipped examples"


def _answers(items: list) -> int:
    return sum(1 for x in items if isinstance(x, list) for a in x if a.label is not None)


def _label_name(ref: str | None) -> str | None:
    if not ref:
        return None
    name = re.sub(r"[^A-Za-z0-9_]", "_", ref)
    return name if _NAME.match(name) else f"_{name}"


def _examples(title: str, line: int, items: list, summary: Summary) -> list[SpecExample]:
    """One example per comparison (see the module docstring)."""
    comparisons = [x for x in items if isinstance(x, list)]
    if not comparisons:
        summary.skip(line, "examples without a labelled answer", repr(title))
        return []
    out = []
    turns: list[tuple[str, str]] = []
    k = 0
    for x in items:
        if isinstance(x, Message):
            turns.append((x.role, x.text))
            continue
        k += 1
        name = title if len(comparisons) == 1 else f"{title} (comparison {k} of {len(comparisons)})"
        good, bad, counts = [], [], []
        for a in x:
            if a.label is None:
                summary.skip(a.line, "unlabelled answers inside a comparison", repr(title))
                continue
            kind, ref, reason = a.label
            if a.role != "assistant":
                summary.skip(a.line, "labelled messages that are not <assistant>", f"<{a.role}> in {title!r}")
                continue
            if kind == "GOOD":
                good.append((a.text, reason))
                counts.append((summary.imported, "good answers"))
            elif kind == "OK":
                good.append((a.text, "OK (acceptable)" + (f": {reason}" if reason else "")))
                counts.append((summary.merged, "OK answers imported as good answers"))
            else:
                bad.append((_label_name(ref), a.text, reason))
                counts.append((summary.imported, "bad answers"))
                if ref:
                    summary.imported["bad answers citing a rule (BAD[#id])"] += 1
        if not any(role == "user" for role, _ in turns):
            summary.skip(x[0].line, "examples with no <user> message before the answers (specc examples need one)",
                         repr(name))
            summary.skipped[SKIPPED_ANSWERS] += len(counts)
        elif good or bad:
            out.append(SpecExample(name, list(turns), good, bad))
            for counter, what in counts:
                counter[what] += 1
        else:
            summary.skip(line, "comparisons with no labelled answer", repr(name))
        chosen = next((a for a in x if a.label and a.label[0] == "GOOD"), None) \
            or next((a for a in x if a.label and a.label[0] == "OK"), None)
        if chosen is not None:
            turns.append(("assistant", chosen.text))
        elif k < len(comparisons):
            summary.merge(x[0].line, "comparisons without a good answer before a later turn (no assistant "
                          "turn carried over)", f"{name!r}: no good answer to carry into the next turn")
    if not isinstance(items[-1], list):
        summary.skip(line, "messages after the last comparison of an example", repr(title))
    return out


# -- a heading's body ------------------------------------------------------------------------


@dataclass
class Body:
    prose: list[tuple[int, str]] = field(default_factory=list)
    commentary: list[list[tuple[int, str]]] = field(default_factory=list)
    examples: list[tuple[int, str, list]] = field(default_factory=list)  # (line, title, items)


def _body(lines: list[tuple[int, str]], file: str, text: _Text) -> Body:
    body = Body()
    i = 0
    while i < len(lines):
        n, line = lines[i]
        i += 1
        ex = _EXAMPLE.fullmatch(line)
        if ex:
            while i < len(lines) and not lines[i][1].strip():
                i += 1
            f = _FENCE.match(lines[i][1]) if i < len(lines) else None
            if f is None:
                raise ImportProblem(file, n, "an `**Example**:` line must be followed by a ~~~ block")
            block, marker = [], f[1]
            i += 1
            while True:  # the document split found the closing fence already
                bn, bl = lines[i]
                i += 1
                if _closes(bl, marker):
                    break
                block.append((bn, bl))
            body.examples.append((n, text.inline(ex[1].rstrip(" \t"), n).strip(),
                                  _messages(block, file, text.summary)))
            continue
        ad = _ADMONITION.fullmatch(line)
        if ad:
            part: list[tuple[int, str]] = []
            while i < len(lines) and (not lines[i][1].strip() or lines[i][1].startswith(("    ", "\t"))):
                bn, bl = lines[i]
                part.append((bn, bl[4:] if bl.startswith("    ") else bl[1:]))
                i += 1
            if ad[1] == "meta":
                body.commentary.append(part)
            else:
                body.prose.append((n, f"{ad[2] or ad[1].title()}:"))
                body.prose.extend(part)
            continue
        body.prose.append((n, line))
    return body


# -- the spec --------------------------------------------------------------------------------


def _modality(statement: str, authority: str) -> tuple[str, str]:
    binding = authority in BINDING
    low = statement.lower()
    for prefix, strong, weak in _NEGATIONS:
        if low.startswith(prefix):
            rest = statement[len(prefix):].lstrip()
            return (strong if binding else weak), rest[:1].upper() + rest[1:]
    return ("must" if binding else "should"), statement


def _name(hid: str, line: int, what: str, summary: Summary) -> str:
    if _NAME.match(hid):
        return hid
    name = re.sub(r"[^A-Za-z0-9_]", "_", hid)
    name = name if _NAME.match(name) else f"_{name}"
    summary.merge(line, f"{what} ids changed to be names", f"the id {hid!r} is written {name!r}")
    return name


class _Writer:
    def __init__(self, doc: _Doc, summary: Summary):
        self.doc, self.summary, self.text = doc, summary, _Text(doc, summary)
        self.out: list[str] = []
        self.names: dict[str, int] = {}

    def has_rule(self, h: Heading) -> bool:
        return h.authority is not None or any(self.has_rule(c) for c in h.children)

    def node(self, h: Heading, depth: int) -> None:
        pad = "  " * depth
        if h.authority is not None:
            self.rule(h, pad)
            for c in h.children:  # a rule under a rule: beside it, in the same section
                if self.has_rule(c):
                    self.summary.merge(c.line, "rules nested under a rule placed beside it",
                                       f"{c.title!r} is under the rule `{h.id}`; it is placed beside it")
                    self.node(c, depth)
            return
        if not self.has_rule(h):
            self.skip_section(h)
            return
        name = self.section_name(h)
        self.count_section_prose(h)
        self.out.append(f"{pad}section {name} {encode_string(self.text.inline(h.title, h.line).strip())} {{")
        self.summary.imported["sections"] += 1
        for c in h.children:
            self.node(c, depth + 1)
        self.out.append(f"{pad}}}")

    def section_name(self, h: Heading) -> str:
        if h.id is None:
            title = self.text.inline(h.title, h.line)
            slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "section"
            self.summary.merge(h.line, "headings without an {#id} named after their title",
                               f"the heading {title!r} has no id; the section is named {slug!r}")
            return slug if _NAME.match(slug) else f"_{slug}"
        return _name(h.id, h.line, "section", self.summary)

    def count_section_prose(self, h: Heading) -> None:
        body = _body(h.body, self.doc.file, self.text)
        if any(line.strip() for _, line in body.prose) or body.commentary:
            self.summary.skip(h.line, "section prose (a section holds no text, only its rules do)", repr(h.title))
        self.skip_examples(body.examples)

    def skip_examples(self, examples: list) -> None:
        for n, title, items in examples:
            self.summary.skip(n, "examples under a section, not a rule", repr(title))
            self.summary.skipped[SKIPPED_ANSWERS] += _answers(items)

    def skip_section(self, h: Heading) -> None:
        if h.id is not None or any(line.strip() for _, line in h.body):
            self.summary.skip(h.line, "sections without rules, with their prose", repr(h.title))
        self.skip_examples(_body(h.body, self.doc.file, self.text).examples)
        for c in h.children:
            self.skip_section(c)

    def text_headings(self, h: Heading) -> list[Heading]:
        """The headings under a rule that hold no rule, in document order, at any depth."""
        out = []
        for c in h.children:
            if not self.has_rule(c):
                out += [c, *self.text_headings(c)]
        return out

    def rule(self, h: Heading, pad: str) -> None:
        file, summary = self.doc.file, self.summary
        name = _name(h.id or "", h.line, "rule", summary)
        if name in self.names:
            raise ImportProblem(file, h.line, f"the rule id `{h.id}` is used twice (first at line {self.names[name]})")
        self.names[name] = h.line
        source_authority = h.authority or ""
        authority = AUTHORITIES[source_authority]
        modality, statement = _modality(self.text.inline(h.title, h.line).strip().rstrip("."), authority)
        if not statement:
            raise ImportProblem(file, h.line, "the heading has no text to make a statement of")
        body = _body(h.body, file, self.text)
        inner = f"{pad}  "
        self.out.append(f"{pad}rule {name} {{")
        self.out.append(f"{inner}{modality} {encode_string(statement)}")
        if source_authority != authority:
            self.out.append(f"{inner}# authority={source_authority} in the source: the Model Spec renamed "
                            f"`{source_authority}` to `{authority}` in its 2025-09 release")
            summary.merge(None, f"authority={source_authority} read as {authority} (a comment says so)")
        self.out.append(f"{inner}authority {authority}")
        tags: list[str] = []
        for k, v in h.attrs:
            if k == "authority":
                continue
            new = [t.strip() for t in v.split(",") if t.strip()] if k == "tags" else [f"{k}={v}"]
            tags += [t for t in new if t not in tags]
        if tags:
            self.out.append(f"{inner}tags {format_list([_Value(t) for t in tags])}")
            summary.imported["tags"] += len(tags)
        paragraphs = [self.text.prose(body.prose)]
        for part in body.commentary:
            paragraphs.append("Commentary: " + self.text.prose(part))
            summary.merge(part[0][0] if part else h.line, "commentary admonitions kept in details")
        examples = list(body.examples)
        for child in self.text_headings(h):  # headings under a rule, with no rule in them: its text
            child_body = _body(child.body, file, self.text)
            paragraphs.append("#" * child.level + " " + self.text.inline(child.title, child.line).strip() + "\n\n"
                              + self.text.prose(child_body.prose))
            paragraphs += ["Commentary: " + self.text.prose(part) for part in child_body.commentary]
            examples += child_body.examples
            summary.merge(child.line, "headings under a rule kept in its details")
        details = "\n\n".join(p for p in paragraphs if p.strip()).strip()
        if details:
            self.out.append(f"{inner}details {encode_string(details)}")
        summary.imported["rules"] += 1
        for n, title, items in examples:
            summary.imported["example blocks"] += 1
            for ex in _examples(title, n, items, summary):
                self.example(ex, inner)
        self.out.append(f"{pad}}}")

    def example(self, ex: SpecExample, pad: str) -> None:
        self.summary.imported["examples"] += 1
        inner = pad + "  "
        self.out.append(f"{pad}example {encode_string(ex.title or 'example')} {{")
        for role, text in ex.turns:
            self.out.append(f"{inner}{role} {encode_string(text)}")
        answers = [("good", text, reason) for text, reason in ex.good]
        answers += [("bad" + (f" {label}" if label else ""), text, reason) for label, text, reason in ex.bad]
        for head, text, reason in answers:
            because = f" because {encode_string(reason)}" if reason else ""
            self.out.append(f"{inner}{head} {encode_string(text)}{because}")
        self.out.append(f"{pad}}}")


@dataclass
class _Value:  # what format_list reads: an object with `.value`
    value: str


def convert(text: str, file: str, spec_id: str, version: str) -> Imported:
    """The spec text of one Model Spec document, canonically formatted, and what was done."""
    summary = Summary()
    for what in ("rules", "sections", "example blocks", "examples", "good answers", "bad answers",
                 "bad answers citing a rule (BAD[#id])", "tags"):
        summary.imported[what] = 0  # the order of the summary
    doc = _Doc(text, file)
    if not any(h.authority for h in doc.headings):
        raise ImportProblem(file, None, "no heading carries `authority=`: this is not a Model Spec document "
                                        "(rules are headings such as `## Title {#id authority=root}`)")
    w = _Writer(doc, summary)
    # The doc string is the first paragraph of the text before the first heading, or else of the
    # first heading's prose (the Model Spec's overview).
    preamble = [p for p in w.text.prose(doc.preamble).split("\n\n") if p.strip()]
    if len(preamble) > 1:
        summary.skip(1, "text before the first heading after its first paragraph (the doc string)",
                     f"{len(preamble) - 1} paragraph(s)")
    first = next((h for h in doc.headings if any(line.strip() for _, line in h.body)), None)
    intro = preamble[0] if preamble else ""
    if first is not None and not intro:
        paras = [p for p in w.text.prose(_body(first.body, file, w.text).prose).split("\n\n") if p.strip()]
        intro = paras[0] if paras else ""
    name = Path(file).name
    w.out.append(f"# Imported from {name} (OpenAI Model Spec markup) by `specc import`.")
    w.out.append(f"spec {spec_id} version {encode_string(version)}")
    # The doc is the document's opening paragraph, without the file name: two releases differ in
    # their text, not in where they were read from.
    w.out.append("  " + encode_string(intro or "Imported from a document in the OpenAI Model Spec markup."))
    for h in _tree(doc.headings):
        w.node(h, 0)
    spec_text, diags = format_text("\n".join(w.out) + "\n", f"{spec_id}.spec")
    if spec_text is None:  # the writer's own output must parse: a bug in specc, not in the document
        raise AssertionError(f"imported text does not parse: {[d.message for d in diags]}")
    return Imported(f"{spec_id.rsplit('.', 1)[-1]}.spec", spec_text, summary, NAME)
