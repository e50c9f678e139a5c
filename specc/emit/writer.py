"""Write a dataset directory: data files, ``README.md`` card, ``manifest.json``.

Every file is written to a temporary name beside it and moved into place with ``os.replace``,
so a crash leaves each file either old or new, never half written; the manifest goes last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from specc.emit import card, formats, manifest
from specc.files import write_atomic

FILE_FORMATS = ("jsonl", "parquet")


@dataclass(frozen=True)
class Written:
    dir: Path
    files: dict[str, str | None]  # split -> path relative to dir
    counts: dict[str, int]
    manifest: dict


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _parquet(rows: list[dict], fmt: str, axes: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = formats.arrow_schema(fmt, axes)
    if not axes:
        rows = [{**r, "axes": None} for r in rows]
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_dataset(out_dir: Path, *, result, spec, spec_file: str, plan, fmt: str, file_format: str,
                  seed: int, model: str, judge: str, generation: dict, engines: dict | None = None,
                  shard: dict | None = None) -> Written:
    if fmt not in formats.FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if file_format not in FILE_FORMATS:
        raise ValueError(f"unknown file format {file_format!r}")
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    rows = formats.split_rows(result.pairs, fmt)
    axes = formats.axis_names(result.pairs)
    files: dict[str, str | None] = {}
    for split in ("train", "test"):
        rel = f"data/{split}.{file_format}"
        # an empty split is left out: `datasets` refuses a split with no data
        if rows[split]:
            blob = _jsonl(rows[split]) if file_format == "jsonl" else _parquet(rows[split], fmt, axes)
            write_atomic(out_dir / rel, blob)
            files[split] = rel
        else:
            files[split] = None
        for ext in FILE_FORMATS:  # files of an earlier compile that this one does not write
            stale = data_dir / f"{split}.{ext}"
            if f"data/{split}.{ext}" != files[split] and stale.exists():
                stale.unlink()
    counts = {k: len(v) for k, v in rows.items()}
    text = card.render_card(spec_id=spec.id, version=spec.version, spec_hash=spec.hash, fmt=fmt, files=files,
                            counts=counts, stats=result.stats, model=model, seed=seed, shard=shard,
                            judge=getattr(result, "judge", None), judge_model=judge)
    write_atomic(out_dir / "README.md", text.encode("utf-8"))
    man = manifest.build_manifest(spec=spec, spec_file=spec_file, plan=plan, fmt=fmt, file_format=file_format,
                                  seed=seed, model=model, judge=judge, engines=engines, generation=generation, rows=rows,
                                  files=files, scenarios_by_rule=result.scenarios_by_rule, stats=result.stats,
                                  shard=shard, judge_calibration=getattr(result, "judge", None))
    write_atomic(out_dir / "manifest.json", manifest.dumps(man).encode("utf-8"))
    return Written(out_dir, files, counts, man)
