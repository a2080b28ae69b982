"""Histograms and bars drawn with unicode block characters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Eighths of a cell, bottom-up (column charts) and left-to-right (bars).
V_BLOCKS = " ▁▂▃▄▅▆▇█"
H_BLOCKS = " ▏▎▍▌▋▊▉█"


def histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    """Counts of finite `values` in the bins of `edges` (last bin closed)."""
    values = values[np.isfinite(values)]
    counts, _ = np.histogram(values, bins=edges)
    return [int(c) for c in counts]


def shared_edges(series: Sequence[np.ndarray], bins: int) -> np.ndarray:
    """Bin edges covering every finite value of every series."""
    finite = [s[np.isfinite(s)] for s in series]
    finite = [s for s in finite if s.size]
    if not finite:
        return np.linspace(0.0, 1.0, bins + 1)
    lo = float(min(s.min() for s in finite))
    hi = float(max(s.max() for s in finite))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def rebin(counts: Sequence[int], width: int) -> list[int]:
    """Merge adjacent bins until there are at most `width` of them."""
    counts = list(counts)
    while len(counts) > width and len(counts) > 1:
        merged = [sum(counts[i : i + 2]) for i in range(0, len(counts), 2)]
        counts = merged
    return counts


def count_buckets(counts: Sequence[int], max_buckets: int = 12) -> list[tuple[int, int, int]]:
    """(first value, last value, count) buckets of `counts` (counts[v]: how many have the value v):
    one per value when there are at most `max_buckets` values, else the first and the last value
    alone (no negatives, the target) and the values between in ranges of equal width."""
    n = len(counts)
    if n <= max(max_buckets, 3):
        return [(v, v, int(c)) for v, c in enumerate(counts)]
    width = _round_up(-(-(n - 2) // (max_buckets - 2)))  # at most max_buckets - 2 ranges in between
    inner = [(lo, min(lo + width, n - 1) - 1, int(sum(counts[lo : min(lo + width, n - 1)]))) for lo in range(1, n - 1, width)]
    return [(0, 0, int(counts[0]))] + inner + [(n - 1, n - 1, int(counts[-1]))]


def _round_up(x: int) -> int:
    """The smallest of 1, 2, 5 × 10^k at least `x` (ranges that read well: 1–100, 101–200…)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= x:
                return step * scale
        scale *= 10


def bucket_label(lo: int, hi: int) -> str:
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def column_chart(counts: Sequence[int], height: int = 3, peak: int | None = None) -> list[str]:
    """Rows of a column chart, top row first, one character per bin.

    Heights are scaled to `peak` (default: the largest count); a bin with any count shows at
    least one eighth, so a single outlier is still visible.
    """
    peak = max(counts, default=0) if peak is None else peak
    levels = height * 8
    rows = [[" "] * len(counts) for _ in range(height)]
    for x, c in enumerate(counts):
        if c <= 0 or peak <= 0:
            continue
        h = max(1, round(c / peak * levels))
        for r in range(height):  # r = 0 is the bottom row
            fill = min(8, max(0, h - 8 * r))
            rows[height - 1 - r][x] = V_BLOCKS[fill]
    return ["".join(r) for r in rows]


def bar(fraction: float, width: int) -> str:
    """A horizontal bar `fraction` (0..1) of `width` cells long, in eighths."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    if fraction > 0 and eighths == 0:
        eighths = 1
    full, part = divmod(eighths, 8)
    return ("█" * full + (H_BLOCKS[part] if part else "")).ljust(width)


def axis(lo: float, hi: float, width: int, fmt: str = "{:.2f}") -> str:
    """An axis line under a chart `width` wide: low value left, middle, high value right."""
    left, mid, right = fmt.format(lo), fmt.format((lo + hi) / 2), fmt.format(hi)
    if width < len(left) + len(right) + 2:
        return (left + " " + right)[:width]
    line = [" "] * width
    line[: len(left)] = left
    line[width - len(right) :] = right
    start = (width - len(mid)) // 2
    if start > len(left) + 1 and start + len(mid) < width - len(right) - 1:
        line[start : start + len(mid)] = mid
    return "".join(line)
