"""BM25 on Ray: the index built from corpus blocks with global statistics, in bm25s's own format.

Pass 1 tokenizes each block (hnmine.retrievers.bm25.tokenize, the local tokenizer) and counts, per
term, the documents holding it; the driver adds the counts up into the corpus's document frequencies,
its size and its mean document length (the statistics BM25's IDF and length normalisation need, so
they do not depend on how the corpus was split). Pass 2 scores each block's (document, term) pairs
with bm25s's own functions and those global statistics, so every score is the one bm25s computes for
the whole corpus; pass 3 writes each block's pairs at their places in the term-major (CSC) matrix
that bm25s saves. The folder is a bm25s index like the local engine's, searched by the same code
(hnmine.retrievers.bm25.SparseBM25) on either engine. Only the vocabulary's numbering differs (sorted
here; bm25s numbers terms in set order, which varies from process to process), and no score does.

The driver holds one vocabulary-sized array of counts and one block's term counts at a time; a worker
holds one block, the vocabulary and its IDF array.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

BLOCK_ROWS = 65536


def _tokens(corpus_path: str, start: int, stop: int, stopwords: str) -> list[list[str]]:
    from hnmine.encode import doc_texts
    from hnmine.engines.ray.parts import read_rows
    from hnmine.retrievers.bm25 import tokenize

    t = read_rows(Path(corpus_path), start, stop, ["title", "text"])
    return tokenize(doc_texts(t.column("title").to_pylist(), t.column("text").to_pylist()), stopwords)


def _block_stats(corpus_path: str, start: int, stop: int, stopwords: str):
    """(documents, total length, terms, document frequencies) of one block."""
    from collections import Counter

    tokens = _tokens(corpus_path, start, stop, stopwords)
    df: Counter = Counter()
    for doc in tokens:
        df.update(set(doc))
    terms = sorted(df)
    return len(tokens), int(sum(len(d) for d in tokens)), terms, np.array([df[t] for t in terms], dtype=np.int64)


def _block_scores(
    corpus_path: str, start: int, stop: int, stopwords: str, vocab: dict, idf, nonocc, avg_len: float, params: dict, part: str
):
    """Score one block's (document, term) pairs with bm25s's functions; write them term-major to `part`."""
    from bm25s.scoring import _build_scores_and_indices_for_matrix

    tokens = _tokens(corpus_path, start, stop, stopwords)
    ids = [[vocab[t] for t in doc] for doc in tokens]
    size = sum(len(set(doc)) for doc in ids)
    scores, doc_idx, voc_idx = _build_scores_and_indices_for_matrix(
        corpus_token_ids=ids,
        idf_array=idf,
        avg_doc_len=avg_len,
        doc_frequencies={0: size},
        k1=params["k1"],
        b=params["b"],
        delta=params["delta"],
        nonoccurrence_array=nonocc,
        method=params["method"],
        dtype=params["dtype"],
        int_dtype=params["int_dtype"],
        show_progress=False,
    )
    scores, doc_idx, voc_idx = scores[:size], doc_idx[:size], voc_idx[:size]
    order = np.lexsort((doc_idx, voc_idx))
    terms, counts = np.unique(voc_idx[order], return_counts=True)
    np.savez(part, data=scores[order], rows=(doc_idx[order].astype(np.int64) + start), terms=terms.astype(np.int64), counts=counts)
    return terms.astype(np.int64), counts.astype(np.int64)


def _block_write(part: str, offsets: np.ndarray, folder: str) -> int:
    """Put one block's pairs at their places: term t's pairs of this block start at offsets[i] (t = terms[i])."""
    with np.load(part) as z:
        data, rows, counts = z["data"], z["rows"], z["counts"]
    pos = np.repeat(offsets, counts) + (np.arange(len(data)) - np.repeat(np.cumsum(counts) - counts, counts))
    out_data = np.load(Path(folder) / "data.csc.index.npy", mmap_mode="r+")
    out_rows = np.load(Path(folder) / "indices.csc.index.npy", mmap_mode="r+")
    out_data[pos] = data
    out_rows[pos] = rows.astype(out_rows.dtype)
    out_data.flush()
    out_rows.flush()
    return len(data)


def build_ray(corpus_path: Path, n_docs: int, options, folder: Path, scratch: Path, reporter=None) -> dict:
    """hnmine.retrievers.bm25.build (bm25s backend) on Ray; returns the same info.

    Three passes over the corpus blocks: document frequencies (the global statistics), each block's
    term scores, then each block's pairs written into their places of the one CSC matrix."""
    import bm25s

    from hnmine.engines.ray.parts import row_ranges
    from hnmine.progress import Reporter

    reporter = reporter or Reporter()
    options.validate()
    folder.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    blocks = row_ranges(n_docs, BLOCK_ROWS)
    reporter.info(f"BM25 index ({options.backend}, {options.method}) over {n_docs:,} documents, {len(blocks)} blocks on Ray")
    df, total_len = _document_frequencies(corpus_path, blocks, options, n_docs, reporter)
    model = bm25s.BM25(k1=options.k1, b=options.b, method=options.method)
    params = {k: getattr(model, k) for k in ("k1", "b", "delta", "method", "idf_method", "dtype", "int_dtype")}
    vocab = {t: i for i, t in enumerate(sorted(df))}
    freqs = {vocab[t]: c for t, c in df.items()}
    del df
    # numpy's mean of the lengths (an exact integer sum), as a numpy float64: a Python float would let
    # bm25s's term-frequency arithmetic run in float32 (NEP 50) and change the scores' last bits.
    avg_len = np.float64(total_len) / np.float64(n_docs)
    idf, nonocc = _idf_arrays(model, freqs, n_docs, avg_len)
    parts = [str(scratch / f"bm25-{i:06d}.npz") for i in range(len(blocks))]
    indptr = _score_and_write_blocks(
        corpus_path, blocks, parts, options, (vocab, idf, nonocc), avg_len, params, model, folder, scratch, reporter
    )
    _save_index_files(folder, indptr, vocab, nonocc, params, n_docs, bm25s.__version__)
    for p in parts:
        Path(p).unlink(missing_ok=True)
    return {"backend": options.backend, "method": options.method, "documents": n_docs}


def _document_frequencies(corpus_path: Path, blocks, options, n_docs: int, reporter) -> tuple[dict[str, int], int]:
    """Each term's document frequency and the corpus's total length, summed over the blocks."""
    import ray

    stats: Any = ray.remote(_block_stats)
    df: dict[str, int] = {}
    total_len = 0
    with reporter.task("BM25 statistics", total=n_docs) as advance:
        for ref in [stats.remote(str(corpus_path), a, b, options.stopwords) for a, b in blocks]:
            n, length, terms, counts = ray.get(ref)
            total_len += length
            for t, c in zip(terms, counts.tolist()):
                df[t] = df.get(t, 0) + c
            advance(n)
    if not df:
        from hnmine.errors import InputError

        raise InputError("the corpus has no word BM25 can index (only stopwords or punctuation); use --retriever dense")
    return df, total_len


def _idf_arrays(model, freqs: dict[int, int], n_docs: int, avg_len):
    """bm25s's own IDF (and, for the methods that need it, non-occurrence) arrays from the global counts."""
    from bm25s.scoring import _build_idf_array, _build_nonoccurrence_array, _select_idf_scorer, _select_tfc_scorer

    idf = _build_idf_array(doc_frequencies=freqs, n_docs=n_docs, compute_idf_fn=_select_idf_scorer(model.idf_method), dtype=model.dtype)
    if model.method not in model.methods_requiring_nonoccurrence:
        return idf, None
    nonocc = _build_nonoccurrence_array(
        doc_frequencies=freqs,
        n_docs=n_docs,
        compute_idf_fn=_select_idf_scorer(model.idf_method),
        calculate_tfc_fn=_select_tfc_scorer(model.method),
        l_d=avg_len,
        l_avg=avg_len,
        k1=model.k1,
        b=model.b,
        delta=model.delta,
        dtype=model.dtype,
    )
    return idf, nonocc


def _score_and_write_blocks(
    corpus_path: Path, blocks, parts: list[str], options, arrays, avg_len, params: dict, model, folder: Path, scratch: Path, reporter
) -> np.ndarray:
    """Every block's term scores (saved as parts), then written into the CSC matrix; returns its indptr."""
    import os

    import ray

    from hnmine.io.atomic import open_npy_for_writing

    refs = [ray.put(x) for x in arrays]
    score: Any = ray.remote(_block_scores)
    pending = [score.remote(str(corpus_path), a, b, options.stopwords, *refs, avg_len, params, p) for (a, b), p in zip(blocks, parts)]
    totals = np.zeros(len(arrays[0]), dtype=np.int64)
    with reporter.task("BM25 scores", total=sum(b - a for a, b in blocks)) as advance:
        for (a, b), ref in zip(blocks, pending):
            terms, counts = ray.get(ref)
            np.add.at(totals, terms, counts)
            advance(b - a)
    indptr = np.concatenate([[0], np.cumsum(totals)]).astype(np.int64)
    nnz = int(indptr[-1])
    # Filled in place (each block writes its own places), then renamed: the folder never holds a half-written matrix under its name.
    tmp_data, tmp_rows = scratch / "data.csc.index.npy", scratch / "indices.csc.index.npy"
    for path, dtype in ((tmp_data, model.dtype), (tmp_rows, model.int_dtype)):
        open_npy_for_writing(path, (nnz,), np.dtype(dtype))  # made at full size (its map closed at once); the blocks fill it
    running = indptr[:-1].copy()
    write: Any = ray.remote(_block_write)
    writes: list = []
    for ref in pending:  # each block's places: after every earlier block's pairs of the same term
        terms, counts = ray.get(ref)
        writes.append(write.remote(parts[len(writes)], running[terms].copy(), str(scratch)))
        running[terms] += counts
    ray.get(writes)
    os.replace(tmp_data, folder / "data.csc.index.npy")
    os.replace(tmp_rows, folder / "indices.csc.index.npy")
    return indptr


def _save_index_files(folder: Path, indptr: np.ndarray, vocab: dict[str, int], nonocc, params: dict, n_docs: int, version: str) -> None:
    """The rest of bm25s's saved index, as bm25s.BM25.save writes it."""
    from hnmine.io.atomic import atomic_path, write_json

    with atomic_path(folder / "indptr.csc.index.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, indptr)
    vocab[""] = len(vocab)  # as bm25s adds it: the empty token, with no column
    with atomic_path(folder / "vocab.index.json") as tmp:
        tmp.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    if nonocc is not None:
        with atomic_path(folder / "nonoccurrence_array.index.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, nonocc)
    write_json({**params, "num_docs": n_docs, "version": version, "backend": "numpy"}, folder / "params.index.json")
