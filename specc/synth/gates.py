"""Quality gates: what makes a generated text unfit for a pair, decided by code.

Each gate is a small function ``(text, ctx) -> detail | None`` in :data:`GATES` (like
``ir/lint.py``'s ``LINTS``), with a stable code and name (``Q101 parroted-instructions``), a
one-line summary and a doc paragraph that ``specc explain`` shows. A gate applies to some
*kinds* of text:

``user``      a user turn written by the attacker;
``operator``  a system / developer instruction written by the attacker (a pushed conflict);
``chosen``    a defender answer (the chosen side, or a defender reply inside a conversation);
``rejected``  a violator answer (the rejected side);
``pair``      the two sides together (the gate gets the chosen text, ``ctx.other`` the rejected).

Gates are pure Python and regular expressions, deterministic and fast; they never call a model.
They are built to be precise: a borderline text passes. Comparisons run on *words*: the text
NFKC-normalised, case-folded, curly apostrophes straightened, split into runs of letters and
digits (so case, whitespace and punctuation never matter; ``first-time`` is ``first time``).

The prompt scaffolding the gates look for (instruction sentences, ``<placeholders>``, JSON
example keys, ``Label:`` lines) is read from the role templates in ``synth/templates/`` at first
use, so it follows the templates when they change.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Iterable

KINDS = ("user", "operator", "chosen", "rejected", "pair")

# -- thresholds (documented in each gate's doc and in docs/quality.md) ------------------------

INSTRUCTION_RUN = 5  # words in a row copied from a template's own sentences
RULE_RUN = 4  # a run of at least this many words counts as copied from the rule text
RULE_COPIED = 0.75  # share of a user turn's words inside such runs
PROMPT_RUN = 3
PROMPT_COPIED = 0.8  # share of a chosen answer's words inside runs copied from the user turns
PROMPT_MIN_WORDS = 6  # below this only a verbatim echo (a contiguous copy) counts
PROMPT_LONG_RUN = 10  # words in a row copied from a user turn: an echo whatever else follows
NEAR_IDENTICAL = 0.9  # word-multiset Jaccard of the two sides
LOOP_REPEATS = {1: 4, 2: 3, 3: 3, 4: 3}  # n-gram length -> repeats in a row; longer phrases: 2
LOOP_LONGEST = 24
LOOP_DISTINCT = 0.5  # distinct / all word trigrams, for texts of LOOP_MIN_WORDS or more
LOOP_MIN_WORDS = 20
TOPIC_STEM = 5  # words compare by their first letters (deliver / delivery, refund / refunds)
TOPIC_MIN_WORDS = 4
EXAMPLE_RUN = 8  # words in a row copied from one of the spec's own examples
EXAMPLE_CONTENT = 4  # ... of which at least this many are not stop words
LANGUAGE_MIN_WORDS = 5
LANGUAGE_SHARE = 0.25  # common English words in a reference text that counts as English
FOREIGN_SHARE = 0.1  # ... and at most this share in a text that is not
FOREIGN_SCRIPT = 0.3  # share of letters outside the Latin script
SOUP_LETTERS = 21  # a run of this many letters is no word of an English request
SOUP_SHARE = 0.3  # share of a text's words that are non-words (token soup) ...
SOUP_MIN = 2  # ... and at least this many of them
CUT_SLACK = 2  # a text within this many characters of its bound was cut by the bound
MIN_WORDS = 2

STOPWORDS = frozenset("""
a an the and or but nor so yet if then than as of at by for from in into on onto to with without
about over under up down out off i me my mine we us our ours you your yours he him his she her hers
it its they them their theirs this that these those there here what which who whom whose when where
why how is am are was were be been being do does did done have has had having will would shall
should can could may might must not no s t m re ve ll d just also very all any some each every
please ok okay""".split())
# function words of other languages written in Latin script (Spanish, French, German, Portuguese, Italian)
OTHER_STOPWORDS = frozenset("""
el la los las es de del que y en un una por para con su se lo al como pero más muy está son
le les des est et une du au avec pour pas sont dans qui ce cette vous nous
der die das und ist nicht ein eine den dem mit sie ich auf für zu von sind
os da do não é em um uma com seu sua il di che per non sono della
""".split())
NEGATIONS = frozenset("not no never t cannot nothing none nor without neither".split())
DANGLING = frozenset("a an the and or but because of my your our their its than if whether such very".split())
OPEN_ENDINGS = tuple(":;,-–—(/&+=[{")


def words(text: str) -> list[str]:
    """The comparison form of a text: its words, normalised (see the module doc)."""
    t = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'").replace("\u02bc", "'")
    return re.findall(r"[^\W_]+", t)


def _ngrams(tokens: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _covered(tokens: list[str], grams: set, n: int) -> int:
    """How many of ``tokens`` lie inside a run of ``n`` or more words that is also in the source
    whose ``n``-grams are ``grams``."""
    mask = [False] * len(tokens)
    for i in range(len(tokens) - n + 1):
        if tuple(tokens[i : i + n]) in grams:
            for j in range(i, i + n):
                mask[j] = True
    return sum(mask)


def _contiguous(needle: list[str], hay: list[str]) -> bool:
    n = len(needle)
    return any(hay[i : i + n] == needle for i in range(len(hay) - n + 1))


# -- the templates' scaffolding ---------------------------------------------------------------


@dataclass(frozen=True)
class Scaffolding:
    """What the role prompts say themselves, read from the templates."""

    instruction_grams: frozenset  # INSTRUCTION_RUN-grams of the templates' sentences
    placeholders: tuple[str, ...]  # inner text of "<...>" example values, as words
    keys: tuple[str, ...]  # JSON keys of the example outputs
    labels: tuple[str, ...]  # "Label:" line openings, as words


@lru_cache(maxsize=1)
def scaffolding() -> Scaffolding:
    from jinja2 import nodes

    from specc.synth import roles

    grams: set = set()
    placeholders: set = set()
    keys: set = set()
    labels: set = {"user", "assistant", "system"}  # the `role: content` lines of a shown conversation
    for role in roles.ROLES:
        tree = roles.template_ast(role)
        for node in tree.find_all(nodes.TemplateData):
            data = node.data
            toks = words(data)
            for g in _ngrams(toks, INSTRUCTION_RUN):
                if sum(1 for w in g if w not in STOPWORDS) >= 2:
                    grams.add(g)
            for m in re.finditer(r"<([^<>{}\"]+)>", data):
                placeholders.add(" ".join(words(m.group(1))))
            for m in re.finditer(r'"(\w+)":\s*"<', data):
                keys.add(m.group(1).casefold())
            for m in re.finditer(r"(?m)^\s*([A-Z][\w' ]{0,60}):", data):
                labels.add(" ".join(words(m.group(1))))
    keys |= {"answer", "user", "instruction"}  # the keys of the role output types (roles.py)
    # the example values of earlier versions of the templates, still found in datasets they made
    placeholders |= {"the wrong reply", "your reply", "the message", "the operator s instruction",
                     "the user s message", "your answer"}
    labels |= keys
    return Scaffolding(frozenset(grams), tuple(sorted(p for p in placeholders if p)), tuple(sorted(keys)),
                       tuple(sorted(labels, key=lambda s: (-len(s), s))))


# -- context ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a gate may compare a text with. Every field is optional: a gate whose material is
    missing passes (``specc audit`` on a foreign dataset knows no rule and no axes)."""

    rule_texts: tuple[str, ...] = ()  # the rule's statement (with its modality), when, unless
    axes: tuple[tuple[str, str], ...] = ()  # (axis name, value) of the scenario
    user_turns: tuple[str, ...] = ()  # the conversation's user turns before this answer
    limits: tuple[int, ...] = ()  # character bounds the text was generated under
    max_words: int | None = None  # a word bound it was generated under (a lowered max_words check)
    other: str | None = None  # the rejected side, for ``pair`` gates
    kind: str = ""  # the kind of text being judged (set by failures / first_failure)
    examples: tuple[str, ...] = ()  # texts the roles were shown: the rule's examples, the attacker's bank
    topic: tuple[str, ...] = ()  # the rule's own example texts: what its conversations are about

    def cut_by_bound(self, text: str) -> bool:
        """Whether ``text`` reached a bound it was generated under (so the bound may have cut it)."""
        n = len(text)
        if any(limit - CUT_SLACK <= n <= limit for limit in self.limits):
            return True
        return self.max_words is not None and len(text.split()) >= self.max_words


# -- the gates ------------------------------------------------------------------------------------

_REPORTING = (r"(?:(?:is|was) [a-z]+(?:ing|ed)|has|had|wants|wanted|asks|asked|requests|requested|says|said|needs|needed"
              r"|claims|claimed|reports|reported|would|writes|wrote)")
_NARRATION = re.compile(
    r"^(?:(?:the|a|an|this) users?\b"
    # "The customer is leaving for holiday ...", "A first time customer asks ...": the customer in the
    # third person, at the start of what should be the customer's own message
    rf"|(?:the|a|an)(?: [a-z]+){{0,2}} customer {_REPORTING}\b"
    # "The AI assistant is designed to help users ...": the assistant in the third person
    rf"|the (?:[a-z]+ )?assistant {_REPORTING}\b"
    r"|(?:here is|here s|this is) (?:a|the|my) (?:realistic |harmless )?message\b"
    r"|(?:a|the) (?:realistic |harmless )?message (?:that|in which|to|for)\b)"
    r"|\bthe user (?:wants|asks|asked|requests|requested|is asking|would like|says|said|writes|wrote)\b"
    r"|\b(?:the|this) (?:assistant|ai) s rule\b"
)


_PERSONA = re.compile(r"\b(?:over cautious|careless|stubborn|careful helpful) assistant\b")


def parroted_instructions(text: str, ctx: Context, *, kind: str = "user") -> str | None:
    toks = words(text)
    sc = scaffolding()
    m = _PERSONA.search(" ".join(toks))
    if m:
        return f"names the role it was given: \"{m.group(0)}\""
    for g in _ngrams(toks, INSTRUCTION_RUN):
        if g in sc.instruction_grams:
            return f"copies the role instructions: \"{' '.join(g)}\""
    if kind == "user":
        joined = " ".join(toks)
        m = _NARRATION.search(joined)
        if m:
            return f"describes the task instead of being the message: \"{m.group(0)}\""
        for _, value in ctx.axes:  # the scenario described: "A small business buyer with a customer
            v = " ".join(words(value))  # message ...", "The journalist is looking for ..."
            if v and re.match(rf"(?:(?:a|an) {re.escape(v)}\b(?! s\b)|the {re.escape(v)} {_REPORTING}\b)", joined):
                return f"describes the scenario (\"{' '.join(joined.split()[:len(v.split()) + 1])}\") instead of being the message"
    return None


def parroted_rule(text: str, ctx: Context) -> str | None:
    toks = words(text)
    if len(toks) < RULE_RUN or not ctx.rule_texts:
        return None
    grams = {g for r in ctx.rule_texts for g in _ngrams(words(r), RULE_RUN)}
    share = _covered(toks, grams, RULE_RUN) / len(toks)
    if share >= RULE_COPIED:
        return f"{share:.0%} of its words are the rule's own text"
    return None


def bare_axis_value(text: str, ctx: Context) -> str | None:
    if not ctx.axes:
        return None
    rest = " " + " ".join(words(text)) + " "
    found = []
    phrases = {" ".join(words(v)) for _, v in ctx.axes} | {" ".join(words(n)) for n, _ in ctx.axes}
    for p in sorted((p for p in phrases if p), key=lambda p: (-len(p), p)):
        if f" {p} " in rest:
            found.append(p)
            rest = rest.replace(f" {p} ", " ")
    if not found or any(w not in STOPWORDS for w in rest.split()):
        return None
    return f"only the scenario's axis value: \"{found[0]}\""


# "<the wrong reply>", "<the operator's instruction>": two or more plain words in angle brackets
# (not "<br>", "<a href=...>", "<class 'int'>", "x < y > z")
# (also unclosed at the very end: "<text here", an output cut inside its placeholder)
_PLACEHOLDER = re.compile(r"<[A-Za-z]+(?:'[A-Za-z]+)?(?: [A-Za-z]+(?:'[A-Za-z]+)?)+(?:>|\s*$)")
# outside code: "{name}", "{MysteryUser.Name}" (a template variable; JSON has a quote after its
# brace) and "[Your Name]", "[Order Number]" (two or more capitalised words, not a Markdown link)
_TEMPLATE_VAR = re.compile(r"\{[A-Za-z_][A-Za-z0-9_.]*\}|\[[A-Z][a-z]*(?: [A-Z][a-z]*)+\](?!\()")
_CODE = re.compile(r"`|\w\(|=|\bdef\b|\breturn\b|\bf['\"]")


def scaffolding_copy(text: str, ctx: Context) -> str | None:
    sc = scaffolding()
    m = _PLACEHOLDER.search(text) or (None if _CODE.search(text) else _TEMPLATE_VAR.search(text))
    if m:
        return f"contains a placeholder: {m.group(0)!r}"
    for key in sc.keys:
        if re.search(rf'[{{,]\s*"{re.escape(key)}"\s*:', text):
            return f"contains the JSON envelope of the output (\"{key}\":)"
    toks = words(text)
    joined = " " + " ".join(toks) + " "
    for p in sc.placeholders:
        if f" {p} " in joined and all(w in STOPWORDS for w in joined.replace(f" {p} ", " ").split()):
            return f"is the prompt's example value \"{p}\""
    labels = list(sc.labels) + [" ".join(words(n)) for n, _ in ctx.axes]
    for line in re.split(r"\n|(?<=[.!?])\s+", text):
        head = line.split(":", 1)[0] if ":" in line else ""
        if head and " ".join(words(head)) in labels:
            return f"copies the prompt's label \"{head.strip()}:\""
    return None


def parroted_prompt(text: str, ctx: Context) -> str | None:
    toks = words(text)
    if not toks:
        return None
    for turn in ctx.user_turns:
        u = words(turn)
        if len(toks) >= 2 and _contiguous(toks, u):
            return "repeats the user turn word for word"
        if len(toks) >= PROMPT_MIN_WORDS:
            share = _covered(toks, set(_ngrams(u, PROMPT_RUN)), PROMPT_RUN) / len(toks)
            if share >= PROMPT_COPIED:
                return f"{share:.0%} of its words are copied from the user turn"
        long = set(_ngrams(u, PROMPT_LONG_RUN))
        for g in _ngrams(toks, PROMPT_LONG_RUN):
            if g in long:
                return f"copies {PROMPT_LONG_RUN}+ words of the user turn in a row: \"{' '.join(g)}\""
    return None


def identical_sides(text: str, ctx: Context) -> str | None:
    if ctx.other is None:
        return None
    a, b = words(text), words(ctx.other)
    if not a or not b:
        return None
    if a == b:
        return "the chosen and rejected answers are the same text"
    ca, cb = Counter(a), Counter(b)
    inter = sum((ca & cb).values())
    union = sum((ca | cb).values())
    jaccard = inter / union
    if jaccard < NEAR_IDENTICAL:
        return None
    differ = set((ca - cb) + (cb - ca))
    if any(w in NEGATIONS or any(ch.isdigit() for ch in w) for w in differ):
        return None  # a minimal pair: the sides differ in a negation or a number
    return f"the sides share {jaccard:.0%} of their words"


def repetition(text: str, ctx: Context) -> str | None:
    toks = words(text)
    n_tok = len(toks)
    for n in range(1, min(LOOP_LONGEST, n_tok // 2) + 1):
        need = LOOP_REPEATS.get(n, 2)
        for i in range(0, n_tok - n * need + 1):
            g = toks[i : i + n]
            if 2 * sum(1 for w in g if any(ch.isalpha() for ch in w)) < n:
                continue  # mostly numbers ("4242 4242 4242 4242", a pasted receipt): not a loop
            reps, j = 1, i + n
            while toks[j : j + n] == g:
                reps, j = reps + 1, j + n
            if reps >= need:
                return f"\"{' '.join(g)}\" {reps} times in a row"
    if n_tok >= LOOP_MIN_WORDS:
        tri = list(_ngrams(toks, 3))
        distinct = len(set(tri)) / len(tri)
        if distinct < LOOP_DISTINCT:
            return f"only {distinct:.0%} of its word trigrams are distinct"
    return None


def fragment(text: str, ctx: Context) -> str | None:
    t = text.strip()
    first = re.match(r"[a-z]+\b(?![.:/@'_-]\w)", t)  # a word, not a URL, an address or a file name
    if ctx.kind in ("chosen", "rejected") and first:
        return f"starts mid-sentence: \"{first.group(0)}\""  # "guaranteed to arrive on Wednesday."
    if not t or ctx.kind == "rejected":
        return None
    if ctx.cut_by_bound(t):
        if ctx.kind == "chosen" and not re.search(r"[.!?…]", t) and t[-1:].isalnum():
            return "its bound cut it before its first sentence ended"  # nothing whole to keep
        from specc.synth.roles import SENTENCE_END

        if ctx.kind == "user" and not SENTENCE_END.search(t):
            # the compile trims a cut request to its whole sentences (roles.whole_sentences); none here
            return "its bound cut it before its first sentence ended"
        return None
    last = t[-1]
    if last in OPEN_ENDINGS:
        return f"ends with {last!r}"
    if last.isalnum():
        toks = words(t)
        if toks and toks[-1] in DANGLING:
            return f"ends with the dangling word \"{toks[-1]}\""
    return None


def too_short(text: str, ctx: Context) -> str | None:
    n = len(words(text))
    if n == 0:
        return "empty" if not text.strip() else "no words"
    if n < MIN_WORDS:
        return f"{n} word"
    return None


def copied_example(text: str, ctx: Context) -> str | None:
    if not ctx.examples:
        return None
    toks = words(text)
    if len(toks) < EXAMPLE_RUN:
        return None
    grams = _example_grams(ctx.examples)
    for g in _ngrams(toks, EXAMPLE_RUN):
        if g in grams:
            return f"copies {EXAMPLE_RUN}+ words in a row of a spec example: \"{' '.join(g)}\""
    return None


@lru_cache(maxsize=8)
def _example_grams(examples: tuple[str, ...]) -> frozenset:
    # a run of stock phrasing ("I'm sorry, but I can't help with ...") is no copy: at least
    # EXAMPLE_CONTENT of its words must be content words
    return frozenset(g for e in examples for g in _ngrams(words(e), EXAMPLE_RUN)
                     if sum(1 for w in g if w not in STOPWORDS) >= EXAMPLE_CONTENT)


def _stems(text: str) -> set[str]:
    return {w[:TOPIC_STEM] for w in words(text) if len(w) >= 4 and w not in STOPWORDS and not w.isdigit()}


def off_topic(text: str, ctx: Context, *, kind: str = "user") -> str | None:
    if not (ctx.rule_texts or ctx.topic) or len(words(text)) < TOPIC_MIN_WORDS:
        return None  # no rule to compare with (a foreign dataset), or too little text to judge
    ref = (*ctx.rule_texts, *ctx.topic, *(v for _, v in ctx.axes), *(ctx.user_turns if kind != "user" else ()))
    if kind != "user":
        from specc.ir.checks import is_refusal

        if is_refusal(text):
            return None  # a refusal is generic by nature, and may be the right answer
    mine = _stems(text)
    if not mine or mine & _stems(" ".join(ref)):
        return None
    return ("shares no content word with the rule, its examples, the scenario"
            + (" or the user's turns" if kind != "user" else ""))


# a small model's stock deflection, not an answer to this conversation: "I'm sorry for any
# confusion, but as a chatbot, I don't have the ability to ..."
_DEFLECTION = re.compile(
    r"^(?:i m|i am) sorry (?:for|about) (?:any|the|this) (?:confusion|misunderstanding)"
    r"|\bas an? (?:\w+ )?(?:ai|a i|chatbot|chat bot|bot|assistant|language model|computer program)\b"
    r"|\bas an? digital \w+"
    r"|\bi (?:don t|do not) have (?:the ability|access to|personal)\b"
    r"|\bi m (?:just )?an? (?:ai|chatbot|language model)\b")


# what an assistant says, written where the user speaks
_ASSISTANT_VOICE = re.compile(
    r"^(?:sure|certainly|of course|absolutely)(?: [a-z]+){0,2} (?:i can|i ll|i will|here s|here is|happy to)\b"
    r"|\bhow (?:can|may) i (?:help|assist) you\b"
    r"|\bi m (?:here|happy|glad) to (?:help|assist)\b"
    r"|^(?:i m sorry|i apologi[sz]e|sorry) (?:but )?i (?:can t|cannot|am unable to|m unable to|am not able to"
    r"|m not able to) (?:help|assist)\b")


def canned_deflection(text: str, ctx: Context, *, kind: str = "chosen") -> str | None:
    joined = " ".join(words(text))
    m = _DEFLECTION.search(joined)
    if m:
        return f"a stock deflection instead of an answer: \"{m.group(0)}\""
    if kind == "user":
        m = _ASSISTANT_VOICE.search(joined)
        if m:
            return f"the assistant's voice in the user's turn: \"{m.group(0)}\""
    return None


def _english_share(toks: list[str]) -> float:
    return sum(1 for w in toks if w in STOPWORDS) / len(toks) if toks else 0.0


def _foreign_script_share(text: str) -> float:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if not unicodedata.name(ch, "").startswith("LATIN")) / len(letters)


def _code_or_markup(t: str) -> bool:
    """JSON, markup or code: its words are keys and identifiers, not prose (Q111, Q114)."""
    return t[:1] in "{[<" or "```" in t


def wrong_language(text: str, ctx: Context) -> str | None:
    ref = " ".join((*ctx.user_turns, *ctx.rule_texts))
    rtoks = words(ref)
    if len(rtoks) < LANGUAGE_MIN_WORDS or _english_share(rtoks) < LANGUAGE_SHARE or _foreign_script_share(ref) > 0.05:
        return None  # no English reference to compare with: no judgement
    t = text.strip()
    if _code_or_markup(t):
        return None
    script = _foreign_script_share(t)
    if script > FOREIGN_SCRIPT:
        return f"{script:.0%} of its letters are not Latin script, in an English conversation"
    toks = words(t)
    if len(toks) < LANGUAGE_MIN_WORDS:
        return None
    en = _english_share(toks)
    other = sum(1 for w in toks if w in OTHER_STOPWORDS and w not in STOPWORDS) / len(toks)
    if other >= FOREIGN_SHARE * 2 and other > en:
        return f"{other:.0%} of its words are common words of another language, in an English conversation"
    if len(toks) >= 8 and en <= FOREIGN_SHARE:
        return f"{en:.0%} of its {len(toks)} words are common English words, in an English conversation"
    return None


# inside one word, lower case running into a run of capitals: "xmlATION", "mappedICs",
# "pastryEnvironmentalUSE". camelCase ("JavaScript", "getUserName") is how people write names and
# code, and "macOS" or "iPadOS" have two capitals only: none of them is a seam
_SEAM = re.compile(r"[a-z]{2}[A-Z]{3,}|[a-z]{3}[A-Z]{2,}[a-z]|[^\W\d_]\d[^\W\d_]")
_SOUP_STRIP = ".,;:!?()[]{}\"'«»“”‘’*`"


def _nonword(tok: str) -> str | None:
    """Why ``tok`` (a whitespace-separated word, its punctuation stripped) is no word, or None."""
    if "\ufffd" in tok:
        return "a broken character"
    if any(len(run) >= SOUP_LETTERS for run in re.findall(r"[^\W\d_]+", tok)):
        return f"{SOUP_LETTERS}+ letters"
    if _SEAM.search(tok):
        return "a seam between two words"
    scripts = {unicodedata.name(ch, "?").split(" ")[0] for ch in tok if ch.isalpha()}
    if len(scripts) > 1:
        return "two scripts"
    return None


def token_soup(text: str, ctx: Context) -> str | None:
    t = text.strip()
    if _code_or_markup(t):
        return None
    toks = [w.strip(_SOUP_STRIP) for w in t.split()]
    # identifiers, paths, addresses and links are judged by nothing here
    toks = [w for w in toks if any(ch.isalpha() for ch in w) and not re.search(r"[_/@.\\]", w)]
    bad = [(w, why) for w in toks if (why := _nonword(w))]
    if len(bad) >= SOUP_MIN and len(bad) >= SOUP_SHARE * len(toks):
        shown = ", ".join(f"\"{w[:30]}\" ({why})" for w, why in bad[:3])
        return f"{len(bad)} of its {len(toks)} words are no words: {shown}"
    return None


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    code: str
    name: str
    kinds: frozenset
    summary: str
    doc: str
    fn: Callable[..., str | None]
    level: str = "gate"

    def __call__(self, text: str, ctx: Context, kind: str) -> str | None:
        if self.fn in (parroted_instructions, off_topic, canned_deflection):
            return self.fn(text, ctx, kind=kind)
        return self.fn(text, ctx)


_KIND_WORDS = {"user": "user turns", "operator": "operator instructions", "chosen": "chosen answers",
               "rejected": "rejected answers", "pair": "chosen-rejected pairs"}


def _g(code, name, kinds, summary, doc, fn) -> Gate:
    ks = kinds.split()
    doc += (f" Applies to {', '.join(_KIND_WORDS[k] for k in ks)}. In `specc compile` a failing text is "
            f"regenerated like a failed pair; a scenario it ends is counted as `gate:{name}:ROLE` "
            "(ROLE: attacker, defender, violator or pair) in `stats.dropped_reasons`.")
    return Gate(code, name, frozenset(ks), summary, doc, fn)


GATES: tuple[Gate, ...] = (
    _g("Q101", "parroted-instructions", "user operator chosen rejected",
       "the text repeats the role prompt's instructions instead of doing the task",
       f"The text contains {INSTRUCTION_RUN} or more words in a row of a role template's own sentences "
       "(e.g. \"The assistant's rule: it should not ...\", \"Write the message itself, in the first "
       "person\"), at least two of them not stop words; or, for a user turn, it narrates the task in "
       "the third person instead of being the message (\"The user requested a message that would break "
       "the rule of ...\", \"The customer is leaving for holiday ...\", \"The AI assistant is designed "
       "to ...\", \"A message that pressures ...\", or opens by introducing one of the scenario's axis values: \"A small business buyer "
       "with a customer message ...\", \"The journalist is looking for ...\"). The sentences are read from "
       "specc/synth/templates/*.j2, so the gate follows the templates.",
       parroted_instructions),
    _g("Q102", "parroted-rule", "user",
       "the user turn repeats the rule's own text",
       f"At least {RULE_COPIED:.0%} of the user turn's words lie in runs of {RULE_RUN} or more words "
       "copied from the rule's statement (with its modality), `when` or `unless` text. A realistic "
       "request may reuse a few of the rule's words (\"Can you add a new shipping address to my "
       "account?\" against \"... asks to add a new shipping address\" is 50%: it passes); a turn that "
       "is the rule read back is not a test of it.",
       parroted_rule),
    _g("Q103", "bare-axis-value", "user",
       "the user turn is only a scenario axis value",
       "Once the scenario's axis values and names (persona, tactic, ...) and stop words are taken "
       "away, nothing is left: \"first-time customer\", \"Persona: journalist\", \"I'm a journalist.\" "
       "The attacker echoed the scenario's description instead of writing a request.",
       bare_axis_value),
    _g("Q104", "scaffolding", "user operator chosen rejected",
       "the text copies the prompt's scaffolding (placeholder, JSON example, label)",
       "The text contains a `<placeholder>` (angle brackets around two or more words, like the "
       "templates' \"<the wrong reply>\"; in text that does not look like code also a `{name}` template "
       "variable and `[Your Name]`, two or more capitalised words in square brackets, not a Markdown "
       "link), the JSON envelope of the output (`{\"answer\": ...`), is "
       "little more than a template's example value (\"The wrong reply\", \"your reply\"), or opens a "
       "line or sentence with one of the prompt's labels (\"Task:\", \"Exception:\", \"user:\", an axis "
       "name such as \"Persona:\"). Placeholders, keys and labels are read from the templates.",
       scaffolding_copy),
    _g("Q105", "parroted-prompt", "chosen",
       "the chosen answer repeats the user turn",
       f"The chosen answer is a contiguous copy of a user turn (two words or more); or, from "
       f"{PROMPT_MIN_WORDS} words on, {PROMPT_COPIED:.0%} or more of its words lie in runs of "
       f"{PROMPT_RUN}+ words copied from a user turn; or it copies {PROMPT_LONG_RUN} or more words of a "
       "user turn in a row. Echoing the question is not an answer.",
       parroted_prompt),
    _g("Q106", "identical-sides", "pair",
       "the chosen and rejected answers are (nearly) the same",
       f"The two sides' words are equal, or their word-multiset Jaccard overlap is at least "
       f"{NEAR_IDENTICAL:.0%} (at most about one word in twenty differs) and the difference holds no "
       "negation and no number. A pair whose sides differ in a negation or a number (\"30 days\" vs "
       "\"90 days\") is a minimal pair and passes. Both sides are regenerated.",
       identical_sides),
    _g("Q107", "repetition", "user operator chosen rejected",
       "the text loops (a word or phrase repeated)",
       "The same word appears 4 times in a row, a phrase of 2-4 words 3 times in a row, or a phrase of "
       f"5-{LOOP_LONGEST} words twice in a row (\"I'm sorry, I'm sorry, I'm sorry\"); or a text of "
       f"{LOOP_MIN_WORDS}+ words has fewer than {LOOP_DISTINCT:.0%} distinct word trigrams. Runs of "
       "numbers (\"4242 4242 4242 4242\") are not loops.",
       repetition),
    _g("Q108", "fragment", "user operator chosen rejected",
       "the text stops mid-sentence although its length bound did not cut it",
       "The text ends with `:`, `;`, `,`, a dash, an opening bracket or `/` (\"The answer is:\"), or "
       "with a word that cannot end a sentence (an article, `and`, `or`, `but`, `because`, `of`, a "
       f"possessive such as `your`, `than`, `if`). A text that reached its character bound (within "
       f"{CUT_SLACK} characters of --max-chars or the role's bound) was cut by construction: Outlines "
       "closes the string there, so the gate does not judge its end (answers are trimmed to their last whole "
       "sentence first, and so are the attacker's requests), unless a chosen answer or a user turn was cut before its first sentence ended "
       "(\"Why does the phone charger suddenly get hot when \"); raise --max-chars for whole sentences. An answer that starts with a lower-case word "
       "starts mid-sentence (\"guaranteed to arrive on Wednesday.\"; answers only: users type in lower case); a rejected side is judged on that "
       "start only, since a violation that stops short still shows the violation.",
       fragment),
    _g("Q109", "too-short", "user operator chosen rejected",
       "the text is empty or a single word",
       f"Fewer than {MIN_WORDS} words (runs of letters or digits): \"\", \"...\", \"OK\", \"{{}}\". "
       "\"Return declined.\" (two words) passes: a curt answer can be a realistic rejected side.",
       too_short),
    _g("Q110", "copied-example", "user chosen rejected",
       "the text copies one of the spec's own examples into another conversation",
       f"The text contains {EXAMPLE_RUN} or more words in a row of one of the rule's example texts (a user "
       f"turn or an answer) or of a request of the attacker's demonstration bank, at least {EXAMPLE_CONTENT} "
       "of them not stop words (stock phrasing such as "
       "\"I'm sorry, but I can't help with\" is no copy). The examples are shown to the roles as demonstrations; a generated text that "
       "reproduces one is the demonstration, not new data (and an example's answer rarely fits another "
       "conversation). The examples themselves are emitted as spec-example records.",
       copied_example),
    _g("Q111", "wrong-language", "user chosen rejected",
       "the text is not in the language of the conversation",
       f"The conversation (its user turns and the rule's text) is English (at least {LANGUAGE_SHARE:.0%} "
       f"common English words, Latin script) but the text is not: over {FOREIGN_SCRIPT:.0%} of its "
       f"letters are in another script; or, from {LANGUAGE_MIN_WORDS} words, at least {2 * FOREIGN_SHARE:.0%} "
       "are common words of another language (Spanish, French, German, Portuguese, Italian) and outnumber the "
       f"English ones (\"Aba el habilidad es específico\"); or, from 8 words, at most {FOREIGN_SHARE:.0%} are "
       "common English words. "
       "JSON, markup and code are not judged. A conversation that is not English is not judged either.",
       wrong_language),
    _g("Q112", "off-topic", "user chosen",
       "the text has nothing to do with the rule or the conversation",
       f"A text of {TOPIC_MIN_WORDS}+ words shares no content word (four letters or more, not a stop word, "
       f"compared by their first {TOPIC_STEM} letters so that `deliver` meets `delivery`) with the rule's "
       "statement, `when` and `unless`, the rule's own examples, the scenario's axis values and, for an "
       "answer, the user's turns. \"I'm sending a reminder to the 18th of every month.\" is no test of a "
       "rule about delivery estimates, and an answer about something else is no answer. A refusal is not "
       "judged (it is generic by nature). It needs the rule, so `specc audit` (which reads datasets "
       "without their spec) does not run it.",
       off_topic),
    _g("Q113", "canned-deflection", "user chosen",
       "a small model's stock deflection, or the assistant's voice in a user turn",
       "The chosen answer opens with \"I'm sorry for any confusion\" (or misunderstanding) although nothing was "
       "confused, or talks about itself as a program instead of answering: \"as a chatbot\", \"as an AI\", "
       "\"as a (helpful) assistant\", \"as a digital ...\", \"as a language model\", \"I don't have the ability to\", \"I'm an AI\". "
       "The embedded 135M model falls back on these sentences whatever it is asked; they teach nothing about "
       "the rule. A rejected side may deflect (an over-refusal is a fine rejected side). A user turn fails it "
       "too when it speaks as the assistant: \"Sure, I can help with that.\", \"How can I help you?\", "
       "\"I'm here to help\", \"I'm sorry, but I can't help with ...\" (the attacker slipping into the voice it "
       "was trained on).",
       canned_deflection),
    _g("Q114", "token-soup", "user operator chosen rejected",
       "the text is a soup of sub-word pieces, not words",
       f"At least {SOUP_MIN} of its words, and at least {SOUP_SHARE:.0%} of them, are no words: a run of "
       f"{SOUP_LETTERS}+ letters (\"twistcommgeneratorleaved\"), lower case running into a run of capitals "
       "(\"xmlATION\", \"mappedICs\"; camelCase such as \"JavaScript\" or \"getUserName\" and \"macOS\" are words), a "
       "letter-digit-letter mix, letters of two "
       "scripts in one word, or the replacement character U+FFFD. A broken model, a wrong chat template or "
       "a bad quantisation writes such text, and a short one can pass the language gate (Q111 judges from 8 "
       "words). Words with `_`, `/`, `@`, `.` or `\\` "
       "(identifiers, paths, addresses, links) and JSON, markup and code are not judged.",
       token_soup),
)

BY_CODE = {g.code: g for g in GATES}
BY_NAME = {g.name: g for g in GATES}


def find(code_or_name: str) -> Gate | None:
    return BY_CODE.get(code_or_name.upper()) or BY_NAME.get(code_or_name.lower())


@dataclass(frozen=True)
class Failure:
    gate: Gate
    detail: str

    def reason(self, role: str) -> str:
        """The drop reason of a scenario this failure ended: ``gate:NAME:ROLE``."""
        return f"gate:{self.gate.name}:{role}"


def failures(kind: str, text: str, ctx: Context = Context()) -> list[Failure]:
    """Every gate of ``kind`` that ``text`` fails, in table order."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    out = []
    ctx = replace(ctx, kind=kind)
    for g in GATES:
        if kind in g.kinds:
            detail = g(text, ctx, kind)
            if detail is not None:
                out.append(Failure(g, detail))
    return out


def first_failure(kind: str, text: str, ctx: Context = Context()) -> Failure | None:
    """The first gate of ``kind`` (table order) that ``text`` fails, or None."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    ctx = replace(ctx, kind=kind)
    for g in GATES:
        if kind in g.kinds:
            detail = g(text, ctx, kind)
            if detail is not None:
                return Failure(g, detail)
    return None


def pair_failure(chosen: str, rejected: str, ctx: Context = Context()) -> Failure | None:
    return first_failure("pair", chosen, replace(ctx, other=rejected))
