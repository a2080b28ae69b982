"""Faults a user or an operator meets: a full disk and signals in every stage, workers that must end with
their parent, the model that ran being the model in the key, and messages that say what is wrong."""

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
from conftest import BUNDLED_MODEL, HNMINE, TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, snapshot, write_beir

STAGES = ["inputs", "index", "retrieve", "score", "filter", "export"]

DRIVER = r'''
"""Run the hnmine CLI with one fault injected: HNMINE_TEST_FAULT=enospc:STAGE | sigterm:STAGE | sigint:STAGE | fallocate."""
import errno, os, signal, sys

import hnmine.pipeline as pipeline

fault = os.environ.get("HNMINE_TEST_FAULT", "")
kind, _, where = fault.partition(":")
current = {"stage": None}
real_run_stage = pipeline.run_stage


def run_stage(stage, *args, **kwargs):
    current["stage"] = stage.name
    if stage.name == where and kind in ("sigterm", "sigint"):
        real_work = stage.work

        def work(ctx):  # the signal arrives while the stage works
            os.kill(os.getpid(), signal.SIGTERM if kind == "sigterm" else signal.SIGINT)
            return real_work(ctx)

        import dataclasses
        stage = dataclasses.replace(stage, work=work)
    return real_run_stage(stage, *args, **kwargs)


pipeline.run_stage = run_stage

if kind == "enospc":  # the stage's first file to be renamed into place finds the disk full
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if current["stage"] == where and str(src).endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst, *a, **k)

    os.replace = replace
elif kind == "fallocate":  # reserving the blocks of an embeddings file finds the disk full
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    os.posix_fallocate = full

from hnmine.cli import main

sys.argv = ["hnmine", *sys.argv[1:]]
main()
'''


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "fault_driver.py"
    path.write_text(DRIVER)
    return path


@pytest.fixture(scope="module")
def vectors_case(tmp_path_factory):
    """The tiny collection with the user's vectors (no model: each run takes a second or two), and a reference run."""
    base = tmp_path_factory.mktemp("vectors_case")
    data = write_beir(base / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    rng = np.random.default_rng(3)
    np.save(base / "docs.npy", rng.normal(size=(len(TINY_DOCS), 16)).astype(np.float32))
    np.save(base / "queries.npy", rng.normal(size=(len(TINY_QUERIES), 16)).astype(np.float32))
    args = [
        "--corpus-embeddings",
        base / "docs.npy",
        "--query-embeddings",
        base / "queries.npy",
        "--method",
        "naive",
        "--num-negatives",
        "3",
    ]
    ref = base / "reference"
    mine_json(data, ref, *args)
    return data, args, ref


def run_with_fault(driver: Path, fault: str, data: Path, run: Path, args: list) -> subprocess.CompletedProcess:
    env = {**os.environ, "HNMINE_TEST_FAULT": fault}
    return subprocess.run(
        [sys.executable, str(driver), "mine", str(data), "--out", str(run), "--quiet", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def temporary_files(run: Path) -> list[str]:
    return [str(p.relative_to(run)) for p in run.rglob("*.tmp")]


def assert_resumes_to_the_reference(data: Path, run: Path, args: list, ref: Path) -> None:
    summary = mine_json(data, run, *args)
    assert Path(summary["export"]).read_bytes() == (ref / "export/triplet.parquet").read_bytes()
    for rel in ("negatives.parquet", "dropped.parquet", "scores.parquet"):
        assert (run / rel).read_bytes() == (ref / rel).read_bytes(), rel


@pytest.mark.parametrize("stage", STAGES)
def test_a_full_disk_in_any_stage_is_one_line_and_leaves_nothing_behind(driver, vectors_case, tmp_path, stage):
    data, args, ref = vectors_case
    run = tmp_path / "run"
    result = run_with_fault(driver, f"enospc:{stage}", data, run, args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hnmine: error: ") and "No space left on device" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert temporary_files(run) == []
    assert not (run / f"manifests/{stage}.json").exists()  # the stage did not finish: it is redone
    assert_resumes_to_the_reference(data, run, args, ref)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("sig, code, word", [("sigterm", 143, "terminated"), ("sigint", 130, "interrupted")])
def test_a_signal_in_any_stage_is_one_line_and_resumes(driver, vectors_case, tmp_path, stage, sig, code, word):
    data, args, ref = vectors_case
    run = tmp_path / "run"
    result = run_with_fault(driver, f"{sig}:{stage}", data, run, args)
    assert result.returncode == code, result.stderr
    assert result.stderr.strip() == f"hnmine: {word}; finished stages are kept, rerun the same command to resume"
    assert temporary_files(run) == []
    assert_resumes_to_the_reference(data, run, args, ref)


def test_a_full_disk_while_writing_the_users_vectors_on_a_real_small_disk(vectors_case, tmp_path):
    """A real filesystem that fills up (a 1 MB tmpfs): once exit 135 (SIGBUS), no message, and a sparse
    temporary file left holding the space."""
    data, _, _ = vectors_case
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        big = tmp_path / "big.npy"
        np.save(big, np.ones((len(TINY_DOCS), 30_000), dtype=np.float32))  # 1.4 MB of vectors for a 1 MB disk
        run = mount / "run"
        result = subprocess.run(
            [str(HNMINE), "mine", str(data), "--out", str(run), "--corpus-embeddings", str(big), "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 2, (result.returncode, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "No space left on device" in lines[0] and "embeddings.npy" in lines[0], result.stderr
        assert temporary_files(run) == []
        assert shutil.disk_usage(mount).used < 200_000  # nothing holds the space
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_disk_while_assembling_encoded_vectors(driver, tmp_path):
    """The model's vectors are assembled in a memory map: its blocks are reserved first, so a full disk is
    an error message, not SIGBUS."""
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    run = tmp_path / "run"
    result = run_with_fault(driver, "fallocate", data, run, [])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "cache/embeddings" in lines[0], result.stderr
    assert temporary_files(run) == []


def _children(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        ppid = next((line.split()[1] for line in text.splitlines() if line.startswith("PPid:")), None)
        if ppid == str(pid):
            out.append(int(status.parent.name))
    return out


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for p in pids:
        try:
            state = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        if "State:\tZ" not in state:
            alive.append(p)
    return alive


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_workers_end_with_their_parent_quietly(tmp_path, how):
    """SIGTERM left both workers alive (about 730 MB each); Ctrl-C printed ~88 lines of worker tracebacks."""
    from conftest import synthetic_beir

    data = synthetic_beir(tmp_path / "data", 600, 4, words=6)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [str(HNMINE), "mine", str(data), "--out", str(run), "--workers", "2", "--threads", "1", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    workers: list[int] = []
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        # the spawn pool: a resource tracker plus the workers, once they are encoding
        workers = [c for c in _children(proc.pid) if "multiprocessing" in Path(f"/proc/{c}/cmdline").read_text(errors="ignore")]
        if len([c for c in workers if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(errors="ignore")]) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None and workers, "the workers did not start in time"
    time.sleep(1.0)  # let them be inside a batch
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    out, err = proc.communicate(timeout=60)
    expected = (143, "terminated") if how == "sigterm" else (130, "interrupted")
    assert proc.returncode == expected[0], err
    assert err.strip() == f"hnmine: {expected[1]}; finished stages are kept, rerun the same command to resume", err
    deadline = time.time() + 15
    while _alive(workers) and time.time() < deadline:
        time.sleep(0.2)
    assert _alive(workers) == []
    assert temporary_files(run) == []


def _fake_hub_cache(root: Path, snapshots: dict[str, int]) -> Path:
    """A Hugging Face cache holding one model in several snapshots (commit -> max_seq_length)."""
    repo = root / "models--testorg--mini"
    for commit, length in snapshots.items():
        folder = repo / "snapshots" / commit
        shutil.copytree(BUNDLED_MODEL, folder)
        cfg = folder / "sentence_bert_config.json"
        conf = json.loads(cfg.read_text())
        conf["max_seq_length"] = length
        cfg.write_text(json.dumps(conf))
    (repo / "refs").mkdir(parents=True)
    return repo


def test_the_model_that_ran_is_the_model_in_the_key(tmp_path):
    """Two cached snapshots of one model: after refs/main moved, a rerun skipped every stage and kept the old
    vectors, and the manifest named the first snapshot in sort order, not the one loaded."""
    cache = tmp_path / "hf"
    a, b = "a" * 40, "b" * 40
    repo = _fake_hub_cache(cache, {a: 8, b: 6})
    (repo / "refs" / "main").write_text(b)  # the later snapshot first; sort order would pick `a`
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    run = tmp_path / "run"
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}

    def mine() -> dict:
        out = subprocess.run(
            [str(HNMINE), "mine", str(data), "--out", str(run), "--model", "testorg/mini", "--json", "--quiet"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    mine()
    dense = json.loads((run / "manifests/index.json").read_text())["models"]["dense"]
    assert dense["revision"] == f"hub:{b}" and dense["path"].endswith(b)
    vectors_b = np.load(run / "index/dense/embeddings.npy")
    (repo / "refs" / "main").write_text(a)
    summary = mine()
    assert not any(s["skipped"] for s in summary["stages"][1:4])  # index, retrieve, score are redone
    assert json.loads((run / "manifests/index.json").read_text())["models"]["dense"]["revision"] == f"hub:{a}"
    assert not np.array_equal(np.load(run / "index/dense/embeddings.npy"), vectors_b)


def test_a_bi_encoder_is_refused_as_a_cross_encoder(finished_tiny, tmp_path):
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    before = snapshot(run)
    result = invoke(["mine", data, "--out", run, "--teacher-type", "cross-encoder", "--teacher", BUNDLED_MODEL, "--quiet"])
    assert result.exit_code == 2
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "not a cross-encoder" in err and "architectures: BertModel" in err, err
    assert snapshot(run) == before  # refused before any stage ran


def test_max_length_above_the_models_limit_is_refused_before_any_work(tiny_beir, tmp_path):
    result = invoke(["mine", tiny_beir, "--out", tmp_path / "run", "--max-length", "1024", "--quiet"])
    assert result.exit_code == 2
    assert "--max-length 1024 is above the limit of model 'all-MiniLM-L6-v2' (512 tokens)" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["run[/x]", "[exp1]", "[bold]r[/bold]"])
def test_paths_with_brackets_are_printed_as_they_are(finished_tiny, tmp_path, name):
    """`--out "run[/x]"` crashed after a successful run (rich markup error); `--out "[exp1]"` printed the wrong path."""
    data, done = finished_tiny
    run = tmp_path / name
    shutil.copytree(done, run)
    result = subprocess.run([str(HNMINE), "mine", str(data), "--out", str(run)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"run directory: {run}" in result.stderr and f"training file: {run}/export/triplet.parquet" in result.stderr
    report = subprocess.run([str(HNMINE), "report", str(run)], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and str(run) in report.stdout.replace("\n", "")


def test_report_html_into_a_folder_that_cannot_be_written_is_one_line(finished_tiny, tmp_path):
    """`report --html` into a read-only folder gave an OSError traceback. Root writes read-only folders, so
    the folder here is one that cannot exist (its parent is a file) — the same OSError path."""
    _, done = finished_tiny
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke(["report", done, "--html", blocker / "r.html"])
    assert result.exit_code == 2
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "cannot write" in err and "Traceback" not in result.output, err


def test_report_html_into_a_read_only_folder_is_one_line(finished_tiny, tmp_path):
    _, done = finished_tiny
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("root writes read-only folders (the case above covers the same path)")
        result = invoke(["report", done, "--html", folder / "r.html"])
    finally:
        folder.chmod(0o755)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot write" in result.stderr


def test_an_empty_training_file_says_so_and_what_to_change(tiny_beir, tmp_path):
    run = tmp_path / "run"
    result = invoke(["mine", tiny_beir, "--out", run, "--range-min", "20"])
    assert result.exit_code == 0, result.output
    assert "the training file is empty: no query has at least --min-negatives (1) negatives" in result.stderr
    assert "hnmine report" in result.stderr


def test_random_negative_shortfall_is_named_as_such(finished_tiny, tmp_path):
    """The shortfall warning blamed the mined negatives when the random ones were short."""
    data, done = finished_tiny
    run = tmp_path / "run"
    shutil.copytree(done, run)
    result = invoke(["mine", data, "--out", run, "--method", "naive", "--num-negatives", "2", "--random-negatives", "40"])
    assert result.exit_code == 0, result.output
    assert "queries have fewer than 40 random negatives" in result.stderr
    assert "fewer than 2 negatives" not in result.stderr
