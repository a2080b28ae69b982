"""SimANS: sample ambiguous negatives near the positive's score (microsoft/SimXNS)."""

from hnmine.methods.base import Method

SIMANS = Method(
    name="simans",
    rule="draw k from all eligible with p ∝ exp(-a (s(n) - s(p) - b)^2), a = 0.5, b = 0",
    sampling="simans",
    defaults={"simans_a": 0.5, "simans_b": 0.0},
    source="SimANS (Zhou et al., EMNLP 2022 industry; microsoft/SimXNS code defaults)",
)

METHODS = (SIMANS,)
