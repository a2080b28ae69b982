"""Batches are formed longest first by token count (the model's tokenizer), so little of each batch is padding."""

from __future__ import annotations

import numpy as np
from conftest import ROOT

from hnmine.inference.batching import _token_counts, encoding_order
from hnmine.inference.models import resolve_model
from hnmine.inference.spec import EncoderSpec


def _reference_counts(texts, limit):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2")[0])
    return np.array([len(ids) for ids in tok(texts, truncation=limit is not None, max_length=limit)["input_ids"]])


def _padded_tokens(counts: np.ndarray, order: np.ndarray, batch: int) -> int:
    return int(sum(counts[order[s : s + batch]].max() * len(order[s : s + batch]) for s in range(0, len(order), batch)))


TEXTS = [
    "a b c d e f g h i j",  # 19 characters, 10 words: 12 tokens
    "electroencephalographically",  # 27 characters, one word of several word pieces
    "hi",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a word",
    "x " * 40,  # 40 words: cut at the limit whatever the tokenizer does
    "",
]


def test_counts_are_the_tokenizers_own_with_truncation():
    for limit in (8, None):
        got = _token_counts(TEXTS, "all-MiniLM-L6-v2", limit)
        np.testing.assert_array_equal(got, _reference_counts(TEXTS, limit))


def test_order_is_longest_first_by_tokens_not_characters():
    counts = _reference_counts(TEXTS, 256)
    order = encoding_order(TEXTS, EncoderSpec())
    assert (np.diff(counts[order]) <= 0).all()
    chars = np.array([len(t) for t in TEXTS])
    assert not (np.diff(chars[order]) <= 0).all()  # this set is ordered differently by characters


def test_token_order_pads_less_than_character_order_on_sample_data():
    import json

    docs = [json.loads(line) for line in open(ROOT / "sample_data/corpus.jsonl", encoding="utf-8")]
    texts = [f"{d.get('title', '')} {d['text']}".strip() for d in docs]
    counts = _reference_counts(texts, 256)
    by_chars = np.argsort([len(t) for t in texts], kind="stable")[::-1]
    by_tokens = encoding_order(texts, EncoderSpec())
    assert _padded_tokens(counts, by_tokens, 16) < _padded_tokens(counts, by_chars, 16)


def test_without_a_readable_tokenizer_the_order_is_by_characters(tmp_path):
    (tmp_path / "model").mkdir()
    assert _token_counts(TEXTS, str(tmp_path / "model"), None) is None
    order = encoding_order(TEXTS, EncoderSpec(model=str(tmp_path / "model")))
    assert order.tolist() == np.argsort([len(t) for t in TEXTS], kind="stable")[::-1].tolist()
