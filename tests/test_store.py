"""The embedding store (issue 26): one vector per (encoder identity, text), shared by every run and command.

Each test has a store of its own (conftest's `own_embedding_store`, under $HNMINE_CACHE_DIR); the `encoded`
fixture records every text the model is actually run on in this process. The promise checked throughout:
vectors served by the store are the bytes a cold encode (an empty store) gives, so every table is too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import RUN_TABLES, SESSION_CACHE, TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, mine_json, reran, write_beir

F32 = ("--dtype", "float32")  # a given dtype: no `auto` probe
TABLES = (*RUN_TABLES, "export/triplet.parquet", "index/dense/embeddings.npy")
DOC_TEXTS = [f"{d['title']} {d['text']}" for d in TINY_DOCS]
QUERY_TEXTS = [q["text"] for q in TINY_QUERIES]


@pytest.fixture
def encoded(monkeypatch) -> list[str]:
    """The texts this process runs the model on (the store's misses), in the order it does."""
    import hnmine.inference.cache

    texts: list[str] = []
    real = hnmine.inference.cache.encode_rows

    def counted(model, batch, *args, **kwargs):
        texts.extend(batch)
        return real(model, batch, *args, **kwargs)

    monkeypatch.setattr(hnmine.inference.cache, "encode_rows", counted)
    return texts


def same_tables(a: Path, b: Path, tables=TABLES) -> None:
    for rel in tables:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def segments(store: Path) -> list[Path]:
    return sorted(store.glob("*/seg-*.seg"))


def other_docs(new: list[dict] = (), edited: dict[str, str] | None = None) -> list[dict]:
    """TINY_DOCS with some documents appended and some texts edited."""
    docs = [{**d, "text": (edited or {}).get(d["_id"], d["text"])} for d in TINY_DOCS]
    return docs + list(new)


NEW_DOC = {"_id": "d13", "title": "Grinders", "text": "A burr grinder crushes beans to an even size for espresso."}


# --- sharing --------------------------------------------------------------------------------------------


def test_another_run_directory_encodes_nothing_and_gives_the_same_bytes(tiny_beir, tmp_path, encoded, own_embedding_store):
    mine_json(tiny_beir, tmp_path / "a", *F32)
    assert sorted(encoded) == sorted(DOC_TEXTS + QUERY_TEXTS)
    assert segments(own_embedding_store)  # on local disk, outside the run directory
    assert not list((tmp_path / "a").rglob("seg-*"))
    encoded.clear()
    mine_json(tiny_beir, tmp_path / "b", *F32)
    assert encoded == []
    same_tables(tmp_path / "a", tmp_path / "b")


def test_commands_and_the_python_api_share_one_store(tiny_beir, tmp_path, encoded):
    """`hnmine index` encodes the documents; hnmine.mine in another run directory only the queries; a later
    `hnmine retrieve` of the first run nothing at all."""
    import hnmine

    assert invoke(["index", tiny_beir, "--out", tmp_path / "a", "--quiet", *F32]).exit_code == 0
    assert sorted(encoded) == sorted(DOC_TEXTS)
    encoded.clear()
    hnmine.mine(tiny_beir, out=tmp_path / "b", dtype="float32", progress=False)
    assert sorted(encoded) == sorted(QUERY_TEXTS)
    encoded.clear()
    result = invoke(["retrieve", "--out", tmp_path / "a", "--json"])
    assert result.exit_code == 0, result.output
    assert encoded == []
    assert "3 of 3 texts from the embedding store, 0 to encode" in result.stderr
    same_tables(tmp_path / "a", tmp_path / "b", ("candidates.parquet", "index/dense/embeddings.npy"))


def test_the_sentence_transformers_drop_in_keeps_its_vectors_in_cache_folder(tmp_path, encoded, own_embedding_store):
    """`cache_folder` of hnmine.mine_hard_negatives is the store's folder (`cache_dir=` of hnmine.mine): a second
    call, in another temporary run directory, encodes nothing."""
    datasets = pytest.importorskip("datasets")
    from sentence_transformers import SentenceTransformer

    import hnmine

    model = SentenceTransformer(hnmine.api.default_model_path(), device="cpu")
    pairs = datasets.Dataset.from_dict({"query": QUERY_TEXTS, "answer": [DOC_TEXTS[0], DOC_TEXTS[4], DOC_TEXTS[8]]})
    first = hnmine.mine_hard_negatives(pairs, model, corpus=DOC_TEXTS, num_negatives=2, cache_folder=str(tmp_path / "cf"), verbose=False)
    assert segments(tmp_path / "cf/store") and not segments(own_embedding_store)
    assert sorted(set(encoded)) == sorted(set(DOC_TEXTS + QUERY_TEXTS))
    encoded.clear()
    again = hnmine.mine_hard_negatives(pairs, model, corpus=DOC_TEXTS, num_negatives=2, cache_folder=str(tmp_path / "cf"), verbose=False)
    assert encoded == [] and again.to_list() == first.to_list()


def test_cache_dir_moves_the_store_and_is_no_part_of_a_key(tiny_beir, tmp_path, encoded, own_embedding_store):
    mine_json(tiny_beir, tmp_path / "a", *F32, "--cache-dir", tmp_path / "elsewhere")
    assert segments(tmp_path / "elsewhere/store") and not segments(own_embedding_store)
    encoded.clear()
    summary = mine_json(tiny_beir, tmp_path / "a", *F32)  # the store's place is in no stage key: nothing reruns
    assert reran(summary) == [] and encoded == []
    assert (
        "is a file, not a folder (--cache-dir)"
        in invoke(["mine", tiny_beir, "--out", tmp_path / "c", "--cache-dir", tiny_beir / "corpus.jsonl"]).stderr
    )


# --- incremental ----------------------------------------------------------------------------------------


def test_new_and_edited_documents_are_the_only_texts_encoded_and_warm_equals_cold(tmp_path, encoded):
    """The nightly job: yesterday's corpus mined, today's has one document more and one edited. Only those two
    are encoded, and every table is the bytes a run with an empty store gives."""
    first = write_beir(tmp_path / "monday", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    mine_json(first, tmp_path / "run", *F32)
    edited = "Cold brew steeps coarse coffee grounds in cold water for a whole day."
    second = write_beir(tmp_path / "tuesday", other_docs([NEW_DOC], {"d3": edited}), TINY_QUERIES, TINY_QRELS)
    encoded.clear()
    summary = mine_json(second, tmp_path / "run", *F32, "--replace")
    assert sorted(encoded) == sorted([f"{NEW_DOC['title']} {NEW_DOC['text']}", f"Cold brew {edited}"])
    assert reran(summary)[:2] == ["inputs", "index"]
    cold = tmp_path / "cold"
    mine_json(second, cold, *F32, "--cache-dir", tmp_path / "empty")
    same_tables(tmp_path / "run", cold)


# --- interruption ---------------------------------------------------------------------------------------


def test_a_killed_encode_keeps_its_finished_segments_and_never_reads_a_torn_one(
    tiny_beir, tmp_path, encoded, own_embedding_store, monkeypatch
):
    import hnmine.inference.cache

    monkeypatch.setattr(hnmine.inference.cache, "CHUNK", 4)  # 12 documents: 3 chunks, each its own segment
    real = hnmine.inference.cache.encode_rows

    def dies_on_the_third(model, batch, *args, **kwargs):
        if len(encoded) >= 8:
            raise KeyboardInterrupt  # as Ctrl-C, or a kill: nothing after it is written
        return real(model, batch, *args, **kwargs)

    monkeypatch.setattr(hnmine.inference.cache, "encode_rows", dies_on_the_third)
    assert invoke(["mine", tiny_beir, "--out", tmp_path / "run", "--quiet", *F32]).exit_code == 130
    kept = segments(own_embedding_store)
    assert len(kept) == 2
    # What a process killed while writing a segment leaves: a temporary file, never read, pruned when stale.
    torn = kept[0].parent / ".seg-0000000000000000-1-00000000.seg.x1y2.tmp"
    torn.write_bytes(kept[0].read_bytes()[:50])
    monkeypatch.setattr(hnmine.inference.cache, "encode_rows", real)  # `encoded`'s counting, without the kill
    encoded.clear()
    mine_json(tiny_beir, tmp_path / "run", *F32)
    assert len(encoded) == 4 + len(QUERY_TEXTS)  # the third chunk, then the queries
    mine_json(tiny_beir, tmp_path / "cold", *F32, "--cache-dir", tmp_path / "empty")
    same_tables(tmp_path / "run", tmp_path / "cold")
    os.utime(torn, (time.time() - 2 * 86400,) * 2)
    assert invoke(["cache", "--prune", "--older-than", "30d"]).exit_code == 0
    assert not torn.exists() and len(segments(own_embedding_store)) == 4


# --- two writers ----------------------------------------------------------------------------------------


def test_two_processes_encoding_into_one_store_at_once(tmp_path, own_embedding_store):
    """Two `hnmine mine` of overlapping corpora started together: both finish, no segment is damaged, and a
    third run over the union encodes nothing and gives the bytes of an empty store's."""
    a = write_beir(tmp_path / "a", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    b = write_beir(tmp_path / "b", other_docs([NEW_DOC]), TINY_QUERIES, TINY_QRELS)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hnmine", "mine", str(data), "--out", str(tmp_path / f"run-{data.name}"), "--quiet", *F32],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for data in (a, b)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert "damaged" not in err
    from hnmine.inference.store import Shard, text_hashes

    (shard,) = {s.parent for s in segments(own_embedding_store)}
    texts = sorted(set(DOC_TEXTS + [f"{NEW_DOC['title']} {NEW_DOC['text']}"] + QUERY_TEXTS))
    found = Shard(shard).lookup(np.unique(text_hashes(texts)))
    assert (found.seg >= 0).all() and not found.damaged
    cold = tmp_path / "cold"
    mine_json(b, cold, *F32, "--cache-dir", tmp_path / "empty")
    same_tables(tmp_path / "run-b", cold)


def test_threads_writing_one_shard_never_see_a_partial_segment(tmp_path):
    from hnmine.inference.store import Shard, read_vectors, text_hashes, write_segment

    shard = Shard(tmp_path / "shard")
    shard.ensure({"model": "m"})
    texts = [f"text {i}" for i in range(400)]
    vectors = np.arange(400 * 8, dtype=np.float32).reshape(400, 8)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for start in range(k * 10, 400, 40):
                write_segment(shard.folder, text_hashes(texts[start : start + 10]), vectors[start : start + 10])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            while any(t.is_alive() for t in threads):
                found = shard.lookup(np.unique(text_hashes(texts)))
                assert not found.damaged
                for s in np.unique(found.seg[found.seg >= 0]):
                    read_vectors(found.segments[int(s)])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    watcher = threading.Thread(target=reader)
    for t in threads:
        t.start()
    watcher.start()
    for t in [*threads, watcher]:
        t.join()
    assert errors == []
    hashes = text_hashes(texts)
    order = np.argsort(hashes)
    found = shard.lookup(hashes[order])
    assert (found.seg >= 0).all()
    got = np.stack([read_vectors(found.segments[s])[r] for s, r in zip(found.seg, found.row)])
    assert got.tobytes() == vectors[order].tobytes()


# --- damage ---------------------------------------------------------------------------------------------


def _hash_block_start(raw: bytes) -> int:
    """Where a segment's text hashes begin: after its 8-byte magic, the header's 4-byte length and the header."""
    return 12 + int.from_bytes(raw[8:12], "little")


def _flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda raw: raw[:-8] + b"\x00\x00\xc0\x7f" * 2, "vectors do not match their recorded sha256"),  # same size
        (lambda raw: raw[:-4], "its size is not what its header says"),
        (lambda raw: b"XXXXXXXX" + raw[8:], "not a segment of this store"),
        (lambda raw: _flip(raw, _hash_block_start(raw) + 5), "text hashes do not match"),
    ],
    ids=["vector-bytes", "cut-short", "header", "hash-block"],
)
def test_a_damaged_segment_is_named_removed_and_its_texts_encoded_again(tiny_beir, tmp_path, encoded, own_embedding_store, damage, why):
    mine_json(tiny_beir, tmp_path / "a", *F32)
    (seg,) = segments(own_embedding_store)[:1]
    seg.write_bytes(damage(seg.read_bytes()))
    encoded.clear()
    result = invoke(["mine", tiny_beir, "--out", tmp_path / "b", "--json", *F32])
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.stderr.splitlines() if "damaged segment" in line)
    assert seg.name in warning and why in warning
    assert not seg.exists() and len(encoded) > 0
    same_tables(tmp_path / "a", tmp_path / "b")


# --- hnmine cache ---------------------------------------------------------------------------------------


def _cache_json(*args) -> dict:
    result = invoke(["cache", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_hnmine_cache_lists_the_store_by_model(tiny_beir, tmp_path, own_embedding_store):
    assert _cache_json() == {"store": str(own_embedding_store), "shards": [], "texts": 0, "bytes": 0}
    mine_json(tiny_beir, tmp_path / "a", *F32)
    mine_json(tiny_beir, tmp_path / "b", *F32, "--query-prompt", "query: ")  # the queries under another prompt
    listing = _cache_json()
    assert [s["model"] for s in listing["shards"]] == ["all-MiniLM-L6-v2", "all-MiniLM-L6-v2"]
    assert sorted(s["texts"] for s in listing["shards"]) == [len(QUERY_TEXTS), len(DOC_TEXTS + QUERY_TEXTS)]
    assert listing["bytes"] == sum(p.stat().st_size for p in segments(own_embedding_store))
    assert {s["identity"]["prompt"] for s in listing["shards"]} == {None, "query: "}
    assert all(s["last_use"].endswith("Z") for s in listing["shards"])
    text = invoke(["cache"]).stdout
    assert str(own_embedding_store) in text and "all-MiniLM-L6-v2" in text and "2 shard(s), 18 texts" in text


def test_hnmine_cache_prunes_by_age_model_and_size(tiny_beir, tmp_path, own_embedding_store, encoded):
    mine_json(tiny_beir, tmp_path / "a", *F32)
    old = segments(own_embedding_store)
    mine_json(tiny_beir, tmp_path / "b", *F32, "--corpus-prompt", "passage: ")  # the documents again, under another prompt
    for seg in old:
        os.utime(seg, (time.time() - 40 * 86400,) * 2)
    pruned = _cache_json("--prune", "--older-than", "30d")["pruned"]
    assert pruned["texts"] == len(DOC_TEXTS + QUERY_TEXTS) and not any(p.exists() for p in old)
    left = _cache_json()
    assert left["texts"] == len(DOC_TEXTS)
    size = left["bytes"]
    assert _cache_json("--prune", "--max-size", str(size))["pruned"]["texts"] == 0  # already at most that
    assert _cache_json("--prune", "--model", "no-such-model")["pruned"]["texts"] == 0
    assert _cache_json("--prune", "--model", "all-MiniLM-L6-v2")["texts"] == 0
    encoded.clear()
    mine_json(tiny_beir, tmp_path / "c", *F32)
    assert len(encoded) == len(DOC_TEXTS + QUERY_TEXTS)  # pruned vectors are encoded again, the same bytes
    same_tables(tmp_path / "a", tmp_path / "c")


def test_cache_max_size_prunes_after_a_run_least_recently_used_first(tiny_beir, tmp_path, own_embedding_store, monkeypatch):
    import hnmine.inference.cache

    monkeypatch.setattr(hnmine.inference.cache, "CHUNK", 4)
    mine_json(tiny_beir, tmp_path / "a", *F32)
    first = set(segments(own_embedding_store))
    for k, seg in enumerate(sorted(first)):  # last used a while ago, in the order they were written
        os.utime(seg, (time.time() - 1000 + k,) * 2)
    # Another corpus prompt: the documents are new vectors (3 segments); the queries are read, so used now.
    result = invoke(["mine", tiny_beir, "--out", tmp_path / "b", *F32, "--corpus-prompt", "passage: ", "--cache-max-size", "1"])
    assert result.exit_code == 0, result.output
    assert "pruned to stay under --cache-max-size" in result.stderr
    assert segments(own_embedding_store) == []  # 1 byte: nothing can stay
    mine_json(tiny_beir, tmp_path / "c", *F32)
    mine_json(tiny_beir, tmp_path / "d", *F32, "--corpus-prompt", "passage: ")
    kept = set(segments(own_embedding_store))
    for k, seg in enumerate(sorted(kept)):
        os.utime(seg, (time.time() - 1000 + k,) * 2)
    newest = sorted(kept)[-2:]
    limit = sum(p.stat().st_size for p in newest)
    assert _cache_json("--prune", "--max-size", str(limit))["pruned"]["segments"] == len(kept) - 2
    assert segments(own_embedding_store) == newest


@pytest.mark.parametrize(
    "args, message",
    [
        (["--older-than", "3d"], "--older-than chooses what --prune removes: give --prune too"),
        (["--prune"], "--prune needs what to remove: --model NAME, --older-than AGE or --max-size SIZE"),
        (["--prune", "--max-size", "lots"], "--max-size must be a size such as 500MB, 2GB or 1.5GiB, got 'lots'"),
        (["--prune", "--older-than", "soon"], "--older-than must be an age such as 30d, 12h or 2w, got 'soon'"),
    ],
)
def test_hnmine_cache_bad_options_are_one_line(args, message):
    result = invoke(["cache", *args])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"hnmine: error: {message}\n"


def test_a_bad_cache_max_size_fails_before_anything_is_written(tiny_beir, tmp_path):
    result = invoke(["mine", tiny_beir, "--out", tmp_path / "run", "--cache-max-size", "big"])
    assert result.exit_code == 2 and "--cache-max-size must be a size such as 500MB" in result.stderr
    assert not (tmp_path / "run").exists()


# --- identity -------------------------------------------------------------------------------------------


def test_the_identity_holds_what_changes_a_vector_and_not_the_batch_or_the_place():
    from dataclasses import replace

    from hnmine.inference.cache import identity_hash
    from hnmine.inference.spec import EncoderSpec, encoder_identity

    base = EncoderSpec(dtype="float32", threads=2)
    same = {
        identity_hash(encoder_identity(s, None, None)) for s in (base, replace(base, batch_size=3), replace(base, workers=2, threads=2))
    }
    assert len(same) == 1
    others = [
        encoder_identity(replace(base, dtype="bfloat16"), None, None),
        encoder_identity(replace(base, max_length=64), None, None),
        encoder_identity(replace(base, normalize=False), None, None),
        encoder_identity(replace(base, threads=1), None, None),
        encoder_identity(base, "query: ", None),
        encoder_identity(base, None, "query"),
    ]
    assert len({identity_hash(i) for i in others} | same) == len(others) + 1
    identity = encoder_identity(base, None, None)
    assert identity["versions"]["torch"] and identity["device"].startswith("cpu: ")
    assert not any("store" in str(v) or "cache" in str(v) for v in identity.values())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_rows_do_not_depend_on_the_texts_encoded_with_them(own_embedding_store, dtype):
    """The store's batching, as this machine runs it: a text's vector is the same bytes in any company and in
    any order (hnmine.inference.rowwise; where this CPU's kernels would break that, one text at a time)."""
    from hnmine.inference.rowwise import batching_mode, encode_rows, model_limit, padded_length, token_lengths
    from hnmine.inference.spec import EncoderSpec

    spec = EncoderSpec(dtype=dtype, batch_size=4).for_workers()
    model = spec.load()
    mode = batching_mode(model, spec, None, None, dtype.ljust(32, "a"))
    texts = DOC_TEXTS + QUERY_TEXTS
    lengths = token_lengths(model, texts, None)
    buckets: dict[int, set[int]] = {}
    for n in lengths:
        buckets.setdefault(padded_length(n, model_limit(model)), set()).add(int(n))
    assert any(len(true_lengths) > 1 for true_lengths in buckets.values())  # padding is exercised
    whole = encode_rows(model, texts, spec, None, None, mode)
    assert encode_rows(model, texts[::3], spec, None, None, mode).tobytes() == whole[::3].tobytes()
    assert encode_rows(model, texts[::-2], spec, None, None, mode).tobytes() == whole[::-2].tobytes()
    assert encode_rows(model, texts[4:5], spec, None, None, mode).tobytes() == whole[4:5].tobytes()


def test_the_machine_probe_holds_unpadded_and_padded_rows_of_one_padded_length_up_to_the_limit():
    """An unpadded row may take another attention path than a padded one: every probe group holds a text exactly
    its padded length and texts padded up to it, one group at the model's limit with texts cut at it."""
    from hnmine.inference.rowwise import model_limit, probe_groups, token_lengths
    from hnmine.inference.spec import EncoderSpec

    model = EncoderSpec(dtype="float32").for_workers().load()
    groups = probe_groups(model, None)
    assert len(groups) == 3
    for texts, pad in groups:
        lengths = token_lengths(model, texts, None).tolist()
        assert len(texts) >= 3 and pad in lengths and min(lengths) < pad and max(lengths) == pad
    assert groups[-1][1] == model_limit(model) == 256


def test_where_a_row_depends_on_its_batch_size_texts_are_encoded_one_at_a_time(tiny_beir, tmp_path, monkeypatch):
    from hnmine.inference import rowwise

    monkeypatch.setenv("HNMINE_CACHE_DIR", str(tmp_path / "cache"))  # a machine of its own: never the session's check
    monkeypatch.setattr(rowwise, "rows_independent", lambda model, spec, prompt: False)
    result = invoke(["mine", tiny_beir, "--out", tmp_path / "run", *F32])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning: on this machine a text's vector changes with the size of its batch") == 2  # corpus, queries
    saved = [json.loads(p.read_text()) for p in (tmp_path / "cache/batching").glob("*.json")]
    assert [s["mode"] for s in saved] == [rowwise.ONE_BY_ONE]  # checked once, cached
    batches = rowwise.length_batches(np.array([3, 3, 5]), 3, 8, rowwise.ONE_BY_ONE, 256)
    assert [(b.tolist(), pad) for b, pad in batches] == [([0], 8), ([1], 8), ([2], 8)]


def test_a_text_is_padded_to_its_own_bucket_and_batched_with_its_bucket_only():
    from hnmine.inference import rowwise

    # 8-token buckets, capped at the model's limit: 3 and 5 tokens share the bucket of 8, 9 goes to 16, 250 and 256 to the limit
    assert [rowwise.padded_length(n, 256) for n in (1, 3, 5, 8, 9, 16, 17, 250, 256)] == [8, 8, 8, 8, 16, 16, 24, 256, 256]
    assert rowwise.padded_length(13, 12) == 12 and rowwise.padded_length(13, None) == 16
    lengths = np.array([3, 9, 5, 3, 250, 256, 16])
    batches = rowwise.length_batches(lengths, 7, 2, rowwise.SAME_LENGTH, 256)
    # longest bucket first; within a bucket, in order; at most 2 a batch
    assert [(b.tolist(), pad) for b, pad in batches] == [([4, 5], 256), ([1, 6], 16), ([0, 2], 8), ([3], 8)]
    assert [(b.tolist(), pad) for b, pad in rowwise.length_batches(None, 2, 8, rowwise.SAME_LENGTH, 256)] == [([0], None), ([1], None)]


# --- the Ray engine -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_ray():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'hnmine[ray]')")
    from ray_helpers import small_local_ray

    with small_local_ray():
        yield


def test_ray_actors_write_the_store_and_read_it(small_ray, tiny_beir, tmp_path, encoded, own_embedding_store, monkeypatch):
    """Ray's actors encode into the store (one segment per part, on the file system every node sees); a local
    run then encodes nothing, another Ray run adds nothing, and all give an empty store's bytes."""
    import hnmine.inference.cache
    from hnmine.options import make_options
    from hnmine.runner import mine

    monkeypatch.setattr(hnmine.inference.cache, "CHUNK", 4)
    options = make_options({"data": tiny_beir, "dtype": "float32"})
    mine(tmp_path / "ray", options, engine="ray")
    written = segments(own_embedding_store)
    assert len(written) == 4  # 3 chunks of documents, 1 of queries: each written by the actor that encoded it
    mine(tmp_path / "local", options)
    assert encoded == []
    mine(tmp_path / "ray-again", options, engine="ray")
    assert segments(own_embedding_store) == written
    mine(tmp_path / "cold", options, cache_dir=tmp_path / "empty")
    for run in ("local", "ray", "ray-again"):
        same_tables(tmp_path / "cold", tmp_path / run)


# --- finetune -------------------------------------------------------------------------------------------


def test_finetune_encodes_each_models_evaluation_corpus_once(tmp_path, encoded, own_embedding_store):
    """The untrained model's evaluation is encoded once in all, a trained one's once per model (the same seed
    trains the same weights): a second comparison encodes nothing and measures the same."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    eval_beir = write_beir(tmp_path / "eval", TINY_DOCS, TINY_QUERIES, TINY_QRELS, split="test")
    triplets = tmp_path / "triplets.parquet"
    rows = {"anchor": ["how is espresso made", "bike chain care"], "positive": ["Espresso is brewed.", "Oil the chain."]}
    pq.write_table(pa.table({**rows, "negative": ["Tea is steeped.", "Tyres need air."]}), triplets)
    args = ["finetune", triplets, "--eval", eval_beir, "--arms", "untrained,mined", "--max-steps", "2", "--batch-size", "2"]
    args += ["--seeds", "1", "--eval-dtype", "float32", "--json", "--quiet"]
    first = invoke(args)
    assert first.exit_code == 0, first.output
    assert len(encoded) == 2 * len(DOC_TEXTS + QUERY_TEXTS)  # the untrained model and the trained one
    encoded.clear()
    again = invoke(args)
    assert again.exit_code == 0, again.output
    assert encoded == []
    metrics = ("ndcg_at_10", "recall_at_100", "mrr_at_10")
    assert [[r[m] for m in metrics] for r in json.loads(again.stdout)["rows"]] == [
        [r[m] for m in metrics] for r in json.loads(first.stdout)["rows"]
    ]
    names = [s["model"] for s in _cache_json()["shards"]]
    assert len(names) == 2 and any("fine-tuned" in n for n in names)


# --- --backend auto -------------------------------------------------------------------------------------


@pytest.fixture
def backend_choice(tmp_path, monkeypatch):
    """A fresh choice cache; `timings` the fake probe's seconds per backend, `calls` how often it ran."""
    from hnmine.inference import dtype as dtype_choice

    monkeypatch.setenv("HNMINE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    for measured in ("openvino", "batching"):  # the converted model and the batching check: made once per session
        (tmp_path / "cache" / measured).symlink_to(SESSION_CACHE / measured)
    dtype_choice.choose_cpu_backend.cache_clear()
    probe = {"timings": {"torch": 1.0, "openvino": 0.8}, "calls": 0}

    def timed(model, dtypes, threads):
        probe["calls"] += 1
        return {b: probe["timings"][b] for b in dtypes}

    monkeypatch.setattr(dtype_choice, "_time_backends", timed)
    yield probe
    dtype_choice.choose_cpu_backend.cache_clear()


needs_openvino = pytest.mark.skipif(
    __import__("importlib").util.find_spec("openvino") is None, reason="the openvino extra is not installed"
)


@needs_openvino
@pytest.mark.parametrize(
    "timings, expected",
    [
        ({"torch": 1.0, "openvino": 0.8}, "openvino"),
        ({"torch": 1.0, "openvino": 0.95}, "torch"),
        ({"torch": 1.0, "openvino": 1.3}, "torch"),
    ],
)
def test_backend_auto_takes_openvino_only_when_measured_clearly_faster(backend_choice, timings, expected):
    from hnmine.inference import dtype as dtype_choice

    backend_choice["timings"] = timings
    choice = dtype_choice.choose_cpu_backend("all-MiniLM-L6-v2", "float32", "cpu", 2)
    assert choice.backend == expected and choice.seconds == timings and not choice.cached
    dtype_choice.choose_cpu_backend.cache_clear()  # a new process: read from the cache, not measured again
    again = dtype_choice.choose_cpu_backend("all-MiniLM-L6-v2", "float32", "cpu", 2)
    assert again.backend == expected and again.cached and backend_choice["calls"] == 1


@needs_openvino
def test_backend_auto_is_in_the_keys_and_the_manifest_as_what_it_chose(backend_choice, tiny_beir, tmp_path):
    from dataclasses import replace

    from hnmine.inference.spec import EncoderSpec, encoder_identity, encoder_key

    auto = EncoderSpec(dtype="float32", backend="auto")
    assert encoder_key(auto) == encoder_key(replace(auto, backend="openvino"))
    assert encoder_identity(auto, None, None) == encoder_identity(replace(auto, backend="openvino"), None, None)
    mine_json(tiny_beir, tmp_path / "run", *F32, "--backend", "auto", "--threads", "2")
    dense = json.loads((tmp_path / "run/manifests/index.json").read_text())["models"]["dense"]
    assert dense["backend"] == "openvino" and dense["backend_choice"]["backend"] == "openvino"
    assert dense["backend_choice"]["seconds"] == {"torch": 1.0, "openvino": 0.8}
    # the same run with the backend named: every stage up to date
    assert reran(mine_json(tiny_beir, tmp_path / "run", *F32, "--backend", "openvino", "--threads", "2")) == []


def test_backend_auto_is_torch_where_openvino_cannot_run(backend_choice, monkeypatch):
    import importlib.util

    from hnmine.inference import dtype as dtype_choice

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    choice = dtype_choice.choose_cpu_backend("all-MiniLM-L6-v2", "auto", "cpu", 2)
    assert choice.backend == "torch" and "not installed" in choice.reason
    assert dtype_choice.choose_cpu_backend("all-MiniLM-L6-v2", "float16", "cuda", 2).backend == "torch"
    assert backend_choice["calls"] == 0


@needs_openvino
def test_backend_auto_measures_both_backends_for_real(tmp_path, monkeypatch):
    from hnmine.inference import dtype as dtype_choice

    monkeypatch.setenv("HNMINE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache/openvino").symlink_to(SESSION_CACHE / "openvino")  # the converted model, made once per session
    dtype_choice.choose_cpu_backend.cache_clear()
    try:
        choice = dtype_choice.choose_cpu_backend("all-MiniLM-L6-v2", "float32", "cpu", 2)
    finally:
        dtype_choice.choose_cpu_backend.cache_clear()
    assert set(choice.seconds) == {"torch", "openvino"} and all(s > 0 for s in choice.seconds.values())
    assert choice.dtypes == {"torch": "float32", "openvino": "float32"} and choice.backend in ("torch", "openvino")
    assert list((tmp_path / "cache/backend-choice").glob("*.json"))
