"""What a negative-selection method is: default option values plus a default sampler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Options a method may set a default for. Each is `None` in FilterOptions, meaning "the method's
# default"; an explicit user value always wins over the method's default.
METHOD_OPTION_FIELDS = (
    "range_min",
    "range_max",
    "max_score",
    "min_score",
    "margin",
    "relative_margin",
    "sampling",
    "sample_pool",
    "temperature",
    "simans_a",
    "simans_b",
)


@dataclass(frozen=True)
class Method:
    """A named negative-selection method.

    name      registry name (`--method`)
    rule      one line: what it keeps
    sampling  the default sampler (`top`, `random`, `softmax`, `top1-softmax`, `simans`)
    defaults  default values of the options in METHOD_OPTION_FIELDS (`sampling` excluded)
    source    the paper or tool it comes from
    """

    name: str
    rule: str
    sampling: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.defaults) - set(METHOD_OPTION_FIELDS)
        if unknown or "sampling" in self.defaults:
            raise ValueError(f"method '{self.name}': bad default options {sorted(unknown)}")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
