"""Interruption, caches and reproducibility (issue #6).

- A process SIGKILLed inside any stage, then rerun with the same command, finishes with an export
  byte-identical to an uninterrupted run's. The kills are exact: a small driver runs the real CLI
  with a hook that SIGKILLs the process at a chosen point of a chosen stage (outputs written but not
  the manifest; an output's temporary file written but not renamed; after some embedding chunks).
  One test kills from outside, while the corpus is being encoded.
- A partial or damaged cache (a truncated or changed segment of the embedding store, a changed
  embeddings file, a missing digest, an edited manifest, a changed output) is detected and redone,
  never trusted.
- Same inputs, options and seed give byte-identical tables; the manifests hold what is needed to
  redo the run (a test rebuilds the command from them alone and compares bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import RUN_TABLES, assert_same_up_to_tolerance, invoke, mine_json, reran, synthetic_beir

TABLES = [*RUN_TABLES, "export/triplet.parquet"]
STAGES = ["inputs", "index", "retrieve", "score", "filter", "export"]
# Batches of 16 texts: with the driver's 16-text chunks, the batches are the same as in one big chunk.
OPTS = ["--batch-size", "16", "--method", "naive", "--num-negatives", "4"]

DRIVER = r'''
"""Run the hnmine CLI; with HNMINE_TEST_KILL=stage:point, SIGKILL this process at that point."""
import os, signal, sys

import hnmine.inference.cache
import hnmine.pipeline as pipeline
import hnmine.rundir as rundir

hnmine.inference.cache.CHUNK = int(os.environ.get("HNMINE_TEST_CHUNK", hnmine.inference.cache.CHUNK))
kill_at = os.environ.get("HNMINE_TEST_KILL")
if kill_at:
    stage, point = kill_at.split(":")
    nth = int(os.environ.get("HNMINE_TEST_NTH", "1"))
    current = {"stage": None, "writes": 0}
    real_run_stage = pipeline.run_stage

    def run_stage(stage_, *args, **kwargs):
        current["stage"] = stage_.name
        return real_run_stage(stage_, *args, **kwargs)

    pipeline.run_stage = run_stage

    def die():
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before-manifest":  # every output written, the manifest not
        real_write_manifest = rundir.RunDir.write_manifest

        def write_manifest(self, manifest):
            if manifest.stage == stage:
                die()
            return real_write_manifest(self, manifest)

        rundir.RunDir.write_manifest = write_manifest
    elif point == "mid-write":  # the stage's nth atomic rename: a temporary file written, not renamed
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if current["stage"] == stage:
                current["writes"] += 1
                if current["writes"] == nth:
                    die()
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace
    else:
        raise SystemExit(f"unknown kill point {point}")

from hnmine.cli import app

app(prog_name="hnmine")
'''


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("driver") / "hnmine_kill_driver.py"
    path.write_text(DRIVER)
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, Path]:
    """(data, reference run): 64 short documents (4 chunks of 16), 8 queries, mined once without interruption."""
    base = tmp_path_factory.mktemp("synth")
    data = synthetic_beir(base / "data", 64, 8)
    ref = base / "reference"
    mine_json(data, ref, *OPTS)
    return data, ref


def run_driver(
    driver: Path,
    data: Path,
    run: Path,
    *,
    kill: str | None = None,
    nth: int = 1,
    chunk: int = 16,
    extra: list[str] | None = None,
    background: bool = False,
):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "HNMINE_TEST_CHUNK": str(chunk)}
    env.pop("HNMINE_TEST_KILL", None)
    if kill:
        env["HNMINE_TEST_KILL"] = kill
        env["HNMINE_TEST_NTH"] = str(nth)
    cmd = [sys.executable, str(driver), "mine", str(data), "--out", str(run), "--quiet", *OPTS, *(extra or [])]
    if background:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def assert_same_tables(run: Path, ref: Path) -> None:
    for rel in TABLES:
        assert (run / rel).read_bytes() == (ref / rel).read_bytes(), rel
    for stage in STAGES:
        got = json.loads((run / f"manifests/{stage}.json").read_text())
        want = json.loads((ref / f"manifests/{stage}.json").read_text())
        assert (got["key"], got["outputs"]) == (want["key"], want["outputs"]), stage
    assert not [p for p in run.rglob("*.tmp")], "temporary files were left behind"


# --- kill and resume ---------------------------------------------------------------------------------

# One kill inside every stage, in one run directory, each rerun resuming the previous one's work.
# Only two of these processes load the model (it is the slow part on a small CPU).
KILL_SEQUENCE = [
    ("inputs", "before-manifest", 1),
    ("index", "outside", 0),  # a real SIGKILL from outside, after two segments of the corpus are in the store
    ("retrieve", "mid-write", 4),  # rest of the corpus encoded, index done; query segment, vectors, digest renamed; candidates not
    ("score", "before-manifest", 1),
    ("filter", "mid-write", 2),  # negatives.parquet renamed, dropped.parquet not
    ("export", "mid-write", 1),
]


def store_segments() -> list[Path]:
    """The segments of the embedding store this test's processes write (conftest: one store per test)."""
    return sorted((Path(os.environ["HNMINE_CACHE_DIR"]) / "store").glob("*/seg-*.seg"))


def kill_from_outside_while_encoding(driver: Path, data: Path, run: Path) -> int:
    proc = run_driver(driver, data, run, background=True)
    deadline = time.monotonic() + 300
    try:
        while len(store_segments()) < 2:
            assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "encoding never started"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
    return proc.returncode


def test_kill_inside_every_stage_then_resume(driver, synth, tmp_path):
    data, ref = synth
    run = tmp_path / "run"
    for stage, point, nth in KILL_SEQUENCE:
        if point == "outside":
            code = kill_from_outside_while_encoding(driver, data, run)
        else:
            code = run_driver(driver, data, run, kill=f"{stage}:{point}", nth=nth).returncode
        assert code == -signal.SIGKILL, (stage, point, code)
        m = run / f"manifests/{stage}.json"
        assert not m.exists(), f"{stage} was killed before its manifest, yet one exists"
    proc = run_driver(driver, data, run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_tables(run, ref)


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("point, nth", [("before-manifest", 1), ("mid-write", 1), ("mid-write", 2)])
def test_kill_at_each_point_of_each_stage_from_scratch(driver, synth, tmp_path, stage, point, nth):
    data, ref = synth
    run = tmp_path / "run"
    proc = run_driver(driver, data, run, kill=f"{stage}:{point}", nth=nth)
    if proc.returncode == 0:
        pytest.skip(f"{stage} makes fewer than {nth} atomic writes")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    done = run_driver(driver, data, run)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_tables(run, ref)


@pytest.mark.slow
def test_sigkill_at_random_moments(driver, synth, tmp_path):
    """Kill after 0.5 s, 1 s, 1.5 s, … of each attempt until one attempt finishes; then compare."""
    data, ref = synth
    run = tmp_path / "run"
    for attempt in range(1, 40):
        proc = run_driver(driver, data, run, background=True)
        try:
            proc.wait(timeout=0.5 * attempt)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        if proc.returncode == 0:
            break
    assert proc.returncode == 0
    assert_same_tables(run, ref)


# --- caches: partial or damaged state is detected and redone ---------------------------------------


class EncodeCounter:
    """Counts model calls of hnmine.inference.cache (one per chunk of missing texts); optionally interrupts the nth."""

    def __init__(self, monkeypatch, interrupt_at: int | None = None):
        import hnmine.inference.cache

        self.calls = 0
        real = hnmine.inference.cache.encode_rows

        def counted(*args, **kwargs):
            self.calls += 1
            if interrupt_at is not None and self.calls == interrupt_at:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(hnmine.inference.cache, "encode_rows", counted)


@pytest.fixture
def tiny_batches_of_4(tmp_path_factory, finished_tiny):
    """The tiny data mined with --batch-size 4 (the reference for runs with 4-text chunks), with a store of its
    own: the test's store starts empty."""
    data, _ = finished_tiny
    ref = tmp_path_factory.mktemp("ref4") / "run"
    mine_json(data, ref, "--batch-size", "4", "--cache-dir", ref.parent / "store")
    return data, ref


def test_interrupted_encoding_resumes_at_the_next_chunk(tiny_batches_of_4, tmp_path, monkeypatch):
    import hnmine.inference.cache

    data, ref = tiny_batches_of_4
    monkeypatch.setattr(hnmine.inference.cache, "CHUNK", 4)  # 12 documents: 3 chunks
    run = tmp_path / "run"
    counter = EncodeCounter(monkeypatch, interrupt_at=3)
    result = invoke(["mine", data, "--out", run, "--batch-size", "4", "--quiet"])
    assert result.exit_code == 130 and "interrupted" in result.stderr
    segments = store_segments()
    assert len(segments) == 2  # the two finished chunks, each a segment of the store
    assert not list(run.rglob("*.npy"))  # the run's own copy is made once every vector is there
    # A truncated segment (a full disk, a copy cut short) is encoded again, the good one is reused.
    segments[1].write_bytes(segments[1].read_bytes()[:100])
    counter = EncodeCounter(monkeypatch)
    result = invoke(["mine", data, "--out", run, "--batch-size", "4", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "a damaged segment of the embedding store" in result.stderr and segments[1].name in result.stderr
    # the damaged chunk's texts and the third chunk (in chunks of 4), then the 3 queries (one chunk)
    assert counter.calls == 3
    assert reran(json.loads(result.stdout)) == STAGES[1:]  # the interrupted run had finished the inputs
    for rel in TABLES:
        assert (run / rel).read_bytes() == (ref / rel).read_bytes(), rel
    assert not segments[1].exists()


def test_a_segment_whose_vectors_changed_is_encoded_again(tiny_batches_of_4, tmp_path, monkeypatch):
    """A segment of the right size whose vector bytes changed (a disk error) fails its sha256 when read:
    its texts are encoded again, never served."""
    import hnmine.inference.cache

    data, ref = tiny_batches_of_4
    monkeypatch.setattr(hnmine.inference.cache, "CHUNK", 4)
    run = tmp_path / "run"
    EncodeCounter(monkeypatch, interrupt_at=3)
    assert invoke(["mine", data, "--out", run, "--batch-size", "4", "--quiet"]).exit_code == 130
    first = store_segments()[0]
    _nan_tail(first)
    counter = EncodeCounter(monkeypatch)
    mine_json(data, run, "--batch-size", "4")
    assert counter.calls == 3  # the changed segment's 4 texts, the 4 never encoded, then the queries
    for rel in TABLES:
        assert (run / rel).read_bytes() == (ref / rel).read_bytes(), rel


def _nan_tail(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-8:] = b"\x00\x00\xc0\x7f" * 2  # two NaNs in the last vector; same size
    path.write_bytes(bytes(raw))


def test_changed_cached_vectors_are_not_reused(finished_tiny, tmp_path, monkeypatch):
    """Bytes of the cached corpus vectors changed on disk: the next encode of the same texts does
    not reuse them (their recorded sha256 no longer matches); it encodes again."""
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    key = json.loads((run / "manifests/index.json").read_text())["stats"]["dense"]["embedding_key"]
    _nan_tail(run / "cache/embeddings" / f"{key}.npy")
    counter = EncodeCounter(monkeypatch)
    mine_json(data, run, "--force")
    assert counter.calls == 1  # the corpus again; the queries' cache is intact
    assert np.isfinite(np.load(run / "index/dense/embeddings.npy")).all()
    for rel in TABLES:
        assert (run / rel).read_bytes() == (done / rel).read_bytes(), rel


def test_changed_index_vectors_are_redone(finished_tiny, tmp_path, monkeypatch):
    """As a run leaves them, the index's vectors are a hard link to the cache file: changing them
    changes both. The index is redone (its output hash) and the vectors encoded again (the cache's)."""
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    key = json.loads((run / "manifests/index.json").read_text())["stats"]["dense"]["embedding_key"]
    linked = run / "index/dense/embeddings.npy"
    linked.unlink()
    os.link(run / "cache/embeddings" / f"{key}.npy", linked)
    _nan_tail(linked)
    counter = EncodeCounter(monkeypatch)
    summary = mine_json(data, run)
    assert counter.calls == 1
    assert reran(summary) == ["index"]  # the same vectors again: nothing after it changes
    for rel in TABLES:
        assert (run / rel).read_bytes() == (done / rel).read_bytes(), rel


def test_cache_without_digest_is_encoded_again(finished_tiny, tmp_path, monkeypatch):
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    for digest in (run / "cache/embeddings").glob("*.sha256"):
        digest.unlink()
    counter = EncodeCounter(monkeypatch)
    mine_json(data, run, "--force")
    assert counter.calls == 2  # corpus and queries
    assert len(list((run / "cache/embeddings").glob("*.sha256"))) == 2
    for rel in TABLES:
        assert (run / rel).read_bytes() == (done / rel).read_bytes(), rel


@pytest.mark.parametrize(
    "edit, expected",
    [
        pytest.param(lambda run: _edit_manifest(run, "score", key="0" * 64), ["score"], id="score-key-edited"),
        pytest.param(
            lambda run: _edit_manifest(run, "retrieve", outputs={"candidates.parquet": "0" * 64}),
            ["retrieve"],
            id="retrieve-output-hash-edited",
        ),
        pytest.param(lambda run: _edit_manifest(run, "index", outputs={}), ["index"], id="index-outputs-emptied"),
        pytest.param(lambda run: (run / "manifests/inputs.json").unlink(), ["inputs"], id="inputs-manifest-deleted"),
        pytest.param(
            lambda run: (run / "manifests/filter.json").write_text('{"stage": "filter", "key": '),
            ["filter"],
            id="filter-manifest-truncated",
        ),
        pytest.param(lambda run: _append(run / "negatives.parquet"), ["filter"], id="output-changed"),
        pytest.param(lambda run: (run / "export/triplet.parquet").unlink(), ["export"], id="export-file-deleted"),
        pytest.param(lambda run: (run / "index/dense/info.json").write_text("{}"), ["index"], id="index-file-changed"),
        pytest.param(lambda run: (run / "inputs/queries.parquet").unlink(), ["inputs"], id="inputs-table-deleted"),
    ],
)
def test_damaged_run_state_is_redone_not_trusted(finished_tiny, tmp_path, edit, expected):
    """Each damage reruns the stage it belongs to; later stages rerun only when its outputs differ
    (here they never do: the redone stage writes the same bytes)."""
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    edit(run)
    summary = mine_json(data, run)
    assert reran(summary) == expected
    for rel in TABLES:
        assert (run / rel).read_bytes() == (done / rel).read_bytes(), rel


def _edit_manifest(run: Path, stage: str, **changes) -> None:
    path = run / f"manifests/{stage}.json"
    m = json.loads(path.read_text())
    m.update(changes)
    path.write_text(json.dumps(m))


def _append(path: Path) -> None:
    with open(path, "ab") as fh:
        fh.write(b"\0")


def test_leftover_temporary_files_are_removed_and_ignored(finished_tiny, tmp_path):
    """What a SIGKILL leaves (temporary files beside outputs) neither breaks nor changes anything."""
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    leftovers = [run / ".negatives.parquet.k2j3.tmp", run / "index/dense/.embeddings.npy.tmp", run / "cache/embeddings/.abc.npy.x1y2.tmp"]
    for p in leftovers:
        p.write_bytes(b"partial")
    assert reran(mine_json(data, run)) == []
    assert not any(p.exists() for p in leftovers)


# --- reproducibility ---------------------------------------------------------------------------------


def test_two_runs_are_byte_identical(finished_tiny, tmp_path):
    data, done = finished_tiny
    run = tmp_path / "again"
    mine_json(data, run)
    for rel in TABLES:
        assert (run / rel).read_bytes() == (done / rel).read_bytes(), rel
    # Redone in place (the index's vectors already linked to the cache): same bytes, no leftovers.
    assert reran(mine_json(data, run, "--force")) == STAGES
    for rel in TABLES:
        assert (run / rel).read_bytes() == (done / rel).read_bytes(), rel
    assert not [p for p in run.rglob("*.tmp")]


def test_sampled_method_is_reproducible_by_seed(finished_tiny, tmp_path):
    data, done = finished_tiny
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for run in (a, b, c):
        shutil.copytree(done, run)
    opts = ["--method", "sampled", "--num-negatives", "3", "--random-negatives", "1"]
    mine_json(data, a, *opts, "--seed", "5")
    mine_json(data, b, *opts, "--seed", "5")
    mine_json(data, c, *opts, "--seed", "6")
    assert (a / "negatives.parquet").read_bytes() == (b / "negatives.parquet").read_bytes()
    assert (a / "export/triplet.parquet").read_bytes() == (b / "export/triplet.parquet").read_bytes()
    assert json.loads((a / "manifests/filter.json").read_text())["options"]["selection"]["seed"] == 5


def test_workers_with_the_same_threads_give_the_same_bytes(finished_tiny, tmp_path):
    """The byte promise across --workers: every process runs the same batches with the same --threads (each run
    with an embedding store of its own, so both encode)."""
    data, _ = finished_tiny
    one, two = tmp_path / "w1", tmp_path / "w2"
    mine_json(data, one, "--threads", "1")
    mine_json(data, two, "--threads", "1", "--workers", "2", "--cache-dir", tmp_path / "store-two")
    for rel in TABLES:
        assert (two / rel).read_bytes() == (one / rel).read_bytes(), rel


def test_workers_with_default_threads_agree_within_the_tolerance(finished_tiny, tmp_path):
    """Default --threads shares the CPUs out among the workers, so the thread count (and on some CPUs
    the last bits) differs from one process: scores agree within the stated tolerance, and the
    negatives are the same but for swaps between candidates whose scores are that close."""
    data, done = finished_tiny
    run = tmp_path / "w2"
    mine_json(data, run, "--workers", "2")
    assert_same_up_to_tolerance(done, run)


def command_from_manifests(run: Path) -> list[str]:
    """The `hnmine mine` arguments that redo a run, read from its manifests alone."""
    m = {s: json.loads((run / f"manifests/{s}.json").read_text()) for s in STAGES}
    args: list[str] = []
    inputs = m["inputs"]["options"]
    for role, path in m["inputs"]["stats"]["files"].items():
        args += [f"--{role}", path]
    for name, value in inputs["spec"].items():
        if value is not None and name not in ("data", "corpus", "queries", "qrels", "pairs", "split"):
            args += [f"--{name.replace('_', '-')}", str(value)]
    if inputs["hide_positives"]:
        args += ["--hide-positives"]
    index = m["index"]["options"]
    encoder = index["encoder"]
    args += ["--model", encoder["model"], "--dtype", encoder["dtype"], "--normalize" if encoder["normalize"] else "--no-normalize"]
    if encoder["max_length"] is not None:
        args += ["--max-length", str(encoder["max_length"])]
    for name in ("corpus_prompt", "corpus_prompt_name"):
        if index.get(name) is not None:
            args += [f"--{name.replace('_', '-')}", index[name]]
    retrieve = m["retrieve"]["options"]
    args += ["--retriever", retrieve["retriever"]]
    for name in ("query_prompt", "query_prompt_name", "rrf_k", "nprobe"):
        if retrieve.get(name) is not None:
            args += [f"--{name.replace('_', '-')}", str(retrieve[name])]
    for teacher in m["score"]["options"]["teachers"]:
        args += ["--teacher", f"{teacher['kind']}:{teacher['model']}"]
    for name, value in m["filter"]["options"]["selection"].items():
        if name == "dedup_threshold" and value is None:
            args += ["--dedup-threshold", "2"]  # off
        elif value is not None:
            args += [f"--{name.replace('_', '-')}", str(value)]
    export = m["export"]["options"]
    args += ["--format", export["format"]]
    if export["file_format"]:
        args += ["--file-format", export["file_format"]]
    if export["with_scores"]:
        args += ["--with-scores"]
    return args


def test_manifests_hold_what_is_needed_to_redo_the_run(finished_tiny, tmp_path):
    data, _ = finished_tiny
    first = tmp_path / "first"
    opts = [
        "--query-prompt",
        "query: ",
        "--corpus-prompt",
        "passage: ",
        "--max-length",
        "64",
        "--dtype",
        "float32",
        "--method",
        "topk-marginpos",
        "--margin",
        "0.02",
        "--num-negatives",
        "3",
        "--dedup-threshold",
        "0.9",
        "--seed",
        "3",
        "--format",
        "n-tuple",
        "--with-scores",
        "--min-relevance",
        "1",
    ]
    summary = mine_json(data, first, *opts)
    args = command_from_manifests(first)
    second = tmp_path / "second"
    result = invoke(["mine", "--out", second, "--json", "--quiet", *args])
    assert result.exit_code == 0, result.output
    export = Path(summary["export"]).relative_to(first)
    assert (second / export).read_bytes() == (first / export).read_bytes()
    for rel in TABLES[:-1]:
        assert (second / rel).read_bytes() == (first / rel).read_bytes(), rel
    index = json.loads((first / "manifests/index.json").read_text())
    assert index["models"]["dense"]["revision"] and index["packages"]["torch"] and index["hnmine_version"]
