"""The OpenAI-compatible server engine: vLLM, SGLang, llama.cpp's servers, OpenAI itself.

Each prompt is one ``POST /chat/completions`` with its own ``seed`` (the call's seed, from its
store key), so a prompt's text does not depend on which requests are in flight beside it:
``--concurrency 1`` and ``--concurrency 8`` give the same data. ``concurrency`` requests are in
flight at once (a thread pool).

**Dialects.** Servers disagree on how a JSON schema is asked for; the dialect names the form:

``json_schema``
    ``response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``:
    OpenAI, vLLM, SGLang, llama.cpp's C++ ``llama-server``.
``json_object``
    ``response_format: {"type": "json_object", "schema": ...}``: llama-cpp-python's server
    (``python -m llama_cpp.server``), which rejects ``json_schema``.
``structured_outputs``
    ``structured_outputs: {"json": ...}`` in the request body: vLLM's own form (vLLM >= 0.12,
    which removed ``guided_json``).

A server that rejects the chosen form (HTTP 400 / 422, or llama-cpp-python's HTTP 500 carrying a
request validation error) stops the compile with a message naming the other dialects; a server
that silently ignores it returns free text, which the pipeline's validation rejects like any
output that does not match the schema. The engine returns the raw strings; it never trusts them.

**Bounds.** ``--timeout`` bounds a whole request, from connecting to the body's last byte, not
each socket read: a server that sends one byte every few seconds, or a chunked body that never
ends, is cut at the deadline like one that never answers (a timeout, retried). A response body
is read up to :data:`MAX_BODY_BYTES`, counted after decompression (a gzip bomb stops there); a
larger one fails the request at once. Both are enforced below the OpenAI client, in
:class:`BoundedTransport`, so every request (listing the models included) has them.

**Faults.** 429, 5xx, a refused or lost connection, a timeout and a body that is not a chat
completion are retried ``tries`` times in all with a deterministic exponential backoff
(``backoff``, ``2 * backoff``, ...; a 429's ``Retry-After`` is honoured up to 60 s). When one
request is still failing after its tries, no new request starts, the ones in flight finish, and
:class:`EngineFault` carries the finished texts to the store: the compile exits 3 and a rerun
continues from there. ``SPECC_OPENAI_TRIES`` and ``SPECC_OPENAI_BACKOFF`` override the defaults
(4 tries, 0.5 s).

The handle's ``name`` is ``openai:<served model name>``: the store keys name the model, not the
URL, so the same model served from another host or port reuses the store. ``params`` holds the
dialect (a server that ignores one form answers differently).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Sequence

from specc.engines.base import EngineFault, Messages, ModelError, ModelHandle, Usage, check_seeds, count_usage
from specc.engines.bounded import body_too_large, bound_client

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

log = logging.getLogger("specc.openai")

DIALECTS: dict[str, str] = {
    "json_schema": "OpenAI, vLLM, SGLang, llama.cpp's llama-server",
    "json_object": "llama-cpp-python's server",
    "structured_outputs": "vLLM's own form",
}
DEFAULT_TRIES = 4
DEFAULT_BACKOFF = 0.5
MAX_RETRY_AFTER = 60.0
LIST_TIMEOUT = 30.0  # the bound of listing the models at load
MAX_BODY_BYTES = 16 * 1024 * 1024  # a response body, decompressed; a chat completion is kilobytes


# ASCII members of the shorthand classes (Python's \s also takes Unicode spaces such as U+00A0:
# the portable form lets those through as word characters; the checks decide compliance anyway)
_CLASSES = {"s": "\\x09-\\x0D\\x20", "d": "0-9"}
_NEGATED = {"S", "D"}


def portable_pattern(pattern: str) -> str:
    """``pattern`` as every server's schema-to-grammar converter reads it, with the same meaning.

    - anchored, ``^(...)$``: specc's patterns describe the whole value (Outlines' reading), and
      llama.cpp's converters (C++ and llama-cpp-python's) refuse a pattern without both anchors;
    - an escaped punctuation character (``\\.``, ``\\-``, ``\\\\`` ...) written as a hex escape,
      inside a character class (``[\\x2E]``: one atom, so a quantifier after it still applies to it
      alone): llama-cpp-python 0.3.36 copies ``\\.`` into its grammar, which llama.cpp cannot parse,
      and the server then crashes;
    - the class shorthands ``\\s`` and ``\\d`` (and ``\\S``, ``\\D`` outside a class) as explicit
      ASCII ranges: llama.cpp's grammar parser rejects them ("unknown escape") and the server dies.
    """
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if e in _CLASSES:  # \s, \d: llama.cpp's grammar parser knows no class shorthand
                out.append(_CLASSES[e] if in_class else f"[{_CLASSES[e]}]")
            elif e in _NEGATED and not in_class:
                out.append(f"[^{_CLASSES[e.lower()]}]")
            elif e.isalnum() or ord(e) > 0xFF:
                out.append(pattern[i : i + 2])
            else:
                hexed = f"\\x{ord(e):02X}"
                out.append(hexed if in_class else f"[{hexed}]")
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a leading ] is a member
                out.append("\\x5D")
                i += 1
            continue
        out.append(c)
        i += 1
    body = "".join(out)  # no escaped "$" is left: every escape of punctuation is hex now
    body = body[1:] if body.startswith("^") else body
    body = body[:-1] if body.endswith("$") else body
    return f"^({body})$"


def schema_of(output_type: type[BaseModel]) -> dict:
    """The JSON schema sent to the server: pydantic's, every object closed (strict mode needs it),
    every ``pattern`` made :func:`portable_pattern`."""

    def fix(node):
        if isinstance(node, dict):
            t = node.get("type")
            if (t == "object" or (isinstance(t, list) and "object" in t)) and "additionalProperties" not in node:
                node["additionalProperties"] = False
            if isinstance(node.get("pattern"), str) and (t == "string" or t is None):
                node["pattern"] = portable_pattern(node["pattern"])
            for k, v in node.items():
                if not (k == "pattern" and isinstance(v, str)):
                    fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)
        return node

    return fix(output_type.model_json_schema())


def schema_fields(dialect: str, schema: dict, name: str = "output") -> dict:
    """The keyword arguments of ``chat.completions.create`` that ask for ``schema`` in ``dialect``."""
    if dialect == "json_schema":
        name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "output"
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": name, "schema": schema, "strict": True}}}
    if dialect == "json_object":
        return {"response_format": {"type": "json_object", "schema": schema}}
    if dialect == "structured_outputs":
        return {"extra_body": {"structured_outputs": {"json": schema}}}
    raise ModelError(f"unknown dialect {dialect!r}: expected one of {', '.join(DIALECTS)}")


def _env_number(name: str, default: float, kind: Callable[[str], float], low: float,
                high: float = 3600.0) -> float:
    """A number from the environment between ``low`` and ``high``; ``nan`` and ``inf`` refused
    (``SPECC_OPENAI_BACKOFF=inf`` made every call fail locally and the compile exit 0)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw)
    except (ValueError, OverflowError):
        value = math.nan
    if not (low <= value <= high):  # false for nan
        raise ModelError(f"{name}={raw!r}: expected a number from {low:g} to {high:g}")
    return value


class _Failed(Exception):
    """One request failed for good; ``message`` is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _BadBody(Exception):
    """A 2xx answer that is not a chat completion."""


class _Stopped(Exception):
    """Another request failed for good: this one gave up without a result."""


def _server_message(e) -> str:
    body = getattr(e, "body", None)
    msg = body.get("message") if isinstance(body, dict) else None
    if not isinstance(msg, str) or not msg.strip():
        try:
            msg = e.response.text
        except Exception:  # noqa: BLE001
            msg = str(e)
    msg = " ".join(str(msg).split())
    # llama-cpp-python appends a Python stack to the message: the first sentence is what matters
    msg = msg.split(" File \"", 1)[0].strip()
    return msg[:300] + ("…" if len(msg) > 300 else "")


_FORM_WORDS = ("response_format", "json_schema", "json_object", "structured_outputs", "guided", "schema",
               "grammar")


def _about_the_form(message: str) -> bool:
    low = message.lower()
    return any(w in low for w in _FORM_WORDS)


def _cause(e: BaseException) -> BaseException:
    seen = e
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        if nxt is None or nxt is seen:
            break
        seen = nxt
    return seen


class OpenAIModelHandle(ModelHandle):
    engine = "openai"

    def __init__(self, base_url: str, model_name: str | None, *, concurrency: int = 8,
                 dialect: str = "json_schema", timeout: float = 120.0, tries: int | None = None,
                 backoff: float | None = None):
        import openai

        if dialect not in DIALECTS:
            raise ModelError(f"unknown dialect {dialect!r}: expected one of {', '.join(DIALECTS)}")
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)  # what messages name: never a password
        self.dialect = dialect
        self.timeout = float(timeout)
        self.concurrency = max(1, int(concurrency))
        self.batch_size = self.concurrency
        self.tries = int(tries if tries is not None else _env_number("SPECC_OPENAI_TRIES", DEFAULT_TRIES, int, 1))
        self.backoff = float(backoff if backoff is not None
                             else _env_number("SPECC_OPENAI_BACKOFF", DEFAULT_BACKOFF, float, 0))
        if self.tries < 1 or self.backoff < 0:
            raise ModelError("tries must be >= 1 and backoff >= 0")
        self._openai = openai
        # gzip and deflate are the encodings the bounded read inflates (under its cap)
        http = bound_client(openai.DefaultHttpxClient(timeout=self.timeout), MAX_BODY_BYTES)
        self.client = openai.OpenAI(base_url=self.base_url, api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
                                    timeout=self.timeout, max_retries=0, http_client=http,
                                    default_headers={"Accept-Encoding": "gzip, deflate"})
        self._lock = threading.Lock()
        self.requests = 0  # requests sent, retries included
        self.retries: dict[str, int] = {}  # retried problems, by kind ("HTTP 429", "timeout", ...)
        self.model_name = self._check_model(model_name)
        self.name = f"openai:{self.model_name}"

    @property
    def params(self) -> dict:
        return {"dialect": self.dialect}

    # -- requests ----------------------------------------------------------------------------

    def _with_retries(self, send: Callable[[], Any], what: str, stop: threading.Event | None = None,
                      logged: set | None = None) -> Any:
        """``send()`` until it succeeds, retrying what a server may recover from; :class:`_Failed` when
        it never does. A retry is logged once per problem and round in ``logged`` (one line, not
        one per request in flight)."""
        oa = self._openai
        start = time.monotonic()
        problem = ""
        for attempt in range(self.tries):
            if stop is not None and stop.is_set():
                raise _Stopped()
            wait = self.backoff * (2 ** attempt)
            with self._lock:
                self.requests += 1
            try:
                return send()
            except oa.APITimeoutError:
                kind, problem = "timeout", (f"did not answer within {self.timeout:g} s (--timeout, the bound of "
                                            "a whole request)")
            except oa.APIConnectionError as e:
                if body_too_large(e):  # the same answer again would be as large: no retry
                    raise _Failed(f"the server at {self.shown_url} answered with a body over the limit of "
                                  f"{MAX_BODY_BYTES // (1024 * 1024)} MiB ({what}); is this an OpenAI-compatible "
                                  "/v1 URL?") from None
                cause = _cause(e)
                if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                    kind, problem = "refused", "refused the connection (is the server running at that address?)"
                else:
                    kind, problem = "connection", f"dropped the connection ({type(cause).__name__}: {cause})"
            except oa.APIStatusError as e:
                status, msg = e.status_code, _server_message(e)
                if status == 429 or status >= 500:
                    if status >= 500 and "validation error" in msg.lower() and _about_the_form(msg):
                        raise _Failed(self._rejected(what, status, msg)) from None  # llama-cpp-python
                    kind, problem = f"HTTP {status}", f"answered HTTP {status}: {msg}"
                    after = e.response.headers.get("retry-after") if e.response is not None else None
                    try:
                        wait = max(wait, min(float(after), MAX_RETRY_AFTER)) if after else wait
                    except ValueError:
                        pass
                else:
                    raise _Failed(self._rejected(what, status, msg)) from None
            except _BadBody as e:
                kind, problem = "invalid body", f"answered with {e} (is this an OpenAI-compatible /v1 URL?)"
            if attempt + 1 < self.tries:
                with self._lock:
                    self.retries[kind] = self.retries.get(kind, 0) + 1
                    first = logged is None or (problem, attempt) not in logged
                    if logged is not None:
                        logged.add((problem, attempt))
                if first:
                    log.warning("openai server %s %s; retry %d/%d in %g s", self.shown_url, problem, attempt + 1,
                                self.tries - 1, wait)
                if stop is not None:
                    if stop.wait(wait):
                        raise _Stopped()
                else:
                    time.sleep(wait)
        spent = time.monotonic() - start
        raise _Failed(f"the server at {self.shown_url} {problem}; gave up after {self.tries} "
                      f"{'try' if self.tries == 1 else 'tries'} in {spent:.1f} s ({what}). Check that the server "
                      "is up and healthy, then run the same command again")

    def _rejected(self, what: str, status: int, msg: str) -> str:
        head = f"the server at {self.shown_url} rejected the request ({what}) with HTTP {status}: {msg}"
        if what.startswith("generation") and (status == 422 or status >= 500 or _about_the_form(msg)):
            others = "; ".join(f"--dialect {d} ({who})" for d, who in DIALECTS.items() if d != self.dialect)
            return (f"{head}\nit does not take the --dialect {self.dialect} request form for a JSON schema: "
                    f"try {others}")
        if status in (401, 403):
            return f"{head}\nset OPENAI_API_KEY to a key the server accepts"
        if status == 404:
            return f"{head}\ncheck the URL (it usually ends in /v1) and the model name after '#'"
        if status == 400 and what.startswith("generation"):
            others = ", ".join(f"--dialect {d}" for d in DIALECTS if d != self.dialect)
            return f"{head}\nif that is about the JSON schema request form, try {others}"
        return head

    def _check_model(self, model_name: str | None) -> str:
        """The model to ask for: the one named, checked against what the server lists, or the first
        it lists. A server that does not answer is a :class:`ModelError` before any generation."""
        client = self.client.with_options(timeout=min(self.timeout, LIST_TIMEOUT))
        try:
            models = self._with_retries(lambda: client.models.list().data, "listing the models (GET /models)")
        except _Failed as e:
            if model_name and "HTTP 404" in e.message:
                return model_name  # a server without /models: trust the name
            raise ModelError(e.message) from None
        ids = [getattr(m, "id", None) for m in models or []]
        ids = [i for i in ids if isinstance(i, str) and i]
        if model_name:
            if ids and model_name not in ids:
                raise ModelError(f"the server at {self.shown_url} does not serve {model_name!r}; it serves "
                                 f"{', '.join(repr(i) for i in ids[:10])}")
            return model_name
        if not ids:
            raise ModelError(f"the server at {self.shown_url} lists no model; name one with "
                             f"--model openai:{self.shown_url}#MODEL")
        return ids[0]

    def _complete(self, body: dict) -> tuple[str, int]:
        raw = self.client.chat.completions.with_raw_response.create(**body)
        text = raw.text
        try:
            data = json.loads(text)
        except ValueError:
            raise _BadBody(f"a body that is not JSON: {text[:80]!r}") from None
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _BadBody(f"JSON that is not a chat completion: {text[:80]!r}") from None
        if content is not None and not isinstance(content, str):
            raise _BadBody(f"a message content that is not text: {str(content)[:80]!r}")
        return content or "", _server_usage(data.get("usage"))

    def _run(self, bodies: list[dict], what: str) -> list[tuple[str, Usage | None]]:
        """Every body's completion, ``concurrency`` in flight; :class:`EngineFault` with the finished
        ones when a request fails for good."""
        stop = threading.Event()
        results: dict[int, tuple[str, Usage | None]] = {}
        failures: list[str] = []
        logged: set = set()

        def work(i: int) -> None:
            if stop.is_set():
                return
            try:
                results[i] = self._with_retries(lambda: self._complete(bodies[i]), what, stop, logged)
            except _Stopped:
                pass
            except _Failed as e:
                with self._lock:
                    failures.append(e.message)
                stop.set()

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(bodies)))) as pool:
            list(pool.map(work, range(len(bodies))))
        if failures:
            done = sorted(results)
            self.last_usage = None
            raise EngineFault(failures[0], done={i: results[i][0] for i in done},
                              usage={i: u for i, u in zip(done, self._usage([bodies[i]["messages"] for i in done],
                                                                            [results[i] for i in done]))})
        res = [results[i] for i in range(len(bodies))]
        self.last_usage = self._usage([b["messages"] for b in bodies], res)
        return res

    def _usage(self, prompts: list, results: list[tuple[str, Usage | None]]) -> list[Usage]:
        """The server's ``usage`` of each request; where it sent none, the tokens counted by
        ``tokenizer`` (when one is set) or estimated (:func:`~specc.engines.base.estimate_tokens`)."""
        missing = [i for i, (_, u) in enumerate(results) if u is None]
        counted = dict(zip(missing, count_usage(self.tokenizer, [prompts[i] for i in missing],
                                                [results[i][0] for i in missing])))
        return [u if u is not None else counted[i] for i, (_, u) in enumerate(results)]

    def _body(self, messages: Messages, max_new_tokens: int, seed: int, temperature: float) -> dict:
        return {"model": self.model_name, "messages": [dict(m) for m in messages],
                "max_tokens": int(max_new_tokens), "seed": int(seed), "temperature": float(temperature)}

    # -- the interface -----------------------------------------------------------------------

    def generate_json(self, prompts: Sequence[Messages], output_type: type[BaseModel], max_new_tokens: int,
                      seeds: Sequence[int], *, temperature: float = 0.0) -> list[str]:
        seeds = check_seeds(prompts, seeds)
        fields = schema_fields(self.dialect, schema_of(output_type), getattr(output_type, "__name__", "output"))
        bodies = [{**self._body(p, max_new_tokens, s, temperature), **fields} for p, s in zip(prompts, seeds)]
        self.last_usage = None
        return [t for t, _ in self._run(bodies, f"generation with --dialect {self.dialect}")]

    def generate_raw(self, prompts: Sequence[Messages], max_new_tokens: int, seeds: Sequence[int], *,
                     temperature: float = 0.0) -> tuple[list[str], int]:
        seeds = check_seeds(prompts, seeds)
        bodies = [self._body(p, max_new_tokens, s, temperature) for p, s in zip(prompts, seeds)]
        self.last_usage = None
        res = self._run(bodies, "free generation")
        return [t for t, _ in res], sum(u.completion_tokens or 0 for u in self.last_usage or [])


def _server_usage(usage: Any) -> Usage | None:
    """A chat completion's ``usage`` as a :class:`Usage`; None where the server sent none (or one
    without both counts as non-negative integers)."""
    if not isinstance(usage, dict):
        return None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    ok = all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**31 for x in (p, c))
    return Usage(p, c, "server") if ok else None


def redact_url(url: str) -> str:
    """``url`` with the password of its user part (``http://user:PASSWORD@host/v1``) replaced by
    ``***``, for every message, log line and error that names the server."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("@", 1)[-1] if "@" in url else url
    if not password:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
    return urlunsplit(parts._replace(netloc=netloc))


def load(base_url: str, model_name: str | None, *, concurrency: int = 8, dialect: str = "json_schema",
         timeout: float = 120.0, tries: int | None = None, backoff: float | None = None) -> OpenAIModelHandle:
    """A handle on the server at ``base_url`` (checked: it must list its models, or serve ``model_name``)."""
    return OpenAIModelHandle(base_url, model_name, concurrency=concurrency, dialect=dialect, timeout=timeout,
                             tries=tries, backoff=backoff)
