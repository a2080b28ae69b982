"""Running a command's stages: the options resolved against the run's record, the run's lock, the executor
session, and each stage through hnmine.pipeline.run_stage (key, skip, timing, outputs, manifest).

This sits above the stages and the executors (hnmine.stages, hnmine.executors): the one place that knows
both, so neither knows the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hnmine.io.hashing import hash_scope
from hnmine.options import Options, check_options
from hnmine.pipeline import Context, MineResult, run_stage
from hnmine.progress import Reporter
from hnmine.run_options import change_lines
from hnmine.rundir import RunDir


def mine(
    run_dir: Path | str,
    options: Options,
    *,
    stages: Sequence[str] | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    replace: bool | None = None,
    after_stage: Callable[[], None] | None = None,
    cache_dir: Path | None = None,
    cache_max_size: str | None = None,
) -> MineResult:
    """Run `stages` (default: all, in order) in `run_dir`; each is skipped when up to date.

    Every option and every cheap precondition is checked before the run directory is touched, so a
    bad value fails in a second and writes nothing. `replace`: None mines whatever inputs the options
    name; False refuses inputs other than the run's (hnmine.run_identity), True replaces them.
    `after_stage` is called once each stage is done or skipped (a bucket run sends it: hnmine.run_bucket).
    `cache_dir`: where the embedding store is (hnmine.inference.store); `cache_max_size`: the store pruned to that
    size after.
    """
    from hnmine.executors import ExecutorSession
    from hnmine.io.fetch import local_options
    from hnmine.options import check_engine
    from hnmine.stages import STAGES

    reporter = reporter or Reporter()
    options = local_options(options, reporter)  # inputs named by URIs: their local copies (hnmine.io.fetch)
    chosen = [s for s in STAGES if stages is None or s.name in stages]
    check_engine(engine)
    from hnmine.inference.store import check_cache_dir, parse_size, store_scope

    check_cache_dir(cache_dir)
    max_size = parse_size(cache_max_size, "--cache-max-size") if cache_max_size is not None else None
    check_options(options, [s.name for s in chosen])
    for stage in chosen:
        stage.check(options)
    started = time.perf_counter()
    run = RunDir(run_dir)
    result = MineResult(run_dir=Path(run_dir))
    # hash_scope: each file hashed once per run while unchanged, never trusted across runs (hnmine.io.hashing)
    executors = ExecutorSession(engine, ray_address, reporter)
    executors.check()  # before the run directory is touched: a cluster that does not answer writes nothing
    with run.writing(), hash_scope(), executors as session, store_scope(cache_dir):
        if replace is not None and any(s.name == "inputs" for s in chosen):
            from hnmine.run_identity import check_same_inputs

            check_same_inputs(run, options, replace=replace)
        ctx = Context(run=run, options=options, reporter=reporter, engine=engine, executors=session)
        for stage in chosen:
            outcome = run_stage(stage, ctx, force=force)
            if outcome.skipped and stage.name == "inputs" and replace is not None:
                from hnmine.run_options import follow_moved_inputs

                follow_moved_inputs(run, options)
            counts = outcome.manifest.counts if outcome.manifest else {}
            verb = "skipped (up to date)" if outcome.skipped else f"done in {outcome.seconds:.1f}s"
            reporter.stage_line(stage.name, f"{verb}  rows in {counts.get('rows_in', '-')}, out {counts.get('rows_out', '-')}")
            result.outcomes.append(outcome)
            if after_stage is not None:
                after_stage()
        _limit_store(max_size, reporter)
    result.seconds = time.perf_counter() - started
    return result


def _limit_store(max_size: int | None, reporter: Reporter) -> None:
    """--cache-max-size: the store pruned after the stages, least recently used first."""
    if max_size is None:
        return
    from hnmine.inference.store import limit_size, size_text, store_root

    pruned = limit_size(max_size)
    if pruned is not None and pruned.segments:
        reporter.info(
            f"embedding store ({store_root()}): {pruned.texts:,} texts ({size_text(pruned.bytes)}) pruned to stay under --cache-max-size"
        )


def run_command(
    run_dir: Path | str,
    given: dict[str, Any],
    *,
    stages: Sequence[str] | None = None,
    defaults: bool = False,
    reset: Sequence[str] = (),
    replace: bool = False,
    force: bool = False,
    reporter: Reporter | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    cache_dir: Path | None = None,
    cache_max_size: str | None = None,
) -> MineResult:
    """What a command does (`hnmine mine`, a stage command, `hnmine.mine`): the options it is `given`, the
    others from the run's own record (hnmine.run_options; `defaults`: from their defaults, `reset`: these
    from theirs), each change
    named at the end; other inputs than the run's refused unless `replace` (hnmine.run_identity); then `mine`."""
    from hnmine.io.fetch import local_values
    from hnmine.io.storage import is_uri

    reporter = reporter or Reporter()
    given = local_values(given, reporter)  # inputs named by URIs: their local copies (hnmine.io.fetch)
    kw = dict(
        stages=stages,
        defaults=defaults,
        reset=reset,
        replace=replace,
        force=force,
        reporter=reporter,
        engine=engine,
        cache_dir=cache_dir,
        cache_max_size=cache_max_size,
    )
    if not is_uri(run_dir):
        return _run_command(run_dir, given, ray_address=ray_address, **kw)  # type: ignore[arg-type]
    from hnmine.run_bucket import BucketRun

    bucket = BucketRun(str(run_dir))
    with bucket.writing(reporter) as staged:
        result = _run_command(staged, given, ray_address=ray_address, after_stage=bucket.push, **kw)  # type: ignore[arg-type]
    result.run_dir = bucket.uri
    return result


def _run_command(
    run_dir: Path | str,
    given: dict[str, Any],
    *,
    stages: Sequence[str] | None,
    defaults: bool,
    reset: Sequence[str],
    replace: bool,
    force: bool,
    reporter: Reporter,
    engine: str,
    ray_address: str | None,
    after_stage: Callable[[], None] | None = None,
    cache_dir: Path | None = None,
    cache_max_size: str | None = None,
) -> MineResult:
    from hnmine.run_options import resolve_options
    from hnmine.stages import STAGES

    names = [s.name for s in STAGES if stages is None or s.name in stages]
    run = RunDir(run_dir)
    options, changes = resolve_options(run, given, names, defaults=defaults, reset=reset, replace=replace)
    result = mine(
        run_dir,
        options,
        stages=names,
        force=force,
        reporter=reporter,
        engine=engine,
        ray_address=ray_address,
        replace=replace,
        after_stage=after_stage,
        cache_dir=cache_dir,
        cache_max_size=cache_max_size,
    )
    # Said once the command succeeded, so a failure stays one line; the summary (--json) holds them too.
    for line in change_lines(changes):
        reporter.info(line)
    result.changes = changes
    return result
