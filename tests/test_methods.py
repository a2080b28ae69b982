"""Methods registry, option resolution and validation, rules and samplers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hnmine.errors import OptionError, UnknownName
from hnmine.methods import (
    DEFAULT_METHOD,
    REASONS,
    effective_options,
    get_method,
    method_names,
    resolve_options,
    sampler_names,
)
from hnmine.methods import rules
from hnmine.methods.samplers import gumbel_top_k, sample_simans, sample_softmax, sample_top1_softmax
from hnmine.stages.filter import FilterOptions


def test_registered_names():
    assert method_names() == ["naive", "shifted", "topk-abs", "topk-marginpos", "topk-percpos",
                              "sampled", "top1-sampled", "simans"]
    assert sampler_names() == ["top", "random", "softmax", "top1-softmax", "simans"]
    assert DEFAULT_METHOD in method_names()
    assert FilterOptions().method == DEFAULT_METHOD


def test_reasons_follow_the_tables_contract_order():
    assert REASONS == ("known_positive", "same_text_as_positive", "near_duplicate_of_positive",
                       "outside_rank_window", "above_max_score", "below_min_score",
                       "within_margin_of_positive", "within_relative_margin_of_positive",
                       "not_sampled")


def test_unknown_method_and_sampling_list_valid_names():
    with pytest.raises(UnknownName, match=r"unknown method 'nope' \(valid: naive, sampled, shifted"):
        resolve_options(FilterOptions(method="nope"))
    with pytest.raises(UnknownName, match=r"unknown sampling 'gibbs' \(valid: random, simans, softmax"):
        resolve_options(FilterOptions(method="naive", sampling="gibbs"))


EXPECTED = {
    # method: (sampling, {option: effective default})
    "naive": ("top", {}),
    "shifted": ("top", {"range_min": 11}),
    "topk-abs": ("top", {"max_score": 0.7}),
    "topk-marginpos": ("top", {"margin": 0.05}),
    "topk-percpos": ("top", {"relative_margin": 0.05}),
    "sampled": ("softmax", {"relative_margin": 0.05, "sample_pool": 10, "temperature": 1.0}),
    "top1-sampled": ("top1-softmax", {"relative_margin": 0.05, "sample_pool": 10, "temperature": 1.0}),
    "simans": ("simans", {"simans_a": 0.5, "simans_b": 0.0}),
}
METHOD_FIELDS = ("range_min", "range_max", "max_score", "min_score", "margin", "relative_margin",
                 "sample_pool", "temperature", "simans_a", "simans_b")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_method_defaults(name):
    sampling, defaults = EXPECTED[name]
    eff = resolve_options(FilterOptions(method=name))
    assert eff.sampling == sampling
    for f in METHOD_FIELDS:
        assert getattr(eff, f) == defaults.get(f), f
    assert eff.depth_step == eff.depth
    assert resolve_options(eff) == eff  # idempotent
    assert get_method(name).source


def test_user_values_override_method_defaults():
    eff = resolve_options(FilterOptions(method="shifted", range_min=3, range_max=40))
    assert (eff.range_min, eff.range_max) == (3, 40)
    eff = resolve_options(FilterOptions(method="sampled", temperature=0.05, sample_pool=20))
    assert (eff.temperature, eff.sample_pool, eff.relative_margin) == (0.05, 20, 0.05)
    eff = resolve_options(FilterOptions(method="topk-percpos", relative_margin=0.0))
    assert eff.relative_margin == 0.0  # 0 is a value, not "unset"


def test_sampler_change_fills_its_defaults_and_drops_the_others():
    eff = resolve_options(FilterOptions(method="sampled", sampling="top"))
    assert (eff.sampling, eff.sample_pool, eff.temperature, eff.relative_margin) == ("top", None, None, 0.05)
    eff = resolve_options(FilterOptions(method="naive", sampling="simans"))
    assert (eff.simans_a, eff.simans_b, eff.sample_pool) == (0.5, 0.0, None)
    eff = resolve_options(FilterOptions(method="naive", sampling="softmax"))
    assert (eff.sample_pool, eff.temperature) == (10, 1.0)


def test_effective_options_is_a_plain_dict():
    d = effective_options(FilterOptions(method="topk-abs"))
    assert d["max_score"] == 0.7 and d["method"] == "topk-abs" and d["sampling"] == "top"
    assert set(d) == {f.name for f in dataclasses.fields(FilterOptions)}


@pytest.mark.parametrize("kw, message", [
    ({"num_negatives": 0}, "num_negatives must be >= 1"),
    ({"depth": 0}, "depth must be >= 1"),
    ({"depth_step": 0}, "depth_step must be >= 1"),
    ({"depth": 50, "max_depth": 10}, r"max_depth \(10\) must be >= depth \(50\)"),
    ({"range_min": 10, "range_max": 10}, r"range_min \(10\) must be < range_max \(10\)"),
    ({"range_min": 20, "range_max": 10}, "range_min"),
    ({"range_min": 0}, "1-based"),
    ({"method": "shifted", "depth": 5, "max_depth": 8}, r"range_min \(11\) is beyond max_depth \(8\)"),
    ({"min_score": 0.8, "max_score": 0.5}, "min_score"),
    ({"margin": -0.1}, "margin must be >= 0"),
    ({"relative_margin": -0.1}, "relative_margin must be >= 0"),
    ({"margin": float("nan")}, "finite"),
    ({"method": "sampled", "temperature": -1.0}, "temperature must be > 0"),
    ({"method": "sampled", "temperature": 0.0}, "temperature must be > 0"),
    ({"method": "simans", "simans_a": 0.0}, "simans_a must be > 0"),
    ({"method": "sampled", "num_negatives": 20}, r"sample_pool \(10\) must be >= num_negatives \(20\)"),
    ({"method": "naive", "temperature": 0.5}, "temperature has no effect with sampling 'top'"),
    ({"method": "sampled", "simans_a": 0.5}, "simans_a has no effect with sampling 'softmax'"),
    ({"method": "naive", "sample_pool": 10}, "sample_pool has no effect"),
    ({"num_negatives": 2, "min_negatives": 3}, r"min_negatives \(3\) exceeds"),
    ({"random_negatives": -1}, "random_negatives must be >= 0"),
    ({"min_negatives": -1}, "min_negatives must be >= 0"),
    ({"positive_reference": "median"}, "unknown positive_reference 'median'"),
    ({"dedup_threshold": 1.5}, "dedup_threshold"),
    ({"num_negatives": 2.5}, "must be an integer"),
    ({"max_score": "high"}, "must be a number"),
])
def test_invalid_options(kw, message):
    with pytest.raises(OptionError, match=message) as err:
        resolve_options(FilterOptions(**kw))
    assert "\n" not in str(err.value)


def test_min_negatives_may_count_random_negatives():
    eff = resolve_options(FilterOptions(num_negatives=2, random_negatives=2, min_negatives=4))
    assert eff.min_negatives == 4


# ------------------------------------------------------------------------------------- rules

def test_relative_margin_threshold_is_sign_safe():
    assert rules.relative_margin_threshold(0.8, 0.05) == pytest.approx(0.76)
    assert rules.relative_margin_threshold(-2.0, 0.05) == pytest.approx(-2.1)
    assert rules.relative_margin_threshold(0.0, 0.05) == 0.0
    for sp in (-5.0, -0.3, 0.0, 0.3, 5.0):
        assert rules.relative_margin_threshold(sp, 0.1) <= sp


def test_score_rules():
    s = np.array([0.9, 0.7, 0.5, 0.1])
    assert rules.above_max_score(s, 0.7).tolist() == [True, False, False, False]
    assert rules.below_min_score(s, 0.5).tolist() == [False, False, False, True]
    assert rules.within_margin(s, 0.75, 0.25).tolist() == [True, True, True, False]
    assert rules.within_relative_margin(s, -1.0, 0.05).tolist() == [True, True, True, True]
    assert rules.outside_rank_window(np.arange(1, 6), 2, 4).tolist() == [True, False, False, False, True]
    assert not rules.above_max_score(s, None).any()


def test_score_reasons_first_match():
    eff = resolve_options(FilterOptions(method="naive", max_score=0.8, min_score=0.2, margin=0.25,
                                        relative_margin=0.5))
    s = np.array([0.9, 0.6, 0.45, 0.3, 0.1])
    got = [REASONS[c] if c >= 0 else None for c in rules.score_reasons(s, 0.75, eff)]
    assert got == ["above_max_score", "within_margin_of_positive",
                   "within_relative_margin_of_positive", None, "below_min_score"]


# ------------------------------------------------------------------------------------- samplers

def test_gumbel_top_k_matches_softmax_first_draw():
    logits = np.log(np.array([0.5, 0.3, 0.2]))
    rng = np.random.default_rng(0)
    counts = np.zeros(3)
    for _ in range(6000):
        counts[gumbel_top_k(logits, 1, rng)[0]] += 1
    assert np.allclose(counts / counts.sum(), [0.5, 0.3, 0.2], atol=0.025)


def test_gumbel_top_k_without_replacement():
    rng = np.random.default_rng(1)
    for _ in range(100):
        got = gumbel_top_k(np.zeros(7), 4, rng)
        assert len(set(got.tolist())) == 4 and got.tolist() == sorted(got.tolist())


def _opts(**kw):
    return resolve_options(FilterOptions(**kw))


def test_softmax_is_log_space_safe_with_large_scores():
    s = np.array([1000.0, 999.0, 10.0, -1000.0])
    got = sample_softmax(s, 2, 0.0, _opts(method="sampled", num_negatives=2),
                         lambda: np.random.default_rng(0), "q")
    assert set(got.tolist()) <= {0, 1, 2, 3} and len(got) == 2


def test_top1_softmax_keeps_first():
    s = np.linspace(1, 0, 10)
    for seed in range(20):
        got = sample_top1_softmax(s, 3, 2.0, _opts(method="top1-sampled", num_negatives=3),
                                  lambda: np.random.default_rng(seed), "q")
        assert got[0] == 0 and len(set(got.tolist())) == 3


def test_simans_log_weights_and_underflow():
    lw = __import__("hnmine.methods.samplers", fromlist=["x"]).simans_log_weights(
        np.array([0.5, 1.0]), 0.5, 0.5, 0.0)
    assert lw.tolist() == [0.0, -0.125]
    o = _opts(method="simans", num_negatives=1)
    with pytest.raises(OptionError, match=r"query 'qq'.*positive score 80.*candidate scores 0..1"):
        sample_simans(np.array([1.0, 0.0]), 1, 80.0, o, lambda: np.random.default_rng(0), "qq")
    # a weight that is tiny but not zero still samples (log space)
    got = sample_simans(np.array([1.0, 0.0, -3.0]), 2, 36.0, o, lambda: np.random.default_rng(0), "qq")
    assert sorted(got.tolist()) == [0, 1]
