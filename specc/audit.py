"""``specc audit DIR``: the quality gates (:mod:`specc.synth.gates`) over a dataset directory.

Any dataset in TRL's formats, ours or someone else's: ``*.jsonl`` (and ``*.parquet`` when
pyarrow is installed) directly in DIR and anywhere under ``DIR/data/``. A record is one of

* DPO ``prompt`` / ``chosen`` / ``rejected`` (strings or message lists; without ``prompt`` the
  prompt is the chosen conversation before its last message);
* KTO ``prompt`` / ``completion`` / ``label`` (the completion is a chosen answer when ``label``
  is true, a rejected one otherwise); ``prompt`` / ``completion`` without a label (SFT);
* SFT ``messages`` (the last assistant message is the answer) or plain ``text``.

User turns get the user gates, assistant turns inside a prompt and chosen answers the chosen
gates, rejected answers the rejected gates, DPO pairs the pair gate; system messages are the
operator's and are not gated. A specc dataset tells more: its records' ``axes`` feed the
bare-axis-value gate and its ``manifest.json`` gives the character bounds the texts were
generated under (a text cut by its bound is no fragment). Nothing here needs the spec.

A text longer than :data:`MAX_TEXT_CHARS` is not gated: the gates take time and memory in
proportion to a text (16 s of CPU and 220 MB for a 10 MB answer), so a dataset from someone else
could make an audit in CI as slow as it likes. Its record is reported as too long to audit and
counts as flagged, so padding a text cannot carry a record past ``--fail-over``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from specc.files import load_json
from specc.synth import gates

EXAMPLES_KEPT = 10  # per gate, in the report
TEXT_KEPT = 1000  # characters of an example's text in the JSON report
MAX_TEXT_CHARS = 100_000  # a longer text is not gated (module doc); specc's own are a few hundred


class AuditError(Exception):
    """The directory cannot be audited (missing, no data files, malformed records): exit 1."""


@dataclass(frozen=True)
class Hit:
    file: str
    line: int  # JSONL line, or Parquet row (1-based)
    record_id: str | None
    part: str  # prompt[i] | chosen | rejected | completion | pair
    kind: str
    text: str
    detail: str

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "record_id": self.record_id, "part": self.part,
                "kind": self.kind, "text": self.text[:TEXT_KEPT], "detail": self.detail}


@dataclass
class AuditReport:
    dir: Path
    files: list[str]
    records: int = 0
    flagged: int = 0
    counts: dict = field(default_factory=lambda: {g.name: 0 for g in gates.GATES})
    examples: dict = field(default_factory=lambda: {g.name: [] for g in gates.GATES})
    too_long: int = 0  # records with a text over MAX_TEXT_CHARS: not gated, counted as flagged
    too_long_examples: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.flagged / self.records if self.records else 0.0

    def as_json(self) -> dict:
        return {
            "dir": str(self.dir),
            "files": self.files,
            "records": self.records,
            "flagged": self.flagged,
            "rate": round(self.rate, 6),
            "by_gate": {g.name: {"code": g.code, "summary": g.summary, "count": self.counts[g.name],
                                 "examples": [h.as_dict() for h in self.examples[g.name]]} for g in gates.GATES},
            "too_long": {"max_chars": MAX_TEXT_CHARS, "count": self.too_long,
                         "examples": [h.as_dict() for h in self.too_long_examples]},
        }


# -- reading ----------------------------------------------------------------------------------


def data_files(d: Path) -> list[Path]:
    """``*.jsonl`` / ``*.parquet`` in ``d`` and under ``d/data/``, sorted; an :class:`AuditError`
    where one is a link that leads outside ``d``."""
    from specc.emit.read import RecordsError, inside_dataset

    found = [p for p in d.iterdir() if p.is_file() and p.suffix in (".jsonl", ".parquet")]
    if (d / "data").is_dir():
        found += [p for p in (d / "data").rglob("*") if p.is_file() and p.suffix in (".jsonl", ".parquet")]
    try:
        return sorted({inside_dataset(d, p) for p in found})
    except RecordsError as e:
        raise AuditError(str(e)) from None


def _rows(path: Path, shown: str):
    """(line or row number, record) of one data file."""
    from specc.emit.read import RecordsError, check_record, parse_record
    from specc.files import SURROGATE_MESSAGE, lone_surrogate

    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise AuditError(f"{shown}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a bad file
            raise AuditError(f"{shown}: not a readable Parquet file: {e}") from None
        for n, rec in enumerate(rows, 1):
            if lone_surrogate(rec):
                raise AuditError(f"{shown}: row {n}: {SURROGATE_MESSAGE}")
            try:
                check_record(rec, f"{shown}: row {n}")
            except RecordsError as e:
                raise AuditError(str(e)) from None
            yield n, rec
        return
    try:
        f = path.open(encoding="utf-8")
    except OSError as e:
        raise AuditError(f"{shown}: cannot read: {e.strerror or e}") from None
    with f:
        try:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = parse_record(line, f"{shown}:{n}")
                except RecordsError as e:
                    raise AuditError(str(e)) from None
                yield n, rec
        except UnicodeDecodeError as e:
            raise AuditError(f"{shown}: not UTF-8 text: {e.reason}") from None


def _text(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):  # [{"type": "text", ...}]
        return "".join(p.get("text") or "" for p in content if p.get("type", "text") == "text")
    raise AuditError(f"{where}: a message's content is not text")


def _messages(value, where: str, default_role: str) -> list[tuple[str, str]]:
    """(role, text) of a string or a message list."""
    if isinstance(value, str):
        return [(default_role, value)]
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        return [(str(m["role"]), _text(m.get("content"), where)) for m in value]
    raise AuditError(f"{where}: expected a string or a list of {{role, content}} messages")


def _answer(value, where: str) -> tuple[list[tuple[str, str]], str]:
    """A chosen / rejected / completion value: (conversation before the answer, answer text)."""
    msgs = _messages(value, where, "assistant")
    if not msgs:
        raise AuditError(f"{where}: an empty message list")
    return msgs[:-1], msgs[-1][1]


_SHAPES = "prompt/chosen/rejected, chosen/rejected, prompt/completion[/label], messages or text"


def _parts(rec: dict, where: str) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """A record as (prompt messages, [(part, kind, text)] of its answers)."""
    if "chosen" in rec and "rejected" in rec:
        before, chosen = _answer(rec["chosen"], where)
        _, rejected = _answer(rec["rejected"], where)
        prompt = _messages(rec["prompt"], where, "user") if "prompt" in rec else before
        return prompt, [("chosen", "chosen", chosen), ("rejected", "rejected", rejected)]
    if "completion" in rec and "prompt" in rec:
        _, text = _answer(rec["completion"], where)
        label = rec.get("label", True)
        if not isinstance(label, bool):
            raise AuditError(f"{where}: `label` is not true or false")
        return _messages(rec["prompt"], where, "user"), [("completion", "chosen" if label else "rejected", text)]
    if "messages" in rec:
        msgs = _messages(rec["messages"], where, "user")
        if msgs and msgs[-1][0] == "assistant":
            return msgs[:-1], [("answer", "chosen", msgs[-1][1])]
        return msgs, []
    if isinstance(rec.get("text"), str):
        return [], [("text", "chosen", rec["text"])]
    raise AuditError(f"{where}: not a TRL record (expected {_SHAPES}; found {', '.join(sorted(rec)) or 'nothing'})")


def _bounds(d: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(user-turn bounds, answer bounds) from a specc manifest; empty when there is none."""
    from specc.emit.read import RecordsError, inside_dataset

    if (d / "manifest.json").exists():
        try:
            inside_dataset(d, d / "manifest.json")
        except RecordsError as e:
            raise AuditError(str(e)) from None
    try:
        man = load_json((d / "manifest.json").read_text(encoding="utf-8"))
        chars = man["generation"]["max_chars"]
        attack, answer = int(chars["attack"]), int(chars["answer"])
    except (OSError, ValueError, KeyError, TypeError):
        return (), ()
    # a pushed conflict's user turn had its own bound in datasets of earlier specc versions
    return (attack, max(16, attack // 2 + 40)), (answer,)


# -- auditing ---------------------------------------------------------------------------------


def audit_dataset(directory: Path | str) -> AuditReport:
    d = Path(directory)
    if not d.exists():
        raise AuditError(f"{d}: no such directory")
    if d.is_file():
        files, root = [d], d.parent
    else:
        files, root = data_files(d), d
    if not files:
        raise AuditError(f"{d}: no data files (*.jsonl or *.parquet) in it or under {d / 'data'}")
    user_bounds, answer_bounds = _bounds(root)
    report = AuditReport(dir=d, files=[_shown(p, root) for p in files])
    for path in files:
        shown = _shown(path, root)
        for n, rec in _rows(path, shown):
            where = f"{shown}:{n}"
            if not isinstance(rec, dict):
                raise AuditError(f"{where}: a record is a JSON object, not {type(rec).__name__}")
            # a column a record does not use is null (Parquet has one schema for all rows)
            rec = {k: v for k, v in rec.items() if v is not None}
            report.records += 1
            long = _too_long(rec, where, shown, n)
            if long is not None:
                report.too_long += 1
                report.flagged += 1
                if len(report.too_long_examples) < EXAMPLES_KEPT:
                    report.too_long_examples.append(long)
                continue
            hits = _audit_record(rec, where, shown, n, user_bounds, answer_bounds)
            seen = set()
            for h in hits:
                name = h.gate
                if name in seen:
                    continue
                seen.add(name)
                report.counts[name] += 1
                if len(report.examples[name]) < EXAMPLES_KEPT:
                    report.examples[name].append(h.hit)
            report.flagged += bool(seen)
    return report


@dataclass(frozen=True)
class _Found:
    gate: str
    hit: Hit


def _too_long(rec: dict, where: str, shown: str, n: int) -> Hit | None:
    """The first text of ``rec`` over :data:`MAX_TEXT_CHARS`, as a finding; None when there is none."""
    prompt, answers = _parts(rec, where)
    texts = [(f"prompt[{i}]", "user" if role == "user" else "chosen", text) for i, (role, text) in enumerate(prompt)]
    for part, kind, text in texts + answers:
        if len(text) > MAX_TEXT_CHARS:
            rid = rec.get("record_id") if isinstance(rec.get("record_id"), str) else None
            return Hit(shown, n, rid, part, kind, text[:TEXT_KEPT],
                       f"{len(text):,} characters, over the {MAX_TEXT_CHARS:,} an audit gates")
    return None


def _audit_record(rec: dict, where: str, shown: str, n: int, user_bounds, answer_bounds) -> list[_Found]:
    prompt, answers = _parts(rec, where)
    axes = rec.get("axes")
    axes = tuple(sorted((str(k), v) for k, v in axes.items() if isinstance(v, str))) if isinstance(axes, dict) else ()
    rid = rec.get("record_id") if isinstance(rec.get("record_id"), str) else None
    base = gates.Context(axes=axes)
    out: list[_Found] = []

    def run(kind: str, text: str, part: str, ctx: gates.Context) -> None:
        for f in gates.failures(kind, text, ctx):
            out.append(_Found(f.gate.name, Hit(shown, n, rid, part, kind, text, f.detail)))

    users: list[str] = []
    for i, (role, text) in enumerate(prompt):
        if role == "user":
            run("user", text, f"prompt[{i}]", replace(base, limits=user_bounds))
            users.append(text)
        elif role == "assistant":
            run("chosen", text, f"prompt[{i}]", replace(base, user_turns=tuple(users), limits=answer_bounds))
    ctx = replace(base, user_turns=tuple(users), limits=answer_bounds)
    for part, kind, text in answers:
        run(kind, text, part, ctx)
    texts = {part: text for part, _, text in answers}
    if "chosen" in texts and "rejected" in texts:
        run("pair", texts["chosen"], "pair", replace(ctx, other=texts["rejected"]))
    return out


def _shown(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


# -- rendering --------------------------------------------------------------------------------


def _clip(text: str, n: int = 100) -> str:
    t = " ".join(text.split())
    return json.dumps(t if len(t) <= n else t[: n - 1] + "…", ensure_ascii=False)


def render_text(report: AuditReport, shown: int = 3) -> str:
    lines = [f"audited {report.records} record{'s' if report.records != 1 else ''} in {', '.join(report.files)}",
             f"flagged {report.flagged} of {report.records} ({report.rate:.1%}): records failing at least one gate"]
    clean = []
    for g in gates.GATES:
        count = report.counts[g.name]
        if not count:
            clean.append(g.code)
            continue
        lines.append(f"  {g.code} {g.name:<22} {count:>5}  {g.summary}")
        for h in report.examples[g.name][:shown]:
            lines.append(f"      {h.file}:{h.line} {h.part}: {_clip(h.text)}  ({h.detail})")
    if report.too_long:
        lines.append(f"  {report.too_long:>5} record{'s' if report.too_long != 1 else ''} with a text over "
                     f"{MAX_TEXT_CHARS:,} characters: not gated, counted as flagged")
        for h in report.too_long_examples[:shown]:
            lines.append(f"      {h.file}:{h.line} {h.part}: {_clip(h.text)}  ({h.detail})")
    if clean:
        lines.append(f"no record fails {', '.join(clean)}")
    lines.append("`specc explain CODE` says what a gate looks for")
    return "\n".join(lines)
