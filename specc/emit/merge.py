"""``specc merge``: shard outputs (``specc compile --shard K/N``) combined into one dataset.

The merged directory is written by the compile's own writer (:func:`specc.emit.writer.write_dataset`)
from the shards' records and manifests, so its data files, ``README.md`` and ``manifest.json`` are
byte for byte those of the unsharded compile of the same spec, seed and settings from a fresh
store -- as long as each prompt's output does not depend on the batch it was generated in. That
holds for the llama.cpp engine (each prompt on its own, with one seed from the call's store key),
for a server that is batch-invariant (vLLM with ``VLLM_BATCH_INVARIANT=1``; every request carries
that seed) and for the transformers engine at ``--batch-size 1``; transformers batches pad their
prompts, so at a larger batch a shard's texts may differ from the unsharded compile's (the merge
is still a valid dataset, and :func:`merge` says so in its warnings).

How the parts combine: every rule belongs to exactly one shard, so the records, the scenarios and
the per-rule stats of a rule come from its shard alone; the global counters of ``stats`` are sums
and its counter tables (dropped reasons, verifiers, faults) are summed key by key. Every other
manifest field (spec, seed, plan, generation settings, model and engine, the judge's calibration,
which every shard measures on the same examples, ...) must be equal in all shards and is carried
over; the merged manifest must reproduce every one of those fields, checked before any file is
written (the writer's ``verify``), and the directory is put in place as a whole as a compile's is.

Nothing is written unless every check passes. :class:`MergeError` (exit 1) names what is wrong:
a directory that is not a specc shard, shards that differ in a field (naming it and the dirs), a
shard index missing or given twice, a shard whose data disagree with its manifest, or an ``OUT``
that holds something other than a specc dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from specc import __version__
from specc.emit.manifest import ManifestError, read_manifest
from specc.emit.read import RecordsError, inside_dataset, read_records
from specc.emit.writer import FILE_FORMATS, Written, write_dataset
from specc.ir.hashing import content_hash
from specc.plan.model import Plan
from specc.plan.shard import shard_rules
from specc.synth.model import Pair, SynthResult, SynthStats

# Manifest fields that differ from shard to shard (and are combined); every other field of a
# shard's manifest must be equal in all shards (compared leaf by leaf, so that a message names
# e.g. `generation.batch_size`). `rules` is compared as the map rule id -> rule hash.
PER_SHARD = ("rules", "files", "counts", "stats", "shard", "review")
SAME_SHARD = ("count", "planned_rules", "plan")


class MergeError(Exception):
    """Shards that cannot be merged, or an OUT that must not be written (exit 1)."""


@dataclass
class Shard:
    dir: Path
    manifest: dict
    rows: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def info(self) -> dict:
        return self.manifest["shard"]


@dataclass(frozen=True)
class RuleRef:
    id: str
    hash: str


@dataclass(frozen=True)
class SpecRef:
    """What the writer reads of a spec (its identity and rule hashes), taken from a manifest."""

    id: str
    version: str
    hash: str
    rules: tuple[RuleRef, ...]
    doc: str | None = None


@dataclass
class Merged:
    written: Written
    shards: list[Shard]
    warnings: list[str]


def merge(out_dir: Path, dirs: list[Path]) -> Merged:
    """Check the shard directories ``dirs`` and write their merged dataset into ``out_dir``."""
    if not dirs:
        raise MergeError("no shard directories given")
    out_dir = Path(out_dir)
    _check_out(out_dir, dirs)
    shards = [read_shard(Path(d)) for d in dirs]
    check_compatible(shards)
    for s in shards:
        _check_data(s)
    first = shards[0].manifest
    pairs = []
    for s in shards:
        try:
            pairs.extend(pairs_of(s.rows, first["format"]))
        except MergeError as e:
            raise MergeError(f"{s.dir}: {e}") from None
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            raise MergeError(f"{s.dir}: a record is not a specc {first['format']} row ({type(e).__name__}: {e})") from None
    scenarios: dict[str, list[str]] = {}
    for s in shards:
        for rid, entry in s.manifest["rules"].items():
            if entry["scenarios"]:
                scenarios.setdefault(rid, []).extend(entry["scenarios"])
    stats = SynthStats.model_validate(merge_stats([(s.dir, s.manifest["stats"]) for s in shards]))
    result = SynthResult(pairs=sorted(pairs, key=lambda p: p.record_id), stats=stats, scenarios_by_rule=scenarios)
    # the judge's calibration, equal in every shard (checked above); the writer reads it if present
    result.judge = first.get("judge")
    spec = SpecRef(id=first["spec"]["id"], version=first["spec"]["version"], hash=first["spec"]["hash"],
                   rules=tuple(RuleRef(rid, e["hash"]) for rid, e in first["rules"].items()),
                   doc=first["spec"].get("doc"))
    p = first["plan"]
    plan = Plan(spec_id=spec.id, spec_version=spec.version, spec_hash=spec.hash, seed=first["seed"],
                coverage=p["coverage"], per_rule=p["per_rule"], system_prompt=p["system_prompt"],
                test_fraction=p["test_fraction"], boundaries=tuple(p["boundaries"]), scenarios=(),
                rules=tuple(first["shard"]["planned_rules"]))
    m = first["model"]
    engines = ({"model": m["engine"], "judge": m["judge_engine"], "params": m["engine_params"]}
               if "engine" in m else None)

    def reproduces_the_shards(man: dict) -> None:
        lost = [k for k in first if k not in PER_SHARD and man.get(k) != first[k]]
        if lost:
            raise MergeError(f"specc merge cannot reproduce the manifest field{'s' if len(lost) > 1 else ''} "
                             f"{', '.join(lost)} of the shards; nothing was written to {out_dir}")

    # the compile's own writer: the whole directory put in place at once where it can be
    written = write_dataset(out_dir, result=result, spec=spec, spec_file=first["spec"]["file"], plan=plan,
                            fmt=first["format"], file_format=first["file_format"], seed=first["seed"],
                            model=m["name"], judge=m["judge"], generation=first["generation"], engines=engines,
                            verify=reproduces_the_shards)
    warnings = []
    batch = first["generation"].get("batch_size", 1)
    if "transformers" in (m.get("engine"), m.get("judge_engine")) and batch > 1:
        warnings.append(f"the shards ran on the transformers engine at batch size {batch}: padded batches make a "
                        "prompt's output depend on its batch-mates, so this merge is a valid dataset but may differ "
                        "from an unsharded compile (compile with --batch-size 1, or on llama.cpp or a batch-invariant "
                        "server, for byte-identical output)")
    return Merged(written=written, shards=sorted(shards, key=lambda s: s.info["index"]), warnings=warnings)


# -- reading and checking -------------------------------------------------------------------------


def read_shard(d: Path) -> Shard:
    """A shard directory's manifest and records; :class:`MergeError` when it is not a shard."""
    if not d.is_dir():
        raise MergeError(f"{d}: not a directory")
    path = d / "manifest.json"
    if not path.is_file():
        raise MergeError(f"{d}: not a specc shard (no manifest.json)")
    try:
        inside_dataset(d, path)
    except RecordsError as e:
        raise MergeError(str(e)) from None
    try:
        typed = read_manifest(path)
    except ManifestError as e:
        raise MergeError(f"{d}: not a specc shard ({e})") from None
    if typed.shard is None:
        raise MergeError(f"{d}: a specc dataset, but not a shard (its manifest has no `shard` field): "
                         "merge the outputs of `specc compile --shard K/N`")
    man = typed.to_dict()  # validated; compared leaf by leaf below
    return Shard(dir=d, manifest=man, rows=_read_rows(d, man))


def _read_rows(d: Path, man: dict) -> dict[str, list[dict]]:
    ff = man["file_format"]
    if ff not in FILE_FORMATS:
        raise MergeError(f"{d}: unknown file format {ff!r} in manifest.json")
    rows: dict[str, list[dict]] = {}
    for split in ("train", "test"):
        rel = man["files"].get(split)
        if rel is None:
            rows[split] = []
            continue
        if rel != f"data/{split}.{ff}":
            raise MergeError(f"{d}: manifest.json names {rel!r} as the {split} file; expected data/{split}.{ff}")
        try:
            path = inside_dataset(d, d / rel)
        except RecordsError as e:
            raise MergeError(str(e)) from None
        if not path.is_file():
            raise MergeError(f"{d}: {rel} is missing (manifest.json lists it)")
        try:  # the one checked reader; a shard's file has no blank line (the writer writes none)
            rows[split] = read_records(path, blank_lines=False, fmt=man.get("format"))
        except RecordsError as e:
            raise MergeError(str(e)) from None
    return rows


def _leaves(value, prefix: str) -> dict[str, object]:
    if isinstance(value, dict) and value:
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def _fields(s: Shard) -> dict[str, object]:
    m = s.manifest
    out: dict[str, object] = {}
    for name, value in m.items():
        if name not in PER_SHARD:
            out.update(_leaves(value, name))
    out["rules"] = {rid: e.get("hash") for rid, e in m["rules"].items()}
    for name in SAME_SHARD:
        out[f"shard.{name}"] = m["shard"][name]
    return out


def _where(groups: dict[str, list[Shard]]) -> str:
    return "; ".join(f"{v} in {', '.join(str(s.dir) for s in ss)}" for v, ss in groups.items())


def check_compatible(shards: list[Shard]) -> None:
    """Refuse shards of different compiles, a missing or duplicated index, or a wrong slice."""
    fields = [_fields(s) for s in shards]
    names = list(dict.fromkeys(k for f in fields for k in f))
    problems = []
    for name in names:
        groups: dict[str, list[Shard]] = {}
        for s, f in zip(shards, fields):
            groups.setdefault(json.dumps(f.get(name, "(absent)"), sort_keys=True, ensure_ascii=False), []).append(s)
        if len(groups) > 1:
            shown = {(k if len(k) <= 80 else f"{k[:60]}… (hash {content_hash(k)[:8]})"): ss for k, ss in groups.items()}
            problems.append(f"shards differ in {name}: {_where(shown)}")
    if problems:
        raise MergeError("these shards are not of one compile:\n  " + "\n  ".join(problems))
    first = shards[0]
    n = first.info["count"]
    by_index: dict[int, list[Shard]] = {}
    for s in shards:
        by_index.setdefault(s.info["index"], []).append(s)
    dup = {k: ss for k, ss in sorted(by_index.items()) if len(ss) > 1}
    if dup:
        raise MergeError("; ".join(f"shard {k}/{n} is given {len(ss)} times: {', '.join(str(s.dir) for s in ss)}"
                                   for k, ss in dup.items()))
    bad = sorted(k for k in by_index if not 1 <= k <= n)
    if bad:
        raise MergeError(f"shard index {bad[0]} is outside 1..{n}: {by_index[bad[0]][0].dir}")
    missing = [k for k in range(1, n + 1) if k not in by_index]
    if missing:
        raise MergeError(f"missing shard{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(f'{k}/{n}' for k in missing)} (got {', '.join(f'{k}/{n}' for k in sorted(by_index))})")
    for s in shards:
        want = list(shard_rules(s.info["planned_rules"], s.info["index"], n))
        if s.info["rules"] != want:
            raise MergeError(f"{s.dir}: its rules are not those of shard {s.info['index']}/{n} of its plan "
                             f"(has {len(s.info['rules'])}, expected {len(want)}): was manifest.json edited?")
    if first.manifest["specc_version"] != __version__:
        raise MergeError(f"the shards were compiled by specc {first.manifest['specc_version']}, this is specc "
                         f"{__version__}: merge them with the version that compiled them")


def _check_data(s: Shard) -> None:
    """A shard's records agree with its manifest and belong to its rules."""
    m, mine = s.manifest, set(s.info["rules"])
    records: dict[str, set[str]] = {}
    for split, rows in s.rows.items():
        if len(rows) != m["counts"].get(split):
            raise MergeError(f"{s.dir}: data/{split} holds {len(rows)} records, manifest.json counts "
                             f"{m['counts'].get(split)}")
        for row in rows:
            rids = row.get("rule_ids") if isinstance(row, dict) else None
            if not isinstance(rids, list) or not isinstance(row.get("record_id"), str):
                raise MergeError(f"{s.dir}: data/{split} has a row that is not a specc record")
            for rid in rids:
                if rid not in mine:
                    raise MergeError(f"{s.dir}: record {row['record_id']} is of rule {rid}, which shard "
                                     f"{s.info['index']}/{s.info['count']} does not own")
                records.setdefault(rid, set()).add(row["record_id"])
    for rid, entry in m["rules"].items():
        if set(entry.get("records", [])) != records.get(rid, set()):
            raise MergeError(f"{s.dir}: the records of {rid} in manifest.json are not those in its data files")
        if entry.get("scenarios") and rid not in mine:
            raise MergeError(f"{s.dir}: manifest.json lists scenarios of {rid}, which this shard does not own")
    extra = set(m["stats"].get("per_rule", {})) - mine
    if extra:
        raise MergeError(f"{s.dir}: stats of rules this shard does not own: {', '.join(sorted(extra))}")


def _check_out(out: Path, dirs: list[Path]) -> None:
    """OUT may be new, empty, or a specc dataset (which the merge replaces); never an input."""
    target = out.resolve()
    for d in dirs:
        if Path(d).resolve() == target:
            raise MergeError(f"OUT {out} is one of the shard directories: write the merge elsewhere")
    from specc.emit.writer import OutDirError, check_out_dir

    try:
        check_out_dir(out)
    except OutDirError as e:
        raise MergeError(f"OUT {e}") from None


# -- combining ------------------------------------------------------------------------------------


def merge_stats(items: list[tuple[Path, dict]]) -> dict:
    """Shards' ``stats`` combined: ``per_rule`` is a disjoint union, integers are summed and
    tables of integers are summed key by key (keys sorted, as the pipeline writes them)."""
    keys = list(items[0][1])
    for d, s in items:
        if list(s) != keys:
            raise MergeError(f"{d}: its stats have other fields than {items[0][0]}'s")
    out: dict = {}
    for k in keys:
        values = [s[k] for _, s in items]
        if k == "per_rule":
            merged: dict = {}
            for d, s in items:
                for rid, entry in s[k].items():
                    if rid in merged:
                        raise MergeError(f"{d}: stats of rule {rid} are in two shards")
                    merged[rid] = entry
            out[k] = dict(sorted(merged.items()))
        elif all(type(v) is int for v in values):
            out[k] = sum(values)
        elif all(isinstance(v, dict) and all(type(x) is int for x in v.values()) for v in values):
            table: dict[str, int] = {}
            for v in values:
                for name, x in v.items():
                    table[name] = table.get(name, 0) + x
            out[k] = dict(sorted(table.items()))
        else:
            raise MergeError(f"the stat {k!r} is neither a count nor a table of counts: it cannot be merged")
    return out


def _content(messages, where: str) -> str:
    if not isinstance(messages, list) or len(messages) != 1 or messages[0].get("role") != "assistant":
        raise MergeError(f"{where}: expected one assistant message")
    return messages[0]["content"]


def pairs_of(rows: dict[str, list[dict]], fmt: str) -> list[Pair]:
    """The pairs that a shard's rows were made of (as far as ``fmt`` shows them): the writer makes
    the same rows from them again, with the axis columns of the merged dataset."""
    out = []
    for split, split_rows in rows.items():
        groups: dict[str, list[dict]] = {}
        for row in split_rows:
            groups.setdefault(row["record_id"], []).append(row)
        for rid, group in groups.items():
            head = group[0]
            where = f"record {rid}"
            chosen = rejected = None
            if fmt == "dpo":
                prompt = head["prompt"]
                chosen, rejected = _content(head["chosen"], where), _content(head["rejected"], where)
            elif fmt == "kto":
                prompt = head["prompt"]
                for row in group:
                    if row["label"]:
                        chosen = _content(row["completion"], where)
                    else:
                        rejected = _content(row["completion"], where)
            elif fmt == "sft":
                prompt = head["messages"][:-1]
                chosen = _content(head["messages"][-1:], where)
            else:
                raise MergeError(f"unknown format {fmt!r}")
            axes = {k: v for k, v in (head.get("axes") or {}).items() if v is not None}
            out.append(Pair(record_id=rid, rule_ids=tuple(head["rule_ids"]), boundary=head["boundary"], axes=axes,
                            scenario_id=head["scenario_id"], source=head["source"], verified_by=head["verified_by"],
                            prompt=tuple(dict(m) for m in prompt), chosen=chosen, rejected=rejected, split=split,
                            chosen_from=head.get("chosen_from"), rejected_from=head.get("rejected_from"),
                            request_from=head.get("request_from")))
    return out
