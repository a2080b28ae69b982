"""hnmine: mine hard negatives for retrieval training, with positive-aware filtering."""

__version__ = "0.1.0"
