"""The held-out judgments a fine-tuned model is measured on: a BEIR folder's corpus, queries and one qrels split.

Read with hnmine's own input reader (the same id and text rules as `hnmine mine`), then fixed for
search: documents sorted by id (ties in score fall back to the id, see hnmine.finetune.metrics) and
shown to the model as "title text", queries kept when they have a relevant document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hnmine.errors import InputError


@dataclass
class EvalSet:
    data: Path
    split: str
    doc_ids: list[str]  # sorted ascending
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}
    min_relevance: int = 1
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "data": str(self.data),
            "split": self.split,
            "queries": len(self.query_ids),
            "documents": len(self.doc_ids),
            "judgments": sum(len(v) for v in self.qrels.values()),
            "min_relevance": self.min_relevance,
        }


def load_eval_set(data: Path, split: str, min_relevance: int = 1) -> EvalSet:
    """Read a BEIR folder's split; an InputError names the splits there when `split` is not one of them."""
    from hnmine.inference.batching import doc_texts
    from hnmine.io.inputs import load_inputs
    from hnmine.io.locate import InputSpec

    data = Path(data)
    if not data.exists():
        raise InputError(f"{data}: no such evaluation folder")
    if not data.is_dir():
        raise InputError(f"{data}: the evaluation data must be a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    inputs = load_inputs(InputSpec(data=data, split=split, min_relevance=min_relevance))
    corpus = inputs.corpus.sort_by("doc_id")
    texts = doc_texts(corpus.column("title").to_pylist(), corpus.column("text").to_pylist())
    qrels: dict[str, dict[str, int]] = {}
    for q, d, r in zip(*(inputs.qrels.column(c).to_pylist() for c in ("query_id", "doc_id", "relevance"))):
        qrels.setdefault(q, {})[d] = int(r)
    return EvalSet(
        data=data,
        split=split,
        doc_ids=corpus.column("doc_id").to_pylist(),
        doc_texts=texts,
        query_ids=inputs.queries.column("query_id").to_pylist(),
        query_texts=inputs.queries.column("text").to_pylist(),
        qrels=qrels,
        min_relevance=min_relevance,
        warnings=list(inputs.warnings),
    )
