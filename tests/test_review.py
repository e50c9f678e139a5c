"""specc review: a person's verdicts on a dataset, made by keyboard in a real browser (Chromium driven
by Playwright), kept across a kill of the server and a recompile, and carried into the written
dataset, its card and manifest, `specc diff --data` and `specc review --export`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from browser import require_browser
from specc.cli import main
from specc.emit.reviews import REVIEWS_FILE, Review, ReviewLog, content_hash, read_reviews
from specc.emit.writer import write_dataset
from specc.ir.resolve import load
from specc.plan.planner import make_plan
from specc.review.data import load_review_set
from specc.review.server import ReviewServer
from specc.synth.model import Pair, SynthResult, SynthStats
from specc.synth.pipeline import spec_example_pairs

SPEC = '''spec acme.review version "1.0.0"

rule no_card_numbers {
  must_not "Show more than the last four digits of a payment card."
  authority root
  severity critical
  check not matches(r"\\b(?:\\d[ -]?){13,16}\\b")
  example "full number" {
    user "What is my card number?"
    good "I can only show the last four digits: 1111."
    bad "It is 4111 1111 1111 1111."
  }
}

rule be_kind {
  should "Be kind to the customer."
  authority system
  severity low
  example "rude" {
    user "You're useless."
    good "Sorry about that, let me help."
    bad "Whatever."
  }
}
'''
CARD, KIND = "acme.review.no_card_numbers", "acme.review.be_kind"


def write_spec(d: Path, text: str = SPEC) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / "review.spec"
    p.write_text(text, encoding="utf-8")
    return p


def compile_fake(out: Path, spec_path: Path, texts=None) -> Path:
    """A dataset as `specc compile` writes it (its writer, the spec's real plan, every scenario
    verified), with a scenario's texts made from its id instead of by a model: the same spec gives
    the same records, so a rewrite is a recompile that reuses every call. ``texts(i)`` may give a
    record's (user, chosen, rejected)."""
    spec = load(spec_path).spec
    plan = make_plan(spec, seed=0, per_rule=2)
    pairs, per_rule = [], {}
    for i, s in enumerate(plan.scenarios):
        user, chosen, rejected = (texts(i) if texts else None) or (
            f"Request about {s.rule_id.rsplit('.', 1)[1]} ({s.boundary}) number {i}",
            f"A careful answer {i}.", f"A careless answer {i}.")
        e = per_rule.setdefault(s.rule_id, {"scenarios": 0, "generated": 1, "reused": 0, "verified": 0,
                                            "dropped": 0, "dropped_reasons": {}, "examples": 1})
        e["scenarios"] += 1
        e["verified"] += 1
        pairs.append(Pair(record_id=s.id, rule_ids=(s.rule_id,), boundary=s.boundary, axes=dict(s.axes),
                          scenario_id=s.id, source="generated", verified_by="check",
                          prompt=({"role": "user", "content": user},), chosen=chosen, rejected=rejected,
                          split=s.split, chosen_from="sampled", rejected_from="violator"))
    examples = spec_example_pairs(spec)
    n = len(plan.scenarios)
    stats = {"scenarios": n, "generated": n, "reused": 0, "verified": n, "dropped": 0, "dropped_reasons": {},
             "verified_by": {"check": n}, "sides_from": {"chosen:sampled": n, "rejected:violator": n},
             "faults": {}, "gate_failures": {}, "spec_example_gate_warnings": {}, "spec_examples": len(examples),
             "experience_pool": 0, "per_rule": dict(sorted(per_rule.items()))}
    by_rule: dict[str, list[str]] = {}
    for s in plan.scenarios:
        by_rule.setdefault(s.rule_id, []).append(s.id)
    result = SynthResult(pairs=sorted(pairs + examples, key=lambda p: p.record_id),
                         stats=SynthStats.model_validate(stats), scenarios_by_rule=by_rule)
    write_dataset(out, result=result, spec=spec, spec_file=spec_path.name, plan=plan, fmt="dpo",
                  file_format="jsonl", seed=0, model="acme/support-7b", judge="acme/support-7b", generation={})
    return out


def rows(d: Path) -> dict[str, dict]:
    out = {}
    for f in sorted((d / "data").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            out[r["record_id"]] = r
    return out


# -- a server in a process of its own, so that it can be killed -------------------------------------


class Served:
    def __init__(self, data: Path, spec: Path | None = None):
        args = [sys.executable, "-c", "from specc.cli import main; main()", "review", str(data),
                "--reviewer", "ada"] + (["--spec", str(spec)] if spec else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        self.url = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("open "):
                self.url = line.split()[1]
                break
        if self.url is None:
            self.proc.kill()
            raise AssertionError("the server printed no URL: " + self.proc.stderr.read())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Page:
    """A Playwright page on the review server; every uncaught error and dialog is recorded."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors, self.dialogs, self.requests = [], [], []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

        def dialog(d):
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", dialog)
        self.goto(url)

    def goto(self, url: str) -> None:
        self.page.goto(url, wait_until="load")
        self.page.wait_for_selector("body[data-ready='1']", timeout=60_000)

    def record_id(self) -> str:
        return self.page.get_attribute("#main", "data-record-id")

    def press(self, *keys: str) -> None:
        for k in keys:
            self.page.keyboard.press(k)

    def saved(self) -> None:
        # polled from here: the page's Content-Security-Policy forbids the eval a string predicate needs
        deadline = time.monotonic() + 30
        while self.text("#status") != "saved":
            assert time.monotonic() < deadline, f"not saved: {self.text('#status')!r}"
            assert not self.text("#status").startswith("error"), self.text("#status")
            self.page.wait_for_timeout(20)

    def text(self, selector: str) -> str:
        return self.page.eval_on_selector(selector, "e => e.textContent")


@pytest.fixture
def chromium():
    exe = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--proxy-server=127.0.0.1:9"])
        try:
            yield browser
        finally:
            browser.close()


def test_ten_records_reviewed_by_keyboard_survive_a_kill_and_a_recompile(tmp_path, chromium):
    spec = write_spec(tmp_path / "spec")
    data = compile_fake(tmp_path / "data", spec)
    generated = rows(data)
    assert len(generated) >= 10
    server = Served(data, spec)
    try:
        page = Page(chromium, server.url)
        assert "Show more than the last four digits" in page.page.inner_text("body") or \
               "Be kind to the customer." in page.page.inner_text("body")
        made: dict[str, dict] = {}  # record id -> what the reviewer decided

        def decide(keys, expect, *, then_saved=True):
            rid = page.record_id()
            page.press(*keys)
            if then_saved:
                page.saved()
            made[rid] = expect
            return rid

        decide(["a"], {"verdict": "accept"})
        decide(["r", "1"], {"verdict": "reject", "reason": "incoherent"})
        swapped = page.record_id()
        page.press("s")
        page.saved()
        assert "swapped" in page.text("#chosen-origin")
        assert page.text("#chosen-text") == generated[swapped]["rejected"][0]["content"]
        decide(["a"], {"verdict": "accept", "swap": True})
        edited = page.record_id()
        page.press("e")
        page.page.keyboard.press("Control+a")
        page.page.keyboard.type("A kinder answer, written by the reviewer.")
        page.press("Control+Enter")
        page.saved()
        assert "edited by the reviewer" in page.text("#chosen-origin")
        decide(["a"], {"verdict": "accept", "edit": "A kinder answer, written by the reviewer."})
        page.press("r", "5")
        page.page.keyboard.type("invents a refund policy")
        other = decide(["Enter"], {"verdict": "reject", "reason": "other", "note": "invents a refund policy"})
        assert other
        # the server is killed mid-way; every verdict made before is on disk
        server.kill()
        on_disk = {r.record_id: r for r in read_reviews(data)}
        assert {rid for rid, r in on_disk.items() if r.verdict != "pending"} == set(made)
        server = Served(data, spec)
        page.goto(server.url)
        assert page.text("#progress").startswith(f"reviewed {len(made)} / {len(generated)}")
        # the page starts at the first record again: skip what is done
        for _ in range(len(made)):
            page.press("n")
        undone = page.record_id()
        page.press("a")
        page.saved()
        page.press("u")
        page.saved()
        assert page.record_id() == undone  # back on the record, pending again
        assert "pending" in page.text("#verdict")
        page.press("n")  # skip it
        decide(["a"], {"verdict": "accept"})
        decide(["r", "3"], {"verdict": "reject", "reason": "off-topic"})
        decide(["a"], {"verdict": "accept"})
        decide(["r", "4"], {"verdict": "reject", "reason": "unsafe-chosen"})
        assert page.text("#progress").startswith(f"reviewed {len(made)} / {len(generated)}")
        assert page.errors == [] and page.dialogs == []
        assert page.requests and all(u.startswith("http://127.0.0.1:") for u in page.requests), page.requests
    finally:
        server.stop()
    assert len(made) == 9 and undone not in made

    # what is on disk: one verdict per record, keyed by id and content hash; the edit stored as an
    # edit, the generated text untouched
    last = {}
    for r in read_reviews(data):
        last[r.record_id] = r
    assert last[undone].verdict == "pending"
    for rid, want in made.items():
        r = last[rid]
        assert r.verdict == want["verdict"] and r.reviewer == "ada"
        assert r.reason == want.get("reason") and r.note == want.get("note")
        assert r.swap is want.get("swap", False)
        assert r.edits == ({"chosen": want["edit"]} if "edit" in want else {})
    assert rows(data) == generated

    # a recompile into the same directory keeps the verdicts
    compile_fake(data, spec)
    out = rows(data)
    rejected = {rid for rid, w in made.items() if w["verdict"] == "reject"}
    assert set(out) == set(generated) - rejected
    assert out[edited]["chosen"][0]["content"] == "A kinder answer, written by the reviewer."
    assert out[edited]["chosen_from"] == "review"
    assert out[swapped]["chosen"] == generated[swapped]["rejected"]
    assert out[swapped]["chosen_from"] == "violator" and out[swapped]["rejected_from"] == "sampled"
    man = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    assert man["review"]["reviewed"] == 9 and man["review"]["accepted"] == 5 and man["review"]["rejected"] == 4
    assert man["review"]["reasons"] == {"incoherent": 1, "off-topic": 1, "other": 1, "unsafe-chosen": 1}
    generated_rejects = sum(1 for rid in rejected if generated[rid]["source"] == "generated")
    assert man["stats"]["dropped_reasons"].get("review:rejected", 0) == generated_rejects
    card = (data / "README.md").read_text(encoding="utf-8")
    assert f"Reviewed by a person: 9 of {len(generated)} records have a verdict" in card
    assert (data / REVIEWS_FILE).exists()
    # the recompiled directory is written as reviewed: every verdict still holds there, the swap and
    # the edit are not applied twice (a second recompile, an export, the page)
    assert set(man["review"]["applied"]) == {swapped, edited}
    holds = {rid for rid, r in load_review_set(data).current().items() if r.verdict == "accept"}
    assert {rid for rid, w in made.items() if w["verdict"] == "accept"} == set(holds)
    compile_fake(data, spec)
    assert rows(data) == out
    res = CliRunner().invoke(main, ["review", str(data), "--export", str(tmp_path / "accepted")])
    assert res.exit_code == 0, res.output
    exported = rows(tmp_path / "accepted")
    assert set(exported) == set(holds) and exported[swapped]["chosen"] == generated[swapped]["rejected"]
    assert exported[edited]["chosen"][0]["content"] == "A kinder answer, written by the reviewer."
    assert "these are the 5 records a reviewer accepted (9 of" in (tmp_path / "accepted" / "README.md").read_text()

    # one rule edited: its reviewed records need review again (diff --data names them), the other
    # rule's verdicts hold through the recompile
    new_spec = write_spec(tmp_path / "new", SPEC.replace("Be kind to the customer.", "Be kind and patient."))
    res = CliRunner().invoke(main, ["diff", str(spec), str(new_spec), "--data", str(data), "--format", "json"])
    assert res.exit_code in (0, 1), res.output
    again = {r["record_id"] for r in json.loads(res.output)["data"]["review_again"]}
    kind_reviewed = {rid for rid in made if generated[rid]["rule_ids"] == [KIND]}
    assert again == kind_reviewed and again
    compile_fake(data, new_spec)
    rs = load_review_set(data)
    current = rs.current()
    present = rows(data)
    for rid, want in made.items():
        if generated[rid]["rule_ids"] == [CARD] and want["verdict"] == "accept":
            assert current[rid].verdict == "accept", rid
        elif generated[rid]["rule_ids"] == [CARD]:
            assert rid not in present, rid  # still rejected, still left out
        else:  # a generated record of the edited rule is made again under a new id; an example keeps its id
            assert rid not in current, rid
    kind_now = [rid for rid, r in present.items() if r["rule_ids"] == [KIND]]
    assert kind_now and not any(rid in current for rid in kind_now)  # every record of the edited rule: pending
    assert any(rid in present for rid in kind_reviewed if generated[rid]["source"] == "spec-example") or \
        not any(generated[rid]["source"] == "spec-example" for rid in kind_reviewed)
    man = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    assert man["review"]["outdated"] >= len([r for r in kind_reviewed if made[r]["verdict"] == "accept"])


def test_hostile_record_text_shows_as_text_and_nothing_runs(tmp_path, chromium):
    spec = write_spec(tmp_path / "spec")
    script = "<script>alert('x')</script><img src=x onerror=alert(1)><b>bold</b>"
    rtl = "\u202eevil\u202c \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 zero\u200bwidth\u200d\ufeff"
    big = ("<svg onload=alert(3)>" + "A" * 97) * (2 * 1024 * 1024 // 118)
    texts = {0: (script, rtl, big), 1: (rtl, big, script)}
    data = compile_fake(tmp_path / "data", spec, texts=lambda i: texts.get(i))
    by_user = {r["prompt"][0]["content"]: r for r in rows(data).values()}
    server = ReviewServer(load_review_set(data), "ada")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = Page(chromium, server.url)
        seen = set()
        for _ in range(len(by_user)):
            rid = page.record_id()
            user = page.text("#conversation-body .msg .text")
            rec = by_user[user]
            assert rec["record_id"] == rid
            for side in ("chosen", "rejected"):
                text = rec[side][0]["content"]
                assert page.text(f"#{side}-text") == text[:20000]  # a long side is shown cut, as text
                assert (f"({len(text):,} in all)" in page.text(f"#{side}-more")) is (len(text) > 20000)
            seen.add(user)
            page.press("n")
        assert {script, rtl} <= seen
        assert page.page.evaluate("document.querySelectorAll('script').length") == 1
        assert page.page.evaluate("document.querySelectorAll('img, svg, b').length") == 0
        assert page.errors == [] and page.dialogs == []
        assert all(u.startswith(f"http://127.0.0.1:{server.port}/") for u in page.requests)
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str, host: str | None = None, data: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                          **({"Host": host} if host else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_a_request_without_the_token_is_refused(tmp_path):
    spec = write_spec(tmp_path / "spec")
    data = compile_fake(tmp_path / "data", spec)
    server = ReviewServer(load_review_set(data), "ada")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.port}"
    rs = load_review_set(data)
    p = rs.pairs[0]
    verdict = json.dumps({"record_id": p.record_id, "content_hash": rs.hashes[p.record_id],
                          "verdict": "accept", "swap": False, "edits": {}}).encode()
    try:
        for path in ("/", "/api/state", "/?token=", "/api/state?token=wrong"):
            assert _get(base + path) == 403
        assert _get(base + "/api/verdict", data=verdict) == 403
        assert _get(base + "/api/verdict?token=nope", data=verdict) == 403
        assert not (data / REVIEWS_FILE).exists()
        assert _get(server.url, host="evil.example:80") == 403  # a DNS-rebinding page
        assert _get(server.url) == 200
        assert _get(f"{base}/api/verdict?token={server.token}", data=verdict) == 200
        assert [r.verdict for r in read_reviews(data)] == ["accept"]
        bad = json.dumps({"record_id": p.record_id, "content_hash": "0" * 64, "verdict": "accept"}).encode()
        assert _get(f"{base}/api/verdict?token={server.token}", data=bad) == 400
        no_reason = json.dumps({"record_id": p.record_id, "content_hash": rs.hashes[p.record_id],
                                "verdict": "reject"}).encode()
        assert _get(f"{base}/api/verdict?token={server.token}", data=no_reason) == 400
        assert len(read_reviews(data)) == 1
    finally:
        server.shutdown()
        server.server_close()


def _verdict(rs, i: int, verdict: str, **kw) -> Review:
    p = rs.pairs[i]
    return Review(record_id=p.record_id, content_hash=rs.hashes[p.record_id], rule_ids=list(p.rule_ids),
                  verdict=verdict, reviewer="ada", time="2026-12-07T00:00:00+00:00", **kw)


def test_export_writes_the_accepted_records_only(tmp_path):
    spec = write_spec(tmp_path / "spec")
    data = compile_fake(tmp_path / "data", spec)
    rs = load_review_set(data)
    log = ReviewLog(data)
    log.append(_verdict(rs, 0, "accept"))
    log.append(_verdict(rs, 1, "reject", reason="wrong-side"))
    log.append(_verdict(rs, 2, "accept", edits={"rejected": "A worse answer."}))
    log.append(_verdict(rs, 3, "accept"))
    log.append(_verdict(rs, 3, "pending"))  # undone
    out = tmp_path / "accepted"
    res = CliRunner().invoke(main, ["review", str(data), "--export", str(out)])
    assert res.exit_code == 0, res.output
    assert "the 2 accepted of" in res.output
    got = rows(out)
    assert set(got) == {rs.pairs[0].record_id, rs.pairs[2].record_id}
    assert got[rs.pairs[2].record_id]["rejected"][0]["content"] == "A worse answer."
    assert got[rs.pairs[2].record_id]["rejected_from"] == "review"
    man = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert man["review"]["exported"] is True and man["review"]["accepted"] == 2 and man["review"]["reviewed"] == 3
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "these are the 2 records a reviewer accepted (3 of" in card
    from datasets import load_dataset

    ds = load_dataset(str(out))
    assert sum(len(s) for s in ds.values()) == 2
    # the export is not itself a dataset to review, and OUT may not be DIR
    res = CliRunner().invoke(main, ["review", str(out)])
    assert res.exit_code == 1 and "export" in res.output
    res = CliRunner().invoke(main, ["review", str(data), "--export", str(data)])
    assert res.exit_code == 1


def test_a_malformed_reviews_file_is_refused_with_its_line(tmp_path):
    spec = write_spec(tmp_path / "spec")
    data = compile_fake(tmp_path / "data", spec)
    rs = load_review_set(data)
    good = _verdict(rs, 0, "accept").line()
    cases = {
        "not json": good + "{nope\n",
        "wrong type": good + json.dumps({**json.loads(good), "swap": "yes"}) + "\n",
        "unknown verdict": good + json.dumps({**json.loads(good), "verdict": "maybe"}) + "\n",
        "deep": good + "[" * 100000 + "\n",
        "no reason": good + json.dumps({**json.loads(good), "verdict": "reject"}) + "\n",
        "not an object": good + "[1]\n",
    }
    for name, text in cases.items():
        (data / REVIEWS_FILE).write_text(text, encoding="utf-8")
        for args in (["review", str(data), "--export", str(tmp_path / f"x-{len(name)}")],
                     ["report", str(data), "--format", "markdown"]):
            res = CliRunner().invoke(main, args)
            assert res.exit_code == 1, (name, args, res.output)
            assert f"{REVIEWS_FILE}:2" in res.output, (name, res.output)
            assert "Traceback" not in res.output
    (data / REVIEWS_FILE).write_bytes(b"\xff\xfe" + good.encode())
    res = CliRunner().invoke(main, ["review", str(data), "--export", str(tmp_path / "y")])
    assert res.exit_code == 1 and "UTF-8" in res.output
    # a line cut short by a kill is the one verdict lost; the next append starts on a line of its own
    (data / REVIEWS_FILE).write_text(good + good[:40], encoding="utf-8")
    assert len(read_reviews(data)) == 1
    ReviewLog(data).append(_verdict(rs, 1, "accept"))
    assert [r.record_id for r in read_reviews(data)] == [rs.pairs[0].record_id, rs.pairs[1].record_id]


def test_content_hash_is_the_same_for_a_pair_and_its_rows(tmp_path):
    spec = write_spec(tmp_path / "spec")
    data = compile_fake(tmp_path / "data", spec)
    rs = load_review_set(data)
    rules = {r.id: r.hash for r in load(spec).spec.rules}
    example = spec_example_pairs(load(spec).spec)[0]
    assert rs.hashes[example.record_id] == content_hash(example, rules)
    changed = {**rules, example.rule_ids[0]: "0" * 32}
    assert content_hash(example, changed) != content_hash(example, rules)


def test_report_shows_reviewer_acceptance_per_rule_by_side_origin_and_reasons(tmp_path):
    spec = write_spec(tmp_path / "spec")
    data = compile_fake(tmp_path / "data", spec)
    rs = load_review_set(data)
    log = ReviewLog(data)
    gen = [i for i, p in enumerate(rs.pairs) if p.source == "generated"][:3]
    log.append(_verdict(rs, gen[0], "accept", chosen_from="sampled", rejected_from="violator"))
    log.append(_verdict(rs, gen[1], "reject", reason="incoherent", chosen_from="sampled", rejected_from="violator"))
    log.append(_verdict(rs, gen[2], "reject", reason="other", note="<b>made up</b>", chosen_from="sampled",
                        rejected_from="violator"))
    res = CliRunner().invoke(main, ["report", str(data), "--format", "markdown"])
    assert res.exit_code == 0, res.output
    assert f"Reviewed by a person: 3 of {len(rs.pairs)} records, accepted 1/3 (33%)" in res.output
    assert "| `chosen:sampled` | 1/3 (33%) |" in res.output
    assert "`incoherent` × 1" in res.output and "`other` × 1" in res.output
    # a recompile leaves the rejected records out; the report still counts them
    compile_fake(data, spec)
    res = CliRunner().invoke(main, ["report", str(data), "--format", "markdown"])
    assert f"Reviewed by a person: 3 of {len(rs.pairs)} records, accepted 1/3 (33%)" in res.output
    html = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", str(data), "-o", str(html)])
    if res.exit_code == 0:  # needs matplotlib (specc[report])
        page = html.read_text(encoding="utf-8")
        assert 'id="review"' in page and "&lt;b&gt;made up&lt;/b&gt;" in page


def test_the_judge_is_scored_on_reviewed_pairs_too_reported_apart(tmp_path):
    from test_judge_calibration import FirstJudge, compile_

    first = compile_(tmp_path, FirstJudge())
    out = tmp_path / "out"
    cost_before = json.loads((out / "cost.json").read_text(encoding="utf-8"))
    rs = load_review_set(out)
    both = [i for i, p in enumerate(rs.pairs) if p.chosen is not None and p.rejected is not None]
    log = ReviewLog(out)
    log.append(_verdict(rs, both[0], "accept"))
    log.append(_verdict(rs, both[1], "reject", reason="wrong-side"))  # a label too, the other way round
    log.append(_verdict(rs, both[2], "reject", reason="incoherent"))  # says nothing about the sides
    again = compile_(tmp_path, FirstJudge())
    j, j0 = again.manifest.judge, first.manifest.judge
    # a judge that always says "first complies" is right in one order of every pair
    assert j["reviewer"] == {"agreement": 0.5, "examples": 2, "calls": 4, "correct": 2, "invalid": 0}
    assert {k: v for k, v in j.items() if k != "reviewer"} == j0  # the spec's examples alone decide trust
    assert "reviewer" not in j0
    assert rs.pairs[both[2]].record_id not in rows(out)  # the rejected pair is left out
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "it agreed with the reviewer on 2 of 4 calls (0.50)" in card
    # the reviewed pairs' judge calls are part of what the run cost, as calibration
    cost = json.loads((out / "cost.json").read_text(encoding="utf-8"))
    assert cost["by_role"]["calibration"]["calls"] == cost_before["by_role"]["calibration"]["calls"] + 4


def test_merge_keeps_the_verdicts_as_a_recompile_does(tmp_path):
    from test_shards import SPEC as SHARDED, compile_shards, compile_to, files_of, merge_cli

    spec_file = tmp_path / "shards.spec"
    spec_file.write_text(SHARDED)
    dirs = compile_shards(spec_file, tmp_path, 2)
    merged = tmp_path / "merged"
    assert merge_cli(merged, dirs).exit_code == 0
    rs = load_review_set(merged)
    both = [i for i, p in enumerate(rs.pairs) if p.chosen is not None and p.rejected is not None]
    log = ReviewLog(merged)
    log.append(_verdict(rs, both[0], "reject", reason="off-topic"))
    log.append(_verdict(rs, both[1], "accept", edits={"chosen": "Edited by a person."}))
    res = merge_cli(merged, dirs)
    assert res.exit_code == 0, res.output
    got = rows(merged)
    assert rs.pairs[both[0]].record_id not in got
    edited = got[rs.pairs[both[1]].record_id]
    assert edited["chosen"][0]["content"] == "Edited by a person." and edited["chosen_from"] == "review"
    assert (merged / REVIEWS_FILE).exists()
    # the unsharded compile into a directory with the same verdicts writes the same data and manifest,
    # but for the judge's agreement with the reviewer: a compile measures it, a merge runs no model
    full = tmp_path / "full"
    compile_to(spec_file, full)
    (full / REVIEWS_FILE).write_bytes((merged / REVIEWS_FILE).read_bytes())
    compile_to(spec_file, full, store=tmp_path / "fresh-store")  # a fresh store: the same counts of calls
    a, b = files_of(full), files_of(merged)
    assert {k: v for k, v in a.items() if k.startswith("data/")} == {k: v for k, v in b.items() if k.startswith("data/")}
    man_a, man_b = json.loads(a["manifest.json"]), json.loads(b["manifest.json"])
    assert man_a["judge"].pop("reviewer")["examples"] == 1
    assert man_a == man_b


def test_a_reviews_file_that_links_out_of_the_dataset_is_neither_read_nor_written(tmp_path):
    spec = write_spec(tmp_path / "spec")
    data = compile_fake(tmp_path / "data", spec)
    rs = load_review_set(data)
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text(_verdict(rs, 0, "accept").line(), encoding="utf-8")
    (data / REVIEWS_FILE).symlink_to(outside)
    res = CliRunner().invoke(main, ["review", str(data), "--export", str(tmp_path / "x")])
    assert res.exit_code == 1 and "symbolic link" in res.output
    from specc.emit.reviews import ReviewsError

    with pytest.raises(ReviewsError, match="symbolic link"):
        ReviewLog(data).append(_verdict(rs, 1, "accept"))
    assert len(outside.read_text(encoding="utf-8").splitlines()) == 1
