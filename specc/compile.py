"""``specc compile``: plan -> synth (store, call runner, verification) -> emit, for one spec.

:func:`compile_spec` is what the command runs; it takes already loaded models so tests can pass
fakes. Errors meant for the user are :class:`CompileError` (bad options: exit 1 or 2) and
:class:`OperationalError` (model, store, disk: exit 3).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from specc import defaults
from specc.engines import EngineFault, ModelHandle
from specc.ir.model import Spec

if TYPE_CHECKING:  # the writer and the pipeline load when a compile runs
    from specc.emit.manifest import Manifest
    from specc.plan.model import Split
    from specc.synth.calibrate import Calibration
    from specc.synth.model import SynthStats


class CompileError(Exception):
    """Options or inputs that cannot be compiled (exit 1)."""


class OperationalError(Exception):
    """A model, the store or the disk failed (exit 3); the store keeps what was finished."""


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
    # write into a non-empty OUT that is not a specc dataset (its files may be replaced or deleted)
    force: bool = False
    # refuse (E503) a plan with more scenarios, before any work (specc.plan.planner.check_size)
    max_scenarios: int = defaults.MAX_SCENARIOS


@dataclass(frozen=True)
class CompileReport:
    """What a compile wrote: its manifest, typed (the files, their counts and the run's statistics
    are the manifest's), and the judge's calibration behind the manifest's ``judge`` field."""

    out_dir: Path
    manifest: Manifest = field(repr=False)
    calibration: Calibration | None = field(repr=False, default=None)

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


def compile_spec(spec: Spec, spec_path: Path, options: CompileOptions, *, model: ModelHandle,
                 judge: ModelHandle | None = None, on_event: Callable[..., None] | None = None) -> CompileReport:
    from specc.emit.writer import write_dataset
    from specc.plan.planner import PlanError, make_plan
    from specc.synth.calls import CallRunner, Settings
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
    if options.answer_chars < 32:
        raise CompileError("--max-chars must be >= 32")
    if not 0 <= options.min_judge_agreement <= 1:
        raise CompileError("--min-judge-agreement must be between 0 and 1")
    try:
        plan = make_plan(spec, seed=options.seed, per_rule=options.per_rule, coverage=options.coverage,
                         system_prompt=options.system_prompt, test_fraction=options.test_fraction,
                         rules=options.rules, max_scenarios=options.max_scenarios)
    except PlanError as e:
        raise CompileError(str(e)) from e
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
                        candidate_temperature=options.candidate_temperature)
    store_dir = options.store or default_store(spec_path, options.shard)
    try:
        with Store(store_dir) as store:
            runner = CallRunner(model, store, settings, judge_model=judge, on_event=on_event)
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
    return CompileReport(out_dir=Path(options.out_dir), manifest=written.manifest, calibration=result.calibration)


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
