"""`--model openai:URL` against real servers on 127.0.0.1.

A real `python -m llama_cpp.server` (llama-cpp-python's [server] extra) serves the embedded
SmolLM2 GGUF; small stdlib servers stand in only for faults a real server cannot be made to show
on demand (a server that never answers, answers garbage, or rate-limits). Every server here
stops by itself (a watchdog), and every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")

from specc.cli import main  # noqa: E402
from specc.synth import roles  # noqa: E402
from specc.engines import EngineFault, ModelError  # noqa: E402
from specc.engines import openai as oa  # noqa: E402
from specc.engines.provision import smollm2_gguf_path  # noqa: E402

SPEC = Path(__file__).parent / "data" / "compile" / "tiny.spec"  # a checked rule and a judged one
# one candidate, the greedy one: llama-cpp-python's server does not reproduce a *sampled* text for
# a seed across requests (see test_429_and_503_are_retried_then_succeed), so sampled candidates would
# make the byte-for-byte rerun tests below depend on the server's luck (seen once in a clean-clone
# run); candidate 0 still sends free generation through the real server
ARGS = ["--rounds", "1", "--max-chars", "48", "--per-rule", "1", "--retries", "1", "--candidates", "1"]
# few, short retries: a fault ends in seconds, not in the 4 x 0.5 s.. of the defaults
FAST_RETRIES = {"SPECC_OPENAI_TRIES": "3", "SPECC_OPENAI_BACKOFF": "0.1"}
SERVER_LIFETIME = 600  # s: a server started here exits by itself after this, whatever happens

# The real server, run exactly as `python -m llama_cpp.server` runs it, with one change: the
# model is loaded without llama.cpp's "extra buffer types" (weight repacking, AMX). The
# llama-cpp-python 0.3.36 wheel built on an AMX machine segfaults in ggml_backend_amx_mul_mat
# (`ldtilecfg`) on the first prompt longer than one token on this VM; without the extra buffers
# it runs the plain CPU kernels (the same numbers a machine without AMX computes).
# One thread for prompts too: the server's default (as many as there are cores) made prompt
# evaluation 4-7x slower on this shared 2-core machine.
LAUNCH = f"""
import os, runpy, sys, threading
threading.Timer({SERVER_LIFETIME}, os._exit, (0,)).start()
import llama_cpp.llama_cpp as L
_defaults = L.llama_model_default_params
def _params():
    p = _defaults()
    p.use_extra_bufts = False
    return p
L.llama_model_default_params = _params
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """A `llama_cpp.server` subprocess on 127.0.0.1 serving the embedded GGUF."""

    def __init__(self, port: int, log: Path):
        self.port, self.log = port, log
        self.url = f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: float = 90.0) -> "LlamaServer":
        cmd = [sys.executable, "-c", LAUNCH, "--model", str(smollm2_gguf_path()), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.kill()
        pytest.fail(f"llama_cpp.server did not answer /v1/models within {wait:g} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = LlamaServer(free_port(), tmp_path_factory.mktemp("llama") / "server.log").start()
    yield s
    s.kill()


@pytest.fixture(scope="module")
def spec_file() -> Path:
    return SPEC


def compile_cli(spec: Path, root: Path, url: str, *extra: str, env: dict | None = None):
    args = ["compile", str(spec), "-o", str(root / "out"), "--store", str(root / "store"),
            "--model", f"openai:{url}", *ARGS, *extra]
    return CliRunner(env=env).invoke(main, args)


def files_of(d: Path) -> dict[str, bytes]:
    # cost.json is the run's record (its seconds are measured), not data: docs/cost.md
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != "cost.json"}


def without_run_stats(manifest: bytes) -> dict:
    """The manifest less what describes the run that wrote it (calls generated vs reused)."""

    def drop(node):
        if isinstance(node, dict):
            return {k: drop(v) for k, v in node.items() if k not in ("generated", "reused")}
        return [drop(v) for v in node] if isinstance(node, list) else node

    return drop(json.loads(manifest))


def store_rows(store: Path) -> int:
    db = store / "store.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def assert_exit_3(res) -> None:
    assert res.exit_code == 3, res.output
    assert isinstance(res.exception, SystemExit), res.exception  # a message, not a traceback
    assert "Traceback" not in res.output


@pytest.fixture(scope="module")
def compiled(server, spec_file, tmp_path_factory):
    """The reference: an uninterrupted compile, one request at a time."""
    root = tmp_path_factory.mktemp("c1")
    res = compile_cli(spec_file, root, server.url, "--dialect", "json_object", "--concurrency", "1")
    assert res.exit_code == 0, res.output
    assert "requests were in flight" not in res.output  # one at a time: no note about reruns
    return root, res


# -- the real server ------------------------------------------------------------------------------


def test_json_object_compile_gives_valid_records(compiled):
    root, res = compiled
    man = json.loads((root / "out" / "manifest.json").read_text())
    assert man["model"]["name"] == f"openai:{smollm2_gguf_path()}"  # the served model, not the URL
    assert '"dialect": "json_object"' in json.dumps(man)  # the engine's params are recorded
    s = man["stats"]
    assert s["generated"] > 0 and s["verified"] + s["dropped"] == s["scenarios"] > 0
    rows = [json.loads(line) for line in (root / "out" / "data" / "train.jsonl").read_text().splitlines()]
    assert rows
    for r in rows:
        assert r["prompt"] and r["chosen"][0]["content"] and r["rejected"][0]["content"]
        assert r["chosen"][0]["content"] != r["rejected"][0]["content"]
        if r["rule_ids"] == ["t.tiny.no_insults"] and r["boundary"] in ("violation", "conflict"):
            # verified by the rule's check, not contains("idiot"): chosen passes it, rejected fails it
            assert "idiot" not in r["chosen"][0]["content"].lower() and "idiot" in r["rejected"][0]["content"].lower()
    # every role's output type reached the server as a grammar it applied: every answer validates
    # (a schema the server cannot turn into a grammar falls back to free JSON, which does not)
    with sqlite3.connect(root / "store" / "store.sqlite") as conn:
        attempts = conn.execute("SELECT role, outcome, detail FROM attempts").fetchall()
    # (the chosen sides come from the on-policy candidates, free text through the same server; the
    # defender's type is the violator's, asked only for a side no candidate gave)
    assert {r for r, _, _ in attempts} >= {"attacker", "candidate", "violator", "judge"}
    # an answer the grammar shaped can still be cut by the token budget (a loop: "EOF while
    # parsing"), and the server's JSON-string grammar lets a raw newline through (seen in CI:
    # "control character ... found while parsing a string"); the pipeline regenerates both. Free
    # JSON would fail otherwise (extra or missing keys, wrong types, no JSON at all)
    bad = [(r, o, d) for r, o, d in attempts if o != "ok"]
    assert all(o == "invalid-output" and ("EOF while parsing" in (d or "") or "control character" in (d or ""))
               for _, o, d in bad), bad
    assert len(bad) <= len(attempts) // 10, bad


def test_json_schema_dialect_is_rejected_with_a_clear_message(server, spec_file, tmp_path):
    res = compile_cli(spec_file, tmp_path, server.url, "--dialect", "json_schema")
    assert_exit_3(res)
    out = res.output
    assert server.url in out and "--dialect json_schema" in out and "--dialect json_object" in out
    assert "--dialect structured_outputs" in out and "Input should be 'text' or 'json_object'" in out
    assert store_rows(tmp_path / "store") == 0


def test_unknown_model_name_is_refused_at_load(server, spec_file, tmp_path):
    res = compile_cli(spec_file, tmp_path, server.url + "#no-such-model", "--dialect", "json_object")
    assert_exit_3(res)
    assert "does not serve 'no-such-model'" in res.output and str(smollm2_gguf_path()) in res.output


def test_killed_server_rerun_at_concurrency_4_gives_the_data_of_the_uninterrupted_run(compiled, spec_file,
                                                                                     tmp_path):
    """A second real server dies mid-run (4 requests in flight): exit 3 with the finished calls
    stored; the same server again, the same command: the bytes of the uninterrupted compile at
    concurrency 1. Every prompt carries its own seed; what this server may still change is the
    KV-cache prefix it reuses from the request before, which moves logits slightly (docs/compile.md:
    on examples/bank at concurrency 4 it changed texts). On this spec's short prompts it changes no
    token, so the bytes must match: a rerun that re-asked kept calls or lost one would not."""
    ref, _ = compiled
    s2 = LlamaServer(free_port(), tmp_path / "server2.log").start()
    root = tmp_path / "run"
    killed_at = []

    def kill_after_some_rows():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and s2.proc.poll() is None:
            n = store_rows(root / "store")
            if n >= 6:
                killed_at.append(n)
                s2.kill()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_some_rows, daemon=True)
    watcher.start()
    try:
        res = compile_cli(spec_file, root, s2.url, "--dialect", "json_object", "--concurrency", "4",
                          env=FAST_RETRIES)
        watcher.join(timeout=10)
        assert killed_at, "the server was not killed (the compile finished first?)\n" + res.output
        assert_exit_3(res)
        assert s2.url in res.output and "run the same command again" in res.output
        assert "refused the connection" in res.output or "dropped the connection" in res.output
        assert not (root / "out" / "manifest.json").exists()
        kept = store_rows(root / "store")
        assert kept >= killed_at[0]
        log_size = s2.log.stat().st_size
        s2.start()  # the same server again, on the same port
        res = compile_cli(spec_file, root, s2.url, "--dialect", "json_object", "--concurrency", "4",
                          env=FAST_RETRIES)
        assert res.exit_code == 0, res.output
        assert "note: 4 requests were in flight" in res.output and "--concurrency 1" in res.output
    finally:
        s2.kill()
    # the rerun asked the server only for what was not kept: every call of the uninterrupted run
    # less the kept ones
    with open(s2.log, "rb") as f:
        f.seek(log_size)
        asked = f.read().decode(errors="replace").count('"POST /v1/chat/completions HTTP/1.1" 200')
    calls = store_rows(ref / "store")
    assert asked == calls - kept and kept > 0, (asked, calls, kept)
    a, b = files_of(ref / "out"), files_of(root / "out")
    assert without_run_stats(a.pop("manifest.json")) == without_run_stats(b.pop("manifest.json"))
    assert a == b


# -- faults a real server cannot be made to show on demand ----------------------------------------


class Fake:
    """A stdlib HTTP server on 127.0.0.1; ``answer(handler, body)`` writes each POST's response."""

    def __init__(self, answer, models=("fake-model",)):
        fake = self
        self.bodies: list[dict] = []
        self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    fake.send(self, 200, {"object": "list", "data": [{"id": m, "object": "model"} for m in models]})
                else:
                    fake.send(self, 404, {"error": {"message": "not found"}})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw)
                fake.bodies.append(body)
                answer(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.watchdog = threading.Timer(120, self.close)

    @staticmethod
    def send(h, status: int, obj=None, raw: bytes | None = None, ctype: str = "application/json"):
        data = raw if raw is not None else json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("content-type", ctype)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def __enter__(self):
        self.thread.start()
        self.watchdog.start()
        return self

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __exit__(self, *exc):
        self.watchdog.cancel()
        self.close()


def completion(content: str) -> dict:
    return {"id": "x", "object": "chat.completion", "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}


def test_refused_connection_exits_3_before_generating(spec_file, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    env = {**os.environ, **FAST_RETRIES}
    done = subprocess.run([sys.executable, "-m", "specc.cli", "compile", str(spec_file), "-o", str(tmp_path / "out"),
                           "--store", str(tmp_path / "store"), "--model", f"openai:{url}", *ARGS],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"the server at {url} refused the connection" in done.stderr and "gave up after 3 tries" in done.stderr
    assert "retry 1/2" in done.stderr and not (tmp_path / "out").exists()


def test_timeout_exits_3(spec_file, tmp_path):
    def hang(h, body):
        fake.release.wait(30)  # answers only when the test ends

    with Fake(hang) as fake:
        t0 = time.monotonic()
        res = compile_cli(spec_file, tmp_path, fake.url, "--timeout", "1", "--concurrency", "4", env=FAST_RETRIES)
        spent = time.monotonic() - t0
    assert_exit_3(res)
    assert f"the server at {fake.url} did not answer within 1 s" in res.output and "3 tries" in res.output
    # the 4 first requests in flight time out together; no request is started after the fault
    assert len(fake.bodies) <= 4 * 3 and spent < 30
    assert store_rows(tmp_path / "store") == 0


def test_invalid_json_body_exits_3(spec_file, tmp_path):
    with Fake(lambda h, body: Fake.send(h, 200, raw=b"<html>surprise</html>", ctype="text/html")) as fake:
        res = compile_cli(spec_file, tmp_path, fake.url, env=FAST_RETRIES)
    assert_exit_3(res)
    assert f"the server at {fake.url} answered with a body that is not JSON" in res.output
    assert "'<html>surprise</html>'" in res.output


def test_429_and_503_are_retried_then_succeed(server, caplog):
    """A proxy in front of the real server answers 429, then 503, then passes requests on."""
    faults = [429, 503]

    def flaky(h, body):
        if faults:
            status = faults.pop(0)
            return Fake.send(h, status, {"error": {"message": f"try later ({status})"}})
        req = urllib.request.Request(server.url + "/chat/completions", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            Fake.send(h, r.status, raw=r.read())

    out_type = roles.attacker_type(40)
    prompts = [[{"role": "user", "content": "Ask me about cats."}]]
    seeds = [5]
    with Fake(flaky, models=(str(smollm2_gguf_path()),)) as fake, caplog.at_level(logging.WARNING, "specc.openai"):
        h = oa.load(fake.url, None, concurrency=2, dialect="json_object", tries=4, backoff=0.05)
        [got] = h.generate_json(prompts, out_type, 24, seeds, temperature=0.8)
    out_type.model_validate_json(got)  # the real server's answer, passed through
    # a retry is the same request: same seed, messages and schema (llama-cpp-python's server does
    # not reproduce a sampled text for a seed across requests, so the texts are not compared)
    assert fake.bodies[0] == fake.bodies[1] == fake.bodies[2] and fake.bodies[0]["seed"] == 5
    assert h.retries == {"HTTP 429": 1, "HTTP 503": 1} and h.requests == 1 + 1 + 2  # models, prompt, retries
    assert len(fake.bodies) == 3
    msgs = [r.getMessage() for r in caplog.records]
    assert any("answered HTTP 429: try later (429); retry 1/3" in m for m in msgs), msgs


@pytest.mark.parametrize("dialect", ["json_schema", "json_object", "structured_outputs"])
def test_dialect_request_bodies(dialect):
    """What each dialect sends (vLLM's structured_outputs cannot run here: its body is checked)."""
    out_type = roles.attacker_type(40)
    with Fake(lambda h, body: Fake.send(h, 200, completion('{"user": "hello there"}'))) as fake:
        h = oa.load(fake.url, "fake-model", concurrency=2, dialect=dialect)
        texts = h.generate_json([[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]],
                                out_type, 32, [11, 12], temperature=0.8)
    assert texts == ['{"user": "hello there"}'] * 2
    schema = oa.schema_of(out_type)
    bodies = sorted(fake.bodies, key=lambda b: b["seed"])
    assert [b["seed"] for b in bodies] == [11, 12] and [b["messages"][0]["content"] for b in bodies] == ["a", "b"]
    for b in bodies:
        assert b["model"] == "fake-model" and b["max_tokens"] == 32 and b["temperature"] == 0.8
        if dialect == "json_schema":
            assert b["response_format"] == {"type": "json_schema",
                                            "json_schema": {"name": "AttackerTurn", "schema": schema, "strict": True}}
        elif dialect == "json_object":
            assert b["response_format"] == {"type": "json_object", "schema": schema}
        else:
            assert "response_format" not in b and b["structured_outputs"] == {"json": schema}
    assert h.name == "openai:fake-model" and h.params == {"dialect": dialect}


def test_free_generation_sends_no_schema_and_counts_tokens():
    with Fake(lambda h, body: Fake.send(h, 200, completion("plain words"))) as fake:
        h = oa.load(fake.url, None, concurrency=2, dialect="json_object")
        texts, used = h.generate_raw([[{"role": "user", "content": "a"}]] * 3, 20, [1, 2, 3])
    assert texts == ["plain words"] * 3 and used == 3 * 5
    assert sorted(b["seed"] for b in fake.bodies) == [1, 2, 3]
    assert not any("response_format" in b or "structured_outputs" in b for b in fake.bodies)


def test_a_400_names_the_other_dialects_and_is_not_retried():
    def reject(h, body):
        Fake.send(h, 400, {"error": {"message": "unknown field structured_outputs"}})

    with Fake(reject) as fake:
        h = oa.load(fake.url, None, concurrency=2, dialect="structured_outputs", tries=4, backoff=0.05)
        with pytest.raises(EngineFault) as e:
            h.generate_json([[{"role": "user", "content": "a"}]] * 3, roles.attacker_type(40), 32, [1, 2, 3])
    msg = str(e.value)
    assert "rejected the request" in msg and "HTTP 400" in msg and "unknown field structured_outputs" in msg
    assert "--dialect json_schema" in msg and "--dialect json_object" in msg
    assert e.value.done == {} and len(fake.bodies) <= 2 and h.retries == {}


def test_a_server_that_does_not_answer_at_load_is_a_model_error():
    def never(h, body):
        pass

    with Fake(never) as fake:
        fake.httpd.RequestHandlerClass.do_GET = lambda self: fake.release.wait(30)
        with pytest.raises(ModelError, match="did not answer within 1 s"):
            oa.load(fake.url, None, timeout=1, tries=2, backoff=0.05)


def test_portable_pattern_keeps_the_meaning():
    import re

    cases = {
        "I'm sorry, but I can't help with that\\. [^\"\\\\\\x00-\\x1f]{1,10}": "I'm sorry, but I can't help with that. ok",
        r"idiot[^\"\\]{3,8}": "idiot you",
        r"[A-Za-z ,.()\-]{0,8}": "a-b (c).",
        r"a\.{2}b\$": "a..b$",
        r"^abc$": "abc",
        r'[^"\\\s\x00-\x1f]+( [^"\\\s\x00-\x1f]+){0,3}': "three short words",  # roles.WORD, word-bounded
        r"\d{2}\s[a-z]+": "42 apples",
    }
    for pattern, sample in cases.items():
        p = oa.portable_pattern(pattern)
        assert p.startswith("^(") and p.endswith(")$") and "\\." not in p and "\\-" not in p, p
        assert "\\s" not in p and "\\S" not in p and "\\d" not in p, p
        assert re.fullmatch(p, sample) and re.fullmatch(pattern, sample)
        assert not re.fullmatch(p, sample + "\"")
    assert not re.fullmatch(oa.portable_pattern(r"a\.b"), "axb")
    word = oa.portable_pattern(r'[^"\\\s\x00-\x1f]+( [^"\\\s\x00-\x1f]+){0,3}')
    assert not re.fullmatch(word, "two\twords") and not re.fullmatch(word, "one  two")
    nonspace = oa.portable_pattern(r"\S+")
    assert re.fullmatch(nonspace, "a-b") and not re.fullmatch(nonspace, "a b") and "\\S" not in nonspace


def test_word_bounded_and_not_starting_patterns_run_on_the_real_server(server):
    """`\\s` in a schema pattern (roles.WORD, the not_letter head) killed llama-cpp-python's server
    ("unknown escape"); sent in portable form, the server answers and stays up."""
    import re

    h = oa.load(server.url, None, concurrency=1, dialect="json_object", tries=1)
    prompt = [[{"role": "user", "content": "Say something kind."}]]
    shape = roles.Shape(not_letter="I", max_chars=40)  # [^I"\\\s...]: a char-bounded pattern
    out_type = roles.answer_type(shape)
    # a JSON string char is at most 4 tokens: room for the whole bounded answer
    [text] = h.generate_json(prompt, out_type, 4 * shape.max_chars + 24, [3])
    answer = json.loads(text)["answer"]
    assert re.fullmatch(out_type.model_json_schema()["properties"]["answer"]["pattern"], answer), answer
    # a word-bounded pattern bounds words, not their length (the token budget does): a reply, cut or not
    [text] = h.generate_json(prompt, roles.answer_type(roles.Shape(max_words=6, max_chars=48)), 40, [3])
    assert text.lstrip().startswith("{")
    assert server.proc.poll() is None  # the server is still up


# -- what the calls cost ---------------------------------------------------------------------------


def test_the_servers_usage_is_stored_with_each_call_and_summed(compiled):
    root, res = compiled
    with sqlite3.connect(root / "store" / "store.sqlite") as conn:
        rows = conn.execute("SELECT role, prompt_tokens, completion_tokens, seconds, counted FROM results").fetchall()
    assert rows and all(counted == "server" and p > 0 and c > 0 and sec >= 0 for _, p, c, sec, counted in rows)
    cost = json.loads((root / "out" / "cost.json").read_text())
    assert cost["counted"] == {"server": cost["total"]["calls"]}
    assert cost["total"]["prompt_tokens"] == sum(p for _, p, _, _, _ in rows)
    assert cost["total"]["completion_tokens"] == sum(c for _, _, c, _, _ in rows)
    assert set(cost["by_role"]) >= {"attacker", "candidate"}
    assert "cost: " in res.output and "by role: " in res.output


def test_a_server_that_sends_usage_is_believed_and_one_that_does_not_is_counted():
    with_usage = lambda h, body: Fake.send(h, 200, completion("plain words here"))  # noqa: E731

    def without(h, body):
        c = completion("plain words here")
        del c["usage"]
        Fake.send(h, 200, c)

    prompts = [[{"role": "user", "content": "Tell me about the weather today."}]] * 2
    with Fake(with_usage) as fake:
        h = oa.load(fake.url, None, concurrency=2, dialect="json_object")
        h.generate_raw(prompts, 20, [1, 2])
    assert [(u.prompt_tokens, u.completion_tokens, u.counted) for u in h.last_usage] == [(3, 5, "server")] * 2
    with Fake(without) as fake:
        h = oa.load(fake.url, None, concurrency=2, dialect="json_object")
        h.generate_json(prompts, roles.attacker_type(40), 20, [1, 2])
        assert all(u.counted == "estimate" and u.prompt_tokens > 0 and u.completion_tokens == 3
                   for u in h.last_usage)
        # with a tokenizer at hand, the engine counts with it
        h.tokenizer = lambda text, add_special_tokens=False: {"input_ids": text.split()}
        h.generate_raw(prompts, 20, [1, 2])
        assert [(u.completion_tokens, u.counted) for u in h.last_usage] == [(3, "tokenizer")] * 2
