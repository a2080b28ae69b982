"""What keys a cache is what ran: file contents and model settings, never file metadata (issue 23, item 5).

Each case broke on main in one Python process (a notebook, or these tests): a cache trusted a file
because its path, size and modification time were unchanged, or trusted a model by its weights
alone, or a checkpoint's half precision silently overrode `--dtype float32`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import BUNDLED_MODEL, TINY_DOCS, TINY_QRELS, TINY_QUERIES, mine_json, reran, write_beir

F32 = ("--dtype", "float32")  # a given dtype: no `auto` probe for each new model folder


def edit_in_place_keeping_stat(path: Path, old: bytes, new: bytes) -> None:
    """Replace bytes of a file in place, the same size, then put its modification time back."""
    assert len(old) == len(new)
    st = path.stat()
    raw = path.read_bytes()
    assert raw.count(old) == 1, old
    with open(path, "r+b") as fh:
        fh.write(raw.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_an_input_edited_in_place_with_the_same_size_and_time_is_seen(tmp_path):
    """The file-hash memo keyed on (path, size, mtime) gave the old digest: the second mine skipped
    every stage and kept the old text."""
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    run = tmp_path / "run"
    mine_json(data, run, *F32)
    edit_in_place_keeping_stat(data / "corpus.jsonl", b"every few hundred", b"every few hundreD")
    assert reran(mine_json(data, run, *F32))[:1] == ["inputs"]
    texts = pq.read_table(run / "inputs/corpus.parquet").column("text").to_pylist()
    assert any("every few hundreD" in t for t in texts)


def _tensor_bytes_start(safetensors: Path) -> int:
    """Where a .safetensors file's tensor data begins (after its 8-byte length and JSON header)."""
    with open(safetensors, "rb") as fh:
        return 8 + int.from_bytes(fh.read(8), "little")


def test_model_weights_changed_in_place_with_the_same_size_and_time_are_seen(tmp_path):
    """A local model folder was fingerprinted by file names, sizes and times: weights rewritten in place
    (a training script saving over its checkpoint within the same second) reused the old vectors."""
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    model = tmp_path / "model"
    shutil.copytree(BUNDLED_MODEL, model)
    run = tmp_path / "run"
    mine_json(data, run, "--model", model, *F32)
    weights = model / "model.safetensors"
    st = weights.stat()
    start = _tensor_bytes_start(weights)
    with open(weights, "r+b") as fh:  # the lowest mantissa byte of 4,096 float32 weights: same size, finite
        fh.seek(start)
        block = bytearray(fh.read(4 * 4096))
        block[0::4] = bytes(b ^ 1 for b in block[0::4])
        fh.seek(start)
        fh.write(block)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert reran(mine_json(data, run, "--model", model, *F32))[:1] == ["index"]


def _pairs() -> list[dict]:
    return [
        {"anchor": q["text"], "positive": next(d["text"] for d in TINY_DOCS if d["_id"] == qr[1])}
        for q, qr in zip(TINY_QUERIES, TINY_QRELS)
    ]


def test_a_loaded_model_whose_settings_change_is_encoded_again(tmp_path):
    """`hnmine.mine(model=st)` keyed a loaded SentenceTransformer by its weights only: after
    `st.max_seq_length = 8` the run skipped every stage and kept the vectors of 256-token texts."""
    from sentence_transformers import SentenceTransformer

    import hnmine

    st = SentenceTransformer(str(BUNDLED_MODEL), device="cpu")
    kw = dict(corpus=[d["text"] for d in TINY_DOCS], out=tmp_path / "run", num_negatives=2, dtype="float32", progress=False)
    hnmine.mine(_pairs(), model=st, **kw)
    before = np.load(tmp_path / "run/index/dense/embeddings.npy")
    assert all(s["skipped"] for s in hnmine.mine(_pairs(), model=st, **kw).summary["stages"])  # unchanged: nothing redone
    st.max_seq_length = 8
    again = hnmine.mine(_pairs(), model=st, **kw)
    assert [s["stage"] for s in again.summary["stages"] if not s["skipped"]][:1] == ["index"]
    assert not np.allclose(np.load(tmp_path / "run/index/dense/embeddings.npy"), before, atol=1e-3)


@pytest.fixture(scope="module")
def half_checkpoint(tmp_path_factory) -> Path:
    """The bundled model saved in float16, as many hub checkpoints are."""
    from sentence_transformers import SentenceTransformer

    folder = tmp_path_factory.mktemp("f16") / "model"
    SentenceTransformer(str(BUNDLED_MODEL), device="cpu").half().save(str(folder))
    return folder


def test_a_float16_checkpoint_runs_in_float32_when_asked(tmp_path, half_checkpoint):
    """transformers loads a checkpoint in its stored dtype, and hnmine cast only to dtypes other than
    float32: `--dtype float32` on a float16 checkpoint computed in float16 while the manifest said float32."""
    import torch
    from sentence_transformers import SentenceTransformer

    from hnmine.inference.batching import doc_texts

    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    run = tmp_path / "run"
    mine_json(data, run, "--model", half_checkpoint, *F32)
    assert json.loads((run / "manifests/index.json").read_text())["models"]["dense"]["dtype"] == "float32"
    corpus = pq.read_table(run / "inputs/corpus.parquet")
    texts = doc_texts(corpus.column("title").to_pylist(), corpus.column("text").to_pylist())
    got = np.load(run / "index/dense/embeddings.npy")
    reference = SentenceTransformer(str(half_checkpoint), device="cpu")
    with torch.inference_mode():
        in_half = reference.encode(texts, normalize_embeddings=True)
        in_float = reference.float().encode(texts, normalize_embeddings=True)
    assert np.abs(in_half - in_float).max() > 1e-4  # the two are told apart at this tolerance
    np.testing.assert_allclose(got, in_float, atol=1e-5)


def test_a_float16_cross_encoder_scores_in_float32_when_asked(tmp_path, half_checkpoint):
    """The cross-encoder teacher cast only to dtypes other than float32, so a float16 checkpoint scored
    in float16 under `--dtype float32`."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    ce_dir = tmp_path / "ce"
    ce = CrossEncoder(str(BUNDLED_MODEL), num_labels=1, device="cpu")
    ce.model.half()
    ce.save(str(ce_dir))
    from hnmine.inference.cross_encoder import score_pairs
    from hnmine.inference.loading import load_cross_encoder

    loaded = load_cross_encoder(str(ce_dir), "cpu", None)
    queries = [q["text"] for q in TINY_QUERIES for _ in TINY_DOCS]
    docs = [d["text"] for _ in TINY_QUERIES for d in TINY_DOCS]
    got = score_pairs(loaded, queries, docs, dtype="float32")
    assert next(loaded.model.parameters()).dtype == torch.float32
    reference = CrossEncoder(str(ce_dir), device="cpu")
    reference.model.float()
    np.testing.assert_allclose(got, reference.predict(list(zip(queries, docs))), atol=1e-5)


def test_finetune_trains_and_measures_a_float16_checkpoint_in_float32(tmp_path, half_checkpoint):
    """`hnmine finetune` loaded a float16 checkpoint as float16 and cast only to dtypes other than float32:
    `--eval-dtype float32` measured in float16, and `--precision float32` trained float16 weights."""
    import torch

    from hnmine.finetune.evalset import load_eval_set
    from hnmine.finetune.options import FinetuneOptions
    from hnmine.finetune.retrieval import measure
    from hnmine.finetune.train import load_model

    assert next(load_model(str(half_checkpoint), FinetuneOptions(precision="float32")).parameters()).dtype == torch.float32
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(half_checkpoint), device="cpu")
    eval_set = load_eval_set(write_beir(tmp_path / "eval", TINY_DOCS, TINY_QUERIES, TINY_QRELS, split="test"), "test", 1)
    measure(model, eval_set, dtype="float32", batch_size=8)
    assert next(model.parameters()).dtype == torch.float32
