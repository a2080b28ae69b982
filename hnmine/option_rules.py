"""The rules between `hnmine mine`'s options (--depth within --max-depth, a rank window that is not empty...),
each a function of the options it names; hnmine.options.check_values applies those whose options the
stages about to run read. Messages name the flags.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hnmine.errors import OptionError

# (the options a rule needs, all given; the rule)
RULES: list[tuple[tuple[str, ...], Callable[[Any], None]]] = []

_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?|cuda(:\d+)?(,cuda(:\d+)?)+")


def _rule(*needs: str):
    def register(fn):
        RULES.append((needs, fn))
        return fn

    return register


@_rule("depth", "max_depth")
def _depth_within_max_depth(o: Any) -> None:
    if o.depth > o.max_depth:
        raise OptionError(f"--depth ({o.depth}) is larger than --max-depth ({o.max_depth})")


@_rule("range_min", "range_max")
def _window_not_empty(o: Any) -> None:
    if o.range_min >= o.range_max:
        raise OptionError(f"--range-min ({o.range_min}) must be smaller than --range-max ({o.range_max})")


@_rule("range_min", "max_depth")
def _window_within_max_depth(o: Any) -> None:
    if o.range_min > o.max_depth:
        raise OptionError(f"--range-min ({o.range_min}) is beyond --max-depth ({o.max_depth}): no candidate can be inside the rank window")


@_rule("min_score", "max_score")
def _score_range_not_empty(o: Any) -> None:
    if o.min_score > o.max_score:
        raise OptionError(f"--min-score ({o.min_score}) must be at most --max-score ({o.max_score})")


@_rule("min_negatives", "num_negatives", "random_negatives")
def _min_negatives_reachable(o: Any) -> None:
    total = o.num_negatives + o.random_negatives
    if o.min_negatives > total:
        raise OptionError(
            f"--min-negatives ({o.min_negatives}) exceeds --num-negatives + --random-negatives ({total}): no query could ever be exported"
        )


@_rule("max_negative_reuse", "random_negatives")
def _reuse_cap_counts_mined_negatives(o: Any) -> None:
    if o.random_negatives > 0:
        raise OptionError(
            f"--max-negative-reuse caps the mined negatives, and --random-negatives ({o.random_negatives}) draws others "
            f"that it could not hold to the cap: give one or the other"
        )


@_rule("sample_pool", "num_negatives")
def _pool_holds_the_negatives(o: Any) -> None:
    if o.sample_pool < o.num_negatives:
        raise OptionError(
            f"--sample-pool ({o.sample_pool}) must be at least --num-negatives ({o.num_negatives}): "
            f"the negatives are drawn from the top --sample-pool eligible candidates"
        )


@_rule("device")
def _known_device(o: Any) -> None:
    if not _DEVICE.fullmatch(o.device):
        raise OptionError(f"unknown device '{o.device}' (valid: cpu, cuda, cuda:N, mps, or a list such as cuda:0,cuda:1)")


@_rule("model")
def _model_named(o: Any) -> None:
    if not o.model.strip():  # an empty path is the current folder: it would be loaded as a model
        raise OptionError("--model needs a model name or path, got an empty text")


@_rule("candidate_model")
def _candidate_models_named(o: Any) -> None:
    if any(not m.strip() for m in o.candidate_model):
        raise OptionError("--candidate-model needs a model name or path, got an empty text")


@_rule("query_prompt", "query_prompt_name")
def _one_query_prompt(o: Any) -> None:
    raise OptionError("--query-prompt and --query-prompt-name: give one (a text, or the name of a prompt stored in the model)")


@_rule("corpus_prompt", "corpus_prompt_name")
def _one_corpus_prompt(o: Any) -> None:
    raise OptionError("--corpus-prompt and --corpus-prompt-name: give one (a text, or the name of a prompt stored in the model)")


@_rule("teacher_type", "teacher")
def _cross_encoder_named(o: Any) -> None:
    if o.teacher_type == "cross-encoder" and not o.teacher:
        raise OptionError("--teacher-type cross-encoder needs --teacher MODEL (a cross-encoder name or path)")


@_rule("premined", "retriever", "candidate_model")
def _premined_retrieves_nothing(o: Any) -> None:
    """A pre-mined file's lists are the candidates: another retriever or candidate model would be unused."""
    if o.retriever != "dense" or o.candidate_model:
        given = f"--retriever {o.retriever}" if o.retriever != "dense" else "--candidate-model"
        raise OptionError(
            f"{given} and --premined: the pre-mined file's lists are the candidates and nothing is retrieved "
            f"(give the default --retriever dense, or --defaults)"
        )
