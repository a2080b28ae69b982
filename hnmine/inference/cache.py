"""The vectors of a list of texts: each text looked up in the embedding store, only the missing ones encoded.

The store (hnmine.inference.store) holds one vector per (encoder identity, text) for every run and command
on the machine. The identity (`encoder_identity`) is everything that changes a vector's bytes: the model and
its revision, dtype, backend and package versions, max length, prompt, normalisation, torch threads, the
device (the CPU model, or the GPU), and the store's format. A text's vector does not depend on the texts
encoded with it (hnmine.inference.rowwise: each padded to its own token count rounded up to 8), so the batch size and
order are not part of it, and vectors read from the store are the bytes a cold encode gives.

The missing texts are encoded in length-sorted chunks of CHUNK texts, each a part run by the executor
(hnmine.parts: in this process, in worker processes, or in Ray actors that hold the model); every part
writes its own segment into the store as it finishes, so an interrupted encode resumes where it stopped,
on either engine. A run keeps its own assembled copy: RUN/cache/embeddings/KEY.npy with its sha256,
KEY naming the identity and the texts, which the index links into place and later stages read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from hnmine.inference.batching import encoding_order
from hnmine.inference.pool import split_batches
from hnmine.inference.rowwise import ONE_BY_ONE, ONE_BY_ONE_WARNING, batching_mode, encode_rows
from hnmine.inference.spec import EncoderSpec, encoder_identity
from hnmine.inference.store import Shard, StoreDamage, read_vectors, remove_segment, store_root, text_hashes, write_segment
from hnmine.io.atomic import atomic_path, open_npy_for_writing
from hnmine.parts import Parts, run_in_process
from hnmine.progress import Reporter

CHUNK = 4096


def texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    update_texts_digest(h, texts)
    return h.hexdigest()


def update_texts_digest(h, texts: Sequence[str]) -> None:
    """Feed texts to a texts_digest in order (the digest of a long list, part by part)."""
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)


def identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def embedding_key(
    spec: EncoderSpec, prompt: str | None, prompt_name: str | None, texts: Sequence[str] | None, *, digest: tuple[str, int] | None = None
) -> str:
    """The key of a run's assembled vectors of these texts: the encoder identity and the texts (in order);
    `digest`: (texts_digest, count) when the texts are not at hand."""
    text_digest, n = digest if digest is not None else (texts_digest(texts or ()), len(texts or ()))
    payload = {"store": identity_hash(encoder_identity(spec, prompt, prompt_name)), "texts": text_digest, "n": n}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def encode_cached(
    texts: Sequence[str],
    spec: EncoderSpec,
    cache_dir: Path,
    *,
    prompt: str | None = None,
    prompt_name: str | None = None,
    reporter: Reporter | None = None,
    description: str = "encoding",
    executor: Any = None,
) -> tuple[np.ndarray, str]:
    """Embeddings (float32, memory-mapped) for `texts`, from the run's copy in `cache_dir` when it is whole,
    else assembled from the store, the missing texts encoded by `executor` (None: in this process).
    Returns (array, key)."""
    reporter = reporter or Reporter()
    spec.validate()
    key = embedding_key(spec, prompt, prompt_name, texts)
    final = Path(cache_dir) / f"{key}.npy"
    _check_run_cache(Path(cache_dir))
    cached = load_verified(final, len(texts))
    if cached is not None:
        return cached, key
    with atomic_path(final) as tmp:
        target = _Target(lambda dim: open_npy_for_writing(tmp, (len(texts), dim), np.float32))
        fill_from_store(texts, spec, prompt, prompt_name, target.allocate, reporter=reporter, description=description, executor=executor)
        cast(np.memmap, target.array()).flush()
        target.made = None  # the memory map closed before the rename
    # The digest is written after the vectors: a run's copy without one (a killed process, an older
    # version) or whose bytes no longer match it is assembled again, never trusted.
    from hnmine.io.hashing import file_hash

    with atomic_path(_digest_path(final)) as tmp:
        tmp.write_text(file_hash(final) + "\n", encoding="utf-8")
    return np.load(final, mmap_mode="r"), key


def encode_texts(
    texts: Sequence[str],
    spec: EncoderSpec,
    *,
    prompt: str | None = None,
    prompt_name: str | None = None,
    reporter: Reporter | None = None,
    description: str = "encoding",
    label: str | None = None,
) -> np.ndarray:
    """Embeddings (float32, in memory) for `texts` through the store, the missing ones encoded in this process;
    `label`: how `hnmine cache` names the model when its shard is new (a model object has no name)."""
    spec.validate()
    target = _Target(lambda dim: np.empty((len(texts), dim), dtype=np.float32))
    fill_from_store(
        texts, spec, prompt, prompt_name, target.allocate, reporter=reporter or Reporter(), description=description, label=label
    )
    return target.array()


class _Target:
    """The array the vectors go into, made by `make(dim)` once the width is known (from the store or the model)."""

    def __init__(self, make: Callable[[int], np.ndarray]):
        self.make = make
        self.made: np.ndarray | None = None

    def allocate(self, dim: int) -> np.ndarray:
        self.made = self.make(dim)
        return self.made

    def array(self) -> np.ndarray:
        """What was made; no texts: an empty array, made now."""
        return self.made if self.made is not None else self.allocate(0)


class _Placer:
    """Puts the vectors of unique texts at every position that text holds, into the array `allocate` makes."""

    def __init__(self, inverse: np.ndarray, n_unique: int, allocate: Callable[[int], np.ndarray]):
        # The positions of each unique text, grouped: positions[starts[u]:starts[u + 1]] hold text u.
        self.positions = np.argsort(inverse, kind="stable")
        self.starts = np.searchsorted(inverse[self.positions], np.arange(n_unique + 1))
        self.allocate = allocate
        self.out: np.ndarray | None = None

    def put(self, unique_rows: np.ndarray, vectors: np.ndarray) -> None:
        from hnmine.errors import RunDirError

        if self.out is None:
            self.out = self.allocate(int(vectors.shape[1]))
        elif vectors.shape[1] != self.out.shape[1]:
            raise RunDirError(
                f"the embedding store ({store_root()}) holds vectors of {vectors.shape[1]} and {self.out.shape[1]} dimensions for one model"
            )
        counts = self.starts[unique_rows + 1] - self.starts[unique_rows]
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        self.out[self.positions[np.repeat(self.starts[unique_rows], counts) + offsets]] = np.repeat(vectors, counts, axis=0)


def fill_from_store(
    texts: Sequence[str],
    spec: EncoderSpec,
    prompt: str | None,
    prompt_name: str | None,
    allocate: Callable[[int], np.ndarray],
    *,
    reporter: Reporter,
    description: str,
    executor: Any = None,
    label: str | None = None,
) -> None:
    """Every text's vector into the array `allocate(dim)` makes (called once, unless there are no texts)."""
    identity = encoder_identity(spec, prompt, prompt_name)
    shard = Shard.of(identity_hash(identity))
    unique, first, inverse = np.unique(text_hashes(texts), return_index=True, return_inverse=True)
    placer = _Placer(inverse.reshape(-1), len(unique), allocate)
    missing = _read_stored(shard, unique, placer, reporter)
    if len(unique) and len(missing) < len(unique):
        held = len(unique) - len(missing)
        reporter.info(f"{description}: {held:,} of {len(unique):,} texts from the embedding store, {len(missing):,} to encode")
    if len(missing):
        record = {**identity, "name": label or spec.model}
        shard.ensure(record)
        pending = [texts[i] for i in first[missing]]
        _encode_missing(pending, missing, spec, (prompt, prompt_name), (shard, record), placer, reporter, description, executor)


def _read_stored(shard: Shard, unique: np.ndarray, placer: _Placer, reporter: Reporter) -> np.ndarray:
    """The store's vectors of these texts put in place; the positions (in `unique`) it does not hold."""
    found = shard.lookup(unique)
    for path, why in found.damaged:
        reporter.warn(f"{path}: a damaged segment of the embedding store ({why}); removed, its texts are encoded again")
    lost = []
    for s in np.unique(found.seg[found.seg >= 0]):
        wanted = np.flatnonzero(found.seg == s)
        seg = found.segments[int(s)]
        try:
            vectors = read_vectors(seg)
        except FileNotFoundError:  # pruned since the lookup
            lost.append(wanted)
            continue
        except (StoreDamage, OSError) as exc:
            reporter.warn(f"{seg.path}: a damaged segment of the embedding store ({exc}); removed, its texts are encoded again")
            remove_segment(seg.path)
            lost.append(wanted)
            continue
        placer.put(wanted, vectors[found.row[wanted]])
    return np.sort(np.concatenate([np.flatnonzero(found.seg < 0), *lost]))


def _encode_missing(
    texts: list[str],
    rows: np.ndarray,
    spec: EncoderSpec,
    prompts: tuple,
    store: tuple[Shard, dict],
    placer: _Placer,
    reporter,
    description,
    executor,
) -> None:
    """Encode `texts` (the unique texts at `rows`) in parts, each written to the store as a segment."""
    (prompt, prompt_name), (shard, record) = prompts, store
    # Length-sorted chunks: texts of one token count land in the same part, so its batches are full.
    order = encoding_order(texts, spec)
    layout = spec.layout()
    items: list[dict] = []
    positions: list[np.ndarray] = []
    for c in range(0, len(texts), CHUNK):
        idx = order[c : c + CHUNK]
        # With several workers a chunk is cut into pieces, a few per worker (hnmine.inference.pool).
        workers = len(layout.devices)
        pieces = split_batches(len(idx), spec.batch_size, workers) if workers > 1 else [(0, len(idx))]
        for a, b in pieces:
            items.append({"texts": [texts[i] for i in idx[a:b]]})
            positions.append(rows[idx[a:b]])
    shared = {"spec": spec.for_workers(), "prompt": prompt, "prompt_name": prompt_name, "shard": str(shard.folder), "record": record}
    step = Parts(
        label=description,
        items=items,
        run=encode_piece,
        shared=shared,
        hold=hold_encoder,
        units=lambda item: len(item["texts"]),
        layout=layout,
    )
    results = executor.map(step, reporter) if executor is not None else run_in_process(step, reporter)
    warned = False
    for where, (vectors, mode) in zip(positions, results):
        placer.put(where, vectors)
        if mode == ONE_BY_ONE and not warned:
            reporter.warn(ONE_BY_ONE_WARNING)
            warned = True


def hold_encoder(shared: dict, device: str) -> tuple[Any, str]:
    """What an encoding worker holds: the model, on its device, and how this machine batches for the store
    (checked here, where the model computes: a Ray driver may have no GPU)."""
    spec = shared["spec"].on(device)
    model = spec.load()
    return model, batching_mode(model, spec, shared["prompt"], shared["prompt_name"], Path(shared["shard"]).name)


def encode_piece(item: dict, shared: dict, held: tuple[Any, str]) -> tuple[np.ndarray, str]:
    """Some texts through the model, written to the store as one segment (by whichever worker ran them): their
    vectors, and the batching that made them."""
    model, mode = held
    vectors = encode_rows(model, item["texts"], shared["spec"], shared["prompt"], shared["prompt_name"], mode)
    shard = Shard(Path(shared["shard"]))
    write_segment(shard.folder, text_hashes(item["texts"]), vectors)
    shard.ensure(shared["record"])  # again, should a prune have emptied the shard meanwhile
    return vectors, mode


def _check_run_cache(cache_dir: Path) -> None:
    """The run's copy is written only inside the run directory, never through a link; an older version's
    unfinished encode (KEY.parts, now the store's work) is removed."""
    from hnmine.run_layout import refuse_link, remove_inside

    root = _cache_root(cache_dir)
    refuse_link(root, cache_dir)
    for parts in cache_dir.glob("*.parts"):
        remove_inside(root, parts)


def _cache_root(folder: Path) -> Path:
    """The run directory of a run's cache folder (RUN/cache/embeddings: RUN); else the folder itself."""
    from hnmine.run_layout import LAYOUT

    cache = Path(LAYOUT["embedding_cache"]).parts
    return Path(*folder.parts[: -len(cache)]) if folder.parts[-len(cache) :] == cache else folder


def _digest_path(final: Path) -> Path:
    return final.with_name(final.name + ".sha256")


def load_verified(final: Path, n_rows: int) -> np.ndarray | None:
    """The run's copy when its bytes match the recorded sha256 and its shape the texts; else None."""
    from hnmine.io.hashing import file_hash
    from hnmine.io.vectors import NPY_ERRORS

    digest = _digest_path(final)
    if not final.exists() or not digest.exists():
        return None
    try:
        if file_hash(final) != digest.read_text(encoding="utf-8").strip():
            return None
        vectors = np.load(final, mmap_mode="r")
    except NPY_ERRORS:
        return None
    if vectors.ndim != 2 or vectors.shape[0] != n_rows or vectors.dtype != np.float32:
        return None
    return vectors
