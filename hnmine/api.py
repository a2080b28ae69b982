"""The Python API: `hnmine.mine(...)`, the same pipeline the CLI runs, from a notebook in one line.

    import hnmine
    result = hnmine.mine(pairs_dataset, corpus=more_texts, num_negatives=5)   # like util.mine_hard_negatives
    trainer = SentenceTransformerTrainer(model=model, train_dataset=result.dataset, ...)

It takes what the CLI takes (paths: a BEIR folder, a pairs file, a saved `datasets` folder, separate
files) and in-memory inputs (a `datasets.Dataset`, a pandas DataFrame, a pyarrow Table or a list of
dicts of (anchor, positive) pairs; a corpus as a list of texts or a table; a pre-mined dataset as `premined=`,
a path or a table), a model name or path or a
loaded `SentenceTransformer`, and every option of `hnmine mine` under the same name and default
(hnmine.options). In-memory inputs are written once to the run directory's `sources/` folder as
Parquet, so the stages read files as always and a rerun with the same data skips what is done.
There is no second implementation: this calls hnmine.runner.mine, as the CLI does.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from hnmine.errors import HnmineError, InputError, MissingDependency, OptionError
from hnmine.options import option_fields
from hnmine.pipeline import MineResult
from hnmine.rundir import RunDir


@dataclass
class MiningResult:
    """What `hnmine.mine` gives back: the run directory, its summary, and the training data."""

    run_dir: Path | str  # the URI of a run on a bucket
    summary: dict
    table: pa.Table  # the export, in the chosen format (in memory: it outlives a temporary run directory)
    export_file: Path | None
    temporary: bool = False
    _cleanup: Any = field(default=None, repr=False)

    @property
    def dataset(self):
        """The export as a `datasets.Dataset`, ready for SentenceTransformerTrainer (needs `datasets`)."""
        try:
            import datasets
        except ImportError:
            raise MissingDependency("result.dataset needs datasets: pip install datasets (or use result.table)") from None
        return datasets.Dataset(self.table)

    def read(self, table: str) -> pa.Table:
        """One of the run's tables by name: corpus, queries, qrels, candidates, scores, negatives, dropped, query_summary."""
        if isinstance(self.run_dir, str):  # a run on a bucket: read from a fresh copy of it
            from hnmine.run_bucket import BucketRun

            with BucketRun(self.run_dir, "read").reading() as local:
                return RunDir(local).read_table(table)
        if self.temporary and not self.run_dir.exists():
            raise InputError("the temporary run directory is gone; pass out=... to keep the run")
        return RunDir(self.run_dir).read_table(table)


# Per hnmine.mine call: the file name each in-memory input is staged as -> the argument that gave it.
_STAGED: ContextVar[dict[str, str] | None] = ContextVar("hnmine_api_staged", default=None)


def _in_callers_words(fn):
    """hnmine.mine's errors in the caller's words: the argument (`data=`, `pair_query_column=`), never the
    Parquet file an in-memory input was staged to (`RUN/sources/pairs.parquet`) nor a --flag."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        token = _STAGED.set({})
        try:
            return fn(*args, **kwargs)
        except HnmineError as exc:
            exc.args = (_api_message(str(exc), _STAGED.get() or {}, kwargs.get("out")), *exc.args[1:])
            raise
        finally:
            _STAGED.reset(token)

    return wrapper


def _api_message(message: str, staged: dict[str, str], out: Any) -> str:
    import re

    from hnmine.run_bucket import said_as_uris

    message = said_as_uris(message)  # local copies of what is in a bucket, said as its URIs
    for name, label in staged.items():
        if out is not None and "://" not in str(out):
            message = message.replace(str(Path(out) / "sources" / name), label)
        message = re.sub(r"[^\s'\"`(]*/(?:sources|hnmine-staging-[^/\s'\"]*)/" + re.escape(name) + r"(?![\w.])", label, message)
    return re.sub(r"(?<![\w/.-])--(no-)?([a-z][a-z0-9-]*)( [a-z][\w-]*)?", _argument_of_flag, message)


def _argument_of_flag(match: Any) -> str:
    """`--pair-query-column` -> `pair_query_column=`; a switch -> `relabel=True`, `--no-normalize` -> `normalize=False`;
    a flag with one of its choices -> `engine="ray"`."""
    from hnmine.options import RunOptions, option_fields, option_types, spec

    name, word = match.group(2).replace("-", "_"), match.group(3) or ""
    types = {**option_types(RunOptions), **option_types()}
    if name not in types or name in _COMMAND_LINE_ONLY:
        return match.group(0)
    if types[name] is bool:
        return f"{name}={match.group(1) is None}{word}"
    choices = next((spec(f).choices for cls in (RunOptions, None) for f in option_fields(cls) if f.name == name), None)
    if word and choices is not None and word.strip() in choices():
        return f'{name}="{word.strip()}"'
    return f"{name}={word}"


@_in_callers_words
def mine(
    data: Any = None,
    *,
    corpus: Any = None,
    queries: Any = None,
    qrels: Any = None,
    model: Any = None,
    out: str | Path | None = None,
    force: bool = False,
    replace: bool = False,
    defaults: bool = False,
    reset: tuple[str, ...] = (),
    engine: str = "local",
    ray_address: str | None = None,
    cache_dir: str | Path | None = None,
    cache_max_size: str | None = None,
    progress: bool = True,
    **options: Any,
) -> MiningResult:
    """Mine hard negatives; see the module docstring. `options` are `hnmine mine`'s options by name
    (num_negatives=5, method="shifted", format="triplet", …); an unknown name is an OptionError.

    On an existing run (`out=`), options not given are those the run last ran with (hnmine.run_options;
    `defaults=True`: their defaults; `reset=("judgments",)`: these from theirs), and other data than the run's
    is refused unless `replace=True`. `engine="ray"` runs the stages on a Ray cluster (`ray_address=`, else
    $RAY_ADDRESS, else one started for the call), as `hnmine mine --engine ray` does. `cache_dir=` is where the
    embedding store lies (CACHE_DIR/store, as `--cache-dir`), `cache_max_size=` prunes it after the call."""
    from hnmine.options import check_engine, make_options
    from hnmine.progress import Reporter, RichReporter
    from hnmine.runner import run_command

    _check_option_names(options)
    # a pre-mined dataset in memory is staged as Parquet with the other in-memory inputs; a path is an option
    premined = options.pop("premined") if not isinstance(options.get("premined"), (str, Path, type(None))) else None
    options, model, loaded = _name_loaded_models(options, model)
    checked = make_options(dict(options))  # every option checked before anything is written
    check_engine(engine)
    if loaded:
        _check_loaded_here(checked, loaded, engine)
    if isinstance(out, str) and out == "":  # Path("") is the current folder: the run would fill the caller's
        raise OptionError("out= needs a path, got an empty text")
    from hnmine.uri import is_uri

    if is_uri(out):  # a run directory on a bucket: hnmine.runner holds it and sends each stage (hnmine.run_bucket)
        values = {**options, **_inputs_by_path(data, corpus, queries, qrels), **({"model": model} if model is not None else {})}
        reporter = RichReporter() if progress else Reporter()
        kw = dict(force=force, replace=replace, defaults=defaults, reset=reset, reporter=reporter, engine=engine, ray_address=ray_address)
        return _result(run_command(str(out), values, **kw), str(out), False)  # type: ignore[arg-type]
    temporary = out is None
    run_dir = Path(tempfile.mkdtemp(prefix="hnmine-")) if temporary else Path(out)  # type: ignore[arg-type]
    run = RunDir(run_dir)
    try:
        with run.writing(), tempfile.TemporaryDirectory(prefix="hnmine-staging-") as scratch:
            # held across staging and the run: no other process writes here meanwhile
            values = dict(options)
            values.update(_inputs(data, corpus, queries, qrels, Path(scratch), premined))
            values = _move_staged(values, Path(scratch), run, replace)
            if model is not None:
                values["model"] = model
            reporter = RichReporter() if progress else Reporter()
            result = run_command(
                run_dir,
                values,
                force=force,
                replace=replace,
                defaults=defaults,
                reset=reset,
                reporter=reporter,
                engine=engine,
                ray_address=ray_address,
                cache_dir=Path(cache_dir) if cache_dir is not None else None,
                cache_max_size=cache_max_size,
            )
        return _result(result, run_dir, temporary)
    except BaseException:  # Ctrl-C too: nobody can reach a failed call's temporary folder (embeddings and all)
        if temporary:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


# The command line's options that have no keyword argument, and what a Python caller does instead.
_COMMAND_LINE_ONLY = {
    "json": "the summary is the result's .summary",
    "quiet": "progress=False",
    "config": "pass the options as keyword arguments (**values)",
}


# sentence-transformers' `mine_hard_negatives` arguments that hnmine.mine names otherwise (or does without),
# answered with the name to use: code ported from it fails at once, saying what to write (issue 25). The
# arguments both share (num_negatives, range_max, max_score, min_score, margin, relative_margin, batch_size,
# the prompts) have hnmine's names already; hnmine.mine_hard_negatives takes them all with their meanings.
ST_NAMES = {
    "dataset": "data",
    "output_format": "format",
    "as_triplets": "format",
    "output_scores": "with_scores",
    "sampling_strategy": "sampling",
    "anchor_column_name": "pair_query_column",
    "positive_column_name": "pair_positive_column",
    "absolute_margin": "margin",
    "cross_encoder": "teacher",
    "verbose": "progress",
    "use_multi_process": "workers",
}
ST_WITHOUT = {
    "use_faiss": "hnmine searches with faiss by itself (exact up to exact_max_docs documents, IVF above)",
    "faiss_batch_size": "hnmine searches in batches of its own",
    "include_positives": "a known positive is never a negative; hnmine.mine_hard_negatives(include_positives=True) gives "
    "sentence-transformers' ranking rows",
    "cache_folder": "the run directory keeps its embeddings: pass out= to reuse them",
}


def _sentence_transformers_name(name: str) -> None:
    """An OptionError answering a sentence-transformers argument with hnmine.mine's name for it."""
    from hnmine.options import RunOptions

    declared = {f.name for cls in (None, RunOptions) for f in option_fields(cls)}
    if name == "cache_folder" and "cache_dir" in declared:  # the embedding store (issue 26)
        raise OptionError("cache_folder: hnmine.mine calls it cache_dir")
    if name in ST_NAMES:
        raise OptionError(
            f"{name}: hnmine.mine calls it {ST_NAMES[name]} (hnmine.mine_hard_negatives takes sentence-transformers' arguments)"
        )
    if name in ST_WITHOUT:
        raise OptionError(f"{name}: hnmine.mine has no such option: {ST_WITHOUT[name]}")


def _check_option_names(options: dict[str, Any]) -> None:
    """Every keyword argument names an option of `hnmine mine`, and is not one hnmine.mine takes on its own."""
    known = {f.name for f in option_fields()}
    for name in sorted(set(options) - known):
        _sentence_transformers_name(name)
    for name in ("data", "corpus", "queries", "qrels", "model", "pairs"):
        if name in options:
            raise OptionError(f"give {name} as its own argument of hnmine.mine, not among the options")
    for name, instead in _COMMAND_LINE_ONLY.items():
        if name in options:
            raise OptionError(f"{name} is an option of the command line, not of hnmine.mine: {instead}")
    unknown = sorted(set(options) - known)
    if unknown:
        raise OptionError(f"unknown option(s) of hnmine.mine: {', '.join(unknown)} (they are the options of `hnmine mine`)")


def _inputs(data: Any, corpus: Any, queries: Any, qrels: Any, staging: Path, premined: Any = None) -> dict[str, Any]:
    """Paths as they are; in-memory tables written to `sources/` (Parquet, the same bytes for the same data)."""
    from hnmine.uri import as_path

    values: dict[str, Any] = {}
    staged = _STAGED.get()
    if data is not None:
        if isinstance(data, (str, Path)):
            values["data"] = as_path(data)
        else:
            values["pairs"] = _stage_table(_as_table(data, "data"), staging / "pairs.parquet")
            if staged is not None:
                staged["pairs.parquet"] = "data="
    for role, value in (("corpus", corpus), ("queries", queries), ("qrels", qrels), ("premined", premined)):
        if value is None:
            continue
        if isinstance(value, (str, Path)):
            values[role] = as_path(value)
            continue
        if role == "corpus" and isinstance(value, (list, tuple)) and not any(isinstance(t, dict) for t in value):
            values[role] = _stage_table(_texts_table(list(value)), staging / "corpus.parquet")
        else:
            values[role] = _stage_table(_as_table(value, role), staging / f"{role}.parquet")
        if staged is not None:
            staged[f"{role}.parquet"] = f"{role}="
    return values


def _inputs_by_path(data: Any, corpus: Any, queries: Any, qrels: Any) -> dict[str, Any]:
    """The inputs of a run on a bucket: paths or URIs only (an in-memory table would be staged in the run's
    sources/ folder, which hnmine.runner fills from the bucket only once the call runs)."""
    given = {"data": data, "corpus": corpus, "queries": queries, "qrels": qrels}
    in_memory = [f"{k}=" for k, v in given.items() if v is not None and not isinstance(v, (str, Path))]
    if in_memory:
        raise OptionError(
            f"{', '.join(in_memory)}: out= a bucket takes its inputs as paths or URIs; save the data to a file first "
            f"(or mine into a local out= and copy the run)"
        )
    return {k: v for k, v in given.items() if v is not None}


def _move_staged(values: dict[str, Any], scratch: Path, run: RunDir, replace: bool) -> dict[str, Any]:
    """In-memory inputs staged in `scratch`, checked against the run's own inputs (other data is refused
    before the run's `sources/` is touched, hnmine.run_identity), then moved there; the values naming them."""
    from hnmine.io.atomic import atomic_path
    from hnmine.options import make_options
    from hnmine.run_identity import check_same_inputs

    staged = {k: v for k, v in values.items() if isinstance(v, Path) and v.is_relative_to(scratch)}
    if not staged:
        return values
    data_names = {"data", "corpus", "queries", "qrels", "pairs", "premined", "premined_format"}
    inputs = {k: v for k, v in values.items() if k in data_names or k.endswith("_column")}
    check_same_inputs(run, make_options(inputs, ["inputs"]), replace=replace, content_roots=[scratch])
    target_folder = run.path_of("sources")
    target_folder.mkdir(parents=True, exist_ok=True)
    moved = dict(values)
    for name, path in staged.items():
        target = target_folder / path.name
        data = path.read_bytes()
        if not (target.is_file() and target.read_bytes() == data):  # the same bytes: left as they are
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
        moved[name] = target
    return moved


def _as_table(value: Any, role: str) -> pa.Table:
    """A pyarrow Table from a datasets.Dataset, a pandas DataFrame, a pyarrow Table or a list of dicts."""
    if isinstance(value, pa.Table):
        return value
    if hasattr(value, "data") and hasattr(value.data, "table"):  # datasets.Dataset: its Arrow table, no copy
        table = value.data.table
        indices = getattr(value, "_indices", None)
        return table.take(indices.column(0)) if indices is not None else table
    if hasattr(value, "to_arrow"):  # polars and friends
        return value.to_arrow()
    if type(value).__name__ == "DataFrame" and hasattr(value, "to_dict"):  # pandas
        return _pandas_table(value, role)
    if isinstance(value, (list, tuple)):
        for i, row in enumerate(value):
            if not isinstance(row, dict):
                raise InputError(f"{role}[{i}] is {_a(row)}, expected a dict of one row's columns (a list holds one dict per row)")
        return pa.Table.from_pylist(list(value))
    raise InputError(
        f"{role}=: cannot read a {type(value).__name__} (give a path, a datasets.Dataset, a pandas DataFrame, "
        f"a pyarrow Table or a list of dicts)"
    )


def _pandas_table(frame: Any, role: str) -> pa.Table:
    """A DataFrame's columns and, when it is named, its index as columns (`df.set_index("_id")` keeps its ids).
    An unnamed index other than 0..n-1 is refused: dropped, it may have held the ids."""
    import pandas as pd

    index = frame.index
    names = [n for n in index.names if n is not None]
    if names:
        if len(names) < index.nlevels:
            raise InputError(f"{role}=: the DataFrame's index has unnamed levels; name them (df.index.names = [...]) or df.reset_index()")
        clash = sorted(set(names) & set(map(str, frame.columns)))
        if clash:
            raise InputError(f"{role}=: the DataFrame's index '{clash[0]}' is also one of its columns; drop one of them")
        return pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
        raise InputError(
            f"{role}=: the DataFrame has an unnamed index ({_a(index[0]) if len(index) else 'empty'} first) that would be lost; "
            f"name it to keep it as a column (df.index.name = '_id'), or drop it (df.reset_index(drop=True))"
        )
    return pa.Table.from_pandas(frame, preserve_index=False)


def _a(value: Any) -> str:
    """What a value is, for a message: None, or its type and a short repr."""
    return "None" if value is None else f"a {type(value).__name__} ({repr(value)[:40]})"


def _texts_table(texts: list[Any]) -> pa.Table:
    """A corpus given as a list of texts: ids are content hashes, as for a pairs file's documents."""
    from hnmine.io.inputs import content_id

    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"corpus[{i}] is {_a(text)}, expected a text (a corpus list holds one text per document)")
    return pa.table({"_id": pa.array([content_id("d", t) for t in texts], pa.string()), "text": pa.array(texts, pa.string())})


def _stage_table(table: pa.Table, target: Path) -> Path:
    """Write `table` to the staging folder as Parquet (the same bytes for the same data)."""
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target, compression="zstd")
    return target


def _name_loaded_models(options: dict[str, Any], model: Any) -> tuple[dict[str, Any], str | None, list[str]]:
    """Model objects as names the pipeline takes: `model=` and `candidate_model=` SentenceTransformers, `teacher=`
    SentenceTransformers and CrossEncoders, each registered to be used as it is in this process
    (hnmine.inference.models.register_loaded: 'loaded:<hash of its weights and settings>'). A loaded model
    computes as it is: without `dtype=` or `device=`, its own dtype and device are the run's."""
    options = dict(options)
    loaded: list[Any] = []
    names: list[str] = []

    def named(value: Any, role: str, kinds: tuple[str, ...]) -> str:
        if isinstance(value, (str, Path)):
            return str(value)
        kind = _loaded_kind(value, role, kinds)
        from hnmine.inference.models import register_loaded

        loaded.append(value)
        names.append(register_loaded(value))
        return f"{kind}:{names[-1]}" if role == "teacher" else names[-1]

    name = None if model is None else named(model, "model", ("bi-encoder",))
    for role, kinds in (("teacher", ("bi-encoder", "cross-encoder")), ("candidate_model", ("bi-encoder",))):
        if role in options and options[role] is not None:
            value = options[role]
            many = list(value) if isinstance(value, (list, tuple)) else [value]
            options[role] = tuple(named(v, role, kinds) for v in many)
    if loaded:
        first = loaded[0]
        options.setdefault("dtype", str(first.dtype).removeprefix("torch."))
        options.setdefault("device", str(first.device))
    return options, name, names


def _check_loaded_here(options: Any, names: list[str], engine: str) -> None:
    """Before anything is written: a model object runs in this process (hnmine.teachers.check_loaded_in_process),
    and Ray runs models on its nodes, which cannot reach the caller's objects."""
    from hnmine.teachers import check_loaded_in_process

    if engine != "local":
        raise OptionError(
            f'a model object passed to hnmine.mine runs in this process: engine="{engine}" needs its name or path (model.save(PATH))'
        )
    check_loaded_in_process(options, names)


def _loaded_kind(value: Any, role: str, kinds: tuple[str, ...]) -> str:
    """'bi-encoder' for a SentenceTransformer, 'cross-encoder' for a CrossEncoder, where `role` takes it."""
    from sentence_transformers import CrossEncoder, SentenceTransformer

    kind = "bi-encoder" if isinstance(value, SentenceTransformer) else "cross-encoder" if isinstance(value, CrossEncoder) else None
    if kind is None:
        raise InputError(
            f"{role}=: cannot use a {type(value).__name__} (give a name, a path, or a loaded SentenceTransformer or CrossEncoder)"
        )
    if kind not in kinds:
        raise InputError(
            f"{role}= takes a dense model (a SentenceTransformer), got a CrossEncoder: give it as a teacher (teacher=[cross_encoder])"
        )
    return kind


def _result(result: MineResult, run_dir: Path, temporary: bool) -> MiningResult:
    summary = result.summary()
    export = Path(summary["export"]) if summary.get("export") else None
    if isinstance(run_dir, str) and summary.get("export"):  # a bucket's run: the export read from its local copy
        from hnmine.run_bucket import BucketRun

        export = BucketRun(run_dir).local / summary["export"][len(run_dir) + 1 :]
    if export is not None and export.suffix == ".jsonl":
        table = _read_export_jsonl(export)
    elif export is not None:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(export).read()
    else:
        table = pa.table({})
    out = MiningResult(run_dir=run_dir, summary=summary, table=table, export_file=export, temporary=temporary)
    if temporary:  # removed with the result object (or at exit): the table above stays in memory
        out._cleanup = weakref.finalize(out, shutil.rmtree, str(run_dir), True)
    return out


def _read_export_jsonl(path: Path) -> pa.Table:
    """The JSONL export as written: every text stays text (pyarrow's JSON reader turns texts that look like
    dates, "2021-03-04", into timestamps)."""
    import json

    with open(path, encoding="utf-8") as fh:
        return pa.Table.from_pylist([json.loads(line) for line in fh if line.strip()])


def default_model_path() -> str:
    """Where the bundled default model (all-MiniLM-L6-v2) lies: load it with SentenceTransformer(path)."""
    from hnmine.inference.models import resolve_model
    from hnmine.options import DEFAULT_MODEL

    return resolve_model(DEFAULT_MODEL)[0]
