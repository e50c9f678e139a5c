"""Axis designs: which combinations of axis values a rule's scenarios take, row by row.

A design is an ordered list of assignments (axis name -> value). The planner takes row
``i % len(design)`` for the scenario at index ``i``, so every design is built independently of
the number of scenarios wanted: asking for more scenarios only appends, and the first ones
keep their axes (and their ids).

Axes are read in canonical order (by name, values sorted), so a design never depends on the
order in which a spec declares axes or values; all randomness comes from the ``rng`` passed in.

* ``pairwise`` — a greedy all-pairs covering design: every value of every axis meets every
  value of every other axis in some row. The rows that cover the most new pairs come first, so
  a truncated design still covers as much as its length allows.
* ``full`` — the full product, each combination once, in a seeded order.
* ``random`` — each row drawn independently and uniformly.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Iterable

from specc.ir.model import Axis
from specc.plan.model import Coverage

Assignment = dict[str, str]
# Rows tried per greedy step; more gives a slightly smaller pairwise design, slower.
_CANDIDATES = 24


def canonical_axes(axes: Iterable[Axis]) -> list[tuple[str, tuple[str, ...]]]:
    """(name, sorted distinct values) for every axis with values, sorted by name."""
    out = {}
    for a in axes:
        values = tuple(sorted(set(a.values)))
        if values:
            out[a.name] = values
    return sorted(out.items())


def design(axes: Iterable[Axis], coverage: Coverage, rng: random.Random, count: int) -> list[Assignment]:
    """The first ``min(count, design size)`` rows of the chosen design (``count`` rows for random).

    Rows beyond ``count`` are never needed: callers cycle over what is returned.
    """
    canon = canonical_axes(axes)
    count = max(count, 1)
    if not canon:
        return [{}]
    if coverage == "pairwise":
        return pairwise(canon, rng, count)
    if coverage == "full":
        return full(canon, rng, count)
    if coverage == "random":
        return [{name: rng.choice(values) for name, values in canon} for _ in range(count)]
    raise ValueError(f"unknown coverage {coverage!r}; expected pairwise, full or random")


def full(canon: list[tuple[str, tuple[str, ...]]], rng: random.Random, count: int) -> list[Assignment]:
    """The first ``min(count, size)`` rows of a seeded permutation of the full product.

    The permutation is ``k -> (offset + k * stride) mod size`` with ``stride`` coprime to the
    size, so it never materialises a product that may be huge.
    """
    radices = [len(values) for _, values in canon]
    size = math.prod(radices)
    stride = 1
    if size > 2:
        stride = rng.randrange(1, size)
        while math.gcd(stride, size) != 1:
            stride = stride % (size - 1) + 1
    offset = rng.randrange(size)
    rows = []
    for k in range(min(count, size)):
        n = (offset + k * stride) % size
        row = {}
        for (name, values), radix in zip(reversed(canon), reversed(radices)):
            n, digit = divmod(n, radix)
            row[name] = values[digit]
        rows.append(dict(sorted(row.items())))
    return rows


def pairwise(canon: list[tuple[str, tuple[str, ...]]], rng: random.Random,
             limit: int | None = None) -> list[Assignment]:
    """A greedy (AETG-style) all-pairs design; deterministic for a given ``rng`` state.

    Rows are made one after the other from the same ``rng``, so stopping after ``limit`` rows
    gives exactly the first ``limit`` rows of the complete design (at a fraction of the cost).

    Each step builds a few candidate rows, each seeded with an uncovered pair and completed
    axis by axis with the value that covers most uncovered pairs, and keeps the best; among
    equally good rows the one whose values were used least so far, so that a truncated design
    stays balanced per value (breaking ties per value instead gives larger designs). Every
    row covers at least its seed pair, so the loop ends, every row is distinct and the design
    is never longer than the full product.
    """
    if len(canon) == 1:
        name, values = canon[0]
        order = list(values)
        rng.shuffle(order)
        return [{name: v} for v in order][:limit]
    sizes = [len(values) for _, values in canon]
    k = len(canon)
    # Pairs as (axis i, value index a, axis j, value index b) with i < j. Plain ints: a set of
    # them is only ever tested for membership; choices go through the sorted list.
    uncovered = {(i, a, j, b) for i, j in itertools.combinations(range(k), 2)
                 for a in range(sizes[i]) for b in range(sizes[j])}
    used = [[0] * size for size in sizes]
    max_gain = k * (k - 1) // 2
    rows: list[list[int]] = []
    while uncovered and (limit is None or len(rows) < limit):
        pending = sorted(uncovered)
        best, best_score = None, None
        # A row that covers only new pairs with the least-used values cannot be beaten.
        unbeatable = (max_gain, -sum(min(u) for u in used))
        for _ in range(_CANDIDATES):
            i, a, j, b = pending[rng.randrange(len(pending))]
            row = [-1] * k
            row[i], row[j] = a, b
            rest = [x for x in range(k) if x not in (i, j)]
            rng.shuffle(rest)
            for x in rest:
                scores = []
                for v in range(sizes[x]):
                    gain = sum(1 for y in range(k) if row[y] >= 0 and _pair(x, v, y, row[y]) in uncovered)
                    scores.append(gain)
                top = max(scores)
                row[x] = rng.choice([v for v, s in enumerate(scores) if s == top])
            gain = sum(1 for x, y in itertools.combinations(range(k), 2) if (x, row[x], y, row[y]) in uncovered)
            score = (gain, -sum(used[x][row[x]] for x in range(k)))
            if best_score is None or score > best_score:
                best, best_score = row, score
                if score == unbeatable:
                    break
        rows.append(best)
        for x in range(k):
            used[x][best[x]] += 1
        for x, y in itertools.combinations(range(k), 2):
            uncovered.discard((x, best[x], y, best[y]))
    return [{canon[x][0]: canon[x][1][row[x]] for x in range(k)} for row in rows]


def _pair(x: int, v: int, y: int, w: int) -> tuple[int, int, int, int]:
    return (x, v, y, w) if x < y else (y, w, x, v)


def uncovered_pairs(axes: Iterable[Axis], rows: Iterable[Assignment]) -> list[tuple[str, str, str, str]]:
    """The value pairs of two axes that no row covers (empty for a complete pairwise design)."""
    canon = canonical_axes(axes)
    seen = {(x, r[x], y, r[y]) for r in rows for (x, _), (y, _) in itertools.combinations(canon, 2)
            if x in r and y in r}
    return [(x, a, y, b) for (x, xs), (y, ys) in itertools.combinations(canon, 2)
            for a in xs for b in ys if (x, a, y, b) not in seen]
