"""`--dtype auto` on a CPU is chosen by measurement, cached per machine, never slower than float32."""

from __future__ import annotations

import json

import pytest

from hnmine.inference import dtype as dtype_choice
from hnmine.inference.spec import EncoderSpec, effective_dtype


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HNMINE_CACHE_DIR", str(tmp_path / "cache"))
    dtype_choice.choose_cpu_dtype.cache_clear()
    yield tmp_path / "cache"
    dtype_choice.choose_cpu_dtype.cache_clear()


def _fake_cpu(monkeypatch, flags: set[str], timings: dict[str, float] | None = None):
    monkeypatch.setattr(dtype_choice, "cpu_info", lambda: ("Test CPU", frozenset(flags)))
    calls = []

    def timed(model, kind, candidates, threads, backend="torch"):
        calls.append(candidates)
        return {d: timings[d] for d in candidates}

    monkeypatch.setattr(dtype_choice, "_time_dtypes", timed)
    return calls


@pytest.mark.parametrize(
    "timings, expected",
    [
        ({"float32": 1.0, "bfloat16": 0.4}, "bfloat16"),  # 2.5x faster: chosen
        ({"float32": 1.0, "bfloat16": 1.4}, "float32"),  # slower: never chosen
        ({"float32": 1.0, "bfloat16": 0.95}, "float32"),  # within MIN_GAIN: not worth it
        ({"float32": 1.0, "bfloat16": 0.9}, "bfloat16"),  # exactly MIN_GAIN
    ],
)
def test_auto_takes_the_measured_fastest_only_when_clearly_faster(fresh_cache, monkeypatch, timings, expected):
    _fake_cpu(monkeypatch, {"avx512f", "avx512_bf16"}, timings)
    choice = dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 2)
    assert choice.dtype == expected
    assert choice.seconds == timings and not choice.cached


def test_the_choice_is_cached_per_machine_and_not_measured_again(fresh_cache, monkeypatch):
    calls = _fake_cpu(monkeypatch, {"avx512_bf16"}, {"float32": 1.0, "bfloat16": 0.5})
    assert dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 2).dtype == "bfloat16"
    dtype_choice.choose_cpu_dtype.cache_clear()  # a new process
    again = dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 2)
    assert again.dtype == "bfloat16" and again.cached and len(calls) == 1
    saved = list(fresh_cache.glob("dtype-choice/*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["machine"].startswith("Test CPU")
    # another thread count or model kind is another measurement
    dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 1)
    dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "cross-encoder", 2)
    assert len(calls) == 3


def test_another_cpu_is_measured_anew(fresh_cache, monkeypatch):
    calls = _fake_cpu(monkeypatch, {"avx512_bf16"}, {"float32": 1.0, "bfloat16": 0.5})
    dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 2)
    dtype_choice.choose_cpu_dtype.cache_clear()
    monkeypatch.setattr(dtype_choice, "cpu_info", lambda: ("Other CPU", frozenset({"avx512_bf16"})))
    dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 2)
    assert len(calls) == 2


def test_a_cpu_without_native_half_precision_is_float32_without_measuring(fresh_cache, monkeypatch):
    calls = _fake_cpu(monkeypatch, {"avx2"}, {})
    assert effective_dtype("auto", "cpu", "all-MiniLM-L6-v2", threads=2) == "float32"
    assert calls == []


def test_float16_is_timed_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(dtype_choice, "cpu_info", lambda: ("X", frozenset({"avx512_bf16", "avx512_fp16"})))
    assert dtype_choice.native_cpu_dtypes() == ("float32", "bfloat16", "float16")
    monkeypatch.setattr(dtype_choice, "cpu_info", lambda: ("X", frozenset({"amx_bf16"})))
    assert dtype_choice.native_cpu_dtypes() == ("float32", "bfloat16")


def test_an_explicit_dtype_is_never_measured(fresh_cache, monkeypatch):
    calls = _fake_cpu(monkeypatch, {"avx512_bf16"}, {"float32": 1.0, "bfloat16": 0.5})
    assert EncoderSpec(dtype="float32").resolved_dtype() == "float32"
    assert calls == []


def test_the_real_probe_times_each_native_dtype(fresh_cache):
    """On this machine, whatever its CPU: the real timing runs and picks one of the timed dtypes."""
    choice = dtype_choice.choose_cpu_dtype("all-MiniLM-L6-v2", "bi-encoder", 1)
    assert choice.dtype in dtype_choice.native_cpu_dtypes()
    if len(dtype_choice.native_cpu_dtypes()) > 1:
        assert set(choice.seconds) == set(dtype_choice.native_cpu_dtypes())
        assert all(s > 0 for s in choice.seconds.values())
        assert choice.seconds[choice.dtype] <= choice.seconds["float32"]


def test_the_manifest_records_how_auto_was_resolved(finished_tiny):
    _, run = finished_tiny
    dense = json.loads((run / "manifests/index.json").read_text())["models"]["dense"]
    choice = dense["dtype_choice"]
    assert dense["dtype"] == choice["dtype"]
    assert choice["reason"] and choice["machine"]
