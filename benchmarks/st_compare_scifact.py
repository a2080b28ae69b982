"""hnmine.mine_hard_negatives against sentence-transformers' own mine_hard_negatives on SciFact train, call by call.

Both functions get the same dataset (SciFact train: one (claim, abstract) row per judged pair), the same corpus
(every abstract as 'title text'), the same loaded bundled model at float32 and the same keywords (top-k sampling,
range and margin options, every output_format). sentence-transformers keeps its embeddings in one cache_folder
and hnmine its run in one directory across the calls, so each side encodes the corpus once.

Per query, the rows of the two are compared, row by row in their order:
  identical  texts equal, scores within TOL, labels equal
  tie        a text differs, but both texts score within TOL against the query (the model's float32 embeddings,
             as sentence-transformers cached them): two candidates of equal score, ordered either way
  residue    the rest; a query whose row count differs counts all its rows here. For each of
             sentence-transformers' negatives that hnmine left out of a residue query, what hnmine did with it
             is counted: its reason to drop it (the dropped table), ranked_below_the_chosen, or not_retrieved.

  nice -n 19 python benchmarks/st_compare_scifact.py [--calls defaults,range ...] [--queries N] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, SCIFACT, machine, write_results  # noqa: E402
from scifact_data import load  # noqa: E402

TOL = 1e-5  # float32: the two sides' encodings and searches agree to about 1e-6
SCORE_COLUMNS = ("scores", "score")

# The calls compared (sentence-transformers' keywords, each passed as is to both functions). `differs` names the
# difference docs/python.md lists that can make rows differ beyond ties on this call.
CALLS: dict[str, dict] = {
    "defaults": dict(kw=dict()),
    "range": dict(kw=dict(range_min=10, range_max=50, num_negatives=5, output_format="n-tuple", output_scores=True)),
    "relative_margin": dict(kw=dict(relative_margin=0.05, num_negatives=5, output_scores=True)),
    "absolute_margin+max_score": dict(kw=dict(absolute_margin=0.02, max_score=0.8, output_format="labeled-list", output_scores=True)),
    "min_score+max_score": dict(kw=dict(min_score=0.3, max_score=0.9, range_max=30, output_format="labeled-pair")),
    "include_positives": dict(kw=dict(include_positives=True, range_max=10)),
    "range_min+relative_margin": dict(
        kw=dict(range_min=5, range_max=40, relative_margin=0.05, num_negatives=4, output_format="n-tuple"),
        differs="range_min counts ranks before the score filters (sentence-transformers: after them)",
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SCIFACT)
    ap.add_argument("--split", default="train")
    ap.add_argument("--calls", default=",".join(CALLS), help="comma-separated names of CALLS")
    ap.add_argument("--queries", type=int, default=None, help="the first N queries only (a quick check)")
    ap.add_argument("--docs", type=int, default=None, help="the first N documents of the corpus only (a quick check)")
    ap.add_argument("--work", type=Path, default=None, help="the embedding cache and run directory (kept); default a temporary one")
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "st-compare-scifact.json")
    args = ap.parse_args()
    names = [n for n in args.calls.split(",") if n]
    unknown = [n for n in names if n not in CALLS]
    if unknown:
        ap.error(f"unknown call(s) {', '.join(unknown)}; valid: {', '.join(CALLS)}")
    with tempfile.TemporaryDirectory(prefix="st-compare-") as tmp:
        work = args.work or Path(tmp)
        payload = compare(args.data, args.split, names, work, args.queries, args.docs)
    payload["command"] = "python benchmarks/st_compare_scifact.py " + " ".join(sys.argv[1:])
    write_results(args.results, payload)
    for name, row in payload["calls"].items():
        r = row["rows"]
        print(
            f"{name:28} rows {r['theirs']:>5} / {r['ours']:>5}  identical {r['identical']:>5}  ties {r['ties']:>3}  residue {r['residue']:>4}"
        )


def compare(data: Path, split: str, names: list[str], work: Path, n_queries: int | None = None, n_docs: int | None = None) -> dict:
    """Both functions on each named call; the agreement figures per call."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives as theirs

    import hnmine

    torch.manual_seed(0)
    doc_ids, doc_texts, qids, q_texts, pairs = load(data, split)
    qtext, dtext = dict(zip(qids, q_texts)), dict(zip(doc_ids, doc_texts))
    if n_queries:
        keep = set(qids[:n_queries])
        pairs = [(q, d) for q, d in pairs if q in keep]
    if n_docs:
        doc_texts = doc_texts[:n_docs]
    dataset = Dataset.from_dict({"query": [qtext[q] for q, _ in pairs], "positive": [dtext[d] for _, d in pairs]})
    model = SentenceTransformer(hnmine.api.default_model_path(), device="cpu")  # float32
    cache, run = str(work / "st-cache"), work / "hnmine-run"
    out: dict = {"machine": machine(), "data": str(data), "split": split, "pairs": len(dataset), "tolerance": TOL, "calls": {}}
    out["queries"] = len(set(dataset["query"]))
    embed = None
    for name in names:
        kw = dict(CALLS[name]["kw"], corpus=doc_texts, verbose=False)
        t0 = time.perf_counter()
        reference = theirs(dataset, model, cache_folder=cache, **kw)
        t1 = time.perf_counter()
        ours = hnmine.mine_hard_negatives(dataset, model, hnmine_out=run, **kw)
        t2 = time.perf_counter()
        embed = embed or Embeddings(cache, model, dataset, doc_texts)
        row = agreement(ours, reference, embed, dropped_reasons(run))
        row.update(kwargs=CALLS[name]["kw"], seconds={"sentence_transformers": round(t1 - t0, 1), "hnmine": round(t2 - t1, 1)})
        if "differs" in CALLS[name]:
            row["known_difference"] = CALLS[name]["differs"]
        out["calls"][name] = row
        print(f"{name}: done ({t1 - t0:.0f} s + {t2 - t1:.0f} s)", file=sys.stderr)
    return out


class Embeddings:
    """The float32 embeddings sentence-transformers cached: the score of any (query, text) pair of the call."""

    def __init__(self, cache: str, model, dataset, corpus: list[str]) -> None:
        import hashlib

        import numpy as np

        # sentence-transformers' own order (distinct queries; corpus + positives de-duplicated) and file names
        queries, docs = list(dict.fromkeys(dataset["query"])), list(dict.fromkeys(list(corpus) + list(dataset["positive"])))
        name = model.model_card_data.base_model or ""
        key = [hashlib.sha256(repr((name, None, None, texts)).encode()).hexdigest() for texts in (queries, docs)]
        self.q = np.load(Path(cache) / f"query_embeddings_{key[0]}.npy")
        self.d = np.load(Path(cache) / f"corpus_embeddings_{key[1]}.npy")
        self.q_row = {t: i for i, t in enumerate(queries)}
        self.d_row = {t: i for i, t in enumerate(docs)}

    def score(self, query: str, text: str) -> float:
        return float(self.q[self.q_row[query]] @ self.d[self.d_row[text]])


def dropped_reasons(run: Path) -> dict[tuple[str, str], str]:
    """(query text, document text) -> what hnmine did with that candidate in the run's last call: the reason it
    was dropped, else 'ranked_below_the_chosen' (scored, not needed), for every pair it scored."""
    from hnmine.rundir import RunDir

    rd = RunDir(run)
    queries, corpus = rd.read_table("queries"), rd.read_table("corpus")
    qt = dict(zip(queries.column("query_id").to_pylist(), queries.column("text").to_pylist()))
    dt = dict(zip(corpus.column("doc_id").to_pylist(), corpus.column("text").to_pylist()))
    scores, dropped = rd.read_table("scores"), rd.read_table("dropped")
    out = {(qt[q], dt[d]): "ranked_below_the_chosen" for q, d in zip(*(scores.column(c).to_pylist() for c in ("query_id", "doc_id")))}
    cols = (dropped.column(c).to_pylist() for c in ("query_id", "doc_id", "reason"))
    out.update({(qt[q], dt[d]): r for q, d, r in zip(*cols)})
    return out


def agreement(ours, theirs, embed: Embeddings, dropped: dict) -> dict:
    """Rows and queries identical, tied or residue; the residue's hnmine reasons; the largest score difference."""
    anchor = theirs.column_names[0]
    mine, ref = _by_query(ours, anchor), _by_query(theirs, anchor)
    rows, queries, reasons = Counter(), Counter(), Counter()
    worst = 0.0
    for q in dict.fromkeys(list(ref) + list(mine)):
        a, b = mine.get(q, []), ref.get(q, [])
        verdicts = [_row_verdict(q, x, y, embed) for x, y in zip(a, b)] if len(a) == len(b) else None
        if verdicts is None or "residue" in [v for v, _ in verdicts]:
            queries["residue"] += 1
            rows["residue"] += max(len(a), len(b))
            reasons.update(_left_out(q, a, b, anchor, dropped))
            continue
        queries["ties" if "tie" in [v for v, _ in verdicts] else "identical"] += 1
        rows.update(v if v == "identical" else "ties" for v, _ in verdicts)
        worst = max([worst] + [d for _, d in verdicts])
    return {
        "rows": {"theirs": len(theirs), "ours": len(ours), **{k: rows[k] for k in ("identical", "ties", "residue")}},
        "queries": {"total": len(set(ref) | set(mine)), **{k: queries[k] for k in ("identical", "ties", "residue")}},
        "residue_negatives_left_out_by_reason": dict(reasons.most_common()),
        "max_score_difference": worst,
    }


def _by_query(ds, anchor: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in ds.to_list():
        out.setdefault(row[anchor], []).append(row)
    return out


def _row_verdict(query: str, ours: dict, theirs: dict, embed: Embeddings) -> tuple[str, float]:
    """('identical' | 'tie' | 'residue', the largest score difference of the row)."""
    if list(ours) != list(theirs):
        return "residue", 0.0
    verdict, worst = "identical", 0.0
    for key in ours:
        a, b = ours[key], theirs[key]
        if key in SCORE_COLUMNS:
            a, b = (a, b) if isinstance(a, list) else ([a], [b])
            if len(a) != len(b):
                return "residue", worst
            worst = max([worst] + [abs(x - y) for x, y in zip(a, b)])
            verdict = verdict if worst <= TOL else "residue"
            continue
        a, b = (a, b) if isinstance(a, list) else ([a], [b])
        if len(a) != len(b):
            return "residue", worst
        for x, y in zip(a, b):
            if x == y:
                continue
            if not (isinstance(x, str) and isinstance(y, str)) or abs(embed.score(query, x) - embed.score(query, y)) > TOL:
                return "residue", worst
            verdict = "tie" if verdict == "identical" else verdict
    return verdict, worst


def _left_out(query: str, ours: list[dict], theirs: list[dict], anchor: str, dropped: dict) -> Counter:
    """hnmine's reason for each text in sentence-transformers' rows of a query that hnmine's rows lack."""

    def texts(rows: list[dict]) -> set[str]:
        out = set()
        for row in rows:
            for key, v in row.items():
                if key != anchor and key not in SCORE_COLUMNS:
                    out.update(x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str))
        return out

    return Counter(dropped.get((query, t), "not_retrieved") for t in texts(theirs) - texts(ours))


if __name__ == "__main__":
    main()
