"""Encoding a text the same way whatever else is encoded with it, so a stored vector is what a cold encode gives.

A text's vector depends on its batch through padding: a batch is padded to its longest text, and the padded
shapes change the last bits (up to 2e-3 in bfloat16, measured on SciFact) although the attention mask makes
the padding irrelevant in exact arithmetic. So the store pads every text to a length that depends on the text
alone: its token count (its prompt included, cut at the model's limit) rounded up to a multiple of BUCKET
tokens, at most the model's limit, and batches texts of one padded length together. The shapes a text goes
through are then its own padded length times the batch's size. Whether a row's bytes depend on how many rows
the batch has, or on the other rows (a kernel that picks another blocking for another size) is the machine's
affair: it is checked once per machine and encoder, by the worker that holds the model, encoding texts of one
padded length (and several true lengths) in batches of several sizes and alone (`batching_mode`, cached in
the user's hnmine cache like the `--dtype auto` choice). Where the bytes differ, texts are encoded one at a
time: slower, and the same promise.

Why buckets rather than batches of one exact token count: on SciFact (5,183 abstracts, most near the
256-token limit) exact lengths make 285 batches for 162 padded ones, many of one to three texts, and cost
2.0x the CPU time of padded batches (1,500 abstracts, bfloat16, 2-core AMD EPYC); buckets of 8 tokens fill the
batches and pad at most 7 tokens a text (docs/performance.md has the figures of `benchmarks/bench_store.py`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from hnmine.errors import ModelError, OptionError

SAME_LENGTH = "same-length"  # batches of texts of one padded length
ONE_BY_ONE = "one-by-one"  # a batch per text: where the machine's kernels give a row other bits in another batch
PROBE_VERSION = 3
BUCKET = 8  # a text is padded to its token count rounded up to a multiple of this (part of the store's identity)
_PROBE_WORDS = (
    "protein cell gene expression analysis patients study results clinical effect treatment increased "
    "reduced associated levels risk model data significant response mechanism function human disease"
).split()


def resolved_prompt(model, prompt: str | None, prompt_name: str | None, model_name: str) -> str | None:
    """The text put before each text, as sentence-transformers resolves it (a prompt, a named one, the model's default)."""
    if prompt is not None:
        return prompt
    prompts = dict(getattr(model, "prompts", None) or {})
    if prompt_name is not None:
        if prompt_name not in prompts:
            names = ", ".join(sorted(prompts)) or "(none)"
            raise OptionError(f"model '{model_name}' has no prompt named '{prompt_name}' (prompts: {names})")
        return prompts[prompt_name]
    default = getattr(model, "default_prompt_name", None)
    return prompts.get(default) if default is not None else None


def token_lengths(model, texts: list[str], prompt: str | None) -> np.ndarray | None:
    """Each text's token count as the model sees it (prompt included, cut at its limit); None when its
    features carry no attention mask to count with."""
    out = np.empty(len(texts), dtype=np.int64)
    for a in range(0, len(texts), 256):
        part = texts[a : a + 256]
        if hasattr(model, "preprocess"):
            features = model.preprocess(part, prompt=prompt)
        else:  # sentence-transformers before 6
            features = model.tokenize([prompt + t for t in part] if prompt else part)
        try:
            mask = features["attention_mask"]
        except (KeyError, TypeError, IndexError):
            return None
        out[a : a + len(part)] = np.asarray(mask.sum(dim=1).cpu().numpy(), dtype=np.int64)
    return out


def padded_length(length: int, limit: int | None) -> int:
    """The length a text of `length` tokens is padded to: the next multiple of BUCKET, at most `limit`."""
    rounded = -(-int(length) // BUCKET) * BUCKET
    return min(rounded, limit) if limit else rounded


def model_limit(model) -> int | None:
    """The most tokens the model reads (what token_lengths cuts at): its max_seq_length, else its tokenizer's."""
    limit = getattr(model, "max_seq_length", None)
    if not limit:
        limit = getattr(getattr(model, "tokenizer", None), "model_max_length", None)
    return int(limit) if limit and limit < 1_000_000 else None


def length_batches(
    lengths: np.ndarray | None, n: int, batch_size: int, mode: str, limit: int | None
) -> list[tuple[np.ndarray, int | None]]:
    """Positions of the texts in batches, with the length each batch is padded to: longest first, each batch of
    one padded length and at most `batch_size` texts (one text each in ONE_BY_ONE mode). Lengths unknown: one
    text a batch, unpadded (None)."""
    if lengths is None:
        return [(np.array([i]), None) for i in range(n)]
    padded = np.array([padded_length(x, limit) for x in lengths], dtype=np.int64)
    order = np.lexsort((np.arange(n), -padded))
    size = 1 if mode == ONE_BY_ONE else batch_size
    batches: list[tuple[np.ndarray, int | None]] = []
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and stop - start < size and padded[order[stop]] == padded[order[start]]:
            stop += 1
        batches.append((order[start:stop], int(padded[order[start]])))
        start = stop
    return batches


def encode_rows(model, texts: list[str], spec, prompt: str | None, prompt_name: str | None, mode: str, advance=None) -> np.ndarray:
    """Vectors of `texts` (float32, in their order), each computed padded to its own bucket's length."""
    import torch

    torch.set_num_threads(spec.resolved_threads())
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    prompt = resolved_prompt(model, prompt, prompt_name, spec.model)
    lengths = token_lengths(model, texts, prompt) if hasattr(model, "preprocess") else None
    out: np.ndarray | None = None
    for batch, pad_to in length_batches(lengths, len(texts), spec.batch_size, mode, model_limit(model)):
        vectors = _encode_batch(model, [texts[i] for i in batch], prompt, spec.normalize, pad_to)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[batch] = vectors
        if advance is not None:
            advance(len(batch))
    assert out is not None
    if not np.isfinite(out).all():
        raise ModelError(f"model '{spec.model}' produced non-finite embeddings (try --dtype float32)")
    return out


def _encode_batch(model, batch: list[str], prompt: str | None, normalize: bool, pad_to: int | None) -> np.ndarray:
    """One batch through the model, padded to `pad_to` tokens (sentence-transformers' processing_kwargs);
    None: a single text, unpadded (a model whose features carry no attention mask)."""
    import torch

    padding = {"processing_kwargs": {"text": {"padding": "max_length", "max_length": pad_to}}} if pad_to else {}
    with torch.inference_mode():
        emb = model.encode(
            batch,
            prompt=prompt,
            batch_size=len(batch),
            show_progress_bar=False,
            convert_to_tensor=True,
            normalize_embeddings=normalize,
            **padding,
        )
    return emb.float().cpu().numpy()


# ------------------------------------------------------------------------------- the per-machine check


def batching_mode(model, spec, prompt: str | None, prompt_name: str | None, identity_hash: str) -> str:
    """SAME_LENGTH where this machine gives a row the same bytes in a batch of any size, else ONE_BY_ONE: checked
    once per machine and encoder identity with `model` (the one a worker holds, on its own device), and cached."""
    path = _mode_path(identity_hash)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("mode") in (SAME_LENGTH, ONE_BY_ONE):
            return str(saved["mode"])
    except (OSError, ValueError, AttributeError):
        pass
    mode = SAME_LENGTH if rows_independent(model, spec, resolved_prompt(model, prompt, prompt_name, spec.model)) else ONE_BY_ONE
    try:
        from hnmine.inference.dtype import cpu_identity
        from hnmine.io.atomic import write_json

        write_json({"mode": mode, "machine": cpu_identity(), "probe": PROBE_VERSION}, path)
    except Exception:  # noqa: BLE001 - an unwritable cache only means checking again next time
        pass
    return mode


ONE_BY_ONE_WARNING = (
    "on this machine a text's vector changes with the size of its batch: the embedding store encodes "
    "one text at a time here (slower; the same bytes whatever is encoded with it)"
)


def _mode_path(identity_hash: str) -> Path:
    from hnmine.io.user_cache import cache_dir

    digest = hashlib.sha256(f"{identity_hash}:{PROBE_VERSION}".encode()).hexdigest()[:32]
    return cache_dir() / "batching" / f"{digest}.json"


def probe_groups(model, prompt: str | None) -> list[tuple[list[str], int]]:
    """Groups of at least three texts of one padded length each, where the words allow with one text exactly that
    long (unpadded) and others padded up to it: an unpadded row may take another attention path than a padded
    one, and its bytes must not change with its company either. Short texts, texts of some 40 words, and texts
    around the model's limit (some cut at it, some just under it)."""
    n = len(_PROBE_WORDS)
    limit = model_limit(model)

    def texts_of(first_words: int) -> list[str]:  # one word more each: consecutive lengths, several buckets
        return [" ".join(_PROBE_WORDS[(i * 5 + j * 7) % n] for j in range(first_words + i)) for i in range(20)]

    starts = [3, 40]
    if limit:
        sample = token_lengths(model, texts_of(40)[:1], prompt)
        if sample is None:
            return []
        per_word = max(float(sample[0]) / 40, 0.5)
        starts.append(max(int((limit - 6) / per_word), 1))
    groups: list[tuple[list[str], int]] = []
    for start in starts:
        texts = texts_of(start)
        lengths = token_lengths(model, texts, prompt)
        if lengths is None:
            return []
        members: dict[int, list[tuple[str, int]]] = {}
        for text, length in zip(texts, lengths):
            members.setdefault(padded_length(length, limit), []).append((text, int(length)))

        best = max(members, key=lambda pad: _mixed(pad, [length for _, length in members[pad]]))  # noqa: B023 - used at once
        group = [text for text, _ in members[best]]
        if len(group) >= 3:
            groups.append((group, best))
    return groups


def _mixed(pad: int, lengths: list[int]) -> tuple[bool, int]:
    """Probe preference: the longest padded length with a text exactly that long and one padded up to it."""
    return (pad in lengths and min(lengths) < pad and len(lengths) >= 3, pad)


def rows_independent(model, spec, prompt: str | None) -> bool:
    """Whether every probe text gets the same bytes alone, in its whole group, and in a pair in another order."""
    import torch

    torch.set_num_threads(spec.resolved_threads())
    if not hasattr(model, "preprocess"):
        return False
    groups = probe_groups(model, prompt)
    if not groups:
        return False
    for group, pad_to in groups:
        whole = _encode_batch(model, group, prompt, spec.normalize, pad_to)
        pair = _encode_batch(model, [group[-1], group[0]], prompt, spec.normalize, pad_to)
        if pair.tobytes() != whole[[-1, 0]].tobytes():
            return False
        for i, text in enumerate(group):
            if _encode_batch(model, [text], prompt, spec.normalize, pad_to).tobytes() != whole[i : i + 1].tobytes():
                return False
    return True
