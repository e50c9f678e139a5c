"""A snapshot of what the language produces for every spec file in the repo, to show that a
refactoring of the language's vocabulary (issue 13, "one language table") changes nothing.

For every ``*.spec`` under ``examples/``, ``stdlib/`` and ``tests/`` it records the
diagnostics of loading it, the IR as ``specc inspect --format json`` prints it, the spec and
rule hashes, the ``specc fmt`` output, and the defender's and violator's output shapes that
each rule's checks lower into. Files with errors are kept: their diagnostics are part of the
behaviour too.

    python bench/lang_snapshot.py /tmp/lang-before.json
    ... change the code ...
    python bench/lang_snapshot.py /tmp/lang-after.json
    python bench/lang_snapshot.py --compare /tmp/lang-before.json /tmp/lang-after.json
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _diag(d) -> dict:
    return {"code": d.code, "level": d.level, "message": d.message, "span": str(d.span)}


def _shape(shape) -> dict:
    """A lowered shape: the fields it sets (a field added later, at its default, is no
    change) and the schema arguments the model sees."""
    fields = {f.name: getattr(shape, f.name) for f in dataclasses.fields(shape)
              if getattr(shape, f.name) != f.default}
    return {"fields": fields, "schema": shape.field_kwargs()}


def snapshot_file(path: Path) -> dict:
    from specc.cli import inspect_json
    from specc.ir.resolve import load
    from specc.syntax.fmt import format_text
    from specc.synth.roles import lower_compliance, lower_violation

    text = path.read_text(encoding="utf-8")
    formatted, fmt_diags = format_text(text, str(path.relative_to(REPO)))
    result = load(path)
    out: dict = {
        "fmt": formatted,
        "fmt_diagnostics": [_diag(d) for d in fmt_diags],
        "diagnostics": [_diag(d) for d in result.diagnostics],
        "ok": result.ok,
    }
    if result.spec is not None:
        spec = result.spec
        out["hash"] = spec.hash
        out["ir"] = inspect_json(spec)
        out["rules"] = {r.id: {"hash": r.hash,
                               "compliance": _shape(lower_compliance(r.checks)),
                               "violation": _shape(lower_violation(r.checks))}
                        for r in spec.rules}
    return out


def snapshot() -> dict:
    files = sorted(p for top in ("examples", "stdlib", "tests") for p in (REPO / top).rglob("*.spec"))
    return {str(p.relative_to(REPO)): snapshot_file(p) for p in files}


def compare(before: dict, after: dict) -> int:
    same = sum(1 for k in before if k in after and before[k] == after[k])
    differ = sorted(k for k in before if k in after and before[k] != after[k])
    only = sorted(before.keys() ^ after.keys())
    print(f"{len(before)} files before, {len(after)} after: {same} identical, {len(differ)} differ, "
          f"{len(only)} in one snapshot only")
    for k in differ:
        fields = [f for f in before[k].keys() | after[k].keys() if before[k].get(f) != after[k].get(f)]
        print(f"  differs: {k}: {', '.join(sorted(fields))}")
    for k in only:
        print(f"  only in one: {k}")
    return 0 if not differ and not only else 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in argv[1:3])
        return compare(a, b)
    data = snapshot()
    Path(argv[0]).write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(data)} spec files, {sum(1 for v in data.values() if v['ok'])} load without errors -> {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
