"""Training-data shapes, chosen by name: sentence-transformers' four, FlagEmbedding and Tevatron JSONL.

Each writer takes the resolved examples (one per query: its text, positives and negatives with texts
and scores) and returns an Arrow table; the export stage writes it as Parquet or JSONL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from hnmine.registry import Registry


@dataclass
class Passage:
    doc_id: str
    title: str  # as read
    body: str  # the document's text as read
    score: float | None

    @property
    def text(self) -> str:
        """The text a model sees: title and text joined (the BEIR convention, as the index encodes it)."""
        return joined_text(self.title, self.body)


def joined_text(title: str, body: str) -> str:
    """'title text' when there is a title, else the text alone, each exactly as read (nothing stripped)."""
    return f"{title} {body}" if title else body


@dataclass
class Example:
    query_id: str
    query: str
    positives: list[Passage]
    negatives: list[Passage]


@dataclass(frozen=True)
class FormatSpec:
    build: Callable[[list[Example], int, bool], pa.Table]
    default_file_format: str  # parquet or jsonl
    description: str
    # A layout of several tables (the scored pool): the built table split into {name: table}, each written as
    # export/<format>/<name>.<ext>; the first is the training table (`hnmine.mine`'s result, the summary's file).
    split: Callable[[pa.Table], dict[str, pa.Table]] | None = None
    tables: tuple[str, ...] = ()  # the names `split` gives, in order


EXPORT_FORMATS: Registry[FormatSpec] = Registry("export format")


def _scores(passages: list[Passage]) -> list[float | None]:
    return [p.score for p in passages]


# The four shapes named after sentence-transformers' `mine_hard_negatives` output formats are its shapes:
# the same columns (`anchor`/`positive` where it names them after the input's columns), rows and score
# columns (`scores`, or `score` for labeled-pair), so a file trains the same whichever tool wrote it.


def _triplet(examples: list[Example], num_negatives: int, with_scores: bool) -> pa.Table:
    rows: dict[str, list] = {"anchor": [], "positive": [], "negative": []}
    if with_scores:
        rows["scores"] = []
    for ex in examples:
        for pos in ex.positives:
            for neg in ex.negatives:
                rows["anchor"].append(ex.query)
                rows["positive"].append(pos.text)
                rows["negative"].append(neg.text)
                if with_scores:
                    rows["scores"].append([pos.score, neg.score])
    return pa.table(rows)


def _n_tuple(examples: list[Example], num_negatives: int, with_scores: bool) -> pa.Table:
    # Every row needs the same number of columns: queries short of num_negatives are left out
    # (they are listed in query_summary.parquet and counted in the export manifest).
    rows: dict[str, list] = {"anchor": [], "positive": []}
    for i in range(num_negatives):
        rows[f"negative_{i + 1}"] = []
    if with_scores:
        rows["scores"] = []
    for ex in examples:
        if len(ex.negatives) < num_negatives:
            continue
        negs = ex.negatives[:num_negatives]
        for pos in ex.positives:
            rows["anchor"].append(ex.query)
            rows["positive"].append(pos.text)
            for i, neg in enumerate(negs):
                rows[f"negative_{i + 1}"].append(neg.text)
            if with_scores:
                rows["scores"].append([pos.score] + _scores(negs))
    return pa.table(rows)


def _labeled_pair(examples: list[Example], num_negatives: int, with_scores: bool) -> pa.Table:
    """(anchor, positive, label): a query's positives (1), then its negatives (0); with scores, the teacher's
    score replaces the label (sentence-transformers' labeled-pair with output_scores)."""
    value = "score" if with_scores else "label"
    rows: dict[str, list] = {"anchor": [], "positive": [], value: []}
    for ex in examples:
        for label, group in ((1, ex.positives), (0, ex.negatives)):
            for p in group:
                rows["anchor"].append(ex.query)
                rows["positive"].append(p.text)  # sentence-transformers' name, negatives included
                rows[value].append(p.score if with_scores else label)
    if with_scores:
        return pa.table({**rows, "score": pa.array(rows["score"], pa.float64())})
    return pa.table({**rows, "label": pa.array(rows["label"], pa.int64())})


def _labeled_list(examples: list[Example], num_negatives: int, with_scores: bool) -> pa.Table:
    """(anchor, [positive, negatives...], [1, 0, ...]) per (anchor, positive) pair of a query with negatives;
    with scores, the teacher's scores replace the labels (sentence-transformers' labeled-list)."""
    value = "scores" if with_scores else "labels"
    rows: dict[str, list] = {"anchor": [], "positive": [], value: []}
    for ex in examples:
        if not ex.negatives:
            continue
        for pos in ex.positives:
            rows["anchor"].append(ex.query)
            rows["positive"].append([pos.text] + [n.text for n in ex.negatives])
            rows[value].append(_scores([pos] + ex.negatives) if with_scores else [1] + [0] * len(ex.negatives))
    types = {"labels": pa.list_(pa.int64()), "scores": pa.list_(pa.float64())}
    return pa.table({**rows, value: pa.array(rows[value], types[value])})


def _flagembedding(examples: list[Example], num_negatives: int, with_scores: bool) -> pa.Table:
    rows: dict[str, list] = {"query": [], "pos": [], "neg": []}
    if with_scores:
        rows["pos_scores"] = []
        rows["neg_scores"] = []
    for ex in examples:
        rows["query"].append(ex.query)
        rows["pos"].append([p.text for p in ex.positives])
        rows["neg"].append([p.text for p in ex.negatives])
        if with_scores:
            rows["pos_scores"].append(_scores(ex.positives))
            rows["neg_scores"].append(_scores(ex.negatives))
    return pa.table(rows)


def _tevatron(examples: list[Example], num_negatives: int, with_scores: bool) -> pa.Table:
    def passages(group: list[Passage]) -> list[dict]:
        out = []
        for p in group:
            item: dict[str, str | float | None] = {"docid": p.doc_id, "title": p.title, "text": p.body}  # each field exactly as read
            if with_scores:
                item["score"] = p.score
            out.append(item)
        return out

    rows: dict[str, list] = {"query_id": [], "query": [], "positive_passages": [], "negative_passages": []}
    for ex in examples:
        rows["query_id"].append(ex.query_id)
        rows["query"].append(ex.query)
        rows["positive_passages"].append(passages(ex.positives))
        rows["negative_passages"].append(passages(ex.negatives))
    return pa.table(rows)


def _scored_pool(examples: list[Example], num_negatives: int, with_scores: bool) -> pa.Table:
    """One row per query: its documents, positives first (best first) then its negatives in the filter's order,
    with the teacher's scores (always: they are the layout) and the positives' ids; the texts ride along until
    `_split_pool` makes the queries and documents tables of them."""
    rows: dict[str, list] = {"query_id": [], "query": [], "document_ids": [], "documents": [], "scores": [], "positive_ids": []}
    for ex in examples:
        listed = ex.positives + ex.negatives
        rows["query_id"].append(ex.query_id)
        rows["query"].append(ex.query)
        rows["document_ids"].append([p.doc_id for p in listed])
        rows["documents"].append([p.text for p in listed])
        rows["scores"].append(_scores(listed))
        rows["positive_ids"].append([p.doc_id for p in ex.positives])
    types = {"scores": pa.list_(pa.float32()), "document_ids": pa.list_(pa.string()), "documents": pa.list_(pa.string())}
    return pa.table({k: pa.array(v, types.get(k)) for k, v in rows.items()})


def _split_pool(table: pa.Table) -> dict[str, pa.Table]:
    """PyLate's three tables (its KDProcessing joins them by id): train (query_id, document_ids, scores; and
    positive_ids, which its collator leaves alone as a column named *_id*), queries (query_id, text) and
    documents (document_id, text: the title and text joined), each document once."""
    docs: dict[str, str] = {}
    for ids, texts in zip(table.column("document_ids").to_pylist(), table.column("documents").to_pylist()):
        for d, t in zip(ids, texts):
            docs.setdefault(d, t)
    return {
        "train": table.select(["query_id", "document_ids", "scores", "positive_ids"]),
        "queries": pa.table({"query_id": table.column("query_id"), "text": table.column("query")}),
        "documents": pa.table({"document_id": pa.array(list(docs), pa.string()), "text": pa.array(list(docs.values()), pa.string())}),
    }


EXPORT_FORMATS.add(
    "triplet", FormatSpec(_triplet, "parquet", "(anchor, positive, negative) rows: MultipleNegativesRankingLoss, TripletLoss")
)
EXPORT_FORMATS.add("n-tuple", FormatSpec(_n_tuple, "parquet", "(anchor, positive, negative_1..k) rows; queries short of k left out"))
EXPORT_FORMATS.add(
    "labeled-pair", FormatSpec(_labeled_pair, "parquet", "(anchor, positive, label) rows, negatives labelled 0: binary cross-entropy")
)
EXPORT_FORMATS.add(
    "labeled-list", FormatSpec(_labeled_list, "parquet", "(anchor, [positive, negatives...], labels) per pair: listwise reranker losses")
)
EXPORT_FORMATS.add("flagembedding", FormatSpec(_flagembedding, "jsonl", "FlagEmbedding JSONL: query, pos, neg (+ pos_scores, neg_scores)"))
EXPORT_FORMATS.add("tevatron", FormatSpec(_tevatron, "jsonl", "Tevatron JSONL: query_id, query, positive_passages, negative_passages"))
EXPORT_FORMATS.add(
    "scored-pool",
    FormatSpec(
        _scored_pool,
        "parquet",
        "distillation (PyLate's layout): train (query_id, document_ids, scores, positive_ids), queries, documents",
        split=_split_pool,
        tables=("train", "queries", "documents"),
    ),
)


def format_names() -> list[str]:
    return EXPORT_FORMATS.names()


def get_format(name: str) -> FormatSpec:
    return EXPORT_FORMATS.get(name)


def documents(corpus: pa.Table) -> dict[str, tuple[str, str]]:
    """doc id -> (title, text), as read."""
    return dict(zip(corpus.column("doc_id").to_pylist(), zip(corpus.column("title").to_pylist(), corpus.column("text").to_pylist())))


def build_examples(
    *,
    corpus: pa.Table | None = None,
    queries: pa.Table,
    negatives: pa.Table,
    summary: pa.Table,
    positives: pa.Table,
    target: int | None = None,
    docs: dict[str, tuple[str, str]] | None = None,
) -> tuple[list[Example], int]:
    """One Example per exported query, in query order, negatives in the filter's order; and the number of
    negatives a full query has (from query_summary: n_negatives + shortfall; `target` when the summary
    is a part of the run's, computed over the whole). The texts: `docs` (hnmine.formats.documents), or the corpus."""

    doc = docs if docs is not None else documents(corpus)
    query_text = dict(zip(queries.column("query_id").to_pylist(), queries.column("text").to_pylist()))
    exported = [q for q, e in zip(summary.column("query_id").to_pylist(), summary.column("exported").to_pylist()) if e]
    if target is None:
        target = negatives_target(summary)
    by_query: dict[str, list[Passage]] = {}
    for q, d, s in zip(
        positives.column("query_id").to_pylist(), positives.column("doc_id").to_pylist(), positives.column("teacher_score").to_pylist()
    ):
        if d in doc:  # a positive the corpus lacks (left out of the inputs) has no text to train on
            by_query.setdefault(q, []).append(Passage(d, doc[d][0], doc[d][1], s))
    negs: dict[str, list[Passage]] = {}
    for q, d, s in zip(
        negatives.column("query_id").to_pylist(), negatives.column("doc_id").to_pylist(), negatives.column("teacher_score").to_pylist()
    ):
        negs.setdefault(q, []).append(Passage(d, doc[d][0], doc[d][1], s))
    examples = []
    for q in exported:
        # Positives by teacher score, best first: a stable, meaningful order.
        ps = sorted(by_query.get(q, []), key=lambda p: (-(p.score if p.score is not None else float("-inf")), p.doc_id))
        examples.append(Example(q, query_text[q], ps, negs.get(q, [])))
    return examples, target


def negatives_target(summary: pa.Table) -> int:
    """The number of negatives a full query has: the largest n_negatives + shortfall of query_summary."""
    import pyarrow.compute as pc

    if not summary.num_rows:
        return 0
    return int(pc.max(pc.add(summary.column("n_negatives"), summary.column("shortfall"))).as_py() or 0)
