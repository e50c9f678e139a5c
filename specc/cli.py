"""The ``specc`` command line: the one place that wires the phases together.

Exit codes are stable: 0 success, 1 the input has errors (or a gate failed), 2 usage errors
(click's own), 3 an operation failed for a reason outside the spec (model, disk, server).
Every command that reports has ``--format``; user errors never print a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from specc import __version__
from specc.diagnostics import CODES, Diagnostic, SourceCache, render_github, render_json, render_text

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


def _emit_diagnostics(diags: list[Diagnostic], sources: SourceCache, fmt: str, stream=None) -> None:
    stream = stream or sys.stdout
    if fmt == "json":
        click.echo(render_json(diags), file=stream)
    elif fmt == "github":
        if diags:
            click.echo(render_github(diags), file=stream)
    elif diags:
        click.echo(render_text(diags, sources), file=stream)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="specc")
def main() -> None:
    """specc: compile a behaviour specification into verified preference data."""


# -- check ------------------------------------------------------------------------------


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text", show_default=True)
def check(files: tuple[Path, ...], strict: bool, fmt: str) -> None:
    """Parse, resolve and lint spec FILES; report every problem found.

    Exit 0 when clean, 1 on errors (or on warnings with --strict), 2 on usage errors.
    """
    from specc.ir.resolve import load

    all_diags: list[Diagnostic] = []
    sources = SourceCache()
    n_rules = 0
    for f in files:
        result = load(f)
        all_diags.extend(result.diagnostics)
        for name, tree in result.files.items():
            sources.add(name, tree.text)
        if result.spec is not None:
            n_rules += len(result.spec.rules)
    seen, diags = set(), []
    for d in sorted(all_diags, key=Diagnostic.sort_key):
        if (d.code, d.span, d.message) not in seen:
            seen.add((d.code, d.span, d.message))
            diags.append(d)
    errors = [d for d in diags if d.level == "error"]
    warnings = [d for d in diags if d.level == "warning"]
    _emit_diagnostics(diags, sources, fmt)
    if fmt == "text":
        summary = f"{len(files)} file{'s' if len(files) != 1 else ''} checked"
        if not errors:
            summary += f", {n_rules} rules"
        summary += f": {len(errors)} error{'s' if len(errors) != 1 else ''}, " \
                   f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
        click.echo(summary, err=bool(diags))
    if errors or (strict and warnings):
        sys.exit(EXIT_ERRORS)


# -- inspect ----------------------------------------------------------------------------


def _load_or_exit(path: Path, fmt: str = "text"):
    from specc.ir.resolve import load

    result = load(path)
    if not result.ok:
        _emit_diagnostics(result.errors, result.sources, "json" if fmt == "json" else "text", sys.stderr)
        click.echo(f"{path}: {len(result.errors)} error(s); fix them first (see `specc check {path}`)", err=True)
        sys.exit(EXIT_ERRORS)
    return result


def inspect_json(spec) -> dict:
    data = spec.model_dump(mode="json")
    for rule, r in zip(data["rules"], spec.rules):
        rule["checks_source"] = list(r.check_sources)
    return data


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def inspect(file: Path, fmt: str) -> None:
    """Print the resolved IR of a spec: effective rules with ids and hashes."""
    result = _load_or_exit(file, fmt)
    spec = result.spec
    if fmt == "json":
        click.echo(json.dumps(inspect_json(spec), indent=2, ensure_ascii=False))
        return
    click.echo(f"spec {spec.id} version {spec.version}  hash {spec.hash}")
    if spec.extends:
        click.echo(f"  extends {spec.extends}")
    for imp in spec.imports:
        click.echo(f"  imports {imp}")
    for a in spec.axes:
        click.echo(f"  axis {a.name} = {list(a.values)}")
    click.echo(f"{len(spec.rules)} rules:")
    for r in spec.rules:
        click.echo(f"  {r.id}  [{r.hash[:12]}]  {r.kind} {r.modality} · {r.authority} · {r.severity}"
                   f"  ({r.span.file}:{r.span.start_line})")
        click.echo(f"      {r.statement}")
        for c in r.check_sources:
            click.echo(f"      check {c}")


# -- schema / explain -------------------------------------------------------------------


@main.command()
def schema() -> None:
    """Print the JSON Schema of the resolved IR (what `inspect --format json` prints)."""
    from specc.ir.model import Spec

    click.echo(json.dumps(Spec.model_json_schema(), indent=2, sort_keys=True))


@main.command()
@click.argument("code", required=False)
def explain(code: str | None) -> None:
    """Explain a diagnostic CODE (e.g. E101 or unknown-check); without CODE, list them all."""
    if code is None:
        for c in CODES.values():
            click.echo(f"{c.code}  {c.name:<26} {c.summary}")
        return
    match = CODES.get(code.upper()) or next((c for c in CODES.values() if c.name == code.lower()), None)
    if match is None:
        click.echo(f"unknown diagnostic code {code!r}; run `specc explain` for the list", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"{match.code} {match.name} ({match.level})\n\n{match.summary}.\n\n{match.doc}")


if __name__ == "__main__":  # pragma: no cover
    main()
