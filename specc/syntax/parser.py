"""Parse spec text into a :class:`~specc.syntax.ast.SpecFile`, collecting diagnostics.

The grammar lives in ``grammar/spec.lark`` (shipped inside the wheel as
``specc/_data/grammar``). A well-formed file is parsed by ``specc/syntax/direct.py``, which
builds exactly the AST lark would, several times faster; anything it declines (in practice: a
file with an error) is parsed by lark, LALR with the contextual lexer, building the AST during
the parse (no intermediate parse tree). All error messages and recovery come from the lark path.

Errors are reported for the spec's author ("expected a string after `must_not`") with a
location. After an error inside a rule the parser blanks that rule out and parses the file
again, so one run reports the errors of several broken rules.
"""

from __future__ import annotations

import re
import threading
from functools import wraps

from lark import Lark, Token, Transformer
from lark.lexer import PatternRE
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from specc.diagnostics import Diagnostic, Span, dedupe
from specc.language import DECLARATIONS, FIELD_WORDS, FIELDS, MODALITIES, declaration_words, field_list_words
from specc.resources import grammar_path
from specc.syntax import ast
from specc.syntax.direct import FAST_STRING, LARK_STRING, Decline, DirectParser, ParseCache
from specc.syntax.strings import decode_string

MAX_RECOVERIES = 50
# How deep sections may nest, and how deep a check's `not` / `and` / `or` (docs/language.md,
# Limits). Every later phase (resolve, lint, fmt, hashing, JSON output) walks these trees by
# recursion; the limit keeps every walk far from Python's recursion limit.
MAX_NESTING = 32
_STRING_OR_COMMENT = re.compile(FAST_STRING + r"|#[^\n]*")  # possessive: linear on a 10 MB string


class _GluedKeyword(UnexpectedInput):
    """A keyword with more letters after it (`rules`, `mustard`)."""

    def __init__(self, word: str, keyword: str, line: int, column: int, pos: int):
        super().__init__(f"`{word}` is not a keyword")
        self.word, self.keyword = word, keyword
        self.line, self.column, self.pos_in_stream = line, column, pos


_WORD_CHAR = re.compile(r"[A-Za-z0-9_]+")


_TOKEN_PATTERNS = ("STRING", "NAME", "NUMBER", "MODALITY", "ROLE", "WS", "COMMENT")


_PER_THREAD = threading.local()


def _per_thread(fn):
    """``fn``'s result cached per thread: the parsers keep the text being parsed on themselves
    (the lark builder's ``text``, the direct parser's position), so two threads that parse at
    once (``specc lsp`` checks in a worker while it formats on its main loop) need one each."""

    @wraps(fn)
    def cached(*args):
        memo = _PER_THREAD.__dict__.setdefault(fn.__name__, {})
        if args not in memo:
            memo.clear()  # one per thread (the direct parser of the current lark parser)
            memo[args] = fn(*args)
        return memo[args]

    return cached


@_per_thread
def _direct_parser(lark: Lark) -> DirectParser:
    return DirectParser({name: lark.get_terminal(name).pattern.to_regexp() for name in _TOKEN_PATTERNS})


@_per_thread
def _parser() -> Lark:
    grammar = grammar_path().read_text(encoding="utf-8")
    builder = _Builder()

    # Where a name cannot follow, the contextual lexer matches a keyword as a prefix: `rulefoo {`
    # would read as `rule foo {`. A keyword must end where the word ends.
    def whole_word(tok: Token) -> Token:
        rest = _WORD_CHAR.match(builder.text, tok.end_pos)
        if rest:
            raise _GluedKeyword(str(tok) + rest.group(), str(tok), tok.line, tok.column, tok.start_pos)
        return tok

    keywords = {w.upper() for w in re.findall(r'"([a-z_]+)"', grammar)} | {"MODALITY", "ROLE"}
    lark = Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        keep_all_tokens=True,
        maybe_placeholders=True,
        transformer=builder,
        lexer_callbacks={k: whole_word for k in keywords},
    )
    # The grammar's STRING is an alternation per character, which Python's regex engine matches
    # with ~120 bytes of memory per character (a gigabyte for a 10 MB string). The lexers compile
    # their scanners on first use, from these shared terminal objects: give them the direct
    # parser's possessive equivalent (tests/test_direct.py checks that both match alike).
    string = lark.get_terminal("STRING")
    if string.pattern.to_regexp().replace("\n", "\\n") == LARK_STRING:
        string.pattern = PatternRE(FAST_STRING, string.pattern.flags)
    return lark


# -- tree building ------------------------------------------------------------------------


class _Builder(Transformer):
    """Builds AST nodes as the parser reduces. ``file`` and ``diags`` are set per parse.

    The grammar runs with ``keep_all_tokens`` so that keywords are seen here: a node's span
    runs from its first token to its last.
    """

    file = "<string>"
    text = ""
    diags: list[Diagnostic] = []

    def _span(self, children) -> Span:
        items = [c for c in children if c is not None]
        a, b = items[0], items[-1]
        if isinstance(a, Token):
            sl, sc = a.line, a.column
        else:
            sl, sc = a.span.start_line, a.span.start_col
        if isinstance(b, Token):
            el, ec = b.end_line, b.end_column
        else:
            el, ec = b.span.end_line, b.span.end_col
        return Span(self.file, sl, sc, el, ec)

    def _tspan(self, tok: Token) -> Span:
        return Span(self.file, tok.line, tok.column, tok.end_line, tok.end_column)

    @staticmethod
    def _of(children, type_: str) -> list[Token]:
        return [c for c in children if isinstance(c, Token) and c.type == type_]

    @staticmethod
    def _nodes(children) -> list:
        return [c for c in children if c is not None and not isinstance(c, Token)]

    def _str(self, tok: Token) -> ast.Str:
        value, err = decode_string(str(tok))
        span = self._tspan(tok)
        if err:
            self.diags.append(Diagnostic("E105", err, span))
        return ast.Str(value, span)

    def _name(self, tok: Token) -> ast.Name:
        return ast.Name(str(tok), self._tspan(tok))

    def _value(self, tok: Token) -> ast.Str | ast.Name:
        return self._str(tok) if tok.type == "STRING" else self._name(tok)

    def start(self, children):
        return children

    def dotted_name(self, children):
        return ast.Name(".".join(str(c) for c in self._of(children, "NAME")), self._span(children))

    def header(self, children):
        strings = self._of(children, "STRING")
        return ast.Header(
            self._nodes(children)[0],
            self._str(strings[0]),
            self._str(strings[1]) if len(strings) > 1 else None,
            self._span(children),
        )

    def _target(self, children):
        strings = self._of(children, "STRING")
        if strings:
            return self._str(strings[0]).value, True
        return self._nodes(children)[0].value, False

    def import_stmt(self, children):
        return ast.Import(*self._target(children), self._span(children))

    def extends_stmt(self, children):
        return ast.Extends(*self._target(children), self._span(children))

    def value_list(self, children):
        values = [self._value(c) for c in children if isinstance(c, Token) and c.type in ("STRING", "NAME")]
        return ast.ValueList(values, self._span(children))

    def axis_decl(self, children):
        name = self._of(children, "NAME")[0]
        return ast.AxisDecl(self._name(name), self._nodes(children)[0].items, self._span(children))

    def section(self, children):
        name = self._of(children, "NAME")[0]
        title = self._of(children, "STRING")
        return ast.Section(
            self._name(name),
            self._str(title[0]) if title else None,
            self._nodes(children),
            self._span(children),
        )

    def _rule(self, kind, children):
        nodes = self._nodes(children)
        if kind == "override":
            name, fields = nodes[0], nodes[1:]
        else:
            name, fields = self._name(self._of(children, "NAME")[0]), nodes
        fields = [f if isinstance(f, ast.Field) else ast.Field("axis", f, f.span) for f in fields]
        return ast.RuleDecl(kind, name, fields, self._span(children))

    def rule_decl(self, children):
        return self._rule("rule", children)

    def default_decl(self, children):
        return self._rule("default", children)

    def override_decl(self, children):
        return self._rule("override", children)

    def remove_decl(self, children):
        return ast.Remove(self._nodes(children)[0], self._span(children))

    # fields
    def statement(self, children):
        modality, text = children
        return ast.Field("statement", (str(modality), self._str(text)), self._span(children))

    def example(self, children):
        title = self._str(self._of(children, "STRING")[0])
        span = self._span(children)
        return ast.Field("example", ast.Example(title, self._nodes(children), span), span)

    def turn(self, children):
        role, text = children
        return ast.Turn(str(role), self._str(text), self._span(children))

    def good(self, children):
        strings = self._of(children, "STRING")
        reason = self._str(strings[1]) if len(strings) > 1 else None
        return ast.Answer("good", None, self._str(strings[0]), reason, self._span(children))

    def bad(self, children):
        strings = self._of(children, "STRING")
        label = self._of(children, "NAME")
        reason = self._str(strings[1]) if len(strings) > 1 else None
        return ast.Answer(
            "bad", self._name(label[0]) if label else None, self._str(strings[0]), reason, self._span(children)
        )

    # checks
    def _number(self, tok: Token) -> ast.Number:
        text = str(tok)
        value: int | float = float(text) if "." in text else int(text)
        return ast.Number(value, text, self._tspan(tok))

    def check_call(self, children):
        name = children[0]
        args = []
        for a in children[2:-1]:
            if a is None:
                continue
            if isinstance(a, Token):
                if a.type == "STRING":
                    args.append(self._str(a))
                elif a.type == "NUMBER":
                    args.append(self._number(a))
            else:
                args.append(a)
        return ast.CheckCall(self._name(name), args, False, self._span(children))

    def check_bare(self, children):
        return ast.CheckCall(self._name(children[0]), [], True, self._span(children))

    def check_neg(self, children):
        return ast.CheckNot(self._nodes(children)[0], self._span(children))

    def check_and(self, children):
        return ast.CheckBin("and", self._nodes(children), self._span(children))

    def check_or(self, children):
        return ast.CheckBin("or", self._nodes(children), self._span(children))

    def check_atom(self, children):  # parenthesised: "(" expr ")"
        return self._nodes(children)[0]


# The other fields are `KEYWORD value`, built alike by the kind of their value; the grammar
# names each field's rule by its key (tests/test_language.py checks it against the table).
_FIELD_VALUE = {
    "name": lambda b, children: b._name(b._of(children, "NAME")[0]),
    "string": lambda b, children: b._str(b._of(children, "STRING")[0]),
    "number": lambda b, children: b._number(b._of(children, "NUMBER")[0]),
    "list": lambda b, children: b._nodes(children)[0],
    "check": lambda b, children: b._nodes(children)[0],
}


def _field_builder(key: str, value):
    def build(self: _Builder, children):
        return ast.Field(key, value(self, children), self._span(children))

    build.__name__ = key
    return build


for _f in FIELDS:
    if _f.key != "statement" and _f.value in _FIELD_VALUE:
        setattr(_Builder, _f.key, _field_builder(_f.key, _FIELD_VALUE[_f.value]))


# -- friendly error messages --------------------------------------------------------------

_TERMINAL_WORDS = {
    "STRING": "a string",
    "NAME": "a name",
    "NUMBER": "a number",
    "MODALITY": f"a statement ({', '.join(f'`{m}`' for m in MODALITIES)})",
    "ROLE": "a turn (`system`, `developer`, `user`, `assistant`, `tool`)",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "DOT": "`.`",
    "$END": "the end of the file",
    "SPEC": 'the header `spec NAME version "1.0.0"`',
}
# The terminals that start a rule field: a statement's modality, or a field's keyword.
_RULE_FIELDS = {"MODALITY"} | {w.upper() for w in FIELD_WORDS if w not in MODALITIES}
_TOP_ITEMS = {w.upper() for w in DECLARATIONS}


def _describe(names: set[str]) -> str:
    names = set(names)
    parts: list[str] = []
    if {"LPAR", "NAME"} <= names <= {"LPAR", "NAME", "NOT"}:
        return "a check such as `max_words(100)`"
    if _RULE_FIELDS <= names:
        parts.append(f"a rule field ({field_list_words()})")
        names -= _RULE_FIELDS
    if {"RULE", "DEFAULT", "SECTION"} <= names:
        if _TOP_ITEMS <= names:
            parts.append(f"a declaration ({declaration_words()})")
            names -= _TOP_ITEMS
        else:
            parts.append("`rule`, `default`, `section` or `axis`")
            names -= {"RULE", "DEFAULT", "SECTION", "AXIS"}
    for n in sorted(names):
        if n in _TERMINAL_WORDS:
            parts.append(_TERMINAL_WORDS[n])
        elif n.startswith("__") or n.startswith("_"):
            continue
        else:
            parts.append(f"`{n.lower()}`")
    if not parts:
        return "something else"
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def _token_words(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    text = str(tok)
    if tok.type == "STRING":
        return "a string"
    if len(text) > 30:
        text = text[:27] + "..."
    return f"`{text}`"


# A light scanner that knows strings, comments and braces; used to find the previous token
# for messages and the enclosing rule block for recovery, without trusting the parser.
_SCAN = re.compile(
    # possessive stretches, not an alternation per character: linear time and constant memory
    # on a 10 MB string (the same language: at each character only one alternative can match)
    r'(?P<str>r?"""[^"\\]*+(?:(?:\\[\s\S]|"(?!""))[^"\\]*+)*+(?:"""|\Z)|r?"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"?)'
    r"|(?P<comment>#[^\n]*)"
    r"|(?P<open>\{)|(?P<close>\})"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<other>[^\s])"
)


def _scan(text: str):
    for m in _SCAN.finditer(text):
        kind = m.lastgroup
        if kind != "comment":
            yield kind, m.start(), m.end(), m.group()


def _previous_token(text: str, pos: int) -> str | None:
    prev = None
    for kind, start, end, s in _scan(text[:pos]):
        prev = s
    if prev is None:
        return None
    if prev.startswith('"') or prev.startswith('r"'):
        return "a string"
    return f"`{prev}`" if len(prev) <= 30 else None


def _offset(text: str, line: int, col: int) -> int:
    pos = 0
    for _ in range(line - 1):
        nl = text.find("\n", pos)
        if nl < 0:
            return len(text)
        pos = nl + 1
    return pos + col - 1


_BLOCK_KEYWORDS = ("rule", "default", "override", "section", "example")


def _blocks(text: str):
    """Find the ``{`` blocks of ``text``.

    Returns ``(found, stack)``: ``found`` holds (keyword start, close end, keyword) for every
    rule-like block with matched braces; ``stack`` the blocks still open at the end, as
    (``{`` offset, label such as ``section tone``, offset of its keyword), the last two None
    when no keyword opens the block.
    """
    stack: list[tuple[int, tuple[int, str] | None, str | None, int | None]] = []
    words: list[tuple[int, str]] = []
    found = []
    for kind, start, end, s in _scan(text):
        if kind == "word":
            words.append((start, s))
        elif kind == "open":
            header = None
            if len(words) >= 2 and words[-2][1] in ("rule", "default", "override"):
                header = words[-2]
            label = keyword_at = None
            for i in range(len(words) - 1, -1, -1):
                if words[i][1] in _BLOCK_KEYWORDS:
                    name = words[i + 1][1] if i + 1 < len(words) else '"'
                    label = words[i][1] if name == '"' else f"{words[i][1]} {name}"
                    keyword_at = words[i][0]
                    break
            stack.append((start, header, label, keyword_at))
            words.clear()
        elif kind == "close":
            words.clear()
            if stack:
                _, header, _, _ = stack.pop()
                if header is not None:
                    found.append((header[0], end, header[1]))
        else:
            if kind == "str":
                words.append((start, '"'))
    return found, [(start, label, keyword_at) for start, _, label, keyword_at in stack]


def _unclosed(text: str, pos: int) -> tuple[int, str | None, int | None] | None:
    _, stack = _blocks(text[:pos])
    return stack[-1] if stack else None


_DECLARATIONS = frozenset(_TOP_ITEMS - {"AXIS"})  # `axis` also starts a field: it shows no missing `}`


def _unclosed_before(text: str, pos: int, e: UnexpectedInput) -> tuple[int, str | None, int | None] | None:
    """The block left open when a declaration keyword appears inside it (a forgotten `}`)."""
    tok = getattr(e, "token", None)
    expected = set(getattr(e, "expected", None) or ())
    if not isinstance(e, UnexpectedToken) or tok is None or tok.type not in _DECLARATIONS:
        return None
    if tok.type in expected or "RBRACE" not in expected:
        return None
    return _unclosed(text, pos)


def _line_col(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _blank(text: str, start: int, end: int) -> str:
    # line by line, not a regex substitution per character (which takes gigabytes on a 10 MB line)
    return text[:start] + "\n".join(" " * len(part) for part in text[start:end].split("\n")) + text[end:]


_KEYWORDS = frozenset(FIELD_WORDS + DECLARATIONS)


def _keyword_taken_as_value(text: str, pos: int, file: str) -> Diagnostic | None:
    """`authority` with its value missing swallows the next keyword as the value
    (`authority\n check ...` reads as authority `check`); name the real mistake."""
    toks = [(start, end, s) for kind, start, end, s in _scan(text[:pos]) if kind == "word"][-2:]
    if len(toks) == 2 and toks[0][2] in ("authority", "severity") and toks[1][2] in _KEYWORDS:
        start, end, word = toks[1]
        line = text.count("\n", 0, start) + 1
        col = start - (text.rfind("\n", 0, start) + 1) + 1
        return Diagnostic("E101", f"expected a value after `{toks[0][2]}`, found the keyword `{word}`",
                          Span(file, line, col, line, col + len(word)))
    return None


def _error_to_diag(text: str, file: str, e: UnexpectedInput) -> Diagnostic:
    line, col = e.line, e.column
    if line is None or line < 1:
        line, col = text.count("\n") + 1, 1
    pos = _offset(text, line, col)
    if isinstance(e, _GluedKeyword):
        return Diagnostic("E101", f"`{e.word}` is not a keyword here; did you mean `{e.keyword}`?",
                          Span(file, line, col, line, col + len(e.word)))
    if isinstance(e, UnexpectedCharacters):
        ch = text[pos] if pos < len(text) else ""
        span = Span(file, line, col, line, col + 1)
        if ch == '"' and text[max(0, pos - 2):pos] == '""':
            # `"""abc` lexes as the empty string `""` and then an unclosed `"abc`.
            start = pos - 3 if text[pos - 3:pos - 2] == "r" else pos - 2
            col = start - (text.rfind("\n", 0, start) + 1) + 1
            return Diagnostic("E103", 'this """ string is never closed; end it with """',
                              Span(file, line, col, line, col + 3))
        if ch == '"' or text[pos:pos + 2] == 'r"':
            return Diagnostic("E103", "this string is never closed (a plain string must end on the same line; "
                              "use \"\"\"...\"\"\" for several lines)", span)
        if ch in "\u201c\u201d\u201e\u2018\u2019\u00ab\u00bb":
            return Diagnostic("E102", f"typographic quote `{ch}`; write strings in straight double quotes \"...\"", span)
        return Diagnostic("E102", f"unexpected character `{ch}`; strings go in double quotes and comments start with `#`", span)
    tok = getattr(e, "token", None)
    expected = set(getattr(e, "expected", None) or getattr(e, "accepts", None) or ())
    if isinstance(e, UnexpectedEOF) or (tok is not None and tok.type == "$END"):
        span = Span(file, line, col, line, col)
        op = _unclosed(text, len(text))
        if op is not None:
            start, what, _ = op
            what = f"the `{what}` block" if what else "a block"
            sl = text.count("\n", 0, start) + 1
            sc = start - (text.rfind("\n", 0, start) + 1) + 1
            lines = text.split("\n")  # lines end at \n only, as the parser counts them
            if len(lines) > 1 and lines[-1] == "":
                lines.pop()
            last = len(lines)
            span = Span(file, last, len(lines[-1]) + 1, last, len(lines[-1]) + 1)
            return Diagnostic(
                "E104",
                f"the file ends before {what} opened at line {sl} is closed; expected `}}`",
                span,
                ((f"{what} opened here", Span(file, sl, sc, sl, sc + 1)),),
            )
        if expected == {"SPEC"}:
            return Diagnostic("E104", 'the file is empty; a spec file starts with `spec NAME version "1.0.0"`',
                              Span(file, 1, 1, 1, 1))
        return Diagnostic("E104", f"the file ends too early; expected {_describe(expected)}", span)
    assert tok is not None
    span = Span(file, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)
    op = _unclosed_before(text, pos, e)
    if op is not None:
        brace, what, _ = op
        what = f"the `{what}` block" if what else "a block"
        sl, sc = _line_col(text, brace)
        return Diagnostic("E101", f"expected `}}` to close {what} opened at line {sl}, found {_token_words(tok)}",
                          span, ((f"{what} opened here", Span(file, sl, sc, sl, sc + 1)),))
    valued = _keyword_taken_as_value(text, pos, file)
    if valued is not None:
        return valued
    prev = _previous_token(text, pos)
    where = f" after {prev}" if prev else ""
    wanted = "a value" if expected == {"NAME"} and prev in ("`authority`", "`severity`") else _describe(expected)
    return Diagnostic("E101", f"expected {wanted}{where}, found {_token_words(tok)}", span)


def too_deep(items: list) -> Diagnostic | None:
    """E502 at the first section or check nested more than :data:`MAX_NESTING` deep. Iterative:
    it must not recurse on the very trees it guards against."""
    stack: list[tuple[object, int, str]] = [(it, 1, "section") for it in items if isinstance(it, ast.Section)]
    for it in items:
        if isinstance(it, ast.RuleDecl):
            stack.extend((f.value, 1, "check") for f in it.fields if f.key == "check")
    while stack:
        node, depth, what = stack.pop()
        if depth > MAX_NESTING and not isinstance(node, ast.CheckCall):  # a call is no level
            where = node.name.span if isinstance(node, ast.Section) else node.span
            if what == "section":
                msg = f"sections nest more than {MAX_NESTING} deep"
            else:
                msg = f"this check nests `not`, `and` and `or` more than {MAX_NESTING} deep"
            return Diagnostic("E502", msg, Span(where.file, where.start_line, where.start_col, where.start_line,
                                                where.start_col + 1))
        if isinstance(node, ast.Section):
            for it in node.items:
                if isinstance(it, ast.Section):
                    stack.append((it, depth + 1, "section"))
                elif isinstance(it, ast.RuleDecl):
                    stack.extend((f.value, 1, "check") for f in it.fields if f.key == "check")
        elif isinstance(node, ast.CheckNot):
            stack.append((node.operand, depth + 1, "check"))
        elif isinstance(node, ast.CheckBin):
            stack.extend((o, depth + 1, "check") for o in node.operands)
    return None


def parse(text: str, file: str = "<string>",
          cache: ParseCache | None = None) -> tuple[ast.SpecFile | None, list[Diagnostic]]:
    """Parse one spec file. Returns the AST (None if the file could not be parsed, or nests
    deeper than :data:`MAX_NESTING`) and diagnostics. With a ``cache``, the rule blocks it holds
    are not parsed again (an editor's parse after a keystroke)."""
    tree, diags = _parse(text, file, cache)
    if tree is not None:
        deep = too_deep(tree.items)
        if deep is not None:
            return None, dedupe(diags + [deep])
    return tree, diags


def _parse(text: str, file: str, cache: ParseCache | None = None) -> tuple[ast.SpecFile | None, list[Diagnostic]]:
    lark = _parser()
    try:  # well-formed text: the direct parser builds the same AST (specc/syntax/direct.py)
        items, comments = _direct_parser(lark).parse(text, file, cache)
    except Decline:
        pass
    else:
        return ast.SpecFile(file, items[0], items[1:], comments, text), []
    diags: list[Diagnostic] = []
    work = text
    # each recovery parses the whole text again: a huge broken file gets fewer (its first errors)
    recoveries = max(2, min(MAX_RECOVERIES, MAX_RECOVERIES * 1_000_000 // max(1, len(text))))
    for _ in range(recoveries):
        comments: list[ast.Comment] = []
        builder_diags: list[Diagnostic] = []
        builder: _Builder = lark.options.transformer
        builder.file, builder.text, builder.diags = file, work, builder_diags
        try:
            tree = lark.parse(work, on_error=None)
        except UnexpectedInput as e:
            d = _error_to_diag(work, file, e)
            diags.append(d)
            pos = _offset(work, d.span.start_line, d.span.start_col)
            op = _unclosed_before(work, pos, e)
            if op is not None:  # blank the unclosed block up to the keyword that showed it
                brace, _, keyword_at = op
                work = _blank(work, keyword_at if keyword_at is not None else brace, pos)
                continue
            blocks, _ = _blocks(work)
            enclosing = [b for b in blocks if b[0] < pos < b[1]]
            if not enclosing or d.code == "E104":
                break
            start, end, _ = max(enclosing, key=lambda b: b[0])  # innermost
            work = _blank(work, start, end)
            continue
        except VisitError as e:  # a bug in the builder, not in the spec: let it surface
            raise e.orig_exc
        else:
            header, *items = tree
            line, seen = 1, 0  # lines counted incrementally: linear in the size of the file
            for m in _STRING_OR_COMMENT.finditer(text):
                s = m.group()
                if s.startswith("#"):
                    line += text.count("\n", seen, m.start())
                    seen = m.start()
                    col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
                    comments.append(ast.Comment(s.rstrip(), line, col))
            # After recoveries the tree lacks the broken rules; it is still returned so that
            # later phases report the problems of the rules that did parse.
            return ast.SpecFile(file, header, items, comments, text), dedupe(diags + builder_diags)
    return None, dedupe(diags)


