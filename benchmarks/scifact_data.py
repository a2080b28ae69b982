"""SciFact (BEIR layout) read the way both miners see it: docs as 'title text', train queries with a positive."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def load(data: Path, split: str = "train", min_relevance: int = 1):
    """(doc_ids, doc_texts, query_ids, query_texts, pairs) where pairs = [(query_id, doc_id)] with relevance >= min."""
    data = Path(data)
    doc_ids, doc_texts = [], []
    seen = set()
    with open(data / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            did = str(d["_id"]).strip()
            title, text = d.get("title") or "", d.get("text") or ""
            if did in seen or (not title.strip() and not text.strip()):
                continue
            seen.add(did)
            doc_ids.append(did)
            doc_texts.append(f"{title} {text}".strip() if title else text)
    queries = {}
    with open(data / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            queries.setdefault(str(q["_id"]).strip(), q["text"])
    pairs = []
    docset = set(doc_ids)
    with open(data / "qrels" / f"{split}.tsv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            q, d, s = row["query-id"].strip(), row["corpus-id"].strip(), int(float(row["score"]))
            if s >= min_relevance and q in queries and d in docset and (q, d) not in pairs:
                pairs.append((q, d))
    qids = list(dict.fromkeys(q for q, _ in pairs))
    return doc_ids, doc_texts, qids, [queries[q] for q in qids], pairs
