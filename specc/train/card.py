"""The training card: ``OUT/README.md``, rendered from ``OUT/training.json``."""

from __future__ import annotations


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def render_card(record: dict) -> str:
    params = record["parameters"]
    ds = record["dataset"]
    spec = ds.get("spec") or {}
    method = params["method"].upper() + (" with LoRA (merged)" if params.get("lora") else " (full fine-tune)")
    title = f"{spec.get('id', ds['dir'])} {spec.get('version', '')}".strip()
    lines = [
        "---",
        "library_name: transformers",
        f"base_model: {record['base_model']}",
        f"tags: [specc, trl, {params['method']}]",
        "---",
        "",
        f"# {title}: {method}",
        "",
        f"`{record['base_model']}` trained by `specc train` (specc {record['specc_version']}) on the train split of "
        f"`{ds['dir']}`. Evaluate it with `specc eval SPEC --model THIS_DIR --data {ds['dir']}` (the test split).",
        "",
        "| | |",
        "|---|---|",
        f"| base model | `{record['base_model']}` |",
        f"| spec | {spec.get('id', 'unknown')} {spec.get('version', '')}, hash `{spec.get('hash', 'unknown')}` |",
        f"| dataset | `{ds['dir']}`: {record['records']} {params['method']} records"
        + (f" (made from {record['records_from']} records)" if record.get("records_from") != params["method"] else "")
        + (f"; {record['records_longer_than_max_length']} more left out, their prompt filling max_length"
           if record.get("records_longer_than_max_length") else "")
        + " |",
    ]
    for f in ds.get("files", []):
        lines.append(f"| data file | `{f['path']}` sha256 `{f['sha256']}` |")
    if ds.get("manifest_sha256"):
        lines.append(f"| manifest.json | sha256 `{ds['manifest_sha256']}` |")
    if ds.get("compiled_with"):
        lines.append(f"| data compiled with | `{ds['compiled_with']}` |")
    lines.append(f"| method | {method} |")
    for k, v in params.items():
        if k not in ("method", "lora"):
            lines.append(f"| {k.replace('_', ' ')} | {_fmt(v)} |")
    lines.append(f"| steps done | {record['steps_done']}"
                 + (f" (resumed from step {record['resumed_from_step']})" if record.get("resumed_from_step") else "")
                 + " |")
    if record.get("train_loss") is not None:
        lines.append(f"| mean training loss | {record['train_loss']:.4f} |")
    versions = ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items())
    if versions:
        lines.append(f"| versions | {versions} |")
    losses = record.get("losses") or []
    if losses:
        cols = [c for c in ("loss", "rewards/accuracies", "rewards/margins", "learning_rate") if c in losses[0]]
        lines += ["", "## Loss curve", "", "| step | " + " | ".join(cols) + " |",
                  "|---:|" + "---:|" * len(cols)]
        for e in losses:
            lines.append(f"| {e['step']} | " + " | ".join(_fmt(e.get(c, '')) for c in cols) + " |")
    return "\n".join(lines) + "\n"
