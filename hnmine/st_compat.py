"""`hnmine.mine_hard_negatives`: sentence-transformers' `util.mine_hard_negatives`, the same call, run by hnmine.

    from hnmine import mine_hard_negatives        # instead of: from sentence_transformers.util import ...
    dataset = mine_hard_negatives(dataset, model, range_min=10, relative_margin=0.05, num_negatives=5)

The signature is sentence-transformers 6.x's: the same parameter names, defaults and meanings, its checks and
messages for bad arguments, and a `datasets.Dataset` back with its columns, column order and rows for every
`output_format`, `output_scores` and `include_positives`. Underneath runs hnmine's pipeline (hnmine.mine) in a
run directory, temporary unless `hnmine_out=` names one, so `hnmine report`/`review` can follow the same call.

Where sentence-transformers' behaviour is a known bug, hnmine's is kept (docs/python.md lists each difference):
`range_min` skips the first candidates by teacher rank, not the first ones that survive the score filters;
a cross-encoder always rescores (not only with a margin or a score bound); random sampling is seeded; a
candidate with a positive's text (up to whitespace) or a near duplicate of a positive (cosine >= 0.95) is
never a negative; a column name that the dataset lacks is an error, not the first or second column.

This module maps the arguments and shapes the rows; hnmine.mine and the export shapes (hnmine.formats) do the work.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list")
# The filters that make sentence-transformers look 10 x num_negatives deep by default (and that it names
# when a sample is short of negatives).
_FILTERS = ("absolute_margin", "relative_margin", "max_score")


@dataclass
class Call:
    """One call's arguments, checked and resolved as sentence-transformers resolves them."""

    anchors: list[str]
    positives: list[str]
    anchor_column: str
    positive_column: str
    output_format: str
    output_scores: bool
    include_positives: bool
    num_negatives: int
    range_min: int
    range_max: int
    max_positives: int
    options: dict[str, Any] = field(default_factory=dict)  # hnmine.mine's keyword arguments
    settings: dict[str, Any] = field(default_factory=dict)  # the filters as given (absolute_margin, ...), for messages
    verbose: bool = True

    def positives_by_anchor(self) -> dict[str, list[str]]:
        """Each distinct anchor (in first-appearance order) with its distinct positives (in dataset order)."""
        out: dict[str, dict[str, None]] = {}
        for a, p in zip(self.anchors, self.positives):
            out.setdefault(a, {})[p] = None
        return {a: list(ps) for a, ps in out.items()}

    @property
    def depth(self) -> int:
        """Candidates retrieved per query: sentence-transformers' range_max + max_positives."""
        return self.range_max + self.max_positives


def mine_hard_negatives(
    dataset: Any,
    model: Any,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: list[str] | None = None,
    cross_encoder: Any = None,
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    num_negatives: int = 3,
    sampling_strategy: str = "top",
    query_prompt_name: str | None = None,
    query_prompt: str | None = None,
    corpus_prompt_name: str | None = None,
    corpus_prompt: str | None = None,
    include_positives: bool = False,
    output_format: str = "triplet",
    output_scores: bool = False,
    batch_size: int = 32,
    faiss_batch_size: int = 16384,
    use_faiss: bool = False,
    use_multi_process: list[str] | bool = False,
    verbose: bool = True,
    cache_folder: str | None = None,
    as_triplets: bool | None = None,
    margin: float | None = None,
    *,
    hnmine_out: str | Path | None = None,
    hnmine_options: dict[str, Any] | None = None,
):
    """Add hard negatives to (anchor, positive) pairs: sentence-transformers' `mine_hard_negatives`, run by hnmine.

    Every argument is sentence-transformers 6.x's, with its default and meaning (see its documentation; the
    differences hnmine keeps on purpose are listed in docs/python.md). Two more, keyword-only:

    hnmine_out      a run directory to keep (`hnmine report hnmine_out` follows); default a temporary one
    hnmine_options  hnmine.mine arguments applied last, e.g. {"dedup_threshold": 2} (near duplicates allowed),
                    {"replace": True} (other data into hnmine_out)

    Returns a `datasets.Dataset` in the `output_format`'s shape, as sentence-transformers returns it.
    """
    args = dict(locals())
    call = _resolve(args)
    if call.verbose:
        _print_queries(call)
    result = _run(call, dataset, model, corpus)
    if call.verbose:
        _say("Negative candidates mined, preparing dataset...")
    examples = _examples(call, result)
    out = _dataset(call, examples)
    if call.verbose:
        _print_statistics(call, result, examples, len(out))
    return out


def _resolve(args: dict[str, Any]) -> Call:
    """sentence-transformers' checks, in its order and words, and its resolution of the arguments."""
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise ImportError("Please install `datasets` to use this function: `pip install datasets`.") from None
    table = _table(args["dataset"])
    if table.num_rows == 0:
        raise ValueError("The dataset is empty. Please provide a non-empty dataset.")
    if args["faiss_batch_size"] <= 0:
        raise ValueError(f"faiss_batch_size must be a positive integer, got {args['faiss_batch_size']}.")
    if args["use_faiss"]:
        try:
            import faiss  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "Please install `faiss` to use this function with `use_faiss=True`: `pip install faiss-cpu` (or `faiss-gpu`)."
            ) from exc
    anchor, positive = _columns(table.column_names, args["anchor_column_name"], args["positive_column_name"])
    output_format, output_scores, absolute_margin = _output_format(args)
    anchors, positives = _texts(table, anchor, "anchor"), _texts(table, positive, "positive")
    max_positives = max(Counter(anchors).values())
    num_negatives, range_min = args["num_negatives"], args["range_min"]
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got num_negatives={num_negatives}.")
    range_max = args["range_max"]
    if range_max is None:
        filtered = any(args[n] is not None for n in _FILTERS) or absolute_margin is not None
        filtered = filtered or (args["cross_encoder"] is not None and args["min_score"] is not None)
        range_max = range_min + num_negatives * (10 if filtered else 1) + max_positives
        if args["verbose"]:
            _say(f"Setting range_max to {range_max} based on the provided parameters.")
    _check_range(range_min, range_max, num_negatives)
    call = Call(
        anchors=anchors,
        positives=positives,
        anchor_column=anchor,
        positive_column=positive,
        output_format=output_format,
        output_scores=output_scores,
        include_positives=args["include_positives"],
        num_negatives=num_negatives,
        range_min=range_min,
        range_max=range_max,
        max_positives=max_positives,
        verbose=args["verbose"],
    )
    call.options = _hnmine_options(call, args, absolute_margin)
    call.settings = {"absolute_margin": absolute_margin, **{n: args[n] for n in ("relative_margin", "max_score", "min_score")}}
    return call


def _table(dataset: Any):
    """The dataset's Arrow table (a datasets.Dataset; hnmine.mine's other in-memory kinds are taken too)."""
    from hnmine.api import _as_table

    try:
        return _as_table(dataset, "dataset")
    except Exception as exc:  # noqa: BLE001 - said as sentence-transformers' caller would expect: a ValueError
        raise ValueError(str(exc)) from None


def _columns(columns: list[str], anchor: str | None, positive: str | None) -> tuple[str, str]:
    """sentence-transformers' choice: the named columns, else the first and the second. A name the dataset lacks
    is an error here (sentence-transformers took the first or second column in its place, without a word)."""
    for name, what in ((anchor, "anchor_column_name"), (positive, "positive_column_name")):
        if name and name not in columns:
            raise ValueError(f"{what}={name!r} is not a column of the dataset (columns: {', '.join(columns)})")
    if not positive and len(columns) < 2:
        raise ValueError("Dataset must contain at least two columns to select the positive column automatically.")
    return anchor or columns[0], positive or columns[1]


def _output_format(args: dict[str, Any]) -> tuple[str, bool, float | None]:
    """(output_format, output_scores, absolute_margin) after the deprecated arguments, with sentence-transformers' warnings."""
    output_format, output_scores, absolute_margin = args["output_format"], args["output_scores"], args["absolute_margin"]
    if args["as_triplets"] is not None:
        output_format = "triplet" if args["as_triplets"] else "n-tuple"
        logger.warning(
            "The `as_triplets` parameter is deprecated. Use the `output_format` parameter instead. "
            f"Setting `output_format` to `{output_format}`."
        )
    changed = [n for n in ("max_score", "min_score", "absolute_margin", "relative_margin", "margin", "range_max") if args[n] is not None]
    if args["include_positives"] and (changed or args["range_min"] or args["sampling_strategy"] != "top"):
        logger.warning(  # sentence-transformers warns that these "may still discard the positive values"; here they do not
            "When using `include_positives=True`, the positives stay in the ranking whatever `range_min`, `range_max`, `max_score`, "
            "`min_score`, `absolute_margin`, `relative_margin` or `sampling_strategy` (sentence-transformers may discard them)."
        )
    if args["include_positives"] and output_format != "n-tuple":
        logger.warning(
            'When using `include_positives=True`, `output_format` will be set to `"n-tuple"` to ensure that the ranking order is preserved.'
        )
        output_format = "n-tuple"
    if output_format == "n-tuple-scores":
        logger.warning(
            '`output_format="n-tuple-scores"` is deprecated. Use `output_format="n-tuple"` with '
            "`output_scores=True` instead for equivalent output formats."
        )
        output_format, output_scores = "n-tuple", True
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"Invalid output_format: {output_format}. Must be one of 'triplet', 'n-tuple', 'labeled-pair', or 'labeled-list'.")
    if args["margin"] is not None:
        absolute_margin = args["margin"]
        logger.warning(
            "The `margin` parameter is deprecated. Use the `absolute_margin` and/or `relative_margin` parameter instead. "
            f"Setting `absolute_margin` to `{absolute_margin}`."
        )
    return output_format, bool(output_scores), absolute_margin


def _texts(table: Any, column: str, role: str) -> list[str]:
    values = table.column(column).to_pylist()
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ValueError(f"dataset row {i}: the {role} column '{column}' holds {type(v).__name__}, expected a text")
    return values


def _check_range(range_min: int, range_max: int, num_negatives: int) -> None:
    if range_min < 0:
        raise ValueError(f"range_min must be non-negative, got range_min={range_min}.")
    if range_min >= range_max:
        raise ValueError(f"range_min must be smaller than range_max, got range_min={range_min} and range_max={range_max}.")
    if num_negatives > range_max - range_min:
        raise ValueError(
            f"Cannot mine {num_negatives} negatives per query: only {range_max - range_min} candidates remain after "
            f"skipping the first range_min={range_min} of range_max={range_max}. Consider decreasing num_negatives "
            f"or range_min, or increasing range_max."
        )


def _hnmine_options(call: Call, args: dict[str, Any], absolute_margin: float | None) -> dict[str, Any]:
    """hnmine.mine's arguments for this call (the mapping docs/python.md tables, parameter by parameter)."""
    if args["sampling_strategy"] not in ("top", "random"):
        raise ValueError(f"Invalid sampling_strategy: {args['sampling_strategy']}. Must be 'top' or 'random'.")
    options: dict[str, Any] = {
        "pair_query_column": call.anchor_column,
        "pair_positive_column": call.positive_column,
        "method": "naive",  # the rules below, nothing of a method's own
        "num_negatives": call.num_negatives,
        "sampling": args["sampling_strategy"],
        # sentence-transformers skips range_min candidates (0-based); hnmine's window starts at a 1-based rank
        "range_min": call.range_min + 1 if call.range_min else None,
        # range_max: the candidates sentence-transformers retrieves (range_max + the most positives of a query;
        # no looking deeper), and the random draw's pool: range_max - range_min candidates that pass the rules
        "depth": call.depth,
        "max_depth": call.depth,
        "sample_pool": call.range_max - call.range_min if args["sampling_strategy"] == "random" else None,
        "max_score": args["max_score"],
        "min_score": args["min_score"],
        "margin": absolute_margin,
        "relative_margin": args["relative_margin"],
        "batch_size": args["batch_size"],
        "format": call.output_format,
        "with_scores": call.output_scores,
        # labeled-pair keeps the positives of a query without negatives; the other shapes need one negative
        "min_negatives": 0 if call.output_format == "labeled-pair" else 1,
        "defaults": True,  # every call is its own arguments, never a kept run's earlier ones
        "out": args["hnmine_out"],
        "progress": args["verbose"],
    }
    options.update(_prompts(args))
    if args["cross_encoder"] is not None:
        ce = args["cross_encoder"]
        options["teacher"] = [ce if not isinstance(ce, (str, Path)) else f"cross-encoder:{ce}"]
    options.update(_devices(args))
    if args["cache_folder"] is not None:
        options.update(_store(args["cache_folder"]))
    options.update(args["hnmine_options"] or {})
    return {k: v for k, v in options.items() if v is not None or k == "out"}


def _prompts(args: dict[str, Any]) -> dict[str, Any]:
    """The prompts as sentence-transformers' encode_query/encode_document choose them: a text over a name, and
    without either the model's own "query" (or "document", "passage", "corpus") prompt."""
    prompts = dict(getattr(args["model"], "prompts", None) or {})
    out: dict[str, Any] = {}
    for side, defaults in (("query", ("query",)), ("corpus", ("document", "passage", "corpus"))):
        text, name = args[f"{side}_prompt"], args[f"{side}_prompt_name"]
        if text is not None:
            out[f"{side}_prompt"] = text
        elif name is not None:
            out[f"{side}_prompt_name"] = name
        else:
            own = next((n for n in defaults if n in prompts), None)
            if own is not None and prompts[own]:  # an empty prompt changes nothing: left out of the keys
                out[f"{side}_prompt_name"] = own
    return out


def _devices(args: dict[str, Any]) -> dict[str, Any]:
    """use_multi_process: with models given by name, the listed devices (True: every GPU, else 4 CPU processes,
    as sentence-transformers chooses); a loaded model or cross-encoder runs in this process (a worker cannot use it)."""
    wanted = args["use_multi_process"]
    if not wanted:
        return {}
    ce = args["cross_encoder"]
    if not isinstance(args["model"], (str, Path)) or not (ce is None or isinstance(ce, (str, Path))):
        logger.warning(
            "use_multi_process: a loaded model runs in this process (worker processes cannot use it); pass its path to share the work out"
        )
        return {}
    if wanted is True:
        wanted = _every_device()
    if all(str(d).startswith("cuda") for d in wanted):
        return {"device": ",".join(wanted)}
    return {"workers": len(wanted)}


def _every_device() -> list[str]:
    """sentence-transformers' target devices for use_multi_process=True: every GPU, else four CPU processes."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"] * 4


def _store(folder: str) -> dict[str, Any]:
    """cache_folder: hnmine's embedding store when this hnmine has one (issue 26); else the run directory's own
    embedding cache serves (pass hnmine_out= to keep it across calls)."""
    from hnmine.options import RunOptions, option_fields

    if "cache_dir" in {f.name for cls in (None, RunOptions) for f in option_fields(cls)}:
        return {"cache_dir": folder}
    return {}


def _run(call: Call, dataset: Any, model: Any, corpus: list[str] | None):
    """hnmine.mine on the (anchor, positive) columns, the corpus and the models, with the call's options."""
    import pyarrow as pa

    from hnmine.api import mine

    pairs = pa.table({call.anchor_column: call.anchors, call.positive_column: call.positives})
    options = dict(call.options)
    own = {k: options.pop(k) for k in ("out", "progress", "defaults", "force", "replace", "reset", "engine", "ray_address") if k in options}
    return mine(pairs, corpus=list(corpus) if corpus is not None else None, model=model, **own, **options)


def _dataset(call: Call, examples: list):
    """The rows sentence-transformers returns, in its order: queries as they first appear, each query's positives
    as the dataset lists them, its negatives best first; columns named after the dataset's."""
    import datasets

    from hnmine.formats import get_format

    table = get_format(call.output_format).build(examples, call.num_negatives, call.output_scores)
    names = {"anchor": call.anchor_column, "positive": call.positive_column}
    return datasets.Dataset(table.rename_columns([names.get(n, n) for n in table.column_names]))


def _examples(call: Call, result: Any) -> list:
    """One hnmine.formats.Example per distinct anchor, from the run's tables."""
    from hnmine.formats import Example, Passage

    queries = result.read("queries")
    query_id = dict(zip(queries.column("text").to_pylist(), queries.column("query_id").to_pylist()))
    corpus = result.read("corpus")
    texts = dict(zip(corpus.column("doc_id").to_pylist(), corpus.column("text").to_pylist()))
    doc_id = {t: d for d, t in texts.items()}
    scored, retrieved = _scored_pairs(result, call.depth)
    negatives: dict[str, list] = {}
    neg = result.read("negatives")
    for q, d, s in zip(neg.column("query_id").to_pylist(), neg.column("doc_id").to_pylist(), neg.column("teacher_score").to_pylist()):
        negatives.setdefault(q, []).append(Passage(d, "", texts[d], s))
    examples = []
    for anchor, own in call.positives_by_anchor().items():
        q = query_id[anchor]
        pos = [Passage(doc_id[p], "", p, scored.get((q, doc_id[p]))) for p in own]
        ranked = negatives.get(q, [])
        if call.include_positives:  # sentence-transformers' reranking rows: the retrieved positives ranked in
            ranked = ranked + [Passage(d, "", texts[d], scored[(q, d)]) for d in retrieved.get(q, [])]
            ranked = sorted(ranked, key=lambda p: -p.score)[: call.num_negatives]
        examples.append(Example(q, anchor, pos, ranked))
    return examples


def _scored_pairs(result: Any, depth: int) -> tuple[dict[tuple[str, str], float], dict[str, list[str]]]:
    """(query id, doc id) -> teacher score of every pair the run scored; and per query, its positives that
    retrieval found within `depth`."""
    scores = result.read("scores")
    q, d = scores.column("query_id").to_pylist(), scores.column("doc_id").to_pylist()
    retrieved: dict[str, list[str]] = {}
    for qi, di, rank, positive in zip(q, d, scores.column("rank").to_pylist(), scores.column("is_positive").to_pylist()):
        if positive and rank is not None and rank <= depth:
            retrieved.setdefault(qi, []).append(di)
    return dict(zip(zip(q, d), scores.column("teacher_score").to_pylist())), retrieved


def _say(message: str) -> None:
    """verbose output: on stderr (hnmine keeps stdout clean), where sentence-transformers prints to stdout."""
    print(message, file=sys.stderr)


def _print_queries(call: Call) -> None:
    """sentence-transformers' lines on the queries: distinct ones, and positives per query where some have several."""
    counts = Counter(call.anchors)
    if len(counts) != len(call.anchors):
        _say(f"Found {len(counts)} unique queries out of {len(call.anchors)} total queries.")
    if call.max_positives > 1:
        _say(f"Found an average of {sum(counts.values()) / len(counts):.3f} positives per query.")


def _print_statistics(call: Call, result: Any, examples: list, rows: int) -> None:
    """sentence-transformers' closing lines: the scores of the positives and negatives, what each filter
    skipped, and how many samples could not get their negatives; and where the run is."""
    pos, neg, diff = _score_lists(examples)
    if pos.size:
        _say(_score_table(pos, neg, diff))
    stats = result.summary.get("filter", {})
    considered = max(1, sum(stats.get(k, 0) for k in stats if k.startswith("dropped_")) + stats.get("negatives_total", 0))
    for reason, name in _SKIP_REASONS:
        skipped = stats.get(f"dropped_{reason}", 0)
        if skipped:
            _say(f"Skipped {skipped:,} potential negatives ({skipped / considered:.2%}) due to the {name} of {call.settings[name]}.")
    missing, most = _missing_samples(call, rows)
    if missing > 0:
        solutions = ["range_max"] + ["range_min"] * (call.range_min > 0) + [n for n in _FILTERS if call.settings.get(n) is not None]
        considerations = ", ".join(solutions[:-1]) + " and " + solutions[-1] if len(solutions) > 1 else solutions[0]
        _say(
            f"Could not find enough negatives for {missing} samples ({missing / most:.2%})."
            f" Consider adjusting the {considerations} parameter{'s' if len(solutions) > 1 else ''} if you'd like to find more valid negatives."
        )
    if not result.temporary:
        _say(f"hnmine: the run is in {result.run_dir} (hnmine report {result.run_dir})")


# hnmine's reason for a drop -> sentence-transformers' parameter that skipped the candidate
_SKIP_REASONS = (
    ("within_margin_of_positive", "absolute_margin"),
    ("within_relative_margin_of_positive", "relative_margin"),
    ("above_max_score", "max_score"),
    ("below_min_score", "min_score"),
)


def _missing_samples(call: Call, rows: int) -> tuple[int, int]:
    """(samples short of negatives, the most there could be), counted as sentence-transformers counts them per format."""
    n_pairs = sum(len(own) for own in call.positives_by_anchor().values())
    most = {
        "triplet": n_pairs * call.num_negatives,
        "labeled-pair": len(call.positives_by_anchor()) * call.num_negatives + len(call.anchors),
        "n-tuple": n_pairs,
        "labeled-list": n_pairs,
    }[call.output_format]
    return most - rows, most


def _score_lists(examples: list):
    """Positive scores (one per pair), negative scores (one per pair and negative), and their differences."""
    import numpy as np

    pos, neg, diff = [], [], []
    for ex in examples:
        for p in ex.positives:
            pos.append(p.score)
            for n in ex.negatives:
                neg.append(n.score)
                diff.append(p.score - n.score)
    return (np.asarray(v, dtype=np.float64) for v in (pos, neg, diff))


def _score_table(pos, neg, diff) -> str:
    import numpy as np

    row = "{:<6} {:>14} {:>14} {:>14}"
    lines = [row.format("Metric", "Positive", "Negative", "Difference"), row.format("Count", f"{pos.size:,}", f"{neg.size:,}", "")]
    for name, fn in (("Mean", np.mean), ("Median", np.median), ("Std", lambda v: np.std(v, ddof=1) if v.size > 1 else float("nan"))):
        lines.append(row.format(name, *(f"{fn(v):.4f}" if v.size else "" for v in (pos, neg, diff))))
    for name, q in (("Min", 0), ("25%", 25), ("50%", 50), ("75%", 75), ("Max", 100)):
        lines.append(row.format(name, *(f"{np.percentile(v, q):.4f}" if v.size else "" for v in (pos, neg, diff))))
    return "\n".join(lines)
