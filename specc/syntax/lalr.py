"""A fast driver for the LALR tables that lark builds from ``grammar/spec.lark``.

lark's own parse loop is general: a lexer thread, a line counter object, a generator per
token, hooks for interactive parsing and error recovery. On a spec of thousands of rules that
generality is most of the parse time. :class:`FastLALR` runs the *same* parse table, the same
contextual-lexer regular expressions, the same lexer callbacks and the same tree-building
callbacks in one tight loop, so it builds exactly the tree lark builds, faster (see
``bench/README.md``).

It only handles the successful parse. On any lexing or parsing error it returns ``None`` and
the caller parses again with lark itself, which then raises its usual, precise error: error
messages and recovery never depend on this module.

Two liberties, both exact:

* ignored terminals (whitespace, comments) are skipped by a prefix of each state's regex
  instead of one loop turn each; none of the grammar's other terminals can start with a
  character that starts an ignored one, so the tokens are the same. When an ignored
  terminal has a lexer callback, the fast path is not used.
* reduce actions are resolved once into ``(size, nonterminal, callback)`` tuples, so the
  loop hashes no grammar objects; a one-child reduction of a ``?rule`` (lark's
  ``ExpandSingleChild``, which returns its only child) keeps the value without a call.
* lark's ``UnlessCallback`` (a name that spells a keyword becomes that keyword) is a regex
  full match over literal strings; it becomes a dict lookup with the same result.
"""

from __future__ import annotations

import re
from typing import Any

from lark import Lark, Token
from lark.lexer import ContextualLexer, PatternStr, UnlessCallback
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

_new_token = Token._future_new  # Token(type, value, start_pos, line, column, end_line, end_column, end_pos)


class FastLALR:
    """Parses text with a lark LALR parser's tables; ``parse`` returns the tree or ``None``."""

    def __init__(self, lark: Lark):
        self.usable = False
        frontend = lark.parser
        lexer = getattr(frontend, "lexer", None)
        if (lark.options.parser != "lalr" or type(lexer) is not ContextualLexer or lark.options.postlex
                or lark.options.regex or lark.options.use_bytes):
            return
        start = frontend.parser_conf.start
        if len(start) != 1:
            return
        parser = frontend.parser.parser
        table = parser.parse_table
        callbacks = parser.callbacks
        ignore = frozenset(lark.lexer_conf.ignore)
        skip = "(?:" + "|".join(t.pattern.to_regexp() for t in lark.terminals if t.name in ignore) + ")*"

        # One entry per state: shift -> (True, state); reduce -> (False, size, nonterminal, callback).
        # Gotos after a reduce are the shift entries of nonterminals in the same dicts.
        self.actions: dict[Any, dict[str, tuple]] = {}
        for state, acts in table.states.items():
            row = {}
            for sym, (action, arg) in acts.items():
                if action is Shift:
                    row[sym] = (True, arg)
                else:
                    size, callback = len(arg.expansion), callbacks[arg]
                    if size == 1 and type(callback) is ExpandSingleChild:
                        callback = None
                    row[sym] = (False, size, arg.origin.name, callback)
            self.actions[state] = row
        self.token_callbacks = {k: v for k, v in callbacks.items() if isinstance(k, str)}

        compiled: dict[int, tuple] = {}
        self.lexers: dict[Any, tuple] = {}
        for state, basic in lexer.lexers.items():
            key = id(basic)
            if key not in compiled:
                scanner = basic.scanner
                if len(scanner._mres) != 1 or any(t in basic.callback for t in ignore):
                    return
                mre = scanner._mres[0]
                rx = re.compile(skip + "(?:" + mre.pattern + ")", mre.flags)
                keywords, lexer_callbacks = {}, {}
                for type_, cb in basic.callback.items():
                    words = _keyword_map(cb, lark.options.g_regex_flags)
                    if words is None:
                        lexer_callbacks[type_] = cb
                    else:
                        keywords[type_] = words
                compiled[key] = (rx.match, keywords, lexer_callbacks, basic.newline_types)
            self.lexers[state] = compiled[key]
        self.skip = re.compile(skip).match
        self.ignore = ignore
        self.start_state = table.start_states[start[0]]
        self.end_state = table.end_states[start[0]]
        self.usable = True

    def parse(self, text: str):
        if not self.usable:
            return None
        try:
            return self._parse(text)
        except Exception:  # lark reports it (or raises the same bug) when it parses again
            return None

    def _parse(self, text: str):
        actions, lexers, ignore = self.actions, self.lexers, self.ignore
        token_callbacks = self.token_callbacks
        states = [self.start_state]
        values: list = []
        count, rindex = text.count, text.rindex
        pos, line, line_start = 0, 1, 0
        while True:
            match, keywords, lexer_callbacks, newline_types = lexers[states[-1]]
            m = match(text, pos)
            if m is None:
                break
            type_ = m.lastgroup
            if type_ is None or type_ in ignore:
                break  # only ignorable text is left before something this state cannot take
            start, end = m.start(type_), m.end()
            if start > pos and count("\n", pos, start):
                line += count("\n", pos, start)
                line_start = rindex("\n", pos, start) + 1
            first_line, first_col = line, start - line_start + 1
            if type_ in newline_types and count("\n", start, end):
                line += count("\n", start, end)
                line_start = rindex("\n", start, end) + 1
            value = text[start:end]
            words = keywords.get(type_)
            if words is not None:
                tok = _new_token(words.get(value, type_), value, start, first_line, first_col, line,
                                 end - line_start + 1, end)
            else:
                tok = _new_token(type_, value, start, first_line, first_col, line, end - line_start + 1, end)
                cb = lexer_callbacks.get(type_)
                if cb is not None:
                    tok = cb(tok)
            pos = end
            ttype = tok.type
            while True:
                act = actions[states[-1]].get(ttype)
                if act is None:
                    return None
                if act[0]:
                    states.append(act[1])
                    cb = token_callbacks.get(ttype)
                    values.append(tok if cb is None else cb(tok))
                    break
                _, size, origin, callback = act
                if callback is None:  # ExpandSingleChild of one child: the value stays
                    del states[-1]
                else:
                    if size:
                        children = values[-size:]
                        del states[-size:]
                        del values[-size:]
                    else:
                        children = []
                    values.append(callback(children))
                states.append(actions[states[-1]][origin][1])
        if self.skip(text, pos).end() != len(text):
            return None
        while True:
            act = actions[states[-1]].get("$END")
            if act is None or act[0]:
                return None
            _, size, origin, callback = act
            if callback is None:
                del states[-1]
            else:
                if size:
                    children = values[-size:]
                    del states[-size:]
                    del values[-size:]
                else:
                    children = []
                values.append(callback(children))
            goto = actions[states[-1]][origin][1]
            if goto == self.end_state:
                return values[-1]
            states.append(goto)


def _keyword_map(callback, global_flags: int) -> dict[str, str] | None:
    """The literal -> terminal map behind a lark ``UnlessCallback``, or None for any other callback."""
    if type(callback) is not UnlessCallback or global_flags:
        return None
    words: dict[str, str] = {}
    for t in callback.scanner.terminals:
        if not isinstance(t.pattern, PatternStr) or t.pattern.flags or t.pattern.value in words:
            return None
        words[t.pattern.value] = t.name
    return words
