"""Worker processes: one device per worker, round-robin over GPUs; scores independent of the worker count."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from conftest import TINY_DOCS, TINY_QUERIES

from hnmine.errors import OptionError
from hnmine.inference.pool import split_batches, start_pool, worker_count, worker_devices
from hnmine.inference.spec import EncoderSpec


def test_plain_cuda_spreads_workers_over_every_visible_gpu():
    assert worker_devices("cuda", 5, cuda_count=lambda: 4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"]
    assert worker_devices("cuda", 2, cuda_count=lambda: 1) == ["cuda", "cuda"]
    assert worker_devices("cuda", 1, cuda_count=lambda: 4) == ["cuda"]  # one worker: the default GPU


def test_listed_devices_get_a_worker_each_at_least():
    assert worker_count("cuda:0,cuda:2", 1) == 2
    assert worker_devices("cuda:0,cuda:2", 1) == ["cuda:0", "cuda:2"]
    assert worker_devices("cuda:1,cuda:3", 3) == ["cuda:1", "cuda:3", "cuda:1"]
    assert worker_devices("cpu", 3) == ["cpu", "cpu", "cpu"]


def test_device_lists_are_valid_only_for_gpus():
    EncoderSpec(device="cuda:0,cuda:1").validate()
    for bad in ("cpu,cuda", "cuda:0,", "gpu", "cuda:x"):
        with pytest.raises(OptionError, match="unknown device"):
            EncoderSpec(device=bad).validate()


def test_parts_are_whole_batches_and_cover_everything():
    parts = split_batches(1000, 64, 2)
    assert parts[0][0] == 0 and parts[-1][1] == 1000
    assert all(b == c for (_, b), (c, _) in zip(parts, parts[1:]))
    assert all((b - a) % 64 == 0 for a, b in parts[:-1])


_seen: dict = {}


def _remember_device(device: str, tag: str) -> None:
    _seen.update(device=device, tag=tag)


def _which_device(_: int) -> tuple[int, str, str]:
    time.sleep(0.2)  # long enough that both workers take tasks
    return os.getpid(), _seen["device"], _seen["tag"]


def test_each_worker_process_is_given_its_own_device():
    pool = start_pool(["dev-a", "dev-b"], _remember_device, ("t",), threads=1)
    try:
        results = list(pool.map(_which_device, range(8)))
    finally:
        pool.shutdown()
    by_pid: dict[int, set[str]] = {}
    for pid, device, tag in results:
        assert tag == "t"
        by_pid.setdefault(pid, set()).add(device)
    assert all(len(devices) == 1 for devices in by_pid.values())  # a worker keeps its device
    assert set().union(*by_pid.values()) <= {"dev-a", "dev-b"}
    if len(by_pid) == 2:
        assert set().union(*by_pid.values()) == {"dev-a", "dev-b"}


@pytest.fixture(scope="module")
def cross_encoder_pairs(tmp_path_factory):
    import torch
    from sentence_transformers import CrossEncoder

    from hnmine.inference.models import resolve_model

    torch.manual_seed(0)
    ce_dir = tmp_path_factory.mktemp("ce") / "ce"
    CrossEncoder(resolve_model("all-MiniLM-L6-v2")[0], num_labels=1, device="cpu").save(str(ce_dir))
    docs = [f"{d['title']} {d['text']}" for d in TINY_DOCS]
    queries = [q["text"] for q in TINY_QUERIES for _ in docs]
    return str(ce_dir), queries, docs * len(TINY_QUERIES)


def test_cross_encoder_scores_are_the_same_bytes_with_two_workers_and_the_same_threads(cross_encoder_pairs):
    from hnmine.executors.local import LocalExecutor
    from hnmine.inference import cross_encoder
    from hnmine.parts import Layout

    model, queries, texts = cross_encoder_pairs
    one = cross_encoder.score_all(model, queries, texts, batch_size=4, layout=Layout(("cpu",), 1))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cross_encoder, "PART_PAIRS", 8)  # several parts for the two workers
        two = cross_encoder.score_all(model, queries, texts, batch_size=4, layout=Layout(("cpu", "cpu"), 1), executor=LocalExecutor())
    assert one.shape == (len(queries),) and np.isfinite(one).all()
    assert one.tobytes() == two.tobytes()


def test_cross_encoder_scores_with_default_threads_agree_within_the_tolerance(cross_encoder_pairs):
    """Default threads differ between one process and two workers: another summation order."""
    from reproducibility import score_tolerance

    from hnmine.executors.local import LocalExecutor
    from hnmine.inference import cross_encoder
    from hnmine.inference.pool import available_cpus
    from hnmine.parts import Layout

    model, queries, texts = cross_encoder_pairs
    one = cross_encoder.score_all(model, queries, texts, batch_size=4, layout=Layout(("cpu",), available_cpus()))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cross_encoder, "PART_PAIRS", 8)
        layout = Layout(("cpu", "cpu"), max(1, available_cpus() // 2))
        two = cross_encoder.score_all(model, queries, texts, batch_size=4, layout=layout, executor=LocalExecutor())
    # logits, not cosines: the tolerance is relative to their scale
    scale = max(1.0, float(np.abs(one).max()))
    np.testing.assert_allclose(two, one, rtol=0, atol=score_tolerance("float32") * scale)


def test_workers_are_started_with_sigint_ignored():
    """A Ctrl-C that reaches a worker while it is still importing (before its initializer runs) must not
    print a traceback: workers are spawned with SIGINT ignored, which exec keeps and Python respects."""
    import signal
    import subprocess
    import sys

    from hnmine.inference.pool import _sigint_ignored

    with _sigint_ignored():
        out = subprocess.run(
            [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT))"], capture_output=True, text=True, check=True
        )
    assert out.stdout.strip() == str(signal.SIG_IGN)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored in the parent
