"""Dense search over normalised embeddings with faiss: exact below a size threshold, IVF above.

Search runs in query batches, so memory never holds a full query × corpus score matrix.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hnmine.progress import Reporter

EXACT_MAX_DOCS = 200_000  # above this, an IVF index (recall measured against exact search)
QUERY_BATCH = 1024


def build_index(
    embeddings: np.ndarray, folder: Path, *, exact_max_docs: int = EXACT_MAX_DOCS, seed: int = 0, reporter: Reporter | None = None
) -> dict:
    """Write an ANN index for large corpora; exact search needs none. Returns what was built."""
    import faiss

    n, dim = embeddings.shape
    if n <= exact_max_docs:
        return {"type": "exact", "documents": n, "dim": dim}
    # about 4·√n lists, but never fewer than 39 training points per list (faiss's minimum)
    nlist = max(1, min(int(min(65536, max(256, 4 * math.sqrt(n)))), n // 39))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    train = np.ascontiguousarray(embeddings[np.sort(rng.choice(n, size=min(n, nlist * 40), replace=False))], dtype=np.float32)
    (reporter or Reporter()).info(f"training IVF index ({nlist} lists) on {len(train):,} vectors")
    index.train(train)
    with (reporter or Reporter()).task("adding vectors to IVF index", total=n) as advance:
        for start in range(0, n, 65536):
            block = np.ascontiguousarray(embeddings[start : start + 65536], dtype=np.float32)
            index.add(block)
            advance(len(block))
    folder.mkdir(parents=True, exist_ok=True)
    from hnmine.io.atomic import atomic_path

    with atomic_path(folder / "faiss.index") as tmp:
        faiss.write_index(index, str(tmp))
    return {"type": "ivf", "documents": n, "dim": dim, "nlist": nlist}


def default_nprobe(nlist: int) -> int:
    return max(16, nlist // 32)


def read_ann_index(index_info: dict, folder: Path):
    """The saved IVF index, or None for a corpus searched exactly. Read once per search: at 1M × 384-d it is 1.5 GB."""
    if index_info["type"] != "ivf":
        return None
    import faiss

    return faiss.read_index(str(folder / "faiss.index"))


MIN_RECALL = 0.95  # default recall an IVF search must reach against exact search, else search is exact
MAX_SCAN_SHARE = 1 / 8  # past this share of lists scanned, IVF is no cheaper than exact search (measured)


def plan_search(
    queries: np.ndarray,
    embeddings: np.ndarray,
    k: int,
    *,
    index_info: dict,
    folder: Path,
    nprobe: int | None = None,
    min_recall: float = MIN_RECALL,
    sample: int = 500,
    seed: int = 0,
    index=None,
    reporter: Reporter | None = None,
) -> dict:
    """How to search: exact, or IVF with the smallest nprobe whose recall@k on a query sample reaches min_recall.

    nprobe doubles from the default while at most MAX_SCAN_SHARE of the lists are scanned; when none
    reaches min_recall, exact search is cheaper than an IVF search that would, so the plan is exact.
    A given --nprobe is used as is, with its recall measured. Every step is deterministic (fixed sample,
    no timings), so the same inputs give the same plan and the same candidates. `index`: the IVF index
    when the caller has read it already.
    """
    if index_info["type"] != "ivf":
        return {"type": "exact"}
    import faiss

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(queries), size=min(sample, len(queries)), replace=False))
    q = np.ascontiguousarray(queries[pick], dtype=np.float32)
    k = min(k, embeddings.shape[0])
    _, exact = faiss.knn(q, np.ascontiguousarray(embeddings, dtype=np.float32), k, metric=faiss.METRIC_INNER_PRODUCT)
    index = index if index is not None else read_ann_index(index_info, folder)
    nlist = index_info["nlist"]

    def recall_at(n: int) -> float:
        index.nprobe = n
        _, approx = index.search(q, k)
        return sum(len(set(a[a >= 0]) & set(e[e >= 0])) for a, e in zip(approx, exact)) / float(exact.size)

    tried = []
    if nprobe is not None:
        tried.append({"nprobe": nprobe, "recall": round(recall_at(nprobe), 4)})
        return {"type": "ivf", "nprobe": nprobe, "recall": tried[-1]["recall"], "tried": tried, "k": k}
    first = min(default_nprobe(nlist), nlist)
    n = first
    while n <= max(first, int(nlist * MAX_SCAN_SHARE)):  # runs at least once
        tried.append({"nprobe": n, "recall": round(recall_at(n), 4)})
        if tried[-1]["recall"] >= min_recall:
            return {"type": "ivf", "nprobe": n, "recall": tried[-1]["recall"], "tried": tried, "k": k}
        n *= 2
    if reporter is not None:
        best = tried[-1]
        reporter.info(
            f"IVF reached recall {best['recall']:.3f} < {min_recall} at nprobe {best['nprobe']} of {nlist} lists; searching exactly instead"
        )
    return {
        "type": "exact",
        "recall": 1.0,
        "tried": tried,
        "k": k,
        "reason": f"IVF below recall {min_recall} within {MAX_SCAN_SHARE:.3g} of the lists",
    }


class DenseSearcher:
    """What a worker holds to search one corpus's vectors as the plan says: the vectors themselves (exact
    search, in memory) or the saved IVF index with the plan's nprobe."""

    def __init__(self, embeddings: np.ndarray, *, index_info: dict, folder: Path, plan: dict, index=None):
        self.n_docs = embeddings.shape[0]
        self.index = None
        self.base: np.ndarray | None = None
        if index_info["type"] == "ivf" and plan.get("type") == "ivf":
            self.index = index if index is not None else read_ann_index(index_info, folder)
            self.index.nprobe = plan.get("nprobe") or default_nprobe(index_info["nlist"])
        else:
            self.base = np.ascontiguousarray(embeddings, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k document rows and scores of a batch of query vectors (the same faiss call for any batching
        of QUERY_BATCH queries); -1 ids (faiss padding) are never returned: k is capped at the corpus."""
        import faiss

        k = min(k, self.n_docs)  # k beyond the corpus would make faiss pad with -1
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.base is not None:
            d, i = faiss.knn(q, self.base, k, metric=faiss.METRIC_INNER_PRODUCT)
        else:
            assert self.index is not None  # one of the two, by construction
            d, i = self.index.search(q, k)
        return i.astype(np.int64, copy=False), d.astype(np.float32, copy=False)
