"""What a run costs: tokens and seconds per call, kept in the store, summed per role, rule and outcome
(cost.json, the compile summary), and budgets that stop a compile cleanly and resume byte for byte."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

from specc.cli import main  # noqa: E402
from specc.compile import BudgetReached, CompileError, CompileOptions, compile_spec  # noqa: E402
from specc.engines.base import Usage, estimate_tokens  # noqa: E402
from specc.ir.resolve import load  # noqa: E402
from specc.synth.calls import Prices, parse_duration  # noqa: E402
from specc.synth.model import Cost  # noqa: E402
from specc.synth.store import Store  # noqa: E402
from test_incremental import HashModel  # noqa: E402

SPEC = Path(__file__).resolve().parent.parent / "examples" / "bank" / "bank.spec"
# (HashModel verifies 3 of these 45 scenarios in half a second)
# the attacker writes every seed turn (the accounting of every role; its review test counts on the 3
# generated pairs this run gives); --requests composed is tested in test_synth_pipeline.py and below
OPTS = dict(seed=3, per_rule=3, rounds=1, retries=1, candidates=2, min_judge_agreement=0.0, requests="model")


class CountingModel(HashModel):
    """HashModel that says what each prompt cost, as a real engine does (one prompt token per
    message word, one completion token per output character / 4)."""

    name = "counting-model"

    def _usage(self, prompts, texts):
        self.last_usage = [Usage(sum(len(m["content"].split()) for m in p), max(1, len(t) // 4))
                           for p, t in zip(prompts, texts)]

    def generate_json(self, prompts, output_type, max_new_tokens, seeds, *, temperature=0.0):
        out = super().generate_json(prompts, output_type, max_new_tokens, seeds, temperature=temperature)
        self._usage(prompts, out)
        return out

    def generate_raw(self, prompts, max_new_tokens, seeds, *, temperature=0.0):
        out, n = super().generate_raw(prompts, max_new_tokens, seeds, temperature=temperature)
        self._usage(prompts, out)
        return out, n


def spec():
    result = load(SPEC)
    assert result.spec is not None
    return result.spec


def compile_to(root: Path, model=None, store: Path | None = None, **extra):
    options = CompileOptions(out_dir=root / "out", store=store or root / "store", **{**OPTS, **extra})
    return compile_spec(spec(), SPEC, options, model=model or CountingModel())


def data_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "data").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return root, compile_to(root)


# -- accounting -----------------------------------------------------------------------------------


def test_every_call_is_counted_once_per_role_rule_and_outcome(reference):
    root, report = reference
    cost = report.cost
    s = report.stats
    assert cost.generated.calls == s.generated + report.calibration.generated > 0
    assert cost.reused.calls == 0 and cost.total == cost.generated
    assert cost.counted == {"engine": cost.total.calls}  # the model said what each call cost
    for table in (cost.by_role, cost.by_outcome):
        assert sum(v.calls for v in table.values()) == cost.total.calls
        assert sum(v.tokens for v in table.values()) == cost.total.tokens
    assert set(cost.by_role) <= {"attacker", "candidate", "defender", "violator", "judge", "calibration"}
    assert {"attacker", "candidate", "calibration"} <= set(cost.by_role)
    # every scenario's calls belong to its rule; calibration calls to no rule
    assert sum(v.calls for v in cost.by_rule.values()) == cost.total.calls - cost.by_role["calibration"].calls
    assert set(cost.by_rule) <= {r.id for r in spec().rules} and len(cost.by_rule) > 1
    outcomes = {"verified", "calibration"} | {f"dropped:{r}" for r in s.dropped_reasons}
    assert set(cost.by_outcome) <= outcomes
    # the headline: per verified pair, and the part spent on what was dropped, by reason
    assert cost.pairs == s.verified > 0
    assert cost.per_pair["tokens"] == pytest.approx(cost.total.tokens / s.verified, abs=0.1)
    dropped = sum(v.tokens for k, v in cost.by_outcome.items() if k.startswith("dropped:"))
    assert cost.dropped_share == pytest.approx(dropped / cost.total.tokens, abs=1e-3)
    assert sum(cost.dropped_share_by_reason.values()) == pytest.approx(cost.dropped_share, abs=1e-3)
    # cost.json is the same, beside the manifest (and kept out of it: the manifest is reproducible)
    assert Cost.model_validate_json((root / "out" / "cost.json").read_text()) == cost
    assert "cost" not in json.loads((root / "out" / "manifest.json").read_text())


def test_the_store_keeps_each_results_cost_and_a_rerun_counts_it_as_reused(reference, tmp_path):
    root, report = reference
    with sqlite3.connect(root / "store" / "store.sqlite") as conn:
        rows = conn.execute("SELECT prompt_tokens, completion_tokens, seconds, counted FROM results").fetchall()
    assert rows and all(p > 0 and c > 0 and sec >= 0 and counted == "engine" for p, c, sec, counted in rows)
    import shutil

    shutil.copytree(root / "store", tmp_path / "store")
    again = compile_to(tmp_path, store=tmp_path / "store")
    assert again.cost.generated.calls == 0
    assert again.cost.reused.calls == report.cost.total.calls
    assert again.cost.total.tokens == report.cost.total.tokens  # what the data cost, whoever paid
    assert again.cost.by_role.keys() == report.cost.by_role.keys()
    assert data_files(tmp_path / "out") == data_files(root / "out")


def test_an_engine_that_says_nothing_is_counted_by_estimate(tmp_path):
    report = compile_to(tmp_path, model=HashModel())
    assert report.cost.counted == {"estimate": report.cost.total.calls}
    assert report.cost.total.prompt_tokens > 0 and report.cost.total.completion_tokens > 0


def test_a_store_from_before_the_accounting_opens_and_gains_the_columns(tmp_path):
    db = tmp_path / "store" / "store.sqlite"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:  # the first version's schema, with one result in it
        conn.executescript("""
            CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema', '1');
            CREATE TABLE results (key TEXT PRIMARY KEY, scenario TEXT NOT NULL, role TEXT NOT NULL,
                                  model TEXT NOT NULL, output TEXT NOT NULL);
            INSERT INTO results VALUES ('k1', 's1', 'attacker', 'm', '{"user": "hi"}');
        """)
    with Store(tmp_path / "store") as store:
        assert store.get_many(["k1"]) == {"k1": '{"user": "hi"}'}
        assert store.usage_of(["k1"]) == {"k1": (None, None, None, None)}
        store.commit([("k2", "s2", "judge", "m", "x", 10, 3, 0.5, "server")], [])
        assert store.usage_of(["k2"]) == {"k2": (10, 3, 0.5, "server")}
        assert store.role_means() == {"judge": {"calls": 1, "prompt_tokens": 10.0, "completion_tokens": 3.0,
                                                "seconds": 0.5}}


def test_prices_turn_tokens_into_money(tmp_path):
    prices = Prices(default=(1.0, 2.0))
    report = compile_to(tmp_path, prices=prices)
    t = report.cost.total
    assert t.cost == pytest.approx((t.prompt_tokens * 1.0 + t.completion_tokens * 2.0) / 1e6, abs=1e-6)
    assert report.cost.per_pair["cost"] == pytest.approx(t.cost / report.cost.pairs, abs=1e-6)
    assert report.cost.prices == {"default": {"prompt": 1.0, "completion": 2.0}}


def test_a_prices_file_prices_each_model(tmp_path):
    f = tmp_path / "prices.toml"
    f.write_text('default = "1/1"\n[models]\n"counting-model" = "0.5/4"\n', encoding="utf-8")
    prices = Prices.read(f)
    assert prices.of("counting-model") == (0.5, 4.0) and prices.of("other") == (1.0, 1.0)
    assert prices.of("local@abc123") == (1.0, 1.0)
    assert Prices(models=(("local", (2.0, 2.0)),)).of("local@abc123") == (2.0, 2.0)
    for bad in ('default = "x/1"\n', "nope = 1\n", "[models\n", 'models = "1/1"\n'):
        f.write_text(bad, encoding="utf-8")
        with pytest.raises(ValueError, match="prices"):
            Prices.read(f)


def test_estimate_tokens_is_near_a_real_tokenizer_on_prose():
    text = "I'm sorry for any inconvenience. I'm here to assist you with your order and the refund."
    assert 16 <= estimate_tokens(text) <= 26  # SmolLM2's tokenizer: 20


# -- budgets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["tokens", "cost", "time"])
def test_a_budget_stops_cleanly_and_the_rerun_ends_with_the_same_data(reference, tmp_path, limit):
    ref_root, ref = reference
    total = ref.cost.total
    prices = Prices(default=(1000.0, 1000.0))  # a token costs a thousandth: a readable budget
    budget = {"tokens": dict(max_tokens=total.tokens // 3),
              "cost": dict(max_cost=total.tokens / 3 * 1000.0 / 1e6, prices=prices),
              "time": dict(max_seconds=0.1)}[limit]
    with pytest.raises(BudgetReached, match="budget reached") as stop:
        compile_to(tmp_path, **budget)
    assert {"tokens": "--max-tokens", "cost": "--max-cost", "time": "--max-time"}[limit] in str(stop.value)
    assert "tokens" in str(stop.value) and "run the command again" in str(stop.value)
    assert not (tmp_path / "out").exists()  # no dataset from a stopped run
    with Store(tmp_path / "store") as store:
        stored = store.count()
    assert 0 < stored < total.calls  # every finished batch is kept, and not everything was done
    # reruns under the same budget advance (reused calls are free) until the compile finishes
    for _ in range(300):
        try:
            report = compile_to(tmp_path, **budget)
            break
        except BudgetReached:
            with Store(tmp_path / "store") as store:
                assert store.count() > stored
                stored = store.count()
    else:
        pytest.fail("the budgeted reruns never finished")
    assert data_files(tmp_path / "out") == data_files(ref_root / "out")
    assert report.cost.total.tokens == total.tokens


def test_budget_options_that_make_no_sense_are_refused(tmp_path):
    for bad in (dict(max_tokens=0), dict(max_seconds=float("nan")), dict(max_cost=1.0)):
        with pytest.raises(CompileError):
            compile_to(tmp_path, **bad)


@pytest.mark.parametrize("args, message", [
    (["--max-cost", "nan"], "not a finite number"),
    (["--max-cost", "0"], "--max-cost"),
    (["--max-cost", "1"], "--max-cost needs prices"),
    (["--max-tokens", "0"], "--max-tokens"),
    (["--max-time", "0"], "not a duration"),
    (["--max-time", "soon"], "not a duration"),
    (["--price", "1"], "PROMPT/COMPLETION"),
    (["--price", "inf/1"], "PROMPT/COMPLETION"),
    (["--prices", "/nonexistent/prices.toml"], "cannot read the prices"),
])
def test_bad_budget_and_price_options_are_usage_errors(tmp_path, args, message):
    res = CliRunner().invoke(main, ["compile", str(SPEC), "-o", str(tmp_path / "out"), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_durations():
    assert [parse_duration(t) for t in ("90", "90s", "15m", "1h30m", "1.5h")] == [90, 90, 900, 5400, 5400]


# -- the in-process engines -----------------------------------------------------------------------


def test_the_transformers_engine_counts_with_its_tokenizer(tiny_dir):
    from specc.engines import resolve_model
    from specc.synth import roles

    h = resolve_model(str(tiny_dir), batch_size=2, reuse=False)
    prompts = [[{"role": "user", "content": "Hello there, how are you?"}], [{"role": "user", "content": "Hi"}]]
    texts, n = h.generate_raw(prompts, 6, [1, 2])
    shown = [len(h.tokenizer(h.format_prompt(p), add_special_tokens=False)["input_ids"]) for p in prompts]
    assert [u.prompt_tokens for u in h.last_usage] == shown  # the padding is not counted
    assert sum(u.completion_tokens for u in h.last_usage) == n and all(u.counted == "engine" for u in h.last_usage)
    h.generate_json(prompts, roles.attacker_type(40), 24, [1, 2])
    assert [u.prompt_tokens for u in h.last_usage] == shown
    assert all(u.counted == "tokenizer" and u.completion_tokens > 0 for u in h.last_usage)


# -- estimates ------------------------------------------------------------------------------------


def test_an_estimate_from_the_plan_alone_then_from_the_measured_store(reference, tmp_path):
    from specc.compile import estimate_compile

    root, report = reference
    options = CompileOptions(out_dir=tmp_path / "unused", store=tmp_path / "empty", **OPTS)
    before = estimate_compile(spec(), SPEC, options)
    assert before.basis == "plan" and before.found == 0 and before.stored == 0
    assert before.scenarios == report.stats.scenarios
    assert before.roles["attacker"].calls == before.scenarios  # one request per scenario, before retries
    # composed by code (--requests composed): no attacker call where the rule has an example of the
    # scenario's kind, one for each of the others
    from specc.synth.requests import examples_of
    from specc.plan.planner import make_plan

    plan = make_plan(spec(), seed=OPTS["seed"], per_rule=OPTS["per_rule"])
    written = sum(1 for s in plan.scenarios
                  if not examples_of(spec().rule(s.rule_id), "lookalike" if s.boundary == "lookalike" else "violation"))
    composed = estimate_compile(spec(), SPEC, CompileOptions(out_dir=tmp_path / "unused", store=tmp_path / "empty",
                                                             **{**OPTS, "requests": "composed"}))
    assert 0 < written < before.scenarios and composed.roles["attacker"].calls == written
    assert before.roles["candidate"].calls >= OPTS["candidates"] * (before.scenarios - before.judge_scenarios)
    assert not any(r.measured for r in before.roles.values())
    # the store of the reference run: calls per scenario and tokens per call are measured there, and
    # the estimate of the same plan is the run itself
    measured = estimate_compile(spec(), SPEC, CompileOptions(out_dir=tmp_path / "unused", store=root / "store", **OPTS))
    assert measured.basis == "measured" and measured.found > 0 and measured.stored == report.cost.total.calls
    assert measured.calls == pytest.approx(report.cost.total.calls)
    assert measured.tokens == pytest.approx(report.cost.total.tokens, rel=1e-6)
    assert measured.seconds is not None


def test_plan_estimate_on_the_command_line(reference, tmp_path):
    root, report = reference
    res = CliRunner().invoke(main, ["plan", str(SPEC), "--estimate", "--per-rule", "3", "--candidates", "2", "--seed", "3",
                                    "--rounds", "1", "--requests", "model",
                                    "--store", str(root / "store"), "--format", "json", "--price", "1/2"])
    assert res.exit_code == 0, res.output
    est = json.loads(res.output)
    assert est["basis"] == "measured" and est["calls"] == pytest.approx(report.cost.total.calls, abs=0.1)
    assert est["cost"] > 0 and set(est["roles"]) >= {"attacker", "candidate", "calibration"}
    text = CliRunner().invoke(main, ["plan", str(SPEC), "--estimate", "--store", str(tmp_path / "none")])
    assert text.exit_code == 0 and "from the plan alone" in text.output and "attacker" in text.output


# -- the report -----------------------------------------------------------------------------------


def test_the_report_shows_what_the_compile_cost(reference, tmp_path):
    root, report = reference
    md = CliRunner().invoke(main, ["report", str(root / "out"), "--format", "markdown", "-o", str(tmp_path / "r.md")])
    assert md.exit_code == 0, md.output
    text = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert "Cost: " in text and "per verified pair" in text
    assert f"| `attacker` | {report.cost.by_role['attacker'].calls} |" in text
    pytest.importorskip("matplotlib")
    html = CliRunner().invoke(main, ["report", str(root / "out"), "-o", str(tmp_path / "r.html")])
    assert html.exit_code == 0, html.output
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="cost"' in page and "per verified pair" in page
    assert all(f"rule {rid}</td>" in page for rid in report.cost.by_rule)
    assert f"<td class=\"mono\">calibration</td><td class=\"n\">{report.cost.by_role['calibration'].calls}</td>" in page


def test_a_damaged_cost_json_is_a_report_error(reference, tmp_path):
    import shutil

    root, _ = reference
    shutil.copytree(root / "out", tmp_path / "out")
    (tmp_path / "out" / "cost.json").write_text('{"total": "lots"}', encoding="utf-8")
    res = CliRunner().invoke(main, ["report", str(tmp_path / "out"), "--format", "markdown"])
    assert res.exit_code == 1 and "cost.json" in res.output and "Traceback" not in res.output


def _review(out: Path, verdicts: dict[int, str]) -> list:
    """Append ``verdicts`` (index among the generated pairs -> accept / reject) to OUT's reviews.jsonl."""
    from specc.emit.reviews import Review, ReviewLog
    from specc.review.data import load_review_set

    rs = load_review_set(out)
    generated = [p for p in rs.pairs if p.source == "generated"]
    log = ReviewLog(out)
    for i, verdict in verdicts.items():
        p = generated[i]
        log.append(Review(record_id=p.record_id, content_hash=rs.hashes[p.record_id], rule_ids=list(p.rule_ids),
                          verdict=verdict, reason="incoherent" if verdict == "reject" else None,
                          reviewer="ada", time="2026-12-07T00:00:00+00:00"))
    return generated


def markdown(out: Path) -> str:
    """``specc report OUT --format markdown``, its Markdown escapes taken out."""
    res = CliRunner().invoke(main, ["report", str(out), "--format", "markdown"])
    assert res.exit_code == 0, res.output
    return res.output.replace("\\", "")


def test_cost_per_accepted_pair_follows_the_reviewers_verdicts(reference, tmp_path):
    import shutil

    root, report = reference
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    assert report.cost.accepted is None  # nobody reviewed: no number, and it says so
    assert "per accepted pair: not reviewed" in "\n".join(report.cost.lines())
    md = markdown(out)
    assert "per accepted pair: not reviewed" in md, md
    assert report.cost.pairs >= 3
    generated = _review(out, {0: "accept", 1: "reject"})
    total = report.cost.total
    # the report, run after the review session, reads the verdicts as they stand
    md = markdown(out)
    assert f"per accepted pair: {total.tokens:,.0f} tokens, " in md
    assert f"(1 accepted of 2 reviewed; {len(generated) - 2} of the {len(generated)} generated pairs not reviewed " \
        "yet: an upper bound)" in md, md
    _review(out, {2: "accept"})
    assert f"per accepted pair: {total.tokens / 2:,.0f} tokens, " in markdown(out)
    # a recompile into the reviewed directory writes it into cost.json and its summary (every call
    # reused, plus the judge asked on the two reviewed pairs it can learn from, as calibration)
    again = compile_to(tmp_path, store=root / "store")
    cost = Cost.model_validate_json((out / "cost.json").read_text(encoding="utf-8"))
    assert cost == again.cost and cost.total.calls == report.cost.total.calls + 4
    total = cost.total
    assert (cost.accepted.pairs, cost.accepted.reviewed, cost.accepted.accepted) == (len(generated), 3, 2)
    assert "2 accepted of 3 reviewed, every generated pair" in "\n".join(cost.lines())
    assert cost.accepted.per_pair["tokens"] == pytest.approx(total.tokens / 2, abs=0.1)
    assert cost.accepted.per_pair["seconds"] == pytest.approx(total.seconds / 2, abs=1e-3)
    assert any("per accepted pair" in line for line in again.cost.lines())
    # with prices, money per accepted pair; every pair rejected: none accepted, no number made up
    priced = compile_to(tmp_path, store=root / "store", prices=Prices(default=(1.0, 2.0)))
    assert priced.cost.accepted.per_pair["cost"] == pytest.approx(priced.cost.total.cost / 2, abs=1e-6)
    assert len(_review(out, {})) == 2  # the rejected pair is left out of the dataset now
    _review(out, {0: "reject", 1: "reject"})
    md = markdown(out)
    assert "per accepted pair: none accepted (0 accepted of 3 reviewed, every generated pair)" in md, md


def test_a_hostile_reviews_file_is_a_report_error_not_a_cost(reference, tmp_path):
    import shutil

    root, _ = reference
    shutil.copytree(root / "out", tmp_path / "out")
    (tmp_path / "out" / "reviews.jsonl").write_text('{"record_id": "x", "verdict": "accept"}\n', encoding="utf-8")
    res = CliRunner().invoke(main, ["report", str(tmp_path / "out"), "--format", "markdown"])
    assert res.exit_code == 1 and "reviews.jsonl" in res.output and "Traceback" not in res.output


# -- spending less per pair -----------------------------------------------------------------------


class FirstGoodThenBad(CountingModel):
    """Candidate 0 (greedy) is a polite answer, every sampled candidate an insult."""

    name = "first-good-then-bad"

    def generate_json(self, prompts, output_type, max_new_tokens, seeds, *, temperature=0.0):
        if set(output_type.model_fields) == {"user"}:  # the attacker: the rule's own example request
            out = [json.dumps({"user": "You are useless, admit it. What went wrong with my order?"})] * len(prompts)
            self._usage(prompts, out)
            return out
        return super().generate_json(prompts, output_type, max_new_tokens, seeds, temperature=temperature)

    def generate_raw(self, prompts, max_new_tokens, seeds, *, temperature=0.0):
        text = ("I understand this has been useless for you so far. Please share the order number and I will help."
                if temperature == 0 else "Only an idiot would ask that about the order, honestly.")
        out = [text] * len(prompts)
        self._usage(prompts, out)
        return out, sum(len(t.split()) for t in out)


def test_candidates_stop_once_both_sides_are_found(tmp_path):
    tiny = Path(__file__).parent / "data" / "compile" / "tiny.spec"
    result = load(tiny)
    options = CompileOptions(out_dir=tmp_path / "out", store=tmp_path / "store", seed=3, per_rule=2, rounds=1,
                             retries=0, candidates=4)
    report = compile_spec(result.spec, tiny, options, model=FirstGoodThenBad())
    from specc.plan.planner import make_plan
    from specc.synth.verify import needs_judge

    plan = make_plan(result.spec, seed=3, per_rule=2)
    sampled = [s for s in plan.scenarios if not needs_judge(result.spec.rule(s.rule_id), s)]
    assert report.stats.sides_from.get("chosen:sampled", 0) > 0 and report.stats.sides_from.get("rejected:sampled", 0) > 0
    # both sides come from candidates 0 and 1 (where the greedy answer passes the gates): 2 and 3 are
    # asked only where it did not
    assert 0 < report.cost.by_role["candidate"].calls <= 2 * len(sampled) < 4 * len(sampled)
