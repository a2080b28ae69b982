"""Methods registry, option resolution and validation, rules and samplers."""

from __future__ import annotations

import dataclasses
import unicodedata

import numpy as np
import pyarrow as pa
import pytest

from hnmine.errors import OptionError, UnknownName
from hnmine.methods import (
    DEFAULT_METHOD,
    REASONS,
    effective_options,
    get_method,
    method_names,
    resolve_options,
    rules,
    sampler_names,
)
from hnmine.methods.samplers import (
    Sampler,
    draw,
    get_sampler,
    query_seed,
    simans_log_weights,
    uniform01,
)
from hnmine.selection import FilterOptions


def draw_one(sampler: Sampler, scores: np.ndarray, positive_score: float, n: int, opts, seed: int = 0, query_id: str = "q") -> np.ndarray:
    """Positions the sampler picks for one query (scores in teacher order, highest first), sorted."""
    k = scores.shape[0]
    base = np.full(k, query_seed(seed, "sample", query_id), dtype=np.uint64)
    mask = draw(
        sampler,
        np.zeros(k, np.int64),
        np.arange(k),
        np.asarray(scores, np.float64),
        np.full(k, float(positive_score)),
        base,
        n,
        opts,
        lambda _: query_id,
    )
    return np.flatnonzero(mask)


def test_registered_names():
    assert method_names() == ["naive", "shifted", "topk-abs", "topk-marginpos", "topk-percpos", "sampled", "top1-sampled", "simans", "auto"]
    assert sampler_names() == ["top", "random", "softmax", "top1-softmax", "simans"]
    assert DEFAULT_METHOD in method_names()
    assert FilterOptions().method == DEFAULT_METHOD


def test_reasons_follow_the_tables_contract_order():
    assert REASONS == (
        "known_positive",
        "judged_relevant",
        "relabelled_positive",
        "positive_of_same_text_query",
        "same_text_as_positive",
        "near_duplicate_of_positive",
        "outside_rank_window",
        "above_max_score",
        "above_score_percentile",
        "below_min_score",
        "within_margin_of_positive",
        "within_relative_margin_of_positive",
        "same_text_as_negative",
        "not_sampled",
        "negative_reuse_cap",
    )


def test_unknown_method_and_sampling_list_valid_names():
    with pytest.raises(UnknownName, match=r"unknown method 'nope' \(valid: auto, naive, sampled, shifted"):
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
METHOD_FIELDS = (
    "range_min",
    "range_max",
    "max_score",
    "min_score",
    "margin",
    "relative_margin",
    "sample_pool",
    "temperature",
    "simans_a",
    "simans_b",
)


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


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"num_negatives": 0}, "--num-negatives must be between 1 and 1,000, got 0"),
        ({"depth": 0}, "--depth must be between 1 and 100,000, got 0"),
        ({"depth_step": 0}, "--depth-step must be between 1 and 100,000, got 0"),
        ({"depth": 50, "max_depth": 10}, r"--depth \(50\) is larger than --max-depth \(10\)"),
        ({"range_min": 10, "range_max": 10}, r"--range-min \(10\) must be smaller than --range-max \(10\)"),
        ({"range_min": 20, "range_max": 10}, "--range-min"),
        ({"range_min": 0}, "--range-min must be between 1 and"),
        ({"method": "shifted", "depth": 5, "max_depth": 8}, r"--range-min \(11\) is beyond --max-depth \(8\)"),
        ({"min_score": 0.8, "max_score": 0.5}, "--min-score"),
        ({"margin": -0.1}, "--margin must be at least 0"),
        ({"relative_margin": -0.1}, "--relative-margin must be at least 0"),
        ({"margin": float("nan")}, "finite"),
        ({"method": "sampled", "temperature": -1.0}, "--temperature must be above 0"),
        ({"method": "sampled", "temperature": 0.0}, "--temperature must be above 0"),
        ({"method": "simans", "simans_a": 0.0}, "--simans-a must be above 0"),
        ({"method": "sampled", "num_negatives": 20}, r"--sample-pool \(10\) must be at least --num-negatives \(20\)"),
        ({"method": "naive", "temperature": 0.5}, "--temperature has no effect with sampling 'top'"),
        ({"method": "sampled", "simans_a": 0.5}, "--simans-a has no effect with sampling 'softmax'"),
        ({"method": "naive", "sample_pool": 10}, "--sample-pool has no effect"),
        ({"num_negatives": 2, "min_negatives": 3}, r"--min-negatives \(3\) exceeds"),
        ({"random_negatives": -1}, "--random-negatives must be between 0 and 1,000, got -1"),
        ({"min_negatives": -1}, "--min-negatives must be between 0 and"),
        ({"positive_reference": "median"}, "unknown positive reference 'median'"),
        ({"dedup_threshold": 2.5}, "--dedup-threshold must be in"),
        ({"num_negatives": 2.5}, "must be a whole number"),
        ({"max_score": "high"}, "must be a number"),
    ],
)
def test_invalid_options(kw, message):
    with pytest.raises((OptionError, UnknownName), match=message) as err:
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


def test_known_positive_rule():
    assert rules.known_positive(np.array([True, False, True])).tolist() == [True, False, True]


def test_text_keys_match_the_documented_python_normalisation():
    titles = ["Fox", None, "", "Cafe\u0301", "A\u00a0b"]
    texts = [" The  quick\nbrown\tfox ", "body", "  ", "menu\u2003du jour", "C"]
    got = rules.text_keys(pa.array(titles, pa.string()), pa.array(texts, pa.string())).to_pylist()
    expected = [" ".join(unicodedata.normalize("NFC", (t or "") + " " + x).split()) for t, x in zip(titles, texts)]
    assert got == expected
    assert got[0] == "Fox The quick brown fox" and got[3] == "Caf\u00e9 menu du jour"


def test_same_text_as_positive_rule_compares_within_the_query():
    # query 0's positives have texts 3 and 5, query 1's text 7
    hit = rules.same_text_as_positive(np.array([0, 0, 0, 1, 1, 2]), np.array([3, 5, 7, 3, 7, 3]), np.array([0, 0, 1]), np.array([3, 5, 7]))
    assert hit.tolist() == [True, True, False, False, True, False]
    none = rules.same_text_as_positive(np.array([0]), np.array([3]), np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert none.tolist() == [False]


def test_near_duplicate_of_positive_rule():
    cos = np.array([0.99, 0.95, 0.9, -np.inf])
    assert rules.near_duplicate_of_positive(cos, 0.95).tolist() == [True, True, False, False]
    assert not rules.near_duplicate_of_positive(cos, None).any()


def test_score_rules():
    s = np.array([0.9, 0.7, 0.5, 0.1])
    assert rules.above_max_score(s, 0.7).tolist() == [True, False, False, False]
    assert rules.below_min_score(s, 0.5).tolist() == [False, False, False, True]
    assert rules.within_margin_of_positive(s, 0.75, 0.25).tolist() == [True, True, True, False]
    assert rules.within_relative_margin_of_positive(s, -1.0, 0.05).tolist() == [True, True, True, True]
    assert rules.outside_rank_window(np.arange(1, 6), 2, 4).tolist() == [True, False, False, False, True]
    assert not rules.above_max_score(s, None).any()


def test_score_reasons_first_match():
    eff = resolve_options(FilterOptions(method="naive", max_score=0.8, min_score=0.2, margin=0.25, relative_margin=0.5))
    s = np.array([0.9, 0.6, 0.45, 0.3, 0.1])
    got = [REASONS[c] if c >= 0 else None for c in rules.score_reasons(s, 0.75, eff)]
    assert got == ["above_max_score", "within_margin_of_positive", "within_relative_margin_of_positive", None, "below_min_score"]


# ------------------------------------------------------------------------------------- samplers


def _opts(**kw):
    return resolve_options(FilterOptions(**kw))


def test_uniform01_is_open_interval_and_spread():
    u = uniform01(np.full(20000, 12345, np.uint64), np.arange(20000))
    assert (u > 0).all() and (u < 1).all()
    assert abs(u.mean() - 0.5) < 0.01
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 1800
    # another seed, another stream
    v = uniform01(np.full(20000, 12346, np.uint64), np.arange(20000))
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.03


def test_query_seed_depends_on_every_part():
    s = {query_seed(1, "sample", "q"), query_seed(2, "sample", "q"), query_seed(1, "random", "q"), query_seed(1, "sample", "r")}
    assert len(s) == 4
    assert query_seed(1, "sample", "q") == query_seed(1, "sample", "q")


def test_softmax_first_draw_frequencies():
    # p(first) = softmax(log [0.5, 0.3, 0.2]); one draw per query seed
    o = _opts(method="naive", sampling="softmax", num_negatives=1, temperature=1.0)
    s = np.log(np.array([0.5, 0.3, 0.2]))
    counts = np.zeros(3)
    for i in range(4000):
        counts[draw_one(get_sampler("softmax"), s, 0.0, 1, o, query_id=f"q{i}")[0]] += 1
    assert np.allclose(counts / counts.sum(), [0.5, 0.3, 0.2], atol=0.03)


def test_random_is_uniform_without_replacement():
    o = _opts(method="naive", sampling="random", num_negatives=3)
    counts = np.zeros(6)
    for i in range(3000):
        got = draw_one(get_sampler("random"), np.linspace(1, 0, 6), 0.0, 3, o, query_id=f"q{i}")
        assert len(set(got.tolist())) == 3 and got.tolist() == sorted(got.tolist())
        counts[got] += 1
    assert np.allclose(counts / 3000, 0.5, atol=0.05)


def test_top_is_the_first_n():
    o = _opts(method="naive")
    assert draw_one(get_sampler("top"), np.linspace(1, 0, 8), 0.0, 3, o).tolist() == [0, 1, 2]


def test_softmax_is_log_space_safe_with_large_scores():
    s = np.array([1000.0, 999.0, 10.0, -1000.0])
    got = draw_one(get_sampler("softmax"), s, 0.0, 2, _opts(method="sampled", num_negatives=2))
    assert got.tolist() == [0, 1]  # 10 and -1000 have weight e^-990 relative to the top two


def test_pool_limits_the_draws():
    o = _opts(method="sampled", num_negatives=2, sample_pool=3, temperature=100.0)
    for i in range(200):
        got = draw_one(get_sampler("softmax"), np.linspace(1, 0, 10), 0.0, 2, o, query_id=str(i))
        assert set(got.tolist()) <= {0, 1, 2}


def test_top1_softmax_keeps_first():
    s = np.linspace(1, 0, 10)
    o = _opts(method="top1-sampled", num_negatives=3)
    seen = set()
    for i in range(50):
        got = draw_one(get_sampler("top1-softmax"), s, 2.0, 3, o, query_id=str(i))
        assert got[0] == 0 and len(set(got.tolist())) == 3 and max(got) < 10
        seen.add(tuple(got))
    assert len(seen) > 5


def test_simans_log_weights_and_underflow():
    assert simans_log_weights(np.array([0.5, 1.0]), 0.5, 0.5, 0.0).tolist() == [0.0, -0.125]
    o = _opts(method="simans", num_negatives=1)
    with pytest.raises(OptionError, match=r"query 'qq'.*positive score 80.*candidate scores 0..1") as e:
        draw_one(get_sampler("simans"), np.array([1.0, 0.0]), 80.0, 1, o, query_id="qq")
    assert "\n" not in str(e.value)
    # weights that are tiny but not zero still sample (log space): e^-612 and e^-648
    got = draw_one(get_sampler("simans"), np.array([1.0, 0.0, -3.0]), 36.0, 2, o)
    assert got.tolist() == [0, 1]
