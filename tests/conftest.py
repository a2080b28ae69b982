"""Shared fixtures. The model-backed run of a small corpus is made once per session and shared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


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
    {"_id": "d10", "title": "Espresso machines", "text": "An espresso machine pushes pressurised hot water through a puck of fine coffee grounds."},
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
