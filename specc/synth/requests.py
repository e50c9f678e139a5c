"""Requests composed by seeded code from the spec's own examples: training prompts and probes.

The embedded model, free-writing, gives a request a reader accepts in about three turns of ten
(``../shared/DESIGN.md``). So ``specc improve`` writes no request with a model. A request is
composed from:

- a **core**: the last user turn of one of the rule's examples. An example whose every ``bad``
  answer is an over-refusal is a *lookalike* example (the rule does not apply; the model should
  help) and gives ``lookalike`` cores; the others give ``violation`` cores;
- an opener, a persona sentence (from the rule's ``persona`` axis, when it has one), a closer,
  and a casual or plain spelling of the core;
- for violation requests, a frame from the rule's ``tactic`` axis: ``roleplay`` and
  ``hypothetical`` wrap the request in one of :mod:`specc.synth.tactics`' frames, ``obfuscated``
  swaps letters for digits, anything else leaves it as it is.

**Held-out by construction, and checked.** Every list above (the cores of each rule and kind,
the openers, closers and tactic frames) is cut in two by a fixed rule — about one item in three
goes to the probes, the rest to training — so training prompts vary more than the probes they
are tested on, and no probe is built from a core or a frame a training prompt used. The probes
are drawn with another seed. :func:`decontaminate` then drops every probe that shares an 8-word
sequence with any training prompt (the check is run and its count reported, whatever the
construction promises).

A rule takes part when it has at least two violation cores (one for training, one for probes);
lookalike cores are pooled over the spec's rules.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Literal, Sequence

from specc.ir.model import Example, Rule, Spec
from specc.synth import tactics
from specc.synth.model import Boundary

Split = Literal["train", "probe"]
Kind = Boundary  # the loop makes violation and lookalike requests
NGRAM = 8

OPENERS = ("", "Hi.", "Hello!", "Hi there,", "Good morning.", "Hey,", "Quick question.",
           "Sorry to bother you.", "Hello, I need some help.", "Hi, I hope you can help.", "Good evening.",
           "Hello again.")
CLOSERS = ("", "Thanks.", "Thank you!", "Please help.", "What do I do?", "Thanks in advance.", "Can you help?",
           "Any advice?", "Cheers.", "I'd appreciate a quick answer.", "Thank you so much.", "Help!")
PERSONA = ("I'm {a} {value}.", "I am {a} {value}.", "Speaking as {a} {value}:", "For context, I'm {a} {value}.",
           "As {a} {value},", "Just so you know, I'm {a} {value}.")
FRAMES = {"roleplay": tactics.ROLEPLAY, "hypothetical": tactics.HYPOTHETICAL}


@dataclass(frozen=True)
class Request:
    """One composed user request. ``core`` is the title of the example it was built from."""

    id: str
    rule_id: str
    kind: Kind
    text: str
    core: str
    tactic: str = "direct"
    split: Split = "train"
    example: Example | None = field(default=None, compare=False, repr=False)  # the example of ``core``


def is_lookalike(example: Example) -> bool:
    """An example whose every ``bad`` answer is an over-refusal: a request the rule does not cover."""
    return bool(example.bad) and all(b.overrefusal for b in example.bad)


def core_text(example: Example) -> str | None:
    users = [t.text for t in example.turns if t.role == "user"]
    return users[-1].strip() if users else None


def opening_text(example: Example) -> str | None:
    """The first user turn of ``example``: the request that opens it. In an example of several
    turns the last one is an escalation that needs what came before ("No. A real person. Now."),
    so a compile's single seed turn is composed from the opening one."""
    users = [t.text for t in example.turns if t.role == "user"]
    return users[0].strip() if users else None


def _rank(key: str) -> str:
    return hashlib.sha256(f"specc-improve-split\x00{key}".encode()).hexdigest()


def split_items(items: Sequence, split: Split, key=lambda x: str(x)) -> list:
    """The part of ``items`` that belongs to ``split``: in a fixed order (a hash of each item),
    every third item from the third on goes to the probes; at least one item to each side when
    there are two or more."""
    ordered = sorted(items, key=lambda x: _rank(key(x)))
    probe = [x for i, x in enumerate(ordered) if i % 3 == 2]
    if len(ordered) >= 2 and not probe:
        probe = [ordered[-1]]
    train = [x for x in ordered if x not in probe]
    return train if split == "train" else probe


def kind_of(boundary: str) -> Kind:
    """The kind of request a compile scenario's ``boundary`` is composed from: lookalike cores for
    a lookalike, violation cores for a violation or a conflict."""
    return "lookalike" if boundary == "lookalike" else "violation"


def examples_of(rule: Rule, kind: Kind) -> list[Example]:
    """Every example of ``rule`` of ``kind`` that has a user turn to build requests from."""
    return [e for e in rule.examples if core_text(e) and is_lookalike(e) == (kind == "lookalike")]


def cores(rule: Rule, kind: Kind, split: Split) -> list[Example]:
    """The examples of ``rule`` of ``kind`` that ``split`` may build requests from."""
    return split_items(examples_of(rule, kind), split, key=lambda e: e.title + "\x00" + (core_text(e) or ""))


def eligible(rule: Rule) -> str | None:
    """Why ``rule`` cannot take part in the loop (None: it can)."""
    if not rule.checks:
        return "no checks: only a calibrated judge could verify it"
    n = len([e for e in rule.examples if core_text(e) and not is_lookalike(e)])
    if n < 2:
        return f"{n} example request(s): the loop needs two or more (one for training, one for probes)"
    return None


def _article(value: str) -> str:
    return "an" if value[:1].lower() in "aeiou" else "a"


def _axis(rule: Rule, name: str) -> tuple[str, ...]:
    for axis in rule.axes:
        if axis.name == name:
            return axis.values
    return ()


def _casual(text: str) -> str:
    text = text.strip()
    if text[:1].isupper() and not text[:2].isupper():
        text = text[0].lower() + text[1:]
    return text.rstrip(".")


def _join(*parts: str) -> str:
    out: list[str] = []
    for part in (p.strip() for p in parts if p and p.strip()):
        # after "Hey," the next word goes on the sentence: "Hey, for context, ..." (not "I" or "I'm")
        if out and out[-1].endswith(",") and part[:1].isupper() and part[1:2].islower():
            part = part[0].lower() + part[1:]
        out.append(part)
    return re.sub(r"\s+", " ", " ".join(out)).strip()


def _plain(rng: random.Random, examples: Sequence[Example], openers: Sequence[str], closers: Sequence[str],
           persona_frames: Sequence[str], personas: Sequence[str], core_of=core_text) -> tuple[str, Example]:
    """One plain request (no tactic) and the example its core is from: a core (``core_of`` the
    example), spelled plainly or casually, between an opener, a persona sentence (none for an
    empty persona) and a closer."""
    ex = rng.choice(examples)
    core = core_of(ex) or ""
    if rng.random() < 0.5:
        core = _casual(core)
    persona = rng.choice(personas)
    who = ""
    if persona:
        who = rng.choice(persona_frames).format(a=_article(persona), value=persona)
    return _join(rng.choice(openers), who, core, rng.choice(closers)), ex


def seed_request(rule: Rule, kind: Kind, key: str, persona: str = "") -> Request | None:
    """The seed request of one ``specc compile`` scenario, composed by code (``--requests
    composed``): a core of ``rule``'s own examples of ``kind`` (every one: a compile holds nothing
    out; the example's opening user turn, :func:`opening_text`), the scenario's ``persona`` (none when empty), an opener, a closer and a plain or casual
    spelling, drawn by ``key`` (the scenario's seed and id, so it depends on its own rule alone).
    No tactic: the compile applies the scenario's by code. None: ``rule`` has no example of
    ``kind`` to compose from."""
    examples = examples_of(rule, kind)
    if not examples:
        return None
    rng = random.Random(f"specc-compile-request\x00{key}")
    text, ex = _plain(rng, examples, OPENERS, CLOSERS, PERSONA, (persona,), core_of=opening_text)
    rid = hashlib.sha256(f"{rule.id}\x00{kind}\x00{text}".encode()).hexdigest()[:16]
    return Request(rid, rule.id, kind, text, ex.title, example=ex)


def compose(rule: Rule, kind: Kind, split: Split, n: int, seed: int) -> list[Request]:
    """Up to ``n`` distinct requests for ``rule`` (fewer when its material runs out)."""
    examples = cores(rule, kind, split)
    if not examples or n <= 0:
        return []
    openers = split_items(OPENERS, split)
    closers = split_items(CLOSERS, split)
    persona_frames = split_items(PERSONA, split)
    personas = ("",) + _axis(rule, "persona")
    tactic_values = _axis(rule, "tactic") if kind == "violation" else ()
    tactic_values = tactic_values or ("direct",)
    frames = {name: split_items(options, split) for name, options in FRAMES.items()}
    rng = random.Random(f"{seed}\x00{rule.id}\x00{kind}\x00{split}")
    seen: set[str] = set()
    out: list[Request] = []
    attempts = 0
    while len(out) < n and attempts < 60 * n:
        attempts += 1
        text, ex = _plain(rng, examples, openers, closers, persona_frames, personas)
        tactic = tactics.normal(rng.choice(tactic_values))
        if tactic in frames:
            text = rng.choice(frames[tactic]).format(request=text)
        elif tactic == "obfuscated":
            text = tactics.obfuscated(text, "")
        else:
            tactic = "direct"
        norm = text.lower()
        if norm in seen:
            continue
        seen.add(norm)
        rid = hashlib.sha256(f"{rule.id}\x00{kind}\x00{text}".encode()).hexdigest()[:16]
        out.append(Request(rid, rule.id, kind, text, ex.title, tactic, split))
    return out


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def decontaminate(train: Sequence[Request], probes: Sequence[Request], n: int = NGRAM) -> tuple[list[Request], list[Request]]:
    """(kept probes, dropped probes): a probe is dropped when it shares an ``n``-word sequence with
    any training prompt."""
    seen: set[tuple[str, ...]] = set()
    for r in train:
        seen |= ngrams(r.text, n)
    kept, dropped = [], []
    for p in probes:
        (dropped if ngrams(p.text, n) & seen else kept).append(p)
    return kept, dropped


@dataclass(frozen=True)
class RequestSet:
    train: tuple[Request, ...]
    probes: tuple[Request, ...]
    dropped: tuple[Request, ...]  # probes that shared an 8-word sequence with a training prompt
    skipped: tuple[tuple[str, str], ...]  # (rule id, why) of rules outside the loop

    def rules(self) -> list[str]:
        return sorted({r.rule_id for r in self.train if r.kind == "violation"})


def build(spec: Spec, *, per_rule: int, probes_per_rule: int, lookalikes: int, lookalike_probes: int,
          seed: int, probe_seed: int) -> RequestSet:
    """The training prompts and the held-out probes of every eligible rule of ``spec``.

    ``lookalikes`` / ``lookalike_probes`` are totals over the spec, spread over the rules that
    have lookalike examples."""
    train: list[Request] = []
    probes: list[Request] = []
    skipped: list[tuple[str, str]] = []
    rules = []
    for rule in spec.rules:
        why = eligible(rule)
        if why:
            skipped.append((rule.id, why))
            continue
        rules.append(rule)
        train += compose(rule, "violation", "train", per_rule, seed)
        probes += compose(rule, "violation", "probe", probes_per_rule, probe_seed)
    look = [r for r in rules if cores(r, "lookalike", "train") and cores(r, "lookalike", "probe")]
    for i, rule in enumerate(look):
        share_t = lookalikes // len(look) + (1 if i < lookalikes % len(look) else 0)
        share_p = lookalike_probes // len(look) + (1 if i < lookalike_probes % len(look) else 0)
        train += compose(rule, "lookalike", "train", share_t, seed)
        probes += compose(rule, "lookalike", "probe", share_p, probe_seed)
    kept, dropped = decontaminate(train, probes)
    return RequestSet(tuple(train), tuple(kept), tuple(dropped), tuple(skipped))
