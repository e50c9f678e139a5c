"""The one bounded HTTP read: every request the OpenAI client sends goes through it.

The OpenAI client's ``timeout`` bounds each socket operation, not the request, and its bodies
have no size bound, so a server that drips a byte every few seconds, sends a chunked body that
never ends, or a small gzip body that inflates to gigabytes keeps a compile running (or growing)
without end. :func:`bound_client` wraps the client's HTTP transports so that

- a request ends at its **deadline**: ``timeout`` seconds after it starts, whatever the server
  does, from connecting to the body's last byte. Every socket read or write waits at most for
  what is left of it (a network backend wraps each connection), and the body's reader checks it
  between chunks; past it, the request fails as a timeout.
- a response body is read up to ``cap`` bytes, **counted after decompression**: gzip and
  deflate are inflated here, never more than ``cap + 1`` bytes at a time; another content
  encoding is refused. Past the cap the request fails with :class:`BodyTooLarge`.

The OpenAI client is built on ``httpx`` (``httpx2`` in its 3.x releases), so the classes are
made for whichever module that is.
"""

from __future__ import annotations

import functools
import importlib
import threading
import time
import zlib


class _Deadline(threading.local):
    """The deadline of the request this thread is sending (the client is synchronous: a
    request is sent and its body read in the thread that asked for it)."""

    at: float | None = None


_deadline = _Deadline()

# zlib's window bits for each content encoding read here (47: a gzip or zlib header, detected)
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 47}


def _left(timeout: float | None, expired) -> float | None:
    at = _deadline.at
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


@functools.lru_cache(maxsize=2)
def _classes(httpx_name: str):
    """The transport, network backend and error classes for the ``httpx`` module named."""
    hx = importlib.import_module(httpx_name)
    hc = importlib.import_module(httpx_name.replace("httpx", "httpcore"))

    class BodyTooLarge(hx.ReadError):
        """A response body over the cap (after decompression)."""

    class DeadlineStream:
        """A connection whose reads and writes wait at most until the request's deadline."""

        def __init__(self, inner):
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, _left(timeout, hc.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _left(timeout, hc.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                        _left(timeout, hc.ConnectTimeout)))

        def get_extra_info(self, info: str):
            return self._inner.get_extra_info(info)

    class DeadlineBackend:
        def __init__(self, inner):
            self._inner = inner

        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            return DeadlineStream(self._inner.connect_tcp(host, port, _left(timeout, hc.ConnectTimeout),
                                                          local_address, socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):
            return DeadlineStream(self._inner.connect_unix_socket(path, _left(timeout, hc.ConnectTimeout),
                                                                  socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    class BoundedBody(hx.SyncByteStream):
        def __init__(self, inner, encoding: str, cap: int):
            self._inner, self._encoding, self._cap = inner, encoding, cap

        def __iter__(self):
            cap, raw, size = self._cap, 0, 0
            inflate = zlib.decompressobj(_WBITS[self._encoding]) if self._encoding else None
            for chunk in self._inner:
                if _deadline.at is not None and time.monotonic() > _deadline.at:
                    raise hx.ReadTimeout("the request's deadline passed while its body was read")
                raw += len(chunk)
                if inflate is not None:
                    try:
                        chunk = inflate.decompress(chunk, cap + 1 - size)  # never more than the cap
                    except zlib.error as e:
                        raise hx.DecodingError(f"a {self._encoding} body that does not inflate: {e}") from None
                size += len(chunk)
                if size > cap or raw > cap:
                    raise BodyTooLarge(f"a response body over the limit of {cap:,} bytes"
                                       + (" once inflated" if inflate is not None else ""))
                if chunk:
                    yield chunk

        def close(self) -> None:
            self._inner.close()

    class BoundedTransport(hx.BaseTransport):
        def __init__(self, inner, cap: int):
            self._inner, self._cap = inner, cap
            pool = getattr(inner, "_pool", None)
            if pool is not None and hasattr(pool, "_network_backend"):
                pool._network_backend = DeadlineBackend(pool._network_backend)

        def handle_request(self, request):
            total = (request.extensions.get("timeout") or {}).get("read")
            _deadline.at = None if total is None else time.monotonic() + total
            response = self._inner.handle_request(request)
            encoding = response.headers.get("content-encoding", "").strip().lower()
            if encoding in ("", "identity"):
                encoding = ""
            elif encoding not in _WBITS:
                response.close()
                raise hx.DecodingError(f"a body in the content encoding {encoding!r}, which specc does not read "
                                       "(it asks for gzip or deflate)", request=request)
            headers = [(k, v) for k, v in response.headers.raw
                       if k.lower() not in (b"content-encoding", b"content-length")]
            return hx.Response(response.status_code, headers=headers,
                               stream=BoundedBody(response.stream, encoding, self._cap),
                               extensions=response.extensions)

        def close(self) -> None:
            self._inner.close()

    return BoundedTransport, BodyTooLarge


def bound_client(client, cap: int):
    """``client`` (an ``httpx.Client`` made by the OpenAI library, proxies from the environment
    included) with every transport bounded; returns it."""
    name = next(c.__module__.split(".")[0] for c in type(client).__mro__ if c.__module__.startswith("httpx"))
    transport_cls, _ = _classes(name)
    client._transport = transport_cls(client._transport, cap)
    client._mounts = {k: (transport_cls(t, cap) if t is not None else None) for k, t in client._mounts.items()}
    return client


def body_too_large(error: BaseException) -> bool:
    """Whether ``error``, or what it was raised from, is a body over the cap."""
    seen: BaseException | None = error
    for _ in range(32):  # an exception chain is short; never loop on a cyclic one
        if seen is None:
            return False
        if type(seen).__name__ == "BodyTooLarge" and type(seen).__module__ == __name__:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
