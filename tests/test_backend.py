"""`--backend`: what runs the bi-encoder. Keys differ by backend, a missing extra is one line, the
OpenVINO IR is built once and checked, and OpenVINO's vectors agree with torch float32 within the
tolerance of the dtype they were computed in (tests/reproducibility.py), on padded batches too."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY_DOCS, TINY_QUERIES, invoke, mine_json, reran

from hnmine.errors import MissingDependency, OptionError, UnknownName
from hnmine.inference.cache import embedding_key
from hnmine.inference.spec import EncoderSpec, encoder_key

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="the openvino extra is not installed")
TEXTS = [f"{d['title']} {d['text']}" for d in TINY_DOCS] + [q["text"] for q in TINY_QUERIES]
FP32 = EncoderSpec(dtype="float32")
OV32 = replace(FP32, backend="openvino")


# --- keys ----------------------------------------------------------------------------------------


def test_embedding_keys_differ_by_backend_and_by_dtype():
    keys = {
        embedding_key(replace(FP32, backend=b, dtype=d), None, None, TEXTS) for b in ("torch", "openvino") for d in ("float32", "bfloat16")
    }
    assert len(keys) == 4


def test_stage_keys_differ_by_backend_and_torch_keys_have_no_backend_field(tmp_path):
    from hnmine.options import Options
    from hnmine.pipeline import Context
    from hnmine.rundir import RunDir
    from hnmine.stages import BY_NAME

    torch_key, ov_key = encoder_key(FP32), encoder_key(OV32)
    assert "backend" not in torch_key  # runs made before --backend existed keep their keys
    assert ov_key["backend"] == "openvino" and ov_key["backend_versions"]["openvino"]
    # how the compiled model is run (streams and slicing) changes the bytes, so it is in the key too
    from hnmine.inference.backends.openvino import RUNNER_FORMAT

    assert ov_key["backend_versions"]["runner"] == RUNNER_FORMAT
    assert {k: v for k, v in ov_key.items() if not k.startswith("backend")} == torch_key
    run = RunDir(tmp_path / "run")
    for stage in ("index", "retrieve", "score"):
        keys = [BY_NAME[stage].key(Context(run=run, options=Options(dtype="float32", backend=b))) for b in ("torch", "openvino")]
        assert keys[0] != keys[1], stage


def test_cross_encoders_run_on_torch_whatever_the_backend():
    assert OV32.backend_for("cross-encoder") == "torch" and OV32.backend_for("bi-encoder") == "openvino"
    assert "backend" not in encoder_key(OV32, kind="cross-encoder")


# --- options and the missing extra --------------------------------------------------------------


def test_unknown_backend_lists_the_valid_names():
    with pytest.raises(UnknownName, match=r"unknown backend 'onnx' \(valid: openvino, torch\)"):
        EncoderSpec(backend="onnx").validate()


@pytest.mark.parametrize(
    "spec, message",
    [
        (EncoderSpec(backend="openvino", device="cuda"), "--backend openvino runs on the CPU only"),
        (EncoderSpec(backend="openvino", dtype="float16"), r"--backend openvino runs at float32 or bfloat16 \(got --dtype float16\)"),
    ],
)
def test_openvino_refuses_what_it_cannot_run(spec, message):
    with pytest.raises(OptionError, match=message):
        spec.validate()


@pytest.fixture
def without_openvino(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))


def test_missing_extra_is_a_named_error(without_openvino):
    with pytest.raises(MissingDependency, match=r"--backend openvino needs the 'openvino' extra: pip install 'hnmine\[openvino\]'"):
        EncoderSpec(backend="openvino").validate()


def test_missing_extra_is_one_line_and_exit_2_before_any_stage(without_openvino, tmp_path):
    result = invoke(["mine", ROOT / "sample_data", "--out", tmp_path / "run", "--backend", "openvino"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "hnmine: error: --backend openvino needs the 'openvino' extra: pip install 'hnmine[openvino]'"
    ]
    assert not (tmp_path / "run").exists()


def test_help_and_keys_do_not_import_the_backend():
    code = (
        "import sys; from hnmine.cli import app; from hnmine.inference.spec import EncoderSpec, encoder_key; "
        "encoder_key(EncoderSpec(dtype='float32', backend='openvino')); "
        "assert 'openvino' not in sys.modules and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'openvino' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_auto_never_picks_a_dtype_the_backend_cannot_run(monkeypatch, tmp_path):
    from hnmine.inference import dtype as dtype_choice

    monkeypatch.setenv("HNMINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dtype_choice, "cpu_info", lambda: ("Test CPU", frozenset({"avx512_bf16", "avx512_fp16"})))
    timed = []

    def fake(model, kind, candidates, threads, backend="torch"):
        timed.append((backend, candidates))
        return {d: {"float32": 1.0, "bfloat16": 0.5, "float16": 0.3}[d] for d in candidates}

    monkeypatch.setattr(dtype_choice, "_time_dtypes", fake)
    dtype_choice.choose_cpu_dtype.cache_clear()
    try:
        assert dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 2, "openvino").dtype == "bfloat16"
        assert dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 2).dtype == "float16"
    finally:
        dtype_choice.choose_cpu_dtype.cache_clear()
    assert timed == [("openvino", ("float32", "bfloat16")), ("torch", ("float32", "bfloat16", "float16"))]
    assert len(list((tmp_path / "cache" / "dtype-choice").glob("*.json"))) == 2  # one choice per backend


# --- the IR cache (no OpenVINO needed: the build is a stand-in) -----------------------------------


def _fake_build(calls):
    def build(target: Path) -> None:
        calls.append(target)
        (target / "model.xml").write_text("<net/>")
        (target / "model.bin").write_bytes(b"\0" * 64)

    return build


def test_ir_is_built_once_then_reused(tmp_path):
    from hnmine.inference.backends.openvino import ensure_ir

    calls = []
    folder = tmp_path / "openvino" / "abc"
    assert ensure_ir(folder, _fake_build(calls)) == folder / "model.xml"
    assert ensure_ir(folder, _fake_build(calls)) == folder / "model.xml"
    assert len(calls) == 1
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")]


def test_damaged_ir_is_rebuilt_and_a_failed_build_leaves_nothing(tmp_path):
    from hnmine.inference.backends.openvino import ensure_ir

    calls = []
    folder = tmp_path / "openvino" / "abc"
    ensure_ir(folder, _fake_build(calls))
    (folder / "model.bin").write_bytes(b"\1" * 64)  # bytes no longer match ir.json
    ensure_ir(folder, _fake_build(calls))
    assert len(calls) == 2 and (folder / "model.bin").read_bytes() == b"\0" * 64

    def killed(target: Path) -> None:
        (target / "model.xml").write_text("<half")
        raise KeyboardInterrupt

    other = tmp_path / "openvino" / "def"
    with pytest.raises(KeyboardInterrupt):
        ensure_ir(other, killed)
    assert not other.exists() and not [p for p in other.parent.iterdir() if p.name.startswith(".def.")]


# --- OpenVINO itself ------------------------------------------------------------------------------


def _encode(spec: EncoderSpec, texts: list[str]) -> np.ndarray:
    from hnmine.inference.batching import encode_batches as _encode_batches

    return _encode_batches(spec.load(), texts, spec, None, None, lambda n=1: None)


@needs_openvino
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_openvino_scores_agree_with_torch_float32_within_the_dtype_tolerance(dtype):
    """Cosine scores of every (query, document) pair of the tiny fixture, batched with padding."""
    from reproducibility import score_tolerance

    from hnmine.inference.backends.openvino import _core

    if dtype == "bfloat16" and "BF16" not in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("no bfloat16 in OpenVINO on this CPU")
    ref = _encode(replace(FP32, batch_size=5), TEXTS)
    got = _encode(replace(OV32, dtype=dtype, batch_size=5), TEXTS)
    assert got.shape == ref.shape and got.dtype == np.float32
    n_docs = len(TINY_DOCS)
    scores_ref, scores_got = ref[n_docs:] @ ref[:n_docs].T, got[n_docs:] @ got[:n_docs].T
    np.testing.assert_allclose(scores_got, scores_ref, rtol=0, atol=score_tolerance(dtype))
    # each text alone (no padding) gives the vector it gets inside a padded batch
    alone = np.concatenate([_encode(replace(OV32, dtype=dtype, batch_size=1), [t]) for t in TEXTS[:4]])
    np.testing.assert_allclose(np.sum(alone * got[:4], axis=1), 1.0, rtol=0, atol=score_tolerance(dtype))


@needs_openvino
def test_openvino_gives_the_same_bytes_with_two_workers_at_the_same_threads(tmp_path):
    from hnmine.inference.cache import encode_cached
    from hnmine.inference.store import store_scope

    spec = replace(OV32, batch_size=4, threads=1)
    one, _ = encode_cached(TEXTS, spec, tmp_path / "one")
    with store_scope(tmp_path / "store-two"):  # a store of its own: the two workers encode, not read the first's
        two, _ = encode_cached(TEXTS, replace(spec, workers=2), tmp_path / "two")
    assert np.asarray(one).tobytes() == np.asarray(two).tobytes()


@needs_openvino
def test_openvino_runs_one_stream_per_thread_and_sliced_batches_agree_with_whole_ones():
    """--threads 2: two streams of one thread, each batch cut in two slices run at once; a batch of one row
    (fewer rows than streams) still runs; the vectors agree with one stream's within float32's tolerance."""
    from reproducibility import score_tolerance

    runner = replace(OV32, threads=2).load()[0].model
    assert len(runner._requests) == 2
    two = _encode(replace(OV32, batch_size=5, threads=2), TEXTS)
    one = _encode(replace(OV32, batch_size=5, threads=1), TEXTS)
    np.testing.assert_allclose(np.sum(two * one, axis=1), 1.0, rtol=0, atol=score_tolerance("float32"))
    single = _encode(replace(OV32, batch_size=1, threads=2), TEXTS[:1])
    np.testing.assert_allclose(float(single[0] @ one[0]), 1.0, rtol=0, atol=score_tolerance("float32"))


@needs_openvino
def test_mine_with_openvino_end_to_end_and_its_keys_against_torch(finished_tiny, tmp_path):
    """A finished torch run: --backend openvino redoes every stage from the index on (its vectors are
    never taken for torch's), records the backend in the manifests; back to torch redoes them again."""
    data, run = finished_tiny
    shutil.copytree(data, tmp_path / "data")
    shutil.copytree(run, tmp_path / "run")
    data, run = tmp_path / "data", tmp_path / "run"
    torch_dtype = json.loads((run / "manifests/index.json").read_text())["models"]["dense"]["dtype"]
    args = ["--backend", "openvino", "--dtype", "float32"]
    # filter and export rerun too when the new scores change their tables (export is keyed on content)
    assert reran(mine_json(data, run, *args))[:3] == ["index", "retrieve", "score"]
    index = json.loads((run / "manifests/index.json").read_text())
    assert index["options"]["encoder"]["backend"] == "openvino"
    dense = index["models"]["dense"]
    assert dense["backend"] == "openvino" and dense["inference_precision"] == "f32" and dense["quantization"] is None
    assert dense["backend_versions"]["openvino"]
    assert reran(mine_json(data, run, *args)) == []
    back = reran(mine_json(data, run, "--backend", "torch", "--dtype", torch_dtype))  # the run's own backend is kept unless changed
    assert back[:3] == ["index", "retrieve", "score"]
    assert "backend" not in json.loads((run / "manifests/index.json").read_text())["options"]["encoder"]
