"""BM25 with bm25s (fast, sparse matrices) or rank-bm25 (the reference implementation).

Both backends use the same tokenizer, so with `method="robertson"` they rank alike (rank-bm25's
BM25Okapi differs only by the constant factor k1+1 and its idf floor for terms in over half the corpus).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hnmine.errors import UnknownName
from hnmine.progress import Reporter

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


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
        if self.method not in METHODS:
            raise UnknownName("BM25 method", self.method, list(METHODS))


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
    from hnmine.io.atomic import atomic_path

    if options.backend == "rank-bm25":
        from rank_bm25 import BM25Okapi

        model = BM25Okapi(tokens, k1=options.k1, b=options.b)
        with atomic_path(folder / "rank_bm25.pkl") as tmp:
            tmp.write_bytes(pickle.dumps(model))
    else:
        import bm25s

        model = bm25s.BM25(k1=options.k1, b=options.b, method=options.method)
        model.index(tokens, show_progress=False)
        model.save(str(folder), show_progress=False)
    return {"backend": options.backend, "method": options.method, "documents": len(texts)}


def search(queries: list[str], k: int, options: BM25Options, folder: Path, n_docs: int, reporter: Reporter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k document rows and scores per query; rows with no matching term come back as -1."""
    k = min(k, n_docs)
    tokens = tokenize(queries, options.stopwords)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    with (reporter or Reporter()).task("BM25 search", total=len(queries)) as advance:
        if options.backend == "rank-bm25":
            model = pickle.loads((folder / "rank_bm25.pkl").read_bytes())
            for row, q in enumerate(tokens):
                s = model.get_scores(q)
                top = np.lexsort((np.arange(len(s)), -s))[:k]
                ids[row] = top
                scores[row] = s[top]
                advance(1)
        else:
            import bm25s

            model = bm25s.BM25.load(str(folder), show_progress=False)
            step = 2048
            for start in range(0, len(tokens), step):
                batch = tokens[start : start + step]
                # bm25s drops empty queries' tokens badly; give them an impossible token instead.
                batch = [t if t else ["\x00"] for t in batch]
                docs, sc = model.retrieve(batch, k=k, show_progress=False, n_threads=0)
                ids[start : start + len(batch)] = docs
                scores[start : start + len(batch)] = sc
                advance(len(batch))
    # Equal scores are ordered by document row, so both backends (and every run) agree on ties.
    order = np.lexsort((ids, -scores))
    ids = np.take_along_axis(ids, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    # A zero BM25 score means no shared term: not a candidate.
    ids[scores <= 0] = -1
    return ids, scores
