"""The reproducibility contract in numbers (docs/reliability.md, "Reproducibility").

Bytes are promised only where the code makes them so by construction: the same machine, the same
locked packages, the same options and the same torch thread count (`--threads`) give the same
bytes, for any `--workers`. Anything that changes the kernels' summation order (another thread
count, another CPU, another dtype) may move scores in their last bits: they then agree within
SCORE_TOLERANCE of the dtype they were computed in, and the candidates and negatives are the same
except where two of them score within that tolerance of each other.
"""

from __future__ import annotations

# Largest difference between two teacher scores (cosine scale) of the same pair computed with another
# thread count or CPU, by the dtype of the model. float32 sums in another order differ by a few ulps
# of the products (measured ~1e-7 on normalised MiniLM vectors); bfloat16 keeps 8 bits of mantissa, so
# one rounding step of an embedding component moves a cosine by up to ~2e-3 (measured: batch 3 vs 64).
SCORE_TOLERANCE = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 5e-3}


def score_tolerance(dtype: str) -> float:
    return SCORE_TOLERANCE.get(dtype, SCORE_TOLERANCE["bfloat16"])
