"""TRL rows for the three formats, in TRL's own column conventions (conversational).

* ``dpo`` — ``prompt`` (message list), ``chosen`` and ``rejected`` (one assistant message each);
* ``kto`` — ``prompt``, ``completion`` (one assistant message) and ``label`` (bool): one row per
  answer, the chosen one desirable, the rejected one not;
* ``sft`` — ``messages``: the prompt followed by the chosen answer.

Every row also carries its provenance: ``record_id``, ``rule_ids``, ``boundary``, ``axes`` (every
axis of the dataset, ``null`` where a record has no value), ``scenario_id``, ``source`` and
``verified_by``, and how each side was obtained, ``chosen_from`` / ``rejected_from``
(``sampled``: an on-policy candidate of the model sorted by the rule's checks; ``defender`` /
``violator``: a role prompted for that side; ``spec``: the spec's own example — a spec-example
record's sides, or the one missing side of a composed scenario, ``--example-sides``), and who wrote the
seed user turn, ``request_from`` (``composed``: seeded code, from the rule's own examples;
``attacker``: the model; ``spec``: the spec's own example). Rows are sorted by ``record_id`` (KTO: the desirable row first).
"""

from __future__ import annotations

from typing import Iterable, Literal

from specc.synth.model import Pair

Format = Literal["dpo", "kto", "sft"]
FORMATS: tuple[str, ...] = ("dpo", "kto", "sft")


def axis_names(pairs: Iterable[Pair]) -> list[str]:
    return sorted({k for p in pairs for k in p.axes})


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _meta(p: Pair, axes: list[str]) -> dict:
    return {
        "record_id": p.record_id,
        "rule_ids": list(p.rule_ids),
        "boundary": p.boundary,
        # null without axes: Parquet has no empty struct, and JSONL and Parquet must read alike
        "axes": {a: p.axes.get(a) for a in axes} if axes else None,
        "scenario_id": p.scenario_id,
        "source": p.source,
        "verified_by": p.verified_by,
        "chosen_from": p.chosen_from,
        "rejected_from": p.rejected_from,
        "request_from": p.request_from,
    }


def rows_for(p: Pair, fmt: str, axes: list[str]) -> list[dict]:
    """The rows a pair gives in ``fmt`` (none where the pair lacks a needed side)."""
    prompt = [dict(m) for m in p.prompt]
    if fmt == "dpo":
        if p.chosen is None or p.rejected is None:
            return []
        return [{"prompt": prompt, "chosen": _assistant(p.chosen), "rejected": _assistant(p.rejected),
                 **_meta(p, axes)}]
    if fmt == "kto":
        out = []
        if p.chosen is not None:
            out.append({"prompt": prompt, "completion": _assistant(p.chosen), "label": True, **_meta(p, axes)})
        if p.rejected is not None:
            out.append({"prompt": [dict(m) for m in p.prompt], "completion": _assistant(p.rejected),
                        "label": False, **_meta(p, axes)})
        return out
    if fmt == "sft":
        if p.chosen is None:
            return []
        return [{"messages": prompt + _assistant(p.chosen), **_meta(p, axes)}]
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def split_rows(pairs: Iterable[Pair], fmt: str) -> dict[str, list[dict]]:
    """``{"train": rows, "test": rows}``, each sorted by record id."""
    pairs = sorted(pairs, key=lambda p: p.record_id)
    axes = axis_names(pairs)
    out: dict[str, list[dict]] = {"train": [], "test": []}
    for p in pairs:
        out[p.split].extend(rows_for(p, fmt, axes))
    return out


def arrow_schema(fmt: str, axes: list[str]):
    """An explicit Arrow schema, so Parquet files never depend on type inference."""
    import pyarrow as pa

    msg = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    trl = {"dpo": [("prompt", msg), ("chosen", msg), ("rejected", msg)],
           "kto": [("prompt", msg), ("completion", msg), ("label", pa.bool_())],
           "sft": [("messages", msg)]}[fmt]
    axes_type = pa.struct([(a, pa.string()) for a in axes]) if axes else pa.null()
    meta = [("record_id", pa.string()), ("rule_ids", pa.list_(pa.string())), ("boundary", pa.string()),
            ("axes", axes_type), ("scenario_id", pa.string()), ("source", pa.string()),
            ("verified_by", pa.string()), ("chosen_from", pa.string()), ("rejected_from", pa.string()),
            ("request_from", pa.string())]
    return pa.schema(trl + meta)
