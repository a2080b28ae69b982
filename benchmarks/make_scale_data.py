"""Synthetic corpus for the scale benchmark: N documents, Q queries, one positive each, and 384-d vectors.

Texts are drawn from a 50,000-word vocabulary with Zipf-like frequencies; each document has a topic
(one of 2,000), and a third of its words come from that topic's 50 words, so BM25 has real signal.
Each query takes 5 words of its positive document and 1–2 words of the same topic.
Vectors have the same topic structure (topic centroid + noise, normalised; a query = its positive's
vector + noise), so nearest neighbours and IVF clustering behave like real embeddings, not like
uniform noise. Everything is written in chunks: memory stays near one chunk.

Layout (a BEIR folder hnmine reads directly):
  DIR/corpus.parquet (_id, title, text)  DIR/queries.parquet (_id, text)  DIR/qrels/train.tsv
  DIR/corpus_emb.npy (N × 384 float32)   DIR/query_emb.npy (Q × 384 float32)

  python benchmarks/make_scale_data.py DIR --docs 1000000 --queries 100000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DIM = 384
VOCAB = 50_000
TOPICS = 2_000
TOPIC_WORDS = 50
CHUNK = 100_000
DOC_NOISE = 0.1125  # per dimension: same-topic documents at cosine ~0.17, others ~0
QUERY_NOISE = 0.075  # a query sits at cosine ~0.55 from its positive


def syllable_words(n: int, rng: np.random.Generator) -> np.ndarray:
    cons, vow = list("bcdfghjklmnprstvwz"), list("aeiou")
    words = set()
    while len(words) < n:
        k = rng.integers(2, 5)
        words.add("".join(rng.choice(cons) + rng.choice(vow) for _ in range(k)))
    return np.array(sorted(words))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = args.out
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    vocab = syllable_words(VOCAB, rng)
    p = 1.0 / np.arange(1, VOCAB + 1) ** 1.07
    p /= p.sum()
    topic_words = rng.choice(VOCAB, size=(TOPICS, TOPIC_WORDS), replace=True)
    centroids = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    doc_topic = rng.integers(0, TOPICS, size=args.docs)

    emb = np.lib.format.open_memmap(out / "corpus_emb.npy", mode="w+", dtype=np.float32, shape=(args.docs, DIM))
    writer = None
    for start in range(0, args.docs, CHUNK):
        n = min(CHUNK, args.docs - start)
        topics = doc_topic[start : start + n]
        lengths = rng.integers(8, 40, size=n)
        general = rng.choice(VOCAB, size=int(lengths.sum()), p=p)
        topical = topic_words[np.repeat(topics, lengths), rng.integers(0, TOPIC_WORDS, size=int(lengths.sum()))]
        use_topic = rng.random(int(lengths.sum())) < 0.33
        words = vocab[np.where(use_topic, topical, general)]
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        texts = [" ".join(words[bounds[i] : bounds[i + 1]]) for i in range(n)]
        ids = [f"d{start + i}" for i in range(n)]
        table = pa.table({"_id": ids, "title": [""] * n, "text": texts})
        if writer is None:
            writer = pq.ParquetWriter(out / "corpus.parquet", table.schema)
        writer.write_table(table)
        v = centroids[topics] + DOC_NOISE * rng.standard_normal((n, DIM)).astype(np.float32)
        emb[start : start + n] = v / np.linalg.norm(v, axis=1, keepdims=True)
        print(f"documents {start + n:,}/{args.docs:,}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    writer.close()
    emb.flush()

    positives = rng.choice(args.docs, size=args.queries, replace=False)
    corpus_text = pq.read_table(out / "corpus.parquet", columns=["text"]).column("text")
    qemb = np.lib.format.open_memmap(out / "query_emb.npy", mode="w+", dtype=np.float32, shape=(args.queries, DIM))
    qids, qtexts = [], []
    for start in range(0, args.queries, CHUNK):
        pos = positives[start : start + CHUNK]
        for j, d in enumerate(pos.tolist()):
            w = corpus_text[d].as_py().split()
            pick = [w[i] for i in rng.choice(len(w), size=min(5, len(w)), replace=False)]
            extra = vocab[topic_words[doc_topic[d], rng.integers(0, TOPIC_WORDS, size=rng.integers(1, 3))]].tolist()
            qids.append(f"q{start + j}")
            qtexts.append(" ".join(pick + extra))
        v = emb[pos] + QUERY_NOISE * rng.standard_normal((len(pos), DIM)).astype(np.float32)
        qemb[start : start + len(pos)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    qemb.flush()
    pq.write_table(pa.table({"_id": qids, "text": qtexts}), out / "queries.parquet")
    with open(out / "qrels" / "train.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q, d in zip(qids, positives.tolist()):
            fh.write(f"{q}\td{d}\t1\n")
    print(f"wrote {args.docs:,} documents, {args.queries:,} queries to {out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
