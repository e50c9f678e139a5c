"""Probes: the prompts a model under test answers, each tied to one rule and one boundary.

Two sources:

* a compiled dataset's **test** split (:func:`load_test_probes`): the prompt of every record,
  without its answer side (DPO ``prompt``; KTO ``prompt``, one probe per record although KTO has
  two rows; SFT ``messages`` without the trailing assistant turn). The train split is never read.
* fresh probes planned for a spec and attacked by the pipeline (:func:`fresh_probes`): the user
  turns the attacker writes for each scenario of a new plan (``--per-rule``, ``--seed``), all three
  boundaries, both splits (a fresh plan is held out from any dataset compiled with another seed).

A probe's id is the record id (or the scenario id), so the same dataset gives the same probes
in the same order (sorted by id) whatever order its file lists them in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from specc.defaults import BOUNDARIES
from specc.emit.read import RecordsError, inside_dataset, read_records
from specc.files import load_json
from specc.synth.model import Probe  # the one Probe: a test-split record or a fresh attack


class EvalError(Exception):
    """Options or inputs an eval cannot run with (a missing split, a malformed record, a model that
    cannot give what was asked): a usage error, exit 2."""


ProbeError = EvalError


# -- a dataset's test split ---------------------------------------------------------------------


def held_out_files(data_dir: Path) -> list[Path]:
    """The test split's files of a dataset directory: what ``manifest.json`` names, else
    ``test*.jsonl`` / ``test*.parquet`` in DIR or DIR/data/. Never a train file."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ProbeError(f"dataset directory {data_dir} does not exist")
    man = data_dir / "manifest.json"
    if man.is_file():
        from specc.emit.manifest import ManifestError, read_manifest

        try:
            path = read_manifest(inside_dataset(data_dir, man)).data_file(data_dir, "test")
        except (RecordsError, ManifestError) as e:
            raise ProbeError(str(e)) from None
        if path is None:
            raise ProbeError(f"{data_dir} has no test split (its manifest lists none: the compile held out no "
                             "scenario; compile with more --per-rule, or evaluate without --data for fresh probes)")
        if not path.is_file():
            raise ProbeError(f"{path}: the test split named in {man} is missing")
        return [path]
    found: list[Path] = []
    for d in (data_dir, data_dir / "data"):
        if d.is_dir():
            found.extend(sorted(p for p in d.iterdir() if p.is_file() and p.name.startswith("test")
                                and p.suffix in (".jsonl", ".parquet")))
    try:
        found = [inside_dataset(data_dir, p) for p in found]
    except RecordsError as e:
        raise ProbeError(str(e)) from None
    if not found:
        raise ProbeError(f"{data_dir} has no test split (no manifest.json, no test*.jsonl or test*.parquet in it "
                         "or in its data/ folder)")
    return found


def _read_rows(path: Path) -> list[dict]:
    try:
        return read_records(path)
    except RecordsError as e:
        raise ProbeError(str(e)) from None


def _messages(value, where: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                              for m in value):
        raise ProbeError(f"{where}: the prompt must be a list of {{role, content}} messages")
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]


def probe_from_row(row: dict, where: str) -> Probe:
    """The probe of one record (any of the three formats)."""
    if "prompt" in row:
        prompt = _messages(row["prompt"], where)
    elif "messages" in row:
        prompt = _messages(row["messages"], where)
        while prompt and prompt[-1]["role"] == "assistant":
            prompt.pop()
    else:
        raise ProbeError(f"{where}: a record needs a `prompt` (DPO, KTO) or `messages` (SFT) column")
    if not prompt or prompt[-1]["role"] != "user":
        raise ProbeError(f"{where}: the prompt must end with a user turn")
    rule_ids = row.get("rule_ids")
    if not isinstance(rule_ids, list) or not rule_ids or not all(isinstance(r, str) for r in rule_ids):
        raise ProbeError(f"{where}: a record needs `rule_ids` (a non-empty list of rule ids); evaluate a "
                         "specc dataset, whose records carry their rule")
    boundary = row.get("boundary")
    if boundary not in BOUNDARIES:
        raise ProbeError(f"{where}: `boundary` must be one of {', '.join(BOUNDARIES)}, not {boundary!r}")
    from specc.ir.hashing import content_hash

    rid = row.get("record_id") or content_hash({"probe": prompt, "rule_ids": rule_ids, "boundary": boundary})
    return Probe(id=str(rid), rule_id=rule_ids[0], boundary=boundary, prompt=tuple(prompt),
                 scenario_id=row.get("scenario_id"), source="test-split")


def load_test_probes(data_dir: Path) -> list[Probe]:
    """The probes of a dataset's test split, one per record id, sorted by id."""
    by_id: dict[str, Probe] = {}
    for path in held_out_files(data_dir):
        for i, row in enumerate(_read_rows(path), 1):
            p = probe_from_row(row, f"{path}:{i}")
            by_id.setdefault(p.id, p)  # KTO: the two rows of a record share the prompt
    if not by_id:
        raise ProbeError(f"the test split of {data_dir} is empty")
    return [by_id[k] for k in sorted(by_id)]


def dataset_spec(data_dir: Path) -> dict | None:
    """The ``spec`` entry of a dataset's manifest (id, version, hash), if it has one."""
    man = Path(data_dir) / "manifest.json"
    try:
        data = load_json(man.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    spec = data.get("spec") if isinstance(data, dict) else None
    return spec if isinstance(spec, dict) else None


# -- fresh probes ----------------------------------------------------------------------------------


def fresh_probes(spec, *, per_rule: int, seed: int, attacker, store_dir: Path,
                 on_event: Callable[..., None] | None = None, rules=None) -> list[Probe]:
    """Plan ``spec`` (all boundaries, ``per_rule`` scenarios per rule and boundary, ``seed``) and
    let the pipeline's attacker write each scenario's conversation with ``attacker`` (a
    :class:`~specc.engines.ModelHandle`); the store keeps every call, so a rerun with the
    same seed and attacker gives the same probes without a model call."""
    from specc.plan.planner import PlanError, make_plan
    from specc.synth import pipeline

    try:
        plan = make_plan(spec, seed=seed, per_rule=per_rule, rules=rules)
    except PlanError as e:
        raise ProbeError(str(e)) from e
    from specc.synth.calls import CallRunner, Settings
    from specc.synth.store import Store

    with Store(store_dir) as store:
        runner = CallRunner(attacker, store, Settings(seed=seed), on_event=on_event)
        made = pipeline.synthesize_probes(spec, plan, runner, on_event=on_event)
    out: dict[str, Probe] = {}
    for p in made:
        out.setdefault(p.id, p)
    return [out[k] for k in sorted(out)]
