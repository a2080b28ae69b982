"""The data the structural rules need: text codes for same text, cosines for near duplicates.

Both the filter (a query's candidates) and the random negatives (drawn corpus documents) ask the
same two questions of (query, corpus document) pairs, through the functions here; the tests
themselves are hnmine.methods.rules.same_text_as_positive and near_duplicate_of_positive.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hnmine.errors import InputError
from hnmine.methods.rules import same_text_as_positive, text_keys
from hnmine.selection.arrays import distinct, offsets, string_column
from hnmine.selection.prepare import PreparedRows

DocVectors = Callable[[list[str]], np.ndarray]  # doc ids -> vectors (n x d)

# A query with more positives than this is compared with one matrix product instead of a
# column of the padded table (which is as wide as the most positives any light query has).
_MANY_POSITIVES = 16


def text_codes(corpus: pa.Table, corpus_rows: np.ndarray) -> np.ndarray:
    """Same-text code of each of `corpus_rows`: equal codes for equal rules.text_keys."""
    sub = corpus.take(pa.array(corpus_rows, pa.int64()))
    titles = string_column(sub, "title") if "title" in sub.column_names else pa.nulls(len(sub), pa.string())
    keys = text_keys(titles, string_column(sub, "text"))
    return pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False).astype(np.int64)


def corpus_text_codes(rows: PreparedRows, corpus_rows: np.ndarray) -> np.ndarray:
    """Per corpus row (-1 where not among `corpus_rows`): its same-text code, one dictionary for all."""
    out = np.full(rows.n_corpus, -1, dtype=np.int64)
    docs = distinct(corpus_rows[corpus_rows >= 0], rows.n_corpus)[0]
    if docs.size:
        out[docs] = text_codes(rows.corpus, docs)
    return out


def has_text_of_a_positive(rows: PreparedRows, query: np.ndarray, corpus_row: np.ndarray, doc_code: np.ndarray | None = None) -> np.ndarray:
    """Per pair i: corpus document corpus_row[i] has the text of a positive of query[i]. `doc_code`: the
    corpus_text_codes of these documents and of the queries' positives, when the caller has them."""
    hit = np.zeros(query.size, dtype=bool)
    prow, _ = _positives_in_corpus(rows, distinct(query, rows.n_queries)[0])
    if prow.size == 0 or query.size == 0:
        return hit
    if doc_code is not None:
        all_codes = doc_code[np.concatenate([corpus_row, rows.corpus_row[prow]])]
    else:  # one text key per distinct document (a document is a candidate of many queries)
        docs, doc_loc = distinct(np.concatenate([corpus_row, rows.corpus_row[prow]]), rows.n_corpus)
        all_codes = text_codes(rows.corpus, docs)[doc_loc]
    code, positive_code = all_codes[: query.size], all_codes[query.size :]
    # only pairs whose text is some positive's text need the (query, text) test
    is_positive_text = np.zeros(int(all_codes.max()) + 1, dtype=bool)
    is_positive_text[positive_code] = True
    maybe = np.flatnonzero(is_positive_text[code])
    hit[maybe] = same_text_as_positive(query[maybe], code[maybe], rows.query[prow], positive_code)
    return hit


class CosineToPositives:
    """The highest cosine between a corpus document and a query's positives, from the caller's
    vectors (typically the index stage's embedding cache)."""

    def __init__(self, rows: PreparedRows, doc_vectors: DocVectors) -> None:
        self.rows = rows
        self.doc_vectors = doc_vectors

    def max_cosine(self, query: np.ndarray, corpus_row: np.ndarray) -> np.ndarray:
        """Per pair i: the highest cosine between document corpus_row[i] and a positive of
        query[i] (-inf when the query has none with a vector). One doc_vectors call; row-wise
        dot products against a padded table of each query's positives, one column at a time
        (one matrix product per query when a query has many positives)."""
        best = np.full(corpus_row.size, -np.inf)
        if corpus_row.size == 0:
            return best
        queries, qloc = np.unique(query, return_inverse=True)
        prow, owner = _positives_in_corpus(self.rows, queries)
        if prow.size == 0:
            return best
        uniq, vecs = self._vectors(np.concatenate([corpus_row, self.rows.corpus_row[prow]]))
        doc_vec = vecs[np.searchsorted(uniq, corpus_row)]
        pos_vec = np.searchsorted(uniq, self.rows.corpus_row[prow])  # row of vecs, per positive
        off = offsets(owner, queries.size)
        many = np.diff(off) > _MANY_POSITIVES
        for column in _padded_table(pos_vec, owner, off, ~many[owner]).T:
            idx = column[qloc]
            has = idx >= 0
            if has.any():
                sims = np.einsum("ij,ij->i", doc_vec[has], vecs[idx[has]])
                best[has] = np.maximum(best[has], sims)
        for i in np.flatnonzero(many).tolist():
            members = np.flatnonzero(qloc == i)
            best[members] = (doc_vec[members] @ vecs[pos_vec[off[i] : off[i + 1]]].T).max(axis=1)
        return best

    def _vectors(self, corpus_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique corpus rows, their L2-normalised vectors), one doc_vectors call."""
        uniq = np.unique(corpus_rows)
        ids = self.rows.corpus_doc_ids.take(pa.array(uniq, pa.int64())).to_pylist()
        vecs = np.asarray(self.doc_vectors(ids))
        if vecs.ndim != 2 or vecs.shape[0] != len(ids):
            raise InputError(f"doc_vectors returned an array of shape {vecs.shape} for {len(ids)} documents (expected {len(ids)} x d)")
        return uniq, _normalise_rows(vecs)


def _normalise_rows(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return v / norms


def _positives_in_corpus(rows: PreparedRows, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PreparedRows.positives_of, less the positives missing from the corpus (they have neither
    a text nor a vector)."""
    prow, owner = rows.positives_of(queries)
    keep = rows.corpus_row[prow] >= 0
    return prow[keep], owner[keep]


def _padded_table(values: np.ndarray, owner: np.ndarray, off: np.ndarray, use: np.ndarray) -> np.ndarray:
    """(groups x widest group) table of `values` grouped by `owner` (offsets `off`), -1 padded;
    only the elements where `use` is true are entered (the width is that of those)."""
    count = np.bincount(owner[use], minlength=off.size - 1)
    table = np.full((off.size - 1, int(count.max(initial=0))), -1, dtype=np.int64)
    table[owner[use], (np.arange(owner.size) - off[owner])[use]] = values[use]
    return table
