"""``specc compile``: plan -> synth (store, call runner, verification) -> emit, for one spec.

:func:`compile_spec` is what the command runs; it takes already loaded models so tests can pass
fakes. Errors meant for the user are :class:`CompileError` (bad options: exit 1 or 2) and
:class:`OperationalError` (model, store, disk: exit 3).
"""

from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from specc import defaults
from specc.engines import EngineFault, ModelHandle
from specc.ir.model import Spec

if TYPE_CHECKING:  # the writer and the pipeline load when a compile runs
    from specc.emit.manifest import Manifest
    from specc.plan.model import Split
    from specc.synth.calibrate import Calibration
    from specc.synth.model import Cost, SynthStats


class CompileError(Exception):
    """Options or inputs that cannot be compiled (exit 1)."""


class OperationalError(Exception):
    """A model, the store or the disk failed (exit 3); the store keeps what was finished."""


class BudgetReached(OperationalError):
    """``--max-tokens``, ``--max-cost`` or ``--max-time`` stopped the compile (exit 3) after a
    stored batch; the message says what was spent. A rerun with a larger budget continues."""


@dataclass(frozen=True)
class CompileOptions:
    out_dir: Path
    per_rule: int = defaults.PER_RULE
    seed: int = defaults.SEED
    store: Path | None = None
    fmt: str = defaults.FORMAT
    file_format: str = defaults.FILE_FORMAT
    batch_size: int = defaults.BATCH_SIZE
    retries: int = defaults.RETRIES
    rounds: int = defaults.ROUNDS
    coverage: str = defaults.COVERAGE
    system_prompt: str = defaults.SYSTEM_PROMPT
    test_fraction: float = defaults.TEST_FRACTION
    temperature: float = defaults.TEMPERATURE
    answer_chars: int = defaults.ANSWER_CHARS
    rules: tuple[str, ...] | None = None
    # (K, N): compile only shard K of N (1-based) of the plan, see specc.plan.shard
    shard: tuple[int, int] | None = None
    # the judge verifies pairs only if it agrees this well with the spec's labelled examples
    # (0 trusts any judge); see specc.synth.calibrate
    min_judge_agreement: float = defaults.MIN_JUDGE_AGREEMENT
    # on-policy candidates per scenario (specc.synth.pipeline._sample_candidates); 0: roles only
    candidates: int = defaults.CANDIDATES
    candidate_temperature: float = defaults.CANDIDATE_TEMPERATURE
    # who writes the seed user turns: composed (by code, from the rule's examples) | model (the attacker)
    requests: str = defaults.REQUESTS
    # where a composed scenario lacks one side: the spec's answer to the example it was composed from
    example_sides: bool = defaults.EXAMPLE_SIDES
    # write into a non-empty OUT that is not a specc dataset (its files may be replaced or deleted)
    force: bool = False
    # refuse (E503) a plan with more scenarios, before any work (specc.plan.planner.check_size)
    max_scenarios: int = defaults.MAX_SCENARIOS
    # what this run may spend on the calls it generates (specc.synth.calls.Budget): past a limit
    # the compile stops after a stored batch (BudgetSpent, exit 3); a rerun continues
    max_tokens: int | None = None
    max_cost: float | None = None
    max_seconds: float | None = None
    # money per million tokens (specc.synth.calls.Prices); None: tokens and seconds only
    prices: Any = None


@dataclass(frozen=True)
class CompileReport:
    """What a compile wrote: its manifest, typed (the files, their counts and the run's statistics
    are the manifest's), and the judge's calibration behind the manifest's ``judge`` field."""

    out_dir: Path
    manifest: Manifest = field(repr=False)
    calibration: Calibration | None = field(repr=False, default=None)
    cost: Cost | None = field(repr=False, default=None)  # what the run's calls cost (cost.json)

    @property
    def files(self) -> dict[Split, str | None]:
        """Split -> its data file, relative to ``out_dir`` (None: the split is empty)."""
        return self.manifest.files

    @property
    def counts(self) -> dict[Split, int]:
        return self.manifest.counts

    @property
    def stats(self) -> SynthStats:
        return self.manifest.stats


def default_store(spec_path: Path, shard: tuple[int, int] | None = None) -> Path:
    """``.specc/`` beside the spec; a shard's own ``.specc/shard-K-of-N/`` so that shards run side
    by side never share one SQLite file unless ``--store`` says so (WAL on a local disk would be
    safe, on a network file system it is not)."""
    root = Path(spec_path).resolve().parent / ".specc"
    return root / f"shard-{shard[0]}-of-{shard[1]}" if shard else root


def model_label(handle: ModelHandle) -> str:
    """The model's name as written into outputs: a local directory by its base name (plus its
    fingerprint), never by an absolute path."""
    name = handle.name
    head, sep, tail = name.rpartition("@")
    if sep and os.path.isabs(head):
        return f"{Path(head).name}@{tail}"
    if os.path.isabs(name):
        return Path(name).name
    return name


def _file_label(spec_path: Path) -> str:
    """The spec's file name as written into outputs: a name that is not valid UTF-8 (a byte
    such as 0xff, which Python keeps as a lone surrogate) shows the byte as ``\\xff``."""
    return os.fsencode(Path(spec_path).name).decode("utf-8", "backslashreplace")


def _plan(spec: Spec, options: CompileOptions):
    """The compile's plan (what ``specc plan`` shows for the same options); a PlanError is the user's."""
    from specc.plan.planner import PlanError, make_plan

    try:
        return make_plan(spec, seed=options.seed, per_rule=options.per_rule, coverage=options.coverage,
                         system_prompt=options.system_prompt, test_fraction=options.test_fraction,
                         rules=options.rules, max_scenarios=options.max_scenarios)
    except PlanError as e:
        raise CompileError(str(e)) from e


def compile_spec(spec: Spec, spec_path: Path, options: CompileOptions, *, model: ModelHandle,
                 judge: ModelHandle | None = None, on_event: Callable[..., None] | None = None) -> CompileReport:
    from specc.emit.writer import write_dataset
    from specc.synth.calls import Budget, BudgetSpent, CallRunner, Ledger, Settings
    from specc.synth.pipeline import synthesize
    from specc.synth.roles import Bounds
    from specc.synth.store import Store, StoreError

    from specc.emit.writer import OutDirError, check_out_dir

    try:
        check_out_dir(options.out_dir, force=options.force)
    except OutDirError as e:
        raise CompileError(f"-o {e}") from None
    from specc.emit.reviews import ReviewsError, read_reviews

    try:  # a reviewer's verdicts in OUT are applied when it is written: a bad file is refused before any work
        if Path(options.out_dir).is_dir():
            read_reviews(Path(options.out_dir))
    except ReviewsError as e:
        raise CompileError(f"-o {e}") from None
    if not 1 <= options.per_rule <= defaults.MAX_PER_RULE:
        raise CompileError(f"--per-rule must be between 1 and {defaults.MAX_PER_RULE}")
    if options.retries < 0:
        raise CompileError("--retries must be >= 0")
    if options.candidates < 0:
        raise CompileError("--candidates must be >= 0")
    if options.rounds < 1:
        raise CompileError("--rounds must be >= 1")
    if options.batch_size < 1:
        raise CompileError("--batch-size must be >= 1")
    if options.requests not in defaults.REQUEST_SOURCES:
        raise CompileError(f"--requests must be one of {', '.join(defaults.REQUEST_SOURCES)}, not {options.requests!r}")
    if options.answer_chars < 32:
        raise CompileError("--max-chars must be >= 32")
    if not 0 <= options.min_judge_agreement <= 1:
        raise CompileError("--min-judge-agreement must be between 0 and 1")
    for name, value in (("--max-tokens", options.max_tokens), ("--max-cost", options.max_cost),
                        ("--max-time", options.max_seconds)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise CompileError(f"{name} must be a finite number above 0, not {value!r}")
    if options.max_cost is not None and (options.prices is None or not options.prices.known):
        raise CompileError("--max-cost needs prices: give --price PROMPT/COMPLETION (per million tokens) or "
                           "--prices FILE")
    plan = _plan(spec, options)
    from specc.synth.verify import needs_judge

    # measured on the whole plan, before a shard slices it: every shard decides alike
    judge_needed = any(needs_judge(spec.rule(s.rule_id), s) for s in plan.scenarios)
    shard_info = None
    if options.shard is not None:
        from specc.plan.shard import ShardError, shard, shard_manifest

        try:
            shard_info = shard_manifest(plan, *options.shard)
            plan = shard(plan, *options.shard)
        except ShardError as e:
            raise CompileError(f"--shard: {e}") from e
    settings = Settings(seed=options.seed, temperature=options.temperature, retries=options.retries,
                        rounds=options.rounds, batch_size=options.batch_size,
                        bounds=Bounds(answer=options.answer_chars), candidates=options.candidates,
                        candidate_temperature=options.candidate_temperature, requests=options.requests,
                        example_sides=options.example_sides)
    store_dir = options.store or default_store(spec_path, options.shard)
    try:
        with Store(store_dir) as store:
            ledger = Ledger(Budget(options.max_tokens, options.max_cost, options.max_seconds), options.prices)
            runner = CallRunner(model, store, settings, judge_model=judge, on_event=on_event, ledger=ledger)
            from specc.emit.reviews import reviewed_examples

            # the pairs a person judged in OUT are labelled examples for the judge too (reported apart)
            result = synthesize(spec, plan, runner, on_event=on_event,
                                min_judge_agreement=options.min_judge_agreement, judge_needed=judge_needed,
                                reviewed=reviewed_examples(Path(options.out_dir), spec))
            try:
                written = write_dataset(
                    options.out_dir, result=result, spec=spec, spec_file=_file_label(spec_path), plan=plan,
                    fmt=options.fmt, file_format=options.file_format, seed=options.seed, model=model_label(model),
                    judge=model_label(judge or model), generation=settings.manifest(),
                    engines={"model": model.engine, "judge": (judge or model).engine,
                             "params": dict(sorted(model.params.items()))}, shard=shard_info)
            except OSError as e:  # the output, not the store: name it
                if e.errno != errno.ENOSPC:
                    raise
                raise OperationalError(f"no space left on device while writing {e.filename or options.out_dir}; "
                                       f"the store ({store_dir}) keeps every finished call: free some space and "
                                       "run the command again") from e
    except BudgetSpent as e:
        raise BudgetReached(f"{e}; every finished call is kept in the store ({store_dir}): run the command "
                            "again with a larger budget (or none) to continue") from e
    except EngineFault as e:
        raise OperationalError(f"{e}\nevery call that finished is kept in the store ({store_dir}): "
                               "once the cause is fixed, run the same command again to continue") from e
    except StoreError as e:
        raise OperationalError(str(e)) from e
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise OperationalError(f"no space left on device ({e.filename or store_dir}); the store keeps "
                                   "every finished call: free some space and run the command again") from e
        raise OperationalError(f"cannot write {e.filename or options.out_dir}: {e.strerror or e}") from e
    return CompileReport(out_dir=Path(options.out_dir), manifest=written.manifest, calibration=result.calibration,
                         cost=written.cost if written.cost is not None else result.cost)


class Progress:
    """Rich progress bars on stderr while generating (nothing when stderr is not a terminal)."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.console = console or Console(stderr=True)
        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                console=self.console, transient=True, disable=not self.console.is_terminal)
        self.task = None
        self.calls = {"generated": 0, "reused": 0}
        self.done = {"verified": 0, "dropped": 0}

    def __enter__(self) -> "Progress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def _detail(self, step: str = "") -> str:
        return (f"{step} · verified {self.done['verified']} dropped {self.done['dropped']} · "
                f"calls {self.calls['generated']} new, {self.calls['reused']} stored")

    def __call__(self, event: str, **info) -> None:
        if event == "start":
            self.task = self.bar.add_task("scenarios", total=info["scenarios"], detail=self._detail())
        elif self.task is None:
            return
        elif event == "wave":
            self.bar.update(self.task, description=f"wave {info['index'] + 1}/{info['waves']}")
        elif event == "generating":
            self.bar.update(self.task, detail=self._detail(f"{info['role']} ×{info['n']}"))
        elif event in ("generated", "reused"):
            self.calls[event] += info["n"]
            self.bar.update(self.task, detail=self._detail())
        elif event == "scenario":
            self.done[info["status"]] += 1
            self.bar.update(self.task, advance=1, detail=self._detail())


# -- what a compile will cost, before it runs ----------------------------------------------------

ESTIMATE_ROLES = ("attacker", "candidate", "defender", "violator", "judge", "calibration")


@dataclass(frozen=True)
class RoleEstimate:
    """Expected calls of one role and what they take. ``measured``: the tokens (and seconds) are
    means the store measured for this role; otherwise the completion is the role's token budget
    (an upper bound) and the prompt a tokenizer-free estimate of the attacker's prompt."""

    calls: float
    prompt_tokens: float
    completion_tokens: float
    seconds: float | None
    measured: bool

    @property
    def tokens(self) -> float:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Estimate:
    """What a compile of the plan is expected to take: calls and tokens per role, from the plan's
    structure or, where the store holds an earlier run, from measured means. ``stored``: the calls
    the store already holds for this plan's scenarios (a compile reuses them: they cost nothing)."""

    scenarios: int
    judge_scenarios: int
    basis: str  # "measured" (calls per scenario and tokens per call from the store) | "plan"
    found: int  # the plan's scenarios the store holds calls of
    stored: int
    roles: dict[str, RoleEstimate]
    prices: Any = None

    @property
    def calls(self) -> float:
        return sum(r.calls for r in self.roles.values())

    @property
    def tokens(self) -> float:
        return sum(r.calls * r.tokens for r in self.roles.values())

    @property
    def seconds(self) -> float | None:
        if any(r.seconds is None for r in self.roles.values() if r.calls):
            return None
        return sum(r.calls * (r.seconds or 0.0) for r in self.roles.values())

    def money(self) -> float | None:
        if self.prices is None or not self.prices.known or self.prices.default is None:
            return None
        p, c = self.prices.default
        return sum(r.calls * (r.prompt_tokens * p + r.completion_tokens * c) for r in self.roles.values()) / 1e6

    def to_dict(self) -> dict:
        money = self.money()
        return {"scenarios": self.scenarios, "judge_scenarios": self.judge_scenarios, "basis": self.basis,
                "found_in_store": self.found, "stored_calls": self.stored,
                "calls": round(self.calls, 1), "tokens": round(self.tokens),
                "seconds": round(self.seconds, 1) if self.seconds is not None else None,
                **({"cost": round(money, 6)} if money is not None else {}),
                "roles": {k: {"calls": round(r.calls, 1), "prompt_tokens_per_call": round(r.prompt_tokens, 1),
                              "completion_tokens_per_call": round(r.completion_tokens, 1),
                              "seconds_per_call": round(r.seconds, 3) if r.seconds is not None else None,
                              "measured": r.measured}
                          for k, r in self.roles.items()}}


def estimate_compile(spec: Spec, spec_path: Path, options: CompileOptions) -> Estimate:
    """The expected calls and tokens of ``compile_spec(spec, spec_path, options)``, without a model.

    From the plan: per scenario one attacker call (none for a scenario whose seed request is
    composed by code: ``--requests composed`` and an example of its kind), ``--candidates`` candidates where the checks
    decide (plus one reply per extra user turn), a defender and a violator call where no candidate
    gives the side (counted whole: an upper bound; none for a side a composed single-turn
    scenario's example answers, ``--example-sides``), a judge call where only the judge decides, and
    two calibration calls per labelled spec example. Where the store (``options.store``, default
    beside the spec) holds calls of this plan's scenarios, the calls per scenario of each role
    and kind (judge or checks) are the measured ones, and the tokens and seconds per call the
    store's means for the role. Retries are not in the plan's figures; they are in measured ones.
    """
    from specc.engines.base import estimate_tokens
    from specc.synth.requests import kind_of, seed_request
    from specc.synth import calibrate, prompts, roles
    from specc.synth.pipeline import example_answer, spec_example_pairs, takes_example_sides
    from specc.synth.store import STORE_FILE, Store, StoreError
    from specc.synth.verify import needs_judge

    plan = _plan(spec, options)
    budgets = roles.Bounds(answer=options.answer_chars).budgets()
    judged = {s.id for s in plan.scenarios if needs_judge(spec.rule(s.rule_id), s)}
    k = options.candidates
    # the plan's figures, per kind of scenario (verified by the judge, or by the checks)
    prior = {kind: dict.fromkeys(ESTIMATE_ROLES[:-1], 0.0) for kind in ("judge", "checks")}
    ids = {"judge": set(), "checks": set()}
    composed: set[str] = set()  # scenarios whose seed request is composed by code: no attacker call
    prompt_sizes = []
    for s in plan.scenarios:
        rule = spec.rule(s.rule_id)
        kind = "judge" if s.id in judged else "checks"
        ids[kind].add(s.id)
        p = prior[kind]
        req = seed_request(rule, kind_of(s.boundary), f"{options.seed}\x00{s.id}", s.axes.get("persona", "")) \
            if options.requests == "composed" else None
        if req is not None:
            composed.add(s.id)
        else:
            p["attacker"] += 1
        rounds = prompts.rounds_of(s, options.rounds)
        p["candidate"] += rounds - 1 + (k if kind == "checks" else 0)
        sides = 1.0 if (kind == "judge" or k == 0) else 0.5  # candidates give about half the sides
        help_ = s.expected == "help"
        # a side the example's own answer can stand for is not the role's (--example-sides; a pair
        # keeps one side of the model's: counted as the role's where neither comes from candidates)
        fill = options.example_sides and req is not None and k > 0 and kind == "checks" and takes_example_sides(s, rounds)
        example = req.example if req is not None else None
        p["defender"] += 0.0 if fill and example_answer(example, "chosen", help_) is not None else sides
        p["violator"] += 0.0 if fill and example_answer(example, "rejected", help_) is not None else sides
        p["judge"] += 1 if kind == "judge" else 0
        prompt_sizes.append(sum(estimate_tokens(m["content"]) for m in
                                prompts.attacker_messages(rule, s, prompts.demonstrations(rule, s.id))))
    labelled = calibrate.labelled_pairs(spec_example_pairs(spec))
    calib_ids = {calibrate.SCENARIO_PREFIX + p.record_id for p in labelled}
    mean_prompt = sum(prompt_sizes) / len(prompt_sizes) if prompt_sizes else 0.0

    store_dir = options.store or default_store(spec_path, options.shard)
    rows: list[tuple] = []
    means: dict = {}
    if (Path(store_dir) / STORE_FILE).is_file():
        try:
            with Store(store_dir) as store:
                wanted = [s.id for s in plan.scenarios] + sorted(calib_ids)
                for i in range(0, len(wanted), 500):
                    part = wanted[i : i + 500]
                    rows += store.conn.execute(
                        f"SELECT scenario, role FROM results WHERE scenario IN ({','.join('?' * len(part))})",
                        part).fetchall()
                means = store.role_means()
        except StoreError as e:
            raise OperationalError(str(e)) from e
    found = {sid for sid, _ in rows if sid not in calib_ids}
    calls = {role: prior["judge"][role] + prior["checks"][role] for role in ESTIMATE_ROLES[:-1]}
    calls["calibration"] = 2.0 * len(labelled) if judged else 0.0
    basis = "measured" if found else "plan"
    if found:  # calls per scenario as measured on the plan's scenarios the store holds, per kind
        calls = dict.fromkeys(ESTIMATE_ROLES[:-1], 0.0)
        for kind, all_members in ids.items():
            for role in calls:
                # the attacker is asked only for the scenarios whose request is not composed
                members = all_members - composed if role == "attacker" else all_members
                seen = found & members
                if not members:
                    continue
                if seen:
                    calls[role] += sum(1 for sid, r in rows if sid in seen and r == role) / len(seen) * len(members)
                elif kind == "judge" and found:
                    pass  # other scenarios ran, these made no call: the judge was not trusted (dropped)
                else:
                    calls[role] += prior[kind][role]
        stored_calibration = sum(1 for sid, _ in rows if sid in calib_ids)
        calls["calibration"] = float(stored_calibration) if stored_calibration else (2.0 * len(labelled) if judged else 0.0)
    out = {}
    for role in ESTIMATE_ROLES:
        measured = means.get("judge" if role == "calibration" else role)
        if measured and measured["calls"]:
            out[role] = RoleEstimate(max(0.0, calls[role]), measured["prompt_tokens"], measured["completion_tokens"],
                                     measured["seconds"], True)
        else:
            budget = budgets["judge" if role == "calibration" else role]
            out[role] = RoleEstimate(max(0.0, calls[role]), mean_prompt, float(budget), None, False)
    return Estimate(scenarios=len(plan.scenarios), judge_scenarios=len(judged), basis=basis, found=len(found),
                    stored=len(rows), roles=out, prices=options.prices)

