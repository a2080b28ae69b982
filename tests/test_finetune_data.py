"""Training data, arms, options and results of `hnmine finetune`, without a model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hnmine.errors import InputError, OptionError, RunDirError, UnknownName
from hnmine.finetune.arms import build_arms, training_rows
from hnmine.finetune.options import FinetuneOptions, parse_list, parse_seeds
from hnmine.finetune.results import markdown_table, results_table, summarize
from hnmine.finetune.sources import TrainingPair, load_source, read_pairs
from hnmine.formats import EXPORT_FORMATS as FORMATS
from hnmine.formats import Example, Passage


def _manifest(stage: str, **fields) -> dict:
    """A well-formed manifest (hnmine.manifest), as a run directory holds."""
    from hnmine.manifest import Manifest

    return Manifest(stage=stage, hnmine_version="test", key="k", options={}, inputs={}, outputs={"x": "y"}, **fields).to_json()


def _p(doc_id: str, title: str = "") -> Passage:
    return Passage(doc_id, title, f"text of {doc_id}", 0.5)


EXAMPLES = [
    Example("q1", "first query", [_p("p1", "Title"), _p("p2")], [_p("n1", "T1"), _p("n2"), _p("n3")]),
    Example("q2", "second query", [_p("p3")], [_p("n4")]),
]
TEXT = {
    name: _p(name, title).text
    for name, title in [("p1", "Title"), ("p2", ""), ("p3", ""), ("n1", "T1"), ("n2", ""), ("n3", ""), ("n4", "")]
}
EXPECTED = [
    TrainingPair("first query", TEXT["p1"], (TEXT["n1"], TEXT["n2"], TEXT["n3"])),
    TrainingPair("first query", TEXT["p2"], (TEXT["n1"], TEXT["n2"], TEXT["n3"])),
    TrainingPair("second query", TEXT["p3"], (TEXT["n4"],)),
]


@pytest.mark.parametrize("fmt", FORMATS.names())
def test_every_export_shape_reads_back_as_the_same_pairs(fmt):
    table = FORMATS.get(fmt).build(EXAMPLES, 3, False)
    shape, pairs, stats = read_pairs(table, Path(f"{fmt}.parquet"))
    assert shape == fmt
    # n-tuple leaves out queries short of num_negatives (q2 has one negative of 3).
    assert pairs == (EXPECTED[:2] if fmt == "n-tuple" else EXPECTED)
    assert stats["negatives_equal_to_a_positive"] == 0


def test_sentence_transformers_miner_columns_and_plain_pairs():
    # mine_hard_negatives names the anchor column after its input ("query").
    table = pa.table({"query": ["a", "a", "b"], "positive": ["p", "p", "r"], "negative": ["x", "y", "z"]})
    shape, pairs, _ = read_pairs(table, Path("st.parquet"))
    assert shape == "triplet"
    assert pairs == [TrainingPair("a", "p", ("x", "y")), TrainingPair("b", "r", ("z",))]
    shape, pairs, stats = read_pairs(pa.table({"anchor": ["a"], "positive": ["p"]}), Path("pairs.parquet"))
    assert (shape, stats["pairs_without_negatives"]) == ("pairs", 1)


def test_a_negative_equal_to_a_positive_of_its_anchor_is_left_out():
    # q has positives p1 and p2; p2 appears as a negative of (q, p1): training on it would push a positive away.
    table = pa.table({"anchor": ["q", "q", "q"], "positive": ["p1", "p1", "p2"], "negative": ["p2", "n", "n"]})
    _, pairs, stats = read_pairs(table, Path("t.parquet"))
    assert pairs == [TrainingPair("q", "p1", ("n",)), TrainingPair("q", "p2", ("n",))]
    assert stats["negatives_equal_to_a_positive"] == 1


def test_unknown_shape_names_the_columns():
    with pytest.raises(InputError, match=r"not a training file of a known shape \(columns: anchor, text\)"):
        read_pairs(pa.table({"anchor": ["a"], "text": ["b"]}), Path("x.parquet"))
    with pytest.raises(InputError, match="no anchor column"):
        read_pairs(pa.table({"foo": ["a"]}), Path("x.parquet"))


def _run_with_export(root: Path, files: dict[str, pa.Table], named: str | None) -> Path:
    (root / "export").mkdir(parents=True)
    for name, table in files.items():
        pq.write_table(table, root / "export" / name)
    if named is not None:
        from hnmine.io.hashing import file_hash

        (root / "manifests").mkdir()
        manifest = _manifest("export", stats={"file": f"export/{named}"})
        manifest["outputs"] = {f"export/{named}": file_hash(root / "export" / named)}  # as the export stage records it
        (root / "manifests" / "export.json").write_text(json.dumps(manifest))
    return root


def test_a_run_directory_is_read_through_its_export_manifest(tmp_path):
    old = pa.table({"anchor": ["a"], "positive": ["p"], "negative": ["old"]})
    new = FORMATS.get("n-tuple").build(EXAMPLES, 1, False)
    run = _run_with_export(tmp_path / "shifted", {"triplet.parquet": old, "n-tuple.parquet": new}, "n-tuple.parquet")
    source = load_source(run)
    assert (source.label, source.shape, source.file.name, source.run_dir) == ("shifted", "n-tuple", "n-tuple.parquet", run)
    # Two files and no manifest: which one is the run's is not guessed.
    ambiguous = _run_with_export(tmp_path / "two", {"triplet.parquet": old, "n-tuple.parquet": new}, None)
    with pytest.raises(RunDirError, match="several training files in export/"):
        load_source(ambiguous)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="no training file in export/"):
        load_source(tmp_path / "empty")
    with pytest.raises(InputError, match="no such run directory or training file"):
        load_source(tmp_path / "missing")


def _source(label: str, pairs: list[TrainingPair]):
    from hnmine.finetune.sources import TrainingSource

    return TrainingSource(label=label, path=Path(label), file=Path(label), shape="triplet", pairs=pairs)


def test_arms_in_batch_is_the_union_of_pairs_and_names_are_unique():
    a = _source("run", [TrainingPair("q1", "p1", ("n",)), TrainingPair("q2", "p2", ("m",))])
    b = _source("run", [TrainingPair("q2", "p2", ("k",)), TrainingPair("q3", "p3", ())])
    arms = build_arms([a, b], ("untrained", "in-batch", "mined"))
    assert [(x.name, x.kind) for x in arms] == [("untrained", "untrained"), ("in-batch", "in-batch"), ("run", "mined"), ("run-2", "mined")]
    assert [(p.anchor, p.positive, p.negatives) for p in arms[1].pairs] == [("q1", "p1", ()), ("q2", "p2", ()), ("q3", "p3", ())]


def test_training_rows_draw_negatives_by_seed_and_leave_short_pairs_out():
    pairs = [TrainingPair(f"q{i}", f"p{i}", tuple(f"n{i}-{j}" for j in range(5))) for i in range(30)]
    pairs.append(TrainingPair("short", "p", ("only",)))
    arm = build_arms([_source("run", pairs)], ("mined",))[0]
    rows1, left1 = training_rows(arm, 2, seed=1)
    assert list(rows1) == ["anchor", "positive", "negative_1", "negative_2"]
    assert (len(rows1["anchor"]), left1) == (30, 1)
    assert rows1 == training_rows(arm, 2, seed=1)[0]  # the same seed, the same draw
    assert rows1 != training_rows(arm, 2, seed=2)[0]  # another seed, another draw
    for i, (_, n1, n2) in enumerate(zip(rows1["anchor"], rows1["negative_1"], rows1["negative_2"])):
        assert n1.startswith(f"n{i}-") and n2.startswith(f"n{i}-") and n1 < n2  # its own, in export order
    in_batch = build_arms([_source("run", pairs)], ("in-batch",))[0]
    rows, left = training_rows(in_batch, 2, seed=1)
    assert list(rows) == ["anchor", "positive"] and (len(rows["anchor"]), left) == (31, 0)


def test_summary_mean_sample_std_min_max_and_markdown():
    rows = [
        {"arm": "shifted", "kind": "mined", "seed": s, "train_rows": 10, "ndcg_at_10": v, "recall_at_100": 0.9, "mrr_at_10": 0.5}
        for s, v in ((1, 0.5), (2, 0.7), (3, 0.6))
    ]
    rows.append(
        {"arm": "untrained", "kind": "untrained", "seed": None, "train_rows": 0, "ndcg_at_10": 0.4, "recall_at_100": 0.8, "mrr_at_10": 0.3}
    )
    summary = summarize(rows)
    nd = summary[0]["ndcg_at_10"]
    assert nd["mean"] == pytest.approx(0.6)
    assert nd["std"] == pytest.approx(math.sqrt((0.1**2 + 0.1**2 + 0) / 2))  # n − 1 = 2
    assert (nd["min"], nd["max"]) == (0.5, 0.7)
    assert summary[0]["recall_at_100"]["std"] == pytest.approx(0.0)
    assert summary[0]["seeds"] == [1, 2, 3] and summary[1]["ndcg_at_10"]["std"] is None
    table = markdown_table(summary)
    assert "| shifted | 3 | 10 | 60.00 ± 10.00 | 90.00 ± 0.00 | 50.00 ± 0.00 | 50.00–70.00 |" in table
    assert "| untrained | 1 | 0 | 40.00 | 80.00 | 30.00 | 40.00–40.00 |" in table
    assert results_table(rows).num_rows == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 1, "max_steps": 2}, "--epochs or --max-steps, not both"),
        ({"batch_size": 1}, "--batch-size must be at least 2"),
        ({"seeds": (1, 1)}, "a seed is repeated"),
        ({"warmup_ratio": 1.0}, "--warmup-ratio"),
        ({"device": "cuda:0,cuda:1"}, "training uses one device"),
        ({"precision": "float16"}, "float16 needs a GPU"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(OptionError, match=message):
        FinetuneOptions(**kwargs).validate()


def test_unknown_names_and_parsing():
    with pytest.raises(UnknownName, match="unknown arm 'best'"):
        FinetuneOptions(arms=("best",)).validate()
    with pytest.raises(UnknownName, match="unknown loss 'triplet'"):
        FinetuneOptions(loss="triplet").validate()
    assert parse_seeds(["1,2", "3"]) == (1, 2, 3)
    with pytest.raises(OptionError, match="'x' is not an integer"):
        parse_seeds(["1,x"])
    assert parse_list(["untrained,mined", "mined"]) == ("untrained", "mined")


def test_model_run_reads_the_runs_dense_model(tmp_path):
    from hnmine.finetune.compare import run_model_name
    from hnmine.finetune.sources import TrainingSource

    def run(name: str, model: str | None) -> TrainingSource:

        d = tmp_path / name
        (d / "manifests").mkdir(parents=True)
        if model is not None:
            (d / "manifests" / "index.json").write_text(json.dumps(_manifest("index", models={"dense": {"name": model}})))
        return TrainingSource(label=name, path=d, file=d / "x.parquet", shape="triplet", pairs=[], run_dir=d)

    assert run_model_name([run("a", "m1"), run("b", "m1")]) == "m1"
    with pytest.raises(OptionError, match="mined with different models"):
        run_model_name([run("c", "m1"), run("d", "m2")])
    with pytest.raises(RunDirError, match="no dense model in manifests/index.json"):
        run_model_name([run("e", None)])
    with pytest.raises(OptionError, match="needs a run directory"):
        run_model_name([_source("file", [])])


def test_one_gpu_is_pinned_through_cuda_visible_devices(monkeypatch):
    import os

    from hnmine.finetune.device import pin_device

    assert pin_device("cpu") == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert pin_device("cuda:1") == "cuda:0"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with pytest.raises(OptionError, match="shows 2 GPU"):
        pin_device("cuda:2")
