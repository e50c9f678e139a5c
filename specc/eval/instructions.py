"""Capability beside perplexity: a small held-out instruction set, scored by code.

Perplexity on a reference text says whether a model still predicts general text; it does not say
whether it still *answers*. These are short general requests with one right answer that code
can check — a fact, a sum, a word — that no spec is about and no training prompt contains. A
model answers each once, greedily, with no system prompt (as the loop's probes are asked); an
answer is right when it contains one of the item's accepted answers as a whole word
(case-insensitive, except where an item asks for a spelling). Two models are compared on the same
items, paired (:func:`specc.improve.measure.paired`).

The set is fixed (its sha256 is in the report, so only equal sets are compared) and small on
purpose: it can show that a model stopped answering (a drop of tens of points), not a change of a
few points.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from specc.eval.score import generate_in_batches


@dataclass(frozen=True)
class Instruction:
    id: str
    prompt: str
    accept: tuple[str, ...]  # right when the answer contains one of these as a whole word
    case: bool = False  # the accepted spelling's case matters ("in capital letters")

    def right(self, answer: str) -> bool:
        flags = 0 if self.case else re.IGNORECASE
        return any(re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", answer, flags) for a in self.accept)


def _i(id_: str, prompt: str, *accept: str, case: bool = False) -> Instruction:
    return Instruction(id_, prompt, accept, case)


INSTRUCTIONS: tuple[Instruction, ...] = (
    # facts
    _i("capital-france", "What is the capital of France?", "Paris"),
    _i("capital-japan", "What is the capital of Japan?", "Tokyo"),
    _i("capital-italy", "What is the capital of Italy?", "Rome"),
    _i("capital-germany", "What is the capital of Germany?", "Berlin"),
    _i("capital-spain", "What is the capital of Spain?", "Madrid"),
    _i("capital-uk", "What is the capital of the United Kingdom?", "London"),
    _i("capital-egypt", "What is the capital of Egypt?", "Cairo"),
    _i("capital-russia", "What is the capital of Russia?", "Moscow"),
    _i("capital-canada", "What is the capital of Canada?", "Ottawa"),
    _i("capital-australia", "What is the capital of Australia?", "Canberra"),
    _i("planet-home", "Which planet do we live on?", "Earth"),
    _i("planet-largest", "What is the largest planet in our solar system?", "Jupiter"),
    _i("star-centre", "Which star is at the centre of our solar system?", "Sun"),
    _i("plants-gas", "Which gas do plants take in from the air to make food?", "carbon dioxide", "CO2"),
    _i("water-formula", "What is the chemical formula of water?", "H2O"),
    _i("water-boils", "At how many degrees Celsius does water boil at sea level?", "100"),
    _i("water-frozen", "What do we call water when it is frozen solid?", "ice"),
    _i("spider-legs", "How many legs does a spider have?", "eight", "8"),
    _i("bees-make", "What sweet food do bees make?", "honey"),
    _i("lion-king", "Which animal is often called the king of the jungle?", "lion"),
    _i("sky-colour", "What colour is the sky on a clear day?", "blue"),
    _i("banana-colour", "What colour is a ripe banana?", "yellow"),
    _i("grass-colour", "What colour is grass?", "green"),
    _i("romeo-author", "Who wrote the play Romeo and Juliet?", "Shakespeare"),
    _i("mona-lisa", "Who painted the Mona Lisa?", "Leonardo", "da Vinci"),
    _i("ocean-largest", "What is the largest ocean on Earth?", "Pacific"),
    _i("continent-egypt", "On which continent is Egypt?", "Africa"),
    _i("mammal-largest", "What is the largest animal on Earth?", "blue whale"),
    _i("moon-walk", "Who was the first person to walk on the Moon?", "Armstrong"),
    _i("cow-milk", "Which farm animal gives us most of the milk we drink?", "cow", "cows"),
    # numbers
    _i("add-2-2", "What is 2 plus 2?", "4", "four"),
    _i("add-3-4", "What is 3 plus 4?", "7", "seven"),
    _i("sub-10-3", "What is 10 minus 3?", "7", "seven"),
    _i("mul-5-6", "What is 5 times 6?", "30", "thirty"),
    _i("half-20", "What is half of 20?", "10", "ten"),
    _i("hour-minutes", "How many minutes are in an hour?", "60", "sixty"),
    _i("week-days", "How many days are in a week?", "7", "seven"),
    _i("year-months", "How many months are in a year?", "12", "twelve"),
    _i("day-hours", "How many hours are in a day?", "24", "twenty-four"),
    _i("dozen", "How many eggs are in a dozen?", "12", "twelve"),
    # words
    _i("opposite-hot", "What is the opposite of hot?", "cold"),
    _i("opposite-up", "What is the opposite of up?", "down"),
    _i("opposite-big", "What is the opposite of big?", "small", "little", "tiny"),
    _i("plural-mouse", "What is the plural of mouse?", "mice"),
    _i("plural-child", "What is the plural of child?", "children"),
    _i("past-go", "What is the past tense of the verb go?", "went"),
    _i("past-eat", "What is the past tense of the verb eat?", "ate"),
    _i("hello-spanish", "How do you say hello in Spanish?", "hola"),
    _i("thanks-french", "How do you say thank you in French?", "merci"),
    _i("yes-german", "How do you say yes in German?", "ja"),
    _i("synonym-happy", "Give one word that means the same as happy.", "glad", "joyful", "cheerful", "content",
       "pleased", "delighted", "joyous", "merry", "elated", "jolly"),
    # not "that": the prompt's own "a word that rhymes" comes back in the answers
    _i("rhyme-cat", "Give a word that rhymes with cat.", "hat", "bat", "mat", "rat", "sat", "fat", "pat", "flat",
       "chat", "vat"),
    _i("baby-dog", "What is a baby dog called?", "puppy", "pup"),
    _i("baby-cat", "What is a baby cat called?", "kitten"),
    # following an instruction
    _i("upper-apple", "Write the word apple in capital letters.", "APPLE", case=True),
    _i("lower-hello", "Write the word HELLO in lowercase letters.", "hello", case=True),
    _i("only-yes", "Answer with the single word yes.", "yes"),
    _i("count-to-three", "Count from one to three in words.", "three"),
    _i("first-month", "Which month comes first in the year?", "January"),
    _i("after-monday", "Which day of the week comes after Monday?", "Tuesday"),
)


def set_hash(items: Sequence[Instruction] = INSTRUCTIONS) -> str:
    """The sha256 of the set (prompts and accepted answers): reports compare equal sets only."""
    data = [[i.id, i.prompt, list(i.accept), i.case] for i in items]
    return hashlib.sha256(json.dumps(data).encode("utf-8")).hexdigest()


def answer_instructions(handle, *, max_new_tokens: int, items: Sequence[Instruction] = INSTRUCTIONS,
                        on_progress: Callable[[int, int], None] | None = None) -> dict[str, str]:
    """``handle``'s greedy answers (no system prompt), by item id."""
    texts = generate_in_batches(handle, [[{"role": "user", "content": i.prompt}] for i in items], [0] * len(items),
                                max_new_tokens=max_new_tokens, temperature=0.0, on_progress=on_progress)
    return {item.id: text for item, text in zip(items, texts)}


def score(answers: dict[str, str], items: Sequence[Instruction] = INSTRUCTIONS) -> dict[str, float]:
    """1.0 for an item answered right, 0.0 otherwise (an item not answered counts as wrong)."""
    return {i.id: 1.0 if i.right(answers.get(i.id, "")) else 0.0 for i in items}
