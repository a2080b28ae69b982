"""The user's hnmine cache folder: measured dtype choices, converted models, the embedding store."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$HNMINE_CACHE_DIR, else $XDG_CACHE_HOME/hnmine, else ~/.cache/hnmine."""
    if os.environ.get("HNMINE_CACHE_DIR"):
        return Path(os.environ["HNMINE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hnmine"
