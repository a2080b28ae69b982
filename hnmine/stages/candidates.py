"""The candidate table: each query's retrieved lists, fused, positives marked, capped at max_depth negatives.

Computed on whole arrays (one row per query × list entry), never per query in Python: at 100,000 queries
× 100 candidates × 2 lists a per-query loop of dicts took minutes and gigabytes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hnmine.schemas import CANDIDATE_SCHEMA


def build_candidates(
    query_ids: list[str],
    positives: dict[str, set[str]],
    corpus_ids: np.ndarray,
    lists: dict[str, tuple[np.ndarray, np.ndarray]],
    max_depth: int,
    rrf_k: int,
) -> pa.Table:
    """Rows per query, best first: the positives found, plus the first max_depth non-positive candidates.

    One list: its own order and scores. Several: reciprocal rank fusion, score(d) = Σ 1 / (rrf_k + rank)
    over the lists holding d (rank 1-based), ties by doc id; `source` names the lists that held d.
    `rank` is the position in the fused list, counting candidates past the cap too.
    """
    names = list(lists)
    entries = _list_entries(lists)
    if not len(entries["q"]):
        return CANDIDATE_SCHEMA.empty_table()
    uq, ud, fused, source_code, per_list, first_rank = _fuse(entries, names, len(corpus_ids), rrf_k)
    if len(names) == 1:  # a single list keeps its own order
        ranked = np.lexsort((first_rank, uq))
    else:  # best first within each query; equal scores by doc id (its place in sorted id order)
        n_docs = len(corpus_ids)
        id_order = np.empty(n_docs, dtype=np.int64)
        id_order[np.argsort(corpus_ids, kind="stable")] = np.arange(n_docs)
        ranked = np.lexsort((id_order[ud], -fused, uq))
    uq, ud, fused, source_code = uq[ranked], ud[ranked], fused[ranked], source_code[ranked]
    per_list = {name: (v[ranked], p[ranked]) for name, (v, p) in per_list.items()}

    starts = np.flatnonzero(np.r_[True, uq[1:] != uq[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(uq)]))
    position = np.arange(len(uq)) - group_start + 1
    is_pos = _positive_mask(uq, ud, query_ids, positives, corpus_ids)
    negatives_so_far = np.cumsum(~is_pos)
    before_group = np.r_[0, negatives_so_far][group_start]
    keep = is_pos | (negatives_so_far - before_group <= max_depth)

    labels = [_source_label(names, code) for code in range(1 << len(names))]  # by bitmask of the lists holding a pair
    cols = {
        "query_id": _take_strings(query_ids, uq[keep]),
        "doc_id": _take_strings(corpus_ids, ud[keep]),
        "rank": pa.array(position[keep].astype(np.int32)),
        "score": pa.array(fused[keep].astype(np.float32)),
        "source": _take_strings(labels, source_code[keep]),
        "is_positive": pa.array(is_pos[keep]),
    }
    for column, name in (("dense_score", "dense"), ("bm25_score", "bm25")):
        if name in per_list:
            values, present = per_list[name]
            cols[column] = pa.array(values[keep], mask=~present[keep])
        else:
            cols[column] = pa.nulls(int(keep.sum()), pa.float32())
    return pa.table(cols, schema=CANDIDATE_SCHEMA)


def _list_entries(lists: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every valid entry of every list: query row, doc row, score, 1-based rank in its list, list index."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("q", "d", "raw", "rank", "src")}
    for s_idx, (ids, scores) in enumerate(lists.values()):
        valid = ids >= 0  # faiss and BM25 pad missing results with -1: never an id
        rank = np.cumsum(valid, axis=1)
        q_row = np.broadcast_to(np.arange(ids.shape[0])[:, None], ids.shape)
        parts["q"].append(q_row[valid])
        parts["d"].append(ids[valid])
        parts["raw"].append(scores[valid].astype(np.float32))
        parts["rank"].append(rank[valid])
        parts["src"].append(np.full(int(valid.sum()), s_idx, dtype=np.int8))
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    out["q"], out["d"] = out["q"].astype(np.int64), out["d"].astype(np.int64)
    return out


def _fuse(e: dict[str, np.ndarray], names: list[str], n_docs: int, rrf_k: int):
    """One row per (query, document): the fused score (a single list's own score, or reciprocal rank
    fusion), which lists held it (bitmask), each list's score of it, and its rank in the first list holding it."""
    # The lists' entries for each pair, in list order (the sort is stable).
    pair = e["q"] * n_docs + e["d"]
    order = np.argsort(pair, kind="stable")
    pair, q, d, raw, list_rank, src = pair[order], e["q"][order], e["d"][order], e["raw"][order], e["rank"][order], e["src"][order]
    first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    per_list = {}
    rrf_sum = np.zeros(len(first), dtype=np.float64)
    source_code = np.zeros(len(first), dtype=np.int64)
    for s_idx, name in enumerate(names):
        at = src == s_idx
        values = np.zeros(len(first), dtype=np.float32)
        present = np.zeros(len(first), dtype=bool)
        group = np.searchsorted(first, np.flatnonzero(at), side="right") - 1  # each pair at most once per list
        values[group] = raw[at]
        present[group] = True
        per_list[name] = (values, present)
        # A running sum list by list: the same float64 rounding as adding the lists one after another
        # (np.add.reduceat may add in another order, and a last-bit difference reorders ties).
        rrf_sum[group] += 1.0 / (rrf_k + list_rank[at].astype(np.float64))
        source_code[group] |= 1 << s_idx
    fused = raw[first].astype(np.float64) if len(names) == 1 else rrf_sum
    return q[first], d[first], fused, source_code, per_list, list_rank[first]


def _source_label(names: list[str], code: int) -> str:
    return "+".join(n for i, n in enumerate(names) if code >> i & 1)


def _positive_mask(q_rows: np.ndarray, d_rows: np.ndarray, query_ids: list[str], positives: dict[str, set[str]], corpus_ids) -> np.ndarray:
    if not positives or not len(q_rows):
        return np.zeros(len(q_rows), dtype=bool)
    doc_row = {doc: i for i, doc in enumerate(corpus_ids.tolist())}
    n_docs = len(corpus_ids)
    keys = [row * n_docs + doc_row[doc] for row, qid in enumerate(query_ids) for doc in positives.get(qid, ()) if doc in doc_row]
    return np.isin(q_rows * n_docs + d_rows, np.array(keys, dtype=np.int64))


def _take_strings(values, rows: np.ndarray) -> pa.Array:
    """values[rows] as an Arrow string array, gathered in Arrow (no Python object per row)."""
    dictionary = pa.array(list(values) if not isinstance(values, list) else values, pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(rows.astype(np.int32)), dictionary).cast(pa.string())


def positives_by_query(qrels: pa.Table) -> dict[str, set[str]]:
    """query id -> its positive doc ids (from the normalised qrels table)."""
    pos = qrels.filter(qrels.column("is_positive"))
    out: dict[str, set[str]] = {}
    for q, d in zip(pos.column("query_id").to_pylist(), pos.column("doc_id").to_pylist()):
        out.setdefault(q, set()).add(d)
    return out
