"""BM25 with bm25s (fast, sparse matrices) or rank-bm25 (the reference implementation).

Both backends use the same tokenizer, so with `method="robertson"` they rank alike (rank-bm25's
BM25Okapi differs only by the constant factor k1+1 and its idf floor for terms in over half the corpus).

Both are stored as data, never as a pickle (a run directory may come from someone else, and loading a
pickle runs whatever it says): bm25s as its own arrays and JSON, rank-bm25 as the tokenized corpus, from
which BM25Okapi is rebuilt at search time (the same object, so the same scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hnmine.errors import UnknownName
from hnmine.progress import Reporter

BM25_VARIANTS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
RANK_BM25_TOKENS = "rank_bm25_tokens.parquet"  # the rank-bm25 index: one row of tokens per document
_OLD_PICKLE = "rank_bm25.pkl"  # what hnmine wrote before: never loaded


@dataclass(frozen=True)
class BM25Options:
    backend: str = "bm25s"
    method: str = "lucene"
    k1: float = 1.5
    b: float = 0.75
    stopwords: str = "en"

    def validate(self) -> None:
        from hnmine.retrievers import BM25_BACKENDS

        if self.backend not in BM25_BACKENDS:
            raise UnknownName("BM25 backend", self.backend, list(BM25_BACKENDS))
        if self.method not in BM25_VARIANTS:
            raise UnknownName("BM25 method", self.method, list(BM25_VARIANTS))


def tokenize(texts: list[str], stopwords: str) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords=stopwords or None, return_ids=False, show_progress=False)


def build(texts: list[str], options: BM25Options, folder: Path, reporter: Reporter | None = None) -> dict:
    options.validate()
    folder.mkdir(parents=True, exist_ok=True)
    (reporter or Reporter()).info(f"BM25 index ({options.backend}, {options.method}) over {len(texts):,} documents")
    tokens = tokenize(texts, options.stopwords)
    if not any(tokens):
        from hnmine.errors import InputError

        raise InputError("the corpus has no word BM25 can index (only stopwords or punctuation); use --retriever dense")
    if options.backend == "rank-bm25":
        import pyarrow as pa

        from hnmine.io.atomic import write_parquet

        write_parquet(pa.table({"tokens": pa.array(tokens, pa.list_(pa.string()))}), folder / RANK_BM25_TOKENS)
        (folder / _OLD_PICKLE).unlink(missing_ok=True)  # an earlier version's, never to be read
    else:
        import bm25s

        model = bm25s.BM25(k1=options.k1, b=options.b, method=options.method)
        model.index(tokens, show_progress=False)
        model.save(str(folder), show_progress=False)
    return {"backend": options.backend, "method": options.method, "documents": len(texts)}


class BM25Searcher:
    """What a worker holds to search a saved BM25 index: bm25s's score matrix (memory-mapped), or rank-bm25's
    BM25Okapi rebuilt from the stored tokens (a pickle is never loaded)."""

    def __init__(self, folder: Path, options: BM25Options, n_docs: int):
        self.options, self.n_docs = options, n_docs
        self.rank_bm25 = _rank_bm25(folder, options) if options.backend == "rank-bm25" else None
        self.sparse = SparseBM25(folder) if self.rank_bm25 is None else None

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k document rows and scores per query; rows with no matching term come back as -1.

        Only documents sharing a term with the query are candidates. Equal scores are ordered by document
        row, so both backends, any batching, and every run agree on ties.
        """
        k = min(k, self.n_docs)
        tokens = tokenize(queries, self.options.stopwords)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        for row, q in enumerate(tokens):
            if self.rank_bm25 is not None:
                s = self.rank_bm25.get_scores(q)
                top = np.lexsort((np.arange(len(s)), -s))[:k]
                ids[row], scores[row] = top, s[top]
            else:
                assert self.sparse is not None
                ids[row], scores[row] = self.sparse.top_k(q, k)
        if self.rank_bm25 is not None:
            ids[scores <= 0] = -1  # a zero BM25 score means no shared term: not a candidate
        return ids, scores


def search(queries: list[str], k: int, options: BM25Options, folder: Path, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """BM25Searcher.search of every query, in this process (the retrieve stage spreads batches over workers)."""
    return BM25Searcher(folder, options, n_docs).search(queries, k)


def _rank_bm25(folder: Path, options: BM25Options):
    """rank-bm25's BM25Okapi rebuilt from the stored tokenized corpus (a pickle of it is never loaded)."""
    import pyarrow.parquet as pq
    from rank_bm25 import BM25Okapi

    from hnmine.errors import RunDirError

    path = folder / RANK_BM25_TOKENS
    if not path.is_file():
        found = f"only {_OLD_PICKLE} from an earlier hnmine, which is never loaded (a pickle can run any code)"
        raise RunDirError(
            f"{folder}: no rank-bm25 token table, {found if (folder / _OLD_PICKLE).exists() else 'and no index'}; "
            f"rebuild the index: rerun `hnmine index` (or `hnmine mine`) with --out {folder.parent.parent} --force"
        )
    tokens = pq.read_table(path, columns=["tokens"]).column("tokens").to_pylist()
    return BM25Okapi([t or [] for t in tokens], k1=options.k1, b=options.b)


class SparseBM25:
    """A saved bm25s index read as its term-to-document score matrix (memory-mapped).

    bm25s's own retrieve scores every document and runs np.argpartition over all of them; for a
    query whose terms occur in a small share of a large corpus most of those scores are 0, and the
    selection dominates (65 of 69 s at 100k documents). Here a query's score is a bincount over the
    postings of its terms and the top k is chosen among the documents that share a term only.
    """

    def __init__(self, folder: Path):
        import json

        self.data = np.load(folder / "data.csc.index.npy", mmap_mode="r")
        self.indices = np.load(folder / "indices.csc.index.npy", mmap_mode="r")
        self.indptr = np.load(folder / "indptr.csc.index.npy", mmap_mode="r")
        self.vocab: dict[str, int] = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
        self.n_docs = int(json.loads((folder / "params.index.json").read_text(encoding="utf-8"))["num_docs"])
        nnoc = folder / "nonoccurrence_array.index.npy"
        self.nonoccurrence = np.load(nnoc) if nnoc.exists() else None  # bm25l / bm25+ add a score for absent terms

    def scores(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the documents sharing a term with the query (ascending) and their float32 scores."""
        term_ids = [self.vocab[t] for t in tokens if t in self.vocab]  # repeated terms count again, as in bm25s
        if not term_ids:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        spans = [(int(self.indptr[t]), int(self.indptr[t + 1])) for t in term_ids]
        rows = np.concatenate([self.indices[a:b] for a, b in spans])
        values = np.concatenate([self.data[a:b] for a, b in spans])
        if len(term_ids) == 1:
            order = np.argsort(rows, kind="stable")
            docs: np.ndarray = rows[order].astype(np.int64)
            total: np.ndarray = values[order].astype(np.float64)
        else:
            summed = np.bincount(rows, weights=values, minlength=self.n_docs)
            hit = np.zeros(self.n_docs, dtype=bool)
            hit[rows] = True
            docs = np.flatnonzero(hit).astype(np.int64)
            total = summed[docs]
        if self.nonoccurrence is not None:
            total = total + float(self.nonoccurrence[term_ids].sum())
        return docs, total.astype(np.float32)

    def top_k(self, tokens: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best documents (padded with -1 / 0), best first, ties by row; only scores above 0."""
        docs, s = self.scores(tokens)
        keep = s > 0
        docs, s = docs[keep], s[keep]
        if len(docs) > k:
            kth = np.partition(s, len(s) - k)[len(s) - k]  # the k-th largest score
            above = s > kth
            ties = np.flatnonzero(s == kth)[: k - int(above.sum())]  # lowest rows first
            pick = np.concatenate([np.flatnonzero(above), ties])
            docs, s = docs[pick], s[pick]
        order = np.lexsort((docs, -s))
        out_ids = np.full(k, -1, dtype=np.int64)
        out_scores = np.zeros(k, dtype=np.float32)
        out_ids[: len(docs)] = docs[order]
        out_scores[: len(docs)] = s[order]
        return out_ids, out_scores
