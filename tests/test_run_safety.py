"""A run directory from someone else is safe to use (issue 23, items 7 and 8): no file of it is ever
unpickled, and nothing is removed (or written) outside it through a link."""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, snapshot, write_beir
from test_hunt import copy_run, one_line_error

from hnmine.io.hashing import tree_hash

# --- item 7: no pickle of a run directory is ever loaded -------------------------------------------


class _RunsAShellCommand:
    """A pickle that runs `touch MARKER` when it is loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.fixture(scope="module")
def rank_bm25_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data, run): the tiny data mined with BM25 candidates from the rank-bm25 backend."""
    base = tmp_path_factory.mktemp("rank_bm25")
    data = write_beir(base / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    run = base / "run"
    mine_json(data, run, "--retriever", "bm25", "--bm25-backend", "rank-bm25", "--dtype", "float32")
    return data, run


def _received(run: Path, tmp_path: Path, marker: Path, *, keep_other_files: bool) -> Path:
    """A copy of `run` as someone could hand it over: a malicious index/bm25/rank_bm25.pkl, and the index
    manifest recording the folder as it now is (so the index stage counts as up to date)."""
    received = tmp_path / "received"
    shutil.copytree(run, received)
    folder = received / "index/bm25"
    if not keep_other_files:  # an index of an earlier hnmine: the pickle and info.json only
        for p in folder.iterdir():
            if p.name != "info.json":
                p.unlink()
    (folder / "rank_bm25.pkl").write_bytes(pickle.dumps(_RunsAShellCommand(marker)))
    manifest = received / "manifests/index.json"
    m = json.loads(manifest.read_text())
    m["outputs"]["index/bm25"] = tree_hash(folder)
    manifest.write_text(json.dumps(m))
    return received


def test_retrieve_never_loads_the_run_directorys_pickle(rank_bm25_run, tmp_path):
    """`hnmine retrieve` unpickled index/bm25/rank_bm25.pkl: the pickle ran a shell command, exit 0."""
    _, run = rank_bm25_run
    marker = tmp_path / "pwned"
    received = _received(run, tmp_path, marker, keep_other_files=True)
    result = invoke(["retrieve", "--out", received, "--retriever", "bm25", "--max-depth", "8", "--quiet"])
    assert result.exit_code == 0, result.output
    assert not marker.exists(), "a pickle from the run directory was loaded"


def test_an_index_that_is_only_a_pickle_is_refused_not_loaded(rank_bm25_run, tmp_path):
    """An index folder holding only the pickle an earlier hnmine wrote: refused in one line naming the
    rebuild, the pickle never loaded."""
    _, run = rank_bm25_run
    marker = tmp_path / "pwned"
    received = _received(run, tmp_path, marker, keep_other_files=False)
    result = invoke(["retrieve", "--out", received, "--retriever", "bm25", "--max-depth", "8", "--quiet"])
    one_line_error(result, f"{received / 'index/bm25'}", "never loaded", "--force")
    assert not marker.exists(), "a pickle from the run directory was loaded"


def test_a_rebuilt_index_holds_no_pickle_and_ranks_as_before(rank_bm25_run, tmp_path):
    """The rank-bm25 index is stored as data (its tokenized corpus), and a run with it gives the same
    candidates as it always did (rank-bm25's own BM25Okapi, rebuilt at search time)."""
    import numpy as np
    from rank_bm25 import BM25Okapi

    from hnmine.inference.batching import doc_texts
    from hnmine.retrievers import bm25

    _, run = rank_bm25_run
    assert not list((run / "index/bm25").glob("*.pkl"))
    texts = doc_texts([d["title"] for d in TINY_DOCS], [d["text"] for d in TINY_DOCS])
    queries = [q["text"] for q in TINY_QUERIES]
    opts = bm25.BM25Options(backend="rank-bm25")
    bm25.build(texts, opts, tmp_path / "i")
    ids, scores = bm25.search(queries, 5, opts, tmp_path / "i", len(texts))
    reference = BM25Okapi(bm25.tokenize(texts, "en"))
    for row, q in enumerate(bm25.tokenize(queries, "en")):
        s = reference.get_scores(q)
        top = np.lexsort((np.arange(len(s)), -s))[:5]
        keep = s[top] > 0
        assert list(ids[row][keep]) == list(top[keep])
        np.testing.assert_array_equal(scores[row][keep], s[top][keep].astype(np.float32))


# --- item 8: nothing removed or written outside the run through a link ---------------------------------


def _outside_with_temp_files(folder: Path) -> Path:
    for rel in (".left.abc.tmp", "sub/.deeper.abc.tmp", "embeddings/.cache.abc.tmp"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("someone else's file")
    return folder


@pytest.mark.parametrize("linked", ["cache", "export", "cache/embeddings"])
def test_a_linked_folder_of_the_run_is_refused_and_nothing_outside_is_touched(finished_tiny, tmp_path, linked):
    """A run whose cache/ was a link to another folder: the temp-file sweep followed it and deleted that
    folder's `.*.tmp` files, recursively, even with every stage skipped (and stages wrote through it)."""
    data, run = copy_run(finished_tiny, tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.move(run / linked, outside)  # the run's own folder, moved out and linked back
    _outside_with_temp_files(outside)
    (run / linked).symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    one_line_error(invoke(["mine", data, "--out", run, "--quiet"]), f"{run / linked}: a link to {outside}", "never through a link")
    assert snapshot(outside) == before
    assert (run / linked).is_symlink()


def test_temp_files_in_the_run_are_still_swept(finished_tiny, tmp_path):
    """The sweep still removes a killed process's temporary files inside the run (at any depth), and
    removes a temporary name that is a link as a link, leaving its target alone."""
    data, run = copy_run(finished_tiny, tmp_path)
    inside = [run / ".x.abc.tmp", run / "cache/embeddings/.y.abc.tmp", run / "index/dense/.z.abc.tmp"]
    for p in inside:
        p.write_text("left by a killed process")
    target = tmp_path / "target.txt"
    target.write_text("someone else's file")
    (run / "export/.link.abc.tmp").symlink_to(target)
    assert mine_json(data, run)["stages"]
    assert not [p for p in inside if p.exists()]
    assert not (run / "export/.link.abc.tmp").is_symlink() and target.read_text() == "someone else's file"


def test_the_embedding_cache_is_not_used_through_a_link(tmp_path):
    """The encoder's cache removes parts of an unfinished encode (stale chunks, the parts folder): through
    a linked cache folder those removals would leave the run. Refused before any encoding."""
    from hnmine.errors import RunDirError
    from hnmine.inference.cache import encode_cached
    from hnmine.inference.spec import EncoderSpec

    run = tmp_path / "run"
    run.mkdir()
    outside = _outside_with_temp_files(tmp_path / "elsewhere")
    (run / "cache").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    with pytest.raises(RunDirError, match="never through a link"):
        encode_cached(["a text"], EncoderSpec(dtype="float32"), run / "cache/embeddings")
    assert snapshot(outside) == before
