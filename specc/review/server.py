"""The review page's server: the standard library's ``ThreadingHTTPServer`` on 127.0.0.1 only.

Every request must carry the session's random token (``?token=``; compared in constant time):
without it the answer is 403, so another user of the machine cannot read the data or write
verdicts. Requests naming another host (a DNS-rebinding page) are refused too. The page is one
file (HTML, CSS and script inline, no external asset); its Content-Security-Policy lets only its
own script (by nonce) run and only this server be fetched, and the page puts record text in the
document as text (``textContent``), never as markup.

A verdict is appended to ``reviews.jsonl`` (:class:`specc.emit.reviews.ReviewLog`, fsync'd) before
the request is answered.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from specc.emit.reviews import MAX_EDIT_CHARS, REASONS, Review, ReviewLog, ReviewsError
from specc.review.data import ReviewSet, record_view

HOST = "127.0.0.1"
MAX_BODY = 4 * MAX_EDIT_CHARS + 64 * 1024  # two edits of the longest side, in the worst JSON escaping


def page_html() -> str:
    return resources.files("specc.review").joinpath("page.html").read_text(encoding="utf-8")


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, review_set: ReviewSet, reviewer: str, port: int = 0, token: str | None = None):
        self.review_set = review_set
        self.reviewer = reviewer
        self.token = token or secrets.token_urlsafe(24)
        self.log = ReviewLog(review_set.dir)
        self.lock = threading.Lock()
        self.verdicts = {rid: r for rid, r in review_set.current().items()}
        self.by_id = {p.record_id: p for p in review_set.pairs}
        super().__init__((HOST, port), Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.token}"

    def state(self) -> dict:
        rs = self.review_set
        man = rs.manifest
        return {
            "reviewer": self.reviewer,
            "dataset": str(rs.dir),
            "spec": {"id": man.spec.id, "version": man.spec.version, "hash": man.spec.hash},
            "format": man.format,
            "note": rs.spec_note,
            "reasons": list(REASONS),
            "rules": rs.rules,
            "records": [record_view(p, rs.hashes[p.record_id], p.record_id in rs.as_reviewed) for p in rs.pairs],
            "verdicts": {rid: r.model_dump(mode="json") for rid, r in self.verdicts.items()},
        }

    def record(self, body: dict) -> Review:
        """Check one verdict from the page and append it; :class:`ReviewsError` says why not."""
        if not isinstance(body, dict):
            raise ReviewsError("a verdict must be a JSON object")
        rid = body.get("record_id")
        pair = self.by_id.get(rid) if isinstance(rid, str) else None
        if pair is None:
            raise ReviewsError("no such record")
        if body.get("content_hash") != self.review_set.hashes[rid]:
            raise ReviewsError("the record changed since the page was loaded: reload it")
        fields = {k: body[k] for k in ("verdict", "reason", "note", "swap", "edits") if k in body}
        if fields.get("verdict") != "reject":
            fields["reason"] = None
        if fields.get("reason") != "other":
            fields["note"] = fields.get("note") or None
        try:
            review = Review(record_id=rid, content_hash=self.review_set.hashes[rid], rule_ids=list(pair.rule_ids),
                            chosen_from=pair.chosen_from, rejected_from=pair.rejected_from, reviewer=self.reviewer,
                            time=datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields)
        except (ValidationError, TypeError) as e:
            raise ReviewsError(f"not a verdict: {e}") from None
        if review.verdict == "reject" and review.reason is None:
            raise ReviewsError("a rejection needs a reason")
        if any(len(t) > MAX_EDIT_CHARS for t in review.edits.values()):
            raise ReviewsError(f"an edit may be at most {MAX_EDIT_CHARS:,} characters")
        for side in review.edits:
            if (pair.chosen if side == "chosen" else pair.rejected) is None:
                raise ReviewsError(f"the record has no {side} side to edit")
        with self.lock:
            self.log.append(review)  # on disk before the page hears that it is
            self.verdicts[rid] = review
        return review


class Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "specc-review"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # the page is the interface; the terminal keeps the URL readable

    # -- guards

    def _allowed(self) -> bool:
        host = self.headers.get("Host", "")
        if host not in (f"{HOST}:{self.server.port}", f"localhost:{self.server.port}"):
            self._send(HTTPStatus.FORBIDDEN, b"forbidden: unknown host\n", "text/plain; charset=utf-8")
            return False
        token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self.server.token.encode("utf-8")):
            self._send(HTTPStatus.FORBIDDEN, b"forbidden: this page needs the token printed by `specc review`\n",
                       "text/plain; charset=utf-8")
            return False
        return True

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value) -> None:
        self._send(status, json.dumps(value, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    # -- routes

    def do_GET(self):  # noqa: N802 - http.server's name
        if not self._allowed():
            return
        route = urlsplit(self.path).path
        if route == "/":
            nonce = secrets.token_urlsafe(16)
            html = page_html().replace("{{NONCE}}", nonce)
            csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                   "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
            self._send(HTTPStatus.OK, html.encode("utf-8"), "text/html; charset=utf-8",
                       {"Content-Security-Policy": csp})
        elif route == "/api/state":
            with self.server.lock:
                state = self.server.state()
            self._json(HTTPStatus.OK, state)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def do_POST(self):  # noqa: N802
        if not self._allowed():
            return
        if urlsplit(self.path).path != "/api/verdict":
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
            return
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send JSON"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "no Content-Length"})
            return
        if not 0 <= length <= MAX_BODY:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "too large"})
            return
        raw = self.rfile.read(length)
        try:
            from specc.files import load_json

            body = load_json(raw.decode("utf-8"))
            review = self.server.record(body)
        except (UnicodeDecodeError, ValueError) as e:  # ReviewsError is a ValueError
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return
        except OSError as e:
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"cannot write the verdict: {e.strerror or e}"})
            return
        self._json(HTTPStatus.OK, {"ok": True, "verdict": review.model_dump(mode="json")})

