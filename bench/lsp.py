"""Language-server benchmark: `specc lsp` as a subprocess, driven by a real client (pygls's) over stdio.

A generated spec of ``--rules`` rules (default 5,000; ``bench/frontend.py``'s generator) is opened;
then one character is typed in a statement in the middle of the file and the time until the
server publishes that version's diagnostics is measured (the 0.15 s pause after a keystroke
included), ``--edits`` times. Hover on a rule's name and completion at the start of a line inside
a rule, in the middle of the file, are timed ``--requests`` times each.

    python bench/lsp.py                    # 5,000 rules
    python bench/lsp.py --rules 500 --format json

Targets: diagnostics after an edit within 1 s; hover and completion within 100 ms (the slowest of
the runs). Exit 1 if one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from frontend import generate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TARGET_EDIT_S = 1.0
TARGET_REQUEST_S = 0.1


async def run(n_rules: int, edits: int, requests: int) -> dict:
    text = generate(n_rules)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "big.spec"
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        lines = text.split("\n")
        middle = len(lines) // 2
        rule_line = next(i for i in range(middle, len(lines)) if lines[i].lstrip().startswith("rule "))
        stmt_line = next(i for i in range(rule_line, len(lines)) if lines[i].lstrip().startswith(("must", "should")))
        name_col = lines[rule_line].index("rule ") + 6
        quote_col = lines[stmt_line].index('"') + 1

        published: dict[int | None, float] = {}
        client = LanguageClient("bench", "1")

        @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            if params.uri == uri:
                published[params.version] = time.perf_counter()

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        await client.start_io(sys.executable, "-c", "from specc.cli import main; main()", "lsp", env=env)
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(),
                                                             root_uri=root.as_uri()))
        client.initialized(types.InitializedParams())

        async def wait_for(version: int) -> float:
            while version not in published:
                await asyncio.sleep(0.002)
            return published[version]

        t0 = time.perf_counter()
        client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri=uri, language_id="spec", version=1, text=text)))
        # the open publishes without a version: wait for any publish
        while not published:
            await asyncio.sleep(0.002)
        open_s = time.perf_counter() - t0

        edit_s = []
        for k in range(edits):
            version = k + 2
            at = types.Position(line=stmt_line, character=quote_col + k)
            t0 = time.perf_counter()
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text="x")]))
            edit_s.append(await wait_for(version) - t0)

        async def timed(call) -> list[float]:
            out = []
            for _ in range(requests):
                t0 = time.perf_counter()
                result = await call()
                out.append(time.perf_counter() - t0)
                assert result, "the request answered nothing"
            return out

        doc = types.TextDocumentIdentifier(uri=uri)
        hover_s = await timed(lambda: client.text_document_hover_async(types.HoverParams(
            text_document=doc, position=types.Position(line=rule_line, character=name_col))))
        completion_s = await timed(lambda: client.text_document_completion_async(types.CompletionParams(
            text_document=doc, position=types.Position(line=stmt_line + 1, character=0))))
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    return {"rules": n_rules, "bytes": len(text.encode()), "open_s": open_s,
            "edit_s": edit_s, "hover_s": hover_s, "completion_s": completion_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", type=int, default=5_000)
    ap.add_argument("--edits", type=int, default=5)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--format", choices=["text", "json"], default="text")
    args = ap.parse_args(argv)
    r = asyncio.run(run(args.rules, args.edits, args.requests))
    ok = {"edit": max(r["edit_s"]) <= TARGET_EDIT_S, "hover": max(r["hover_s"]) <= TARGET_REQUEST_S,
          "completion": max(r["completion_s"]) <= TARGET_REQUEST_S}
    if args.format == "json":
        print(json.dumps({**r, "ok": ok, "python": platform.python_version(), "cpus": os.cpu_count()}, indent=2))
    else:
        print(f"specc lsp, {r['rules']:,} rules ({r['bytes'] / 1e6:.1f} MB), Python {platform.python_version()}, "
              f"{os.cpu_count()} CPUs")
        print(f"  open -> diagnostics        {r['open_s']:.3f} s")
        for name, key, target in (("edit -> diagnostics", "edit_s", TARGET_EDIT_S),
                                  ("hover", "hover_s", TARGET_REQUEST_S),
                                  ("completion", "completion_s", TARGET_REQUEST_S)):
            xs = r[key]
            print(f"  {name:<26} median {statistics.median(xs) * 1000:7.1f} ms, max {max(xs) * 1000:7.1f} ms "
                  f"(target {target * 1000:.0f} ms){'' if max(xs) <= target else '  MISSED'}")
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
