"""A direct parser for well-formed spec files: one regular expression per construct and a
recursive descent that follows ``grammar/spec.lark`` rule by rule, building AST nodes on the
spot.

Why it exists: a table-driven LALR parse in Python pays a loop turn, a token object and a
reduce callback for every one of a large spec's tokens (35 per rule). Here a whole field line
(``must_not "..."``, ``authority root``, ``when "..."``) is one regular-expression match and
one node, which is what brings 5,000 rules under a second (``bench/README.md``).

Its contract is narrow and tested (``tests/test_direct.py``): for any text it either returns
exactly the AST and comments that the lark parser builds, or raises :class:`Decline`, and then
the caller parses with lark, which reports errors and does recovery. It never reports an
error itself, so the grammar file stays the one definition of the language and of its error
messages. Token patterns (strings, names, numbers, whitespace, comments) are taken from lark's
compiled grammar; the structure below mirrors the grammar's rules, and ``GRAMMAR_SHA256``
pins the grammar it was written against, so a grammar change fails a test until this module
is reviewed.

Quirks of the lark builder kept here on purpose (the ASTs must be equal):

* a parenthesised check is its inner node: its span (and so the enclosing node's) does not
  include the parentheses;
* a one-operand ``and``/``or`` is its operand; nested ones are not flattened;
* an ``axis`` line inside a rule is wrapped in a ``Field("axis", ...)`` with the axis's span.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from specc.diagnostics import Span
from specc.language import DECLARATIONS, FIELD, FIELD_WORDS, FIELDS, SECTION_ITEMS
from specc.syntax import ast
from specc.syntax.strings import decode_string

GRAMMAR_SHA256 = "fcef6b9f44f4fabafe8502f654e3f987bf4064ae71bb727556b3241f7cda0f42"


# The grammar's STRING terminal, as lark compiles it, and the same language written so that
# the regex engine runs a character class per stretch of text instead of an alternation per
# character (three times faster on long strings). Every alternative of the original is
# deterministic (at each character only one can match), so greedy and possessive matching
# agree and both find the same end; tests/test_direct.py compares them on generated strings.
LARK_STRING = r'''(?:r?"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""|r?"(?:[^"\\\n]|\\.)*")'''
FAST_STRING = (r'''(?:r?"""[^"\\]*+(?:(?:\\[\s\S]|"(?!""))[^"\\]*+)*+"""'''
               r'''|r?"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+")''')


# The words that start a rule field (the language table), by what follows them.
_NAME_FIELDS = tuple(f.key for f in FIELDS if f.value == "name")  # then a NAME
_STRING_FIELDS = tuple(f.key for f in FIELDS if f.value == "string" and f.key != "statement")  # then a STRING
_OTHER_FIELDS = tuple(f.key for f in FIELDS if f.value not in ("name", "string"))  # read further
# Outside brackets, any of them (or a modality) ends a check expression.
_FIELD_WORDS = frozenset(FIELD_WORDS)


class ParseCache:
    """The rule blocks of earlier parses, for an editor that parses the same file after every
    keystroke (``specc lsp``): a block is parsed again only where its text changed.

    A rule block (from its ``rule``/``default``/``override`` keyword through its closing ``}``)
    parses to the same nodes wherever it is, but for its position: an entry is keyed by the
    file, the block's column, the section depth it sits at and its text, and remembers the line
    it was parsed at; found at another line (lines were added or removed above it), its nodes
    are moved (:func:`specc.syntax.ast.shifted`). Blocks that no parse used for
    :attr:`keep` parses are dropped (:meth:`sweep`), so the cache holds about one file's blocks.
    """

    keep = 4

    def __init__(self) -> None:
        self.entries: dict[tuple, list] = {}  # key -> [line, decl, comments, last used]
        self.keys: dict[int, tuple] = {}  # id(decl) -> key, for the decls the entries hold
        self.generation = 0

    def get(self, key: tuple, line: int) -> tuple[ast.RuleDecl, list[ast.Comment]] | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        entry[3] = self.generation
        if entry[0] != line:
            delta = line - entry[0]
            del self.keys[id(entry[1])]
            entry[0], entry[1], entry[2] = line, ast.shifted(entry[1], delta), ast.shifted(entry[2], delta)
            self.keys[id(entry[1])] = key
        return entry[1], entry[2]

    def put(self, key: tuple, line: int, decl: ast.RuleDecl, comments: list[ast.Comment]) -> None:
        old = self.entries.get(key)
        if old is not None:
            del self.keys[id(old[1])]
        self.entries[key] = [line, decl, comments, self.generation]
        self.keys[id(decl)] = key

    def key_of(self, decl: ast.RuleDecl) -> tuple[tuple, int] | None:
        """The key and line of a decl this cache handed out (and still holds)."""
        key = self.keys.get(id(decl))
        return None if key is None else (key, self.entries[key][0])

    def sweep(self) -> None:
        """End a parse (or a load of several files): drop what went unused for a while."""
        self.generation += 1
        for k in [k for k, e in self.entries.items() if e[3] < self.generation - self.keep]:
            del self.keys[id(self.entries.pop(k)[1])]


class Decline(Exception):
    """The text is not one this parser handles (usually: it has an error); parse it with lark."""


# Sections and parentheses nested deeper than this are left to lark, which parses without
# recursion (parser.parse then reports E502 for a tree that is too deep).
MAX_DEPTH = 40

_NOT_WORD = r"(?![A-Za-z0-9_])"  # a keyword must end where the word ends (parser.whole_word)
def _decode(raw: str) -> str:
    """A STRING token's value (``decode_string``); a string with an unknown escape declines,
    and lark then reports E105."""
    if raw[0] == '"' and raw[1] != '"' and "\\" not in raw:
        return raw[1:-1]  # the common case: a plain one-line string without escapes
    value, error = decode_string(raw)
    if error is not None:
        raise Decline
    return value


class DirectParser:
    """Build with the token patterns of the lark grammar; ``parse`` returns
    ``(items, comments)`` (``items[0]`` the header) or raises :class:`Decline`.

    Every regular expression starts with the skip pattern (whitespace and comments,
    possessive: it never backtracks), so a token costs one match; comments are collected
    from the skipped text, which is found by one ``str.find`` of ``#``.
    """

    def __init__(self, patterns: dict[str, str]):
        name, modality, role = patterns["NAME"], patterns["MODALITY"], patterns["ROLE"]
        # lark writes the newline itself; parser._parser may have swapped in FAST_STRING already
        if patterns["STRING"].replace("\n", "\\n") not in (LARK_STRING, FAST_STRING):
            raise ValueError("the grammar's STRING terminal changed; update FAST_STRING in specc/syntax/direct.py")
        string = FAST_STRING
        number = re.sub(r"\((?!\?)", "(?:", patterns["NUMBER"])  # no unnamed groups: lastgroup must name the token
        ws = patterns["WS"].replace("])+", "])++")
        skip = f"(?:{ws}|{patterns['COMMENT']}+)*+"
        c = re.compile
        self._comment = c(patterns["COMMENT"]).finditer
        # One token of a check, a list or the header. Keywords read as names and are told
        # apart by value: where the grammar wants a keyword, a longer word is a mistake
        # (parser.whole_word) and declines.
        token = c(rf"{skip}(?:(?P<s>{string})|(?P<n>{name})|(?P<u>{number})|(?P<p>[{{}}()\[\],=.])|(?P<eof>\Z))")
        self._tok, self._token_scanner = token.match, token.scanner
        # A field line in one match; lastgroup says which (v1: statement, v2: authority or
        # severity, v3: when, unless or details, k4: a field read further, end: the rule's `}`).
        self._field = c(
            rf"{skip}(?:(?P<mod>{modality}){_NOT_WORD}(?P<s1>{skip})(?P<v1>{string})"
            rf"|(?P<k2>{'|'.join(_NAME_FIELDS)}){_NOT_WORD}(?P<s2>{skip})(?P<v2>{name})"
            rf"|(?P<k3>{'|'.join(_STRING_FIELDS)}){_NOT_WORD}(?P<s3>{skip})(?P<v3>{string})"
            rf"|(?P<k4>{'|'.join(_OTHER_FIELDS)}){_NOT_WORD}"
            r"|(?P<end>\}))"
        ).match
        # A list on one line with single spaces or tabs: one match, then its items.
        item = f"(?:{string}|{name})"
        self._list = c(rf"{skip}(?P<open>\[)[ \t]*+(?P<body>(?:{item}[ \t]*+,[ \t]*+)*+(?:{item}[ \t]*+)?+)\]").match
        self._items = c(f"(?P<s>{string})|(?P<n>{name})").finditer
        self._rule_head = c(rf"[ \t\f\r\n]*+(?P<n>{name})[ \t\f\r\n]*+\{{").match
        self._top = c(
            rf"{skip}(?:(?P<kw>{'|'.join(DECLARATIONS)}){_NOT_WORD}|(?P<eof>\Z))"
        ).match
        self._block_scanner = c(rf'[^"#{{}}]++|{string}|#[^\n]*+|[{{}}]').scanner
        self._section_item = c(rf"{skip}(?:(?P<kw>{'|'.join(SECTION_ITEMS)}){_NOT_WORD}|(?P<end>\}}))").match
        self._example_item = c(
            rf"{skip}(?:(?P<role>{role}){_NOT_WORD}|(?P<kw>good|bad){_NOT_WORD}|(?P<end>\}}))"
        ).match

    def parse(self, text: str, file: str, cache: ParseCache | None = None) -> tuple[list, list[ast.Comment]]:
        self.text, self.file, self.cache = text, file, cache
        self.pos = 0
        self.depth = 0  # sections open, or parentheses of the check being read
        self.la: re.Match | None = None  # a token looked at and not taken (peek, maybe)
        self.comments: list[ast.Comment] = []
        starts = [0]
        starts.extend(m.end() for m in re.finditer("\n", text))
        self.starts = starts
        items: list = [self.header()]
        while True:
            m = self.at(self._top)
            kw = m.lastgroup == "kw" and m.group("kw")
            if not kw:
                return items, self.comments
            if kw in ("rule", "default", "override"):
                items.append(self.rule(kw, m))
            elif kw == "section":
                items.append(self.section(m))
            elif kw == "axis":
                items.append(self.axis(self.start(m, "kw")))
            elif kw == "remove":
                name = self.dotted()
                items.append(ast.Remove(name, self.joined(self.start(m, "kw"), name.span)))
            else:  # import, extends
                if self.peek_string():
                    target = self.string()
                    value, is_path = target.value, True
                else:
                    target = self.dotted()
                    value, is_path = target.value, False
                node = ast.Import if kw == "import" else ast.Extends
                items.append(node(value, is_path, self.joined(self.start(m, "kw"), target.span)))

    # -- positions and tokens --------------------------------------------------------------

    def at(self, match) -> re.Match:
        """Match ``match`` (a pattern that starts with the skip) here and move past it."""
        self.la = None  # a token looked at and not taken is matched again from its start
        m = match(self.text, self.pos)
        if m is None:
            raise Decline
        a = m.start(m.lastgroup)  # the token, or a field line's value
        if a != self.pos and self.text.find("#", self.pos, a) >= 0:
            self.comments_in(self.pos, a)
        self.pos = m.end()
        return m

    def take(self) -> re.Match:
        """The next token (``lastgroup``: s string, n name, u number, p punctuation, eof)."""
        m = self.la
        if m is not None:
            self.la = None
            self.pos = m.end()
            return m
        return self.at(self._tok)

    def peek(self) -> re.Match:
        m = self.la
        if m is None:
            m = self.la = self.at(self._tok)
            self.pos = m.start(m.lastgroup)  # the skipped text is consumed, the token is not
        return m

    def comments_in(self, a: int, b: int) -> None:
        starts = self.starts
        for m in self._comment(self.text, a, b):
            s = m.start()
            line = bisect_right(starts, s)
            self.comments.append(ast.Comment(m.group().rstrip(), line, s - starts[line - 1] + 1))

    def start(self, m: re.Match, group: str) -> tuple[int, int]:
        """(line, column) where ``group`` of ``m`` starts."""
        return self._at(m.start(group))

    def token_span(self, m: re.Match, group: str) -> Span:
        a, b = m.span(group)
        return self._span_of(a, b)

    def joined(self, start: tuple[int, int], last: Span) -> Span:
        return Span(self.file, start[0], start[1], last.end_line, last.end_col)

    def expect(self, word: str) -> re.Match:
        m = self.take()
        if m.lastgroup not in ("n", "p") or m.group(m.lastgroup) != word:
            raise Decline
        return m

    def maybe(self, word: str) -> re.Match | None:
        m = self.peek()
        if m.lastgroup not in ("n", "p") or m.group(m.lastgroup) != word:
            return None
        return self.take()

    def string(self) -> ast.Str:
        m = self.take()
        if m.lastgroup != "s":
            raise Decline
        return ast.Str(_decode(m.group("s")), self.token_span(m, "s"))

    def name(self) -> ast.Name:
        m = self.take()
        if m.lastgroup != "n":
            raise Decline
        return ast.Name(m.group("n"), self.token_span(m, "n"))

    def number(self, m: re.Match, group: str) -> ast.Number:
        text = m.group(group)
        value: int | float = float(text) if "." in text else int(text)
        return ast.Number(value, text, self.token_span(m, group))

    def dotted(self) -> ast.Name:
        first = last = self.name()
        if self.maybe(".") is None:
            return first
        parts = [first.value]
        while True:
            last = self.name()
            parts.append(last.value)
            if self.maybe(".") is None:
                break
        return ast.Name(".".join(parts), self.joined((first.span.start_line, first.span.start_col), last.span))

    def peek_string(self) -> bool:
        return self.peek().lastgroup == "s"

    # -- declarations ----------------------------------------------------------------------

    def header(self) -> ast.Header:
        spec = self.expect("spec")
        name = self.dotted()
        self.expect("version")
        version = self.string()
        doc = self.string() if self.peek_string() else None
        return ast.Header(name, version, doc, self.joined(self.start(spec, "n"), (doc or version).span))

    def value_list(self) -> ast.ValueList:
        self.la = None
        text = self.text
        m = self._list(text, self.pos)
        if m is None or text.find("\n", m.start("open"), m.end()) >= 0:
            return self.value_list_tokens()
        a = m.start("open")
        if a != self.pos and text.find("#", self.pos, a) >= 0:
            self.comments_in(self.pos, a)
        self.pos = m.end()
        line = bisect_right(self.starts, a)
        base = self.starts[line - 1] - 1  # column = offset - base
        file = self.file
        items: list = []
        for t in self._items(text, m.start("body"), m.end("body")):
            s, e = t.span()
            if t.lastgroup == "s":
                items.append(ast.Str(_decode(t.group()), Span(file, line, s - base, line, e - base)))
            else:
                items.append(ast.Name(t.group(), Span(file, line, s - base, line, e - base)))
        return ast.ValueList(items, Span(file, line, a - base, line, self.pos - base))

    def value_list_tokens(self) -> ast.ValueList:
        """A list over several lines, or with comments: from its tokens."""
        toks = self.tokens(one_list=True)
        if not toks or toks[0][0] != "p" or toks[0][1] != "[":
            raise Decline
        node, i = self.token_list(toks, 1, toks[0][2])
        if i != len(toks):
            raise Decline
        return node

    def _at(self, pos: int) -> tuple[int, int]:
        """(line, column) of an offset, both 1-based."""
        line = bisect_right(self.starts, pos)
        return line, pos - self.starts[line - 1] + 1

    def axis(self, start: tuple[int, int]) -> ast.AxisDecl:
        name = self.name()
        self.expect("=")
        values = self.value_list()
        return ast.AxisDecl(name, values.items, self.joined(start, values.span))

    def section(self, m: re.Match) -> ast.Section:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Decline
        try:
            return self._section(m)
        finally:
            self.depth -= 1

    def _section(self, m: re.Match) -> ast.Section:
        name = self.name()
        title = self.string() if self.peek_string() else None
        self.expect("{")
        items: list = []
        while True:
            i = self.at(self._section_item)
            if i.lastgroup == "end":
                return ast.Section(name, title, items, self.joined(self.start(m, "kw"), self.token_span(i, "end")))
            kw = i.group("kw")
            if kw == "axis":
                items.append(self.axis(self.start(i, "kw")))
            elif kw == "section":
                items.append(self.section(i))
            else:
                items.append(self.rule(kw, i))

    def rule(self, kind: str, m: re.Match) -> ast.RuleDecl:
        """The rule whose keyword ``m`` matched: from the cache where its block is there."""
        cache = self.cache
        if cache is None:
            return self._rule(kind, m)
        a = m.start("kw")
        end = self._block_end(a)
        if end is None:
            return self._rule(kind, m)
        line, col = self._at(a)
        key = (self.file, col, self.depth, self.text[a:end])
        hit = cache.get(key, line)
        if hit is not None:
            self.pos = end
            self.comments.extend(hit[1])
            return hit[0]
        n = len(self.comments)
        decl = self._rule(kind, m)
        if self.pos == end:  # a block whose end the scan and the parse disagree on is not kept
            cache.put(key, line, decl, self.comments[n:])
        return decl

    def _block_end(self, a: int) -> int | None:
        """Where the block starting at ``a`` ends (after its closing brace), by strings,
        comments and braces alone; None where the text gives out first."""
        depth = 0
        match = self._block_scanner(self.text, a).match
        while True:
            t = match()
            if t is None:
                return None
            c = t.group()
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth <= 0:
                    return t.end()

    def _rule(self, kind: str, m: re.Match) -> ast.RuleDecl:
        head = None if kind == "override" else self._rule_head(self.text, self.pos)
        if head is not None and self.text.find("#", self.pos, head.end()) < 0:  # `NAME {`, no comments
            self.pos = head.end()
            name = ast.Name(head.group("n"), self.token_span(head, "n"))
        else:
            name = self.dotted() if kind == "override" else self.name()
            self.expect("{")
        fields: list[ast.Field] = []
        text, match, file, starts = self.text, self._field, self.file, self.starts
        find, append = text.find, fields.append
        self.la = None
        pos = self.pos
        while True:  # `at(self._field)`, written out: this loop runs for every field line
            f = match(text, pos)
            if f is None:
                raise Decline
            group = f.lastgroup
            va, vb = f.span(group)  # the value (or the keyword, or `}`); comments come before it
            if va != pos and find("#", pos, va) >= 0:
                self.comments_in(pos, va)
            pos = vb
            if group == "end":
                self.pos = pos
                end_line = bisect_right(starts, va)
                return ast.RuleDecl(kind, name, fields, Span(file, *self.start(m, "kw"), end_line,
                                                             vb - starts[end_line - 1] + 1))
            if group == "k4":
                self.pos = pos
                kw = f.group("k4")
                reads = FIELD[kw].value  # the keyword is the field's key; its value is read by kind
                if reads == "check":
                    expr = self.check()
                    append(ast.Field(kw, expr, self.joined(self.start(f, "k4"), expr.span)))
                elif reads == "list":
                    values = self.value_list()
                    append(ast.Field(kw, values, self.joined(self.start(f, "k4"), values.span)))
                elif reads == "number":
                    t = self.take()
                    if t.lastgroup != "u":
                        raise Decline
                    n = self.number(t, "u")
                    append(ast.Field(kw, n, self.joined(self.start(f, "k4"), n.span)))
                elif reads == "axis":
                    axis = self.axis(self.start(f, "k4"))
                    append(ast.Field(kw, axis, axis.span))
                else:
                    example = self.example(f)
                    append(ast.Field(kw, example, example.span))
                self.la = None
                pos = self.pos
                continue
            raw = f.group(group)
            line = bisect_right(starts, va)
            col = va - starts[line - 1] + 1
            if group == "v2" or "\n" not in raw:
                value_span = Span(file, line, col, line, col + vb - va)
            else:  # a triple-quoted string over several lines
                end_line = bisect_right(starts, vb)
                value_span = Span(file, line, col, end_line, vb - starts[end_line - 1] + 1)
            if group == "v1":
                a = f.start("mod")
                value = (f.group("mod"), ast.Str(_decode(raw), value_span))
                key = "statement"
            elif group == "v2":
                a = f.start("k2")
                value = ast.Name(raw, value_span)
                key = f.group("k2")
            else:
                a = f.start("k3")
                value = ast.Str(_decode(raw), value_span)
                key = f.group("k3")
            if find("\n", a, va) < 0:  # keyword and value on one line
                span = Span(file, line, col - (va - a), value_span.end_line, value_span.end_col)
            else:
                kw_line = bisect_right(starts, a)
                span = Span(file, kw_line, a - starts[kw_line - 1] + 1, value_span.end_line, value_span.end_col)
            append(ast.Field(key, value, span))

    # -- examples --------------------------------------------------------------------------

    def example(self, m: re.Match) -> ast.Example:
        title = self.string()
        self.expect("{")
        items: list = []
        while True:
            i = self.at(self._example_item)
            group = i.lastgroup
            if group == "end":
                return ast.Example(title, items, self.joined(self.start(m, "k4"), self.token_span(i, "end")))
            if group == "role":
                said = self.string()
                items.append(ast.Turn(i.group("role"), said, self.joined(self.start(i, "role"), said.span)))
                continue
            kind = i.group("kw")
            label = None
            if kind == "bad" and not self.peek_string():
                label = self.name()
            said = self.string()
            reason = self.string() if self.maybe("because") is not None else None
            items.append(ast.Answer(kind, label, said, reason, self.joined(self.start(i, "kw"), (reason or said).span)))

    # -- checks ----------------------------------------------------------------------------
    # The tokens of a check are read first, up to the next field or `}`, then parsed from the
    # list by one loop per parenthesis level: `not`* atom, joined by `and`, then by `or`,
    # as the grammar's check_or / check_and / check_not rules do. A node's span runs from its
    # first child's start to its last child's end, where a parenthesised expression counts as
    # its inner node (lark's builder does the same).

    def tokens(self, one_list: bool = False) -> list[tuple[str, str, int, int]]:
        """The tokens from here as (kind, text, start, end): those of a check, up to the next
        field word outside brackets or a brace; with ``one_list``, those of the value list that
        starts here, through its closing `]`. Moves past them and collects their comments."""
        text = self.text
        toks: list[tuple[str, str, int, int]] = []
        prev = self.pos
        depth = 0
        match = self._token_scanner(text, prev).match
        while True:
            t = match()
            if t is None:
                raise Decline  # text that is no token
            kind = t.lastgroup
            value = t.group(kind)
            if kind == "n":
                if depth == 0 and value in _FIELD_WORDS and not one_list:
                    break
            elif kind == "p":
                if value in "([":
                    depth += 1
                elif value in ")]":
                    depth -= 1
                elif value != ",":  # `{`, `}`, `=`, `.`: never inside a check or a list
                    break
            elif kind == "eof":
                break
            a = t.start(kind)
            if a != prev and text.find("#", prev, a) >= 0:
                self.comments_in(prev, a)
            prev = t.end()
            toks.append((kind, value, a, prev))
            if one_list and depth == 0:
                break
        self.pos = prev
        return toks

    def check(self):
        toks = self.tokens()
        expr, i = self.check_expr(toks, 0)
        if i != len(toks):
            raise Decline
        return expr

    def check_expr(self, toks: list, i: int):
        """check_or from ``toks[i]``; returns (node, index after it)."""
        n = len(toks)
        ors: list = []
        ands: list = []
        while True:
            nots: list[int] = []
            while True:
                if i >= n:
                    raise Decline
                kind, value, a, b = toks[i]
                i += 1
                if kind == "n" and value == "not":
                    nots.append(a)
                else:
                    break
            if kind == "n":
                name = ast.Name(value, self._span_of(a, b))
                if i < n and toks[i][1] == "(" and toks[i][0] == "p":
                    node, i = self.call(name, toks, i + 1)
                else:
                    node = ast.CheckCall(name, [], True, name.span)
            elif kind == "p" and value == "(":
                self.depth += 1
                if self.depth > MAX_DEPTH:
                    raise Decline
                node, i = self.check_expr(toks, i)
                self.depth -= 1
                if i >= n or toks[i][1] != ")" or toks[i][0] != "p":
                    raise Decline
                i += 1
            else:
                raise Decline
            for a in reversed(nots):
                s = node.span
                node = ast.CheckNot(node, Span(self.file, *self._at(a), s.end_line, s.end_col))
            ands.append(node)
            if i < n and toks[i][0] == "n":
                op = toks[i][1]
                if op == "and":
                    i += 1
                    continue
                if op == "or":
                    i += 1
                    ors.append(self._bin("and", ands))
                    ands = []
                    continue
            ors.append(self._bin("and", ands))
            return self._bin("or", ors), i

    def _bin(self, op: str, nodes: list):
        if len(nodes) == 1:
            return nodes[0]
        a, b = nodes[0].span, nodes[-1].span
        return ast.CheckBin(op, nodes, Span(self.file, a.start_line, a.start_col, b.end_line, b.end_col))

    def _span_of(self, a: int, b: int) -> Span:
        """The span of text[a:b], a token (only a triple-quoted string can cover lines)."""
        starts = self.starts
        line = bisect_right(starts, a)
        col = a - starts[line - 1] + 1
        if self.text.find("\n", a, b) < 0:
            return Span(self.file, line, col, line, col + b - a)
        end = bisect_right(starts, b)
        return Span(self.file, line, col, end, b - starts[end - 1] + 1)

    def call(self, name: ast.Name, toks: list, i: int):
        """The arguments of a call from ``toks[i]`` (after its `(`); returns (node, index)."""
        n = len(toks)
        args: list = []
        want_arg = True  # at the start or after a comma: an argument, or `)`
        while True:
            if i >= n:
                raise Decline
            kind, value, a, b = toks[i]
            i += 1
            if kind == "p" and value == ")":
                break
            if not want_arg:
                if kind == "p" and value == ",":
                    want_arg = True
                    continue
                raise Decline
            if kind == "s":
                args.append(ast.Str(_decode(value), self._span_of(a, b)))
            elif kind == "u":
                number: int | float = float(value) if "." in value else int(value)
                args.append(ast.Number(number, value, self._span_of(a, b)))
            elif kind == "p" and value == "[":
                node, i = self.token_list(toks, i, a)
                args.append(node)
            else:
                raise Decline
            want_arg = False
        s = name.span
        end = toks[i - 1][3]
        return ast.CheckCall(name, args, False, Span(self.file, s.start_line, s.start_col, *self._at(end))), i

    def token_list(self, toks: list, i: int, start: int):
        """A value list from ``toks[i]`` (after its `[`); returns (node, index)."""
        n = len(toks)
        items: list = []
        while True:
            if i >= n:
                raise Decline
            kind, value, a, b = toks[i]
            i += 1
            if kind == "s":
                items.append(ast.Str(_decode(value), self._span_of(a, b)))
            elif kind == "n":
                items.append(ast.Name(value, self._span_of(a, b)))
            elif kind == "p" and value == "]" and not items:
                break
            else:
                raise Decline
            if i >= n or toks[i][0] != "p":
                raise Decline
            value = toks[i][1]
            i += 1
            if value == "]":
                break
            if value != ",":
                raise Decline
            if i < n and toks[i][1] == "]" and toks[i][0] == "p":  # a trailing comma
                i += 1
                break
        end = toks[i - 1][3]
        return ast.ValueList(items, Span(self.file, *self._at(start), *self._at(end))), i
