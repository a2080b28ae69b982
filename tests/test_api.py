"""The Python API: hnmine.mine, the same pipeline as the CLI, from in-memory inputs or paths."""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import ROOT, TINY_DOCS, TINY_QRELS, TINY_QUERIES, invoke, write_beir

import hnmine
from hnmine.errors import OptionError

DOC = ROOT / "docs" / "python.md"


def test_the_docs_example_runs(tmp_path, monkeypatch):
    """Every python block of docs/python.md, in order, in one namespace (so the page cannot rot)."""
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["mined"].column_names == ["query", "answer", "negative_1", "negative_2", "scores"]
    assert namespace["train_dataset"].column_names == ["anchor", "positive", "negative"]
    assert [s["stage"] for s in namespace["again"].summary["stages"] if not s["skipped"]] == ["filter", "export"]
    assert namespace["dropped"].num_rows > 0


ST_IMPORT = "from sentence_transformers.util import mine_hard_negatives"


def test_the_one_line_switch_gives_sentence_transformers_rows():
    """docs/python.md's switch: its block as written (hnmine's import) and with sentence-transformers' import
    instead, nothing else changed, give the same rows (texts exactly, scores within 1e-5)."""
    section = DOC.read_text(encoding="utf-8").split("## Switching from sentence-transformers in one line", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    switch = f"# {ST_IMPORT}\nfrom hnmine import mine_hard_negatives\n"
    assert switch in block
    results = []
    for code in (block, block.replace(switch, ST_IMPORT + "\n")):
        namespace: dict = {}
        exec(compile(code, str(DOC), "exec"), namespace)
        results.append(namespace["mined"])
    ours, theirs = results
    assert ours.column_names == theirs.column_names and ours.features == theirs.features
    for a, b in zip(ours.to_list(), theirs.to_list(), strict=True):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
        assert {k: v for k, v in a.items() if k != "scores"} == {k: v for k, v in b.items() if k != "scores"}


def _pairs():
    return [
        {"anchor": q["text"], "positive": next(d["text"] for d in TINY_DOCS if d["_id"] == qr[1])}
        for q, qr in zip(TINY_QUERIES, TINY_QRELS)
    ]


@pytest.mark.parametrize("kind", ["dataset", "pandas", "arrow", "dicts"])
def test_in_memory_pairs_of_every_kind_give_the_same_export(tmp_path, kind):
    import datasets
    import pandas as pd

    rows = _pairs()
    data = {"dataset": datasets.Dataset.from_list(rows), "pandas": pd.DataFrame(rows), "arrow": pa.Table.from_pylist(rows), "dicts": rows}[
        kind
    ]
    corpus = [d["text"] for d in TINY_DOCS]
    result = hnmine.mine(data, corpus=corpus, out=tmp_path / kind, num_negatives=2, method="naive", progress=False)
    reference = hnmine.mine(
        pa.Table.from_pylist(rows), corpus=corpus, out=tmp_path / "ref", num_negatives=2, method="naive", progress=False
    )
    assert result.table.equals(reference.table)
    assert set(result.table.column("anchor").to_pylist()) == {q["text"] for q in TINY_QUERIES}


def test_the_same_data_again_skips_every_stage(tmp_path):
    rows = _pairs()
    kw = dict(corpus=[d["text"] for d in TINY_DOCS], out=tmp_path / "run", num_negatives=2, progress=False)
    hnmine.mine(rows, **kw)
    again = hnmine.mine(rows, **kw)
    assert all(s["skipped"] for s in again.summary["stages"])


def test_a_loaded_model_is_used_and_keyed_by_its_weights(tmp_path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(hnmine.api.default_model_path(), device="cpu")
    rows = _pairs()
    kw = dict(corpus=[d["text"] for d in TINY_DOCS], out=tmp_path / "run", num_negatives=2, progress=False)
    first = hnmine.mine(rows, model=model, **kw)
    assert all(s["skipped"] for s in hnmine.mine(rows, model=model, **kw).summary["stages"])
    import torch

    with torch.no_grad():  # other weights: another model, everything from the index on is redone
        next(model.parameters()).add_(0.01)
    changed = hnmine.mine(rows, model=model, **kw)
    assert not [s for s in changed.summary["stages"] if s["stage"] == "index"][0]["skipped"]
    assert first.table.num_rows > 0


# -- issue 25, item 4: a loaded model is used in place -----------------------------------------------------


def _loaded_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(hnmine.api.default_model_path(), device="cpu")


def _weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_loaded_model_is_used_in_place_not_saved_and_never_changed(tmp_path, monkeypatch):
    """No copy on disk, no dtype probe (it computes in its own dtype), the very object encodes, and the
    caller's model keeps its weights, dtype and settings."""
    from hnmine.inference import dtype, loading
    from hnmine.inference.models import register_loaded

    model = _loaded_model()
    before = _weights(model)
    monkeypatch.setattr(dtype, "_time_dtypes", lambda *a, **k: pytest.fail("a loaded model was timed for --dtype auto"))
    loads = []
    real = loading.load_sentence_transformer
    monkeypatch.setattr(loading, "load_sentence_transformer", lambda *a, **k: loads.append(real(*a, **k)) or loads[-1])
    result = hnmine.mine(
        _pairs(), model=model, corpus=[d["text"] for d in TINY_DOCS], out=tmp_path / "run", num_negatives=2, progress=False
    )
    assert not (tmp_path / "run" / "sources" / "model").exists()
    index = json.loads((tmp_path / "run/manifests/index.json").read_text())
    assert index["models"]["dense"]["name"] == register_loaded(model) and index["models"]["dense"]["dtype"] == "float32"
    assert loads and all(m is model for m in loads)
    assert model.dtype.is_floating_point and str(model.dtype) == "torch.float32" and model.max_seq_length == 256
    assert all(v.equal(before[k]) for k, v in model.state_dict().items())
    assert result.table.num_rows > 0


def test_a_loaded_model_is_named_by_its_settings_too():
    """The same weights with another max_seq_length or prompts encode otherwise: another name."""
    from hnmine.inference.models import register_loaded

    model = _loaded_model()
    name = register_loaded(model)
    assert register_loaded(_loaded_model()) == name  # another object, the same weights and settings
    model.max_seq_length = 64
    shorter = register_loaded(model)
    model.prompts = {"query": "query: "}
    assert len({name, shorter, register_loaded(model)}) == 3


def test_a_loaded_model_gives_the_vectors_of_the_same_model_by_path(tmp_path):
    model = _loaded_model()
    kw = dict(corpus=[d["text"] for d in TINY_DOCS], num_negatives=2, dtype="float32", progress=False)
    loaded = hnmine.mine(_pairs(), model=model, out=tmp_path / "a", **kw)
    by_path = hnmine.mine(_pairs(), model=hnmine.api.default_model_path(), out=tmp_path / "b", **kw)
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "a/scores.parquet").equals(pq.read_table(tmp_path / "b/scores.parquet"))
    assert loaded.table.equals(by_path.table)


def _cross_encoder(tmp_path):
    """A cross-encoder built from the bundled MiniLM (its head seeded), and the same saved to a folder."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    ce = CrossEncoder(hnmine.api.default_model_path(), num_labels=1, device="cpu")
    ce.save(str(tmp_path / "ce"))
    return ce, tmp_path / "ce"


def test_a_loaded_cross_encoder_is_a_teacher(tmp_path):
    ce, folder = _cross_encoder(tmp_path)
    before = _weights(ce)
    kw = dict(corpus=[d["text"] for d in TINY_DOCS], num_negatives=2, dtype="float32", progress=False)
    loaded = hnmine.mine(_pairs(), teacher=[ce], out=tmp_path / "a", **kw)
    by_path = hnmine.mine(_pairs(), teacher=[f"cross-encoder:{folder}"], out=tmp_path / "b", **kw)
    import pyarrow.parquet as pq

    score = json.loads((tmp_path / "a/manifests/score.json").read_text())
    assert [t["kind"] for t in score["options"]["teachers"]] == ["cross-encoder"]
    a, b = pq.read_table(tmp_path / "a/scores.parquet"), pq.read_table(tmp_path / "b/scores.parquet")
    assert a.column("teacher_score").equals(b.column("teacher_score"))
    assert loaded.table.equals(by_path.table)
    assert all(v.equal(before[k]) for k, v in ce.state_dict().items())


def test_a_loaded_model_refuses_worker_processes(tmp_path):
    model = _loaded_model()
    with pytest.raises(OptionError, match="runs in this process, not in worker processes \\(workers=, or several device=\\)"):
        hnmine.mine(_pairs(), model=model, workers=2, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_of_a_loaded_model_names_it_when_it_is_gone(tmp_path):
    """The CLI on such a run, once the model is no longer loaded: one line saying what to give."""
    model = _loaded_model()
    run = tmp_path / "run"
    hnmine.mine(_pairs(), model=model, corpus=[d["text"] for d in TINY_DOCS], out=run, num_negatives=2, progress=False)
    del model
    gc.collect()
    result = invoke(["score", "--out", run, "--force", "--quiet"])
    assert result.exit_code == 2
    assert "a model object passed to hnmine.mine" in result.stderr and "--model" in result.stderr
    assert invoke(["filter", "--out", run, "-n", "1", "--quiet"]).exit_code == 0  # what needs no model still runs


def test_paths_work_as_in_the_cli(tmp_path):
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    result = hnmine.mine(data, out=tmp_path / "run", num_negatives=2, format="tevatron", progress=False)
    assert result.export_file.name == "tevatron.jsonl"
    assert set(result.table.column("query_id").to_pylist()) == {"q1", "q2", "q3"}


def test_a_temporary_run_directory_goes_with_the_result(tmp_path):
    result = hnmine.mine(_pairs(), corpus=[d["text"] for d in TINY_DOCS], num_negatives=2, progress=False)
    run = result.run_dir
    assert run.is_dir() and result.temporary
    table = result.table
    del result
    gc.collect()
    assert not run.exists() and table.num_rows > 0


def test_options_have_the_cli_names_and_checks():
    with pytest.raises(OptionError, match="unknown option\\(s\\) of hnmine.mine: num_negativs"):
        hnmine.mine(_pairs(), num_negativs=2)
    with pytest.raises(OptionError, match="^num_negatives= must be between 1 and 1,000, got 0"):
        hnmine.mine(_pairs(), num_negatives=0)


def test_the_cli_reads_a_saved_dataset_folder(tmp_path):
    import datasets

    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(_pairs()), "dev": datasets.Dataset.from_list(_pairs()[:1])}).save_to_disk(
        str(folder)
    )
    run = tmp_path / "run"
    result = invoke(
        [
            "mine",
            folder,
            "--split",
            "train",
            "--corpus",
            write_beir(tmp_path / "c", TINY_DOCS, TINY_QUERIES, TINY_QRELS) / "corpus.jsonl",
            "--out",
            run,
            "--num-negatives",
            "2",
            "--quiet",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((run / "manifests/inputs.json").read_text())["counts"]["queries"] == 3
    two = tmp_path / "two"
    datasets.DatasetDict({"a": datasets.Dataset.from_list(_pairs()), "b": datasets.Dataset.from_list(_pairs())}).save_to_disk(str(two))
    missing = invoke(["mine", two, "--out", tmp_path / "r2", "--quiet"])
    assert missing.exit_code == 2 and "several splits (a, b); choose one with --split" in missing.stderr


def test_import_hnmine_stays_light():
    import subprocess
    import sys

    code = "import sys, hnmine; assert 'pyarrow' not in sys.modules and 'torch' not in sys.modules; print(hnmine.mine.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "hnmine.api"
    assert Path(hnmine.__file__).is_file()


# -- issue 23, item 12: threads sharing out=, and failed calls without out= ----------------------


def _in_thread(fn) -> list:
    """Run fn in another thread; what it raised ([] when it returned)."""
    import threading

    caught: list = []

    def body():
        try:
            fn()
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=300)
    assert not thread.is_alive()
    return caught


def test_another_thread_is_refused_a_run_directory_this_thread_holds(tmp_path):
    """Two threads calling hnmine.mine with the same out= both passed the lock: the table of held run
    directories was shared by every thread, so the second ran its stages over the first's files (a raw
    KeyError, false "changed since" errors). The holding thread may re-enter; another is refused, as
    another process is."""
    from hnmine.errors import RunDirError
    from hnmine.rundir import RunDir

    run = tmp_path / "run"
    corpus = [d["text"] for d in TINY_DOCS]
    with RunDir(run).writing():
        with RunDir(run).writing():  # the holding thread re-enters (the API stages inputs, then runs)
            pass
        caught = _in_thread(lambda: hnmine.mine(_pairs(), corpus=corpus, out=run, num_negatives=2, progress=False))
        assert len(caught) == 1 and isinstance(caught[0], RunDirError), caught
        assert f"{run}: another hnmine process is working in this run directory" in str(caught[0])
        assert not (run / "sources").exists()  # refused before it staged anything
    assert _in_thread(lambda: RunDir(run).writing().__enter__()) == []  # released: usable elsewhere


def test_two_threads_mining_into_one_run_directory(tmp_path):
    """Started together on the same out=: each call finishes or is refused; the run is whole."""
    import threading

    from hnmine.errors import RunDirError

    run = tmp_path / "run"
    corpus = [d["text"] for d in TINY_DOCS]
    start = threading.Barrier(2)
    outcomes: list = []

    def one():
        start.wait()
        try:
            outcomes.append(hnmine.mine(_pairs(), corpus=corpus, out=run, num_negatives=2, progress=False))
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(outcomes) == 2 and len(errors) < 2, outcomes
    for e in errors:
        assert isinstance(e, RunDirError) and "another hnmine process is working in this run directory" in str(e), repr(e)
    again = hnmine.mine(_pairs(), corpus=corpus, out=run, num_negatives=2, progress=False)
    assert all(s["skipped"] for s in again.summary["stages"])


@pytest.mark.parametrize("failure", ["bad-input", "interrupted-after-index"])
def test_a_failed_call_without_out_leaves_no_temporary_folder(tmp_path, monkeypatch, failure):
    """A failed hnmine.mine() without out= left its temporary run folder behind, embeddings and all
    (one per failed call in a notebook); Ctrl-C too."""
    import tempfile

    import hnmine.runner
    from hnmine.errors import InputError

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    pairs, expected = _pairs(), InputError
    if failure == "bad-input":
        pairs[1]["positive"] = None  # fails in the inputs stage, after the pairs were staged
    else:
        expected, real_run_stage, seen = KeyboardInterrupt, hnmine.runner.run_stage, []

        def interrupted_at_filter(stage, ctx, **kw):
            if stage.name == "filter":
                seen.extend(p.name for p in (ctx.run.path / "index").rglob("*"))
                raise KeyboardInterrupt
            return real_run_stage(stage, ctx, **kw)

        monkeypatch.setattr(hnmine.runner, "run_stage", interrupted_at_filter)
    with pytest.raises(expected):
        hnmine.mine(pairs, corpus=[d["text"] for d in TINY_DOCS], num_negatives=2, progress=False)
    if failure != "bad-input":
        assert seen, "the index stage wrote nothing before the interrupt"
    assert list(scratch.iterdir()) == []


# --- messages in the caller's words (issue 23, item 14) ----------------------------------------------


def _api_error(*args, **kwargs) -> str:
    """The one-line message of a failing hnmine.mine call: it names no staged file and no --flag."""
    from hnmine.errors import HnmineError

    with pytest.raises(HnmineError) as info:
        hnmine.mine(*args, progress=False, **kwargs)
    message = str(info.value)
    assert "sources/" not in message and "hnmine-staging-" not in message and " --" not in message, message
    assert "\n" not in message
    return message


def test_a_missing_column_names_the_argument_and_the_column_option(tmp_path):
    """`hnmine.mine([{"q": ..., "p": ...}])` said "RUN/sources/pairs.parquet: no column 'query text (tried
    query/anchor/question; name it with an option)'": an internal file, and no word of which option."""
    rows = [{"q": r["anchor"], "p": r["positive"]} for r in _pairs()]
    message = _api_error(rows, corpus=[d["text"] for d in TINY_DOCS], out=tmp_path / "run")
    assert message.startswith("data=: no column 'query text (tried query/anchor/question; name it with pair_query_column=)'"), message
    assert "(columns: q, p)" in message
    message = _api_error(rows, pair_query_column="question")
    assert message.startswith("data=: no column 'question'"), message


def test_a_column_option_the_data_does_not_use_is_named_as_an_argument(tmp_path):
    """`pair_query_column=` with a BEIR folder said "--pair-query-column names a column of a pairs file"."""
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    assert _api_error(data, pair_query_column="question").startswith("pair_query_column= names a column of a pairs file")


@pytest.mark.parametrize("kind", ["list", "dataset"])
def test_empty_in_memory_pairs_fail_at_once(kind):
    """An empty list (or an empty datasets.Dataset) of pairs with a corpus encoded the corpus, then failed
    with "query vectors have 0 dimensions"."""
    import datasets

    data = [] if kind == "list" else datasets.Dataset.from_dict({"anchor": [], "positive": []})
    assert _api_error(data, corpus=[d["text"] for d in TINY_DOCS]) == "data=: no pairs (it has no rows)"


def test_a_corpus_list_holding_none_names_the_item():
    """`corpus=["a", None]` said "corpus: cannot read a list (give a path, ...)"."""
    assert _api_error(_pairs(), corpus=["a text", None]).startswith("corpus[1] is None, expected a text")
    assert _api_error([_pairs()[0], "not a row"]).startswith("data[1] is a str ('not a row'), expected a dict")


def test_a_named_pandas_index_is_kept_as_ids(tmp_path):
    """A corpus DataFrame indexed by its ids (`df.set_index("_id")`) lost the index (preserve_index=False):
    the ids were dropped without a word."""
    import pandas as pd

    corpus = pd.DataFrame(TINY_DOCS).set_index("_id")
    queries = pd.DataFrame(TINY_QUERIES).set_index("_id")
    qrels = pd.DataFrame(TINY_QRELS, columns=["query-id", "corpus-id", "score"])
    result = hnmine.mine(
        corpus=corpus, queries=queries, qrels=qrels, out=tmp_path / "run", num_negatives=2, format="tevatron", progress=False
    )
    assert set(result.read("corpus").column("doc_id").to_pylist()) == {d["_id"] for d in TINY_DOCS}
    assert set(result.table.column("query_id").to_pylist()) == {"q1", "q2", "q3"}


def test_an_unnamed_pandas_index_that_may_hold_ids_is_refused():
    """An unnamed index of ids (`pd.DataFrame(rows, index=ids)`) was dropped silently."""
    import pandas as pd

    corpus = pd.DataFrame({"text": [d["text"] for d in TINY_DOCS]}, index=[d["_id"] for d in TINY_DOCS])
    message = _api_error(_pairs(), corpus=corpus)
    assert message.startswith("corpus=: the DataFrame has an unnamed index (a str ('d1') first) that would be lost"), message


def test_the_run_options_are_arguments_too(tmp_path):
    """hnmine.mine took every option of `hnmine mine` but --engine and --ray-address ('unknown option(s) of
    hnmine.mine: engine'), though this page says it takes every option. Checked and named as the others are."""
    from hnmine.errors import UnknownName

    with pytest.raises(UnknownName, match="unknown engine 'spark' \\(valid: local, ray\\)"):
        hnmine.mine(_pairs(), corpus=[d["text"] for d in TINY_DOCS], engine="spark", out=tmp_path / "a", progress=False)
    with pytest.raises(OptionError, match='^ray_address= is for engine="ray"; the local engine runs on this machine'):
        hnmine.mine(_pairs(), corpus=[d["text"] for d in TINY_DOCS], ray_address="auto", out=tmp_path / "b", progress=False)
    with pytest.raises(OptionError, match="json"):
        hnmine.mine(_pairs(), json=True)
    result = hnmine.mine(
        _pairs(), corpus=[d["text"] for d in TINY_DOCS], engine="local", num_negatives=2, out=tmp_path / "c", progress=False
    )
    assert result.table.num_rows > 0


def test_engine_ray_goes_to_the_ray_executor(tmp_path):
    """engine="ray" with ray_address= reaches the Ray executor as `--engine ray --ray-address` does: a cluster
    that does not answer is named, in the caller's words."""
    pytest.importorskip("ray")
    data = write_beir(tmp_path / "tiny", TINY_DOCS, TINY_QUERIES, TINY_QRELS)
    with pytest.raises(OptionError, match="^ray_address= 127.0.0.1:1: no Ray cluster answers there"):
        hnmine.mine(data, out=tmp_path / "run", engine="ray", ray_address="127.0.0.1:1", progress=False)


def test_an_engine_other_than_local_refuses_a_loaded_model(tmp_path):
    with pytest.raises(OptionError, match='runs in this process: engine="ray" needs its name or path'):
        hnmine.mine(_pairs(), model=_loaded_model(), engine="ray", out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# -- issue 25, item 5: a sentence-transformers name is answered with hnmine's ---------------------------------

ST_NAMES = [
    ("output_scores", True, "output_scores: hnmine.mine calls it with_scores"),
    ("output_format", "n-tuple", "output_format: hnmine.mine calls it format"),
    ("sampling_strategy", "random", "sampling_strategy: hnmine.mine calls it sampling"),
    ("anchor_column_name", "q", "anchor_column_name: hnmine.mine calls it pair_query_column"),
    ("positive_column_name", "p", "positive_column_name: hnmine.mine calls it pair_positive_column"),
    ("absolute_margin", 0.1, "absolute_margin: hnmine.mine calls it margin"),
    ("cross_encoder", "x", "cross_encoder: hnmine.mine calls it teacher"),
    ("verbose", False, "verbose: hnmine.mine calls it progress"),
    ("use_multi_process", True, "use_multi_process: hnmine.mine calls it workers"),
    ("as_triplets", True, "as_triplets: hnmine.mine calls it format"),
    ("dataset", [], "dataset: hnmine.mine calls it data"),
    ("use_faiss", True, "use_faiss: hnmine.mine has no such option"),
    ("faiss_batch_size", 8, "faiss_batch_size: hnmine.mine has no such option"),
    ("include_positives", True, "include_positives: hnmine.mine has no such option"),
    ("cache_folder", "c", "cache_folder: hnmine.mine has no such option"),
]


@pytest.mark.parametrize("name, value, message", ST_NAMES, ids=[n for n, _, _ in ST_NAMES])
def test_a_sentence_transformers_argument_is_answered_with_hnmines_name(name, value, message):
    from hnmine.options import RunOptions, option_fields

    if name == "cache_folder" and "cache_dir" in {f.name for cls in (None, RunOptions) for f in option_fields(cls)}:
        message = "cache_folder: hnmine.mine calls it cache_dir"  # the embedding store of issue 26
    with pytest.raises(OptionError, match="^" + re.escape(message)):
        hnmine.mine(_pairs(), **{name: value})
