"""Candidate retrievers, chosen by name: dense (faiss), bm25 (bm25s or rank-bm25), hybrid (RRF fusion)."""

RETRIEVERS = ("dense", "bm25", "hybrid")
BM25_BACKENDS = ("bm25s", "rank-bm25")


def needs_dense(retriever: str) -> bool:
    return retriever in ("dense", "hybrid")


def needs_bm25(retriever: str) -> bool:
    return retriever in ("bm25", "hybrid")
