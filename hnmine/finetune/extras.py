"""The training extras: `datasets` and `accelerate`, which SentenceTransformerTrainer needs and hnmine's mining does not."""

from __future__ import annotations

from hnmine.errors import MissingDependency

TRAINING_PACKAGES = ("datasets", "accelerate")
INSTALL_HINT = "pip install 'hnmine[train]'"


def require_training_extras() -> None:
    """Raise MissingDependency, naming what to install, when a training package cannot be imported."""
    import importlib

    missing = []
    for name in TRAINING_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingDependency(f"fine-tuning needs {' and '.join(missing)}: {INSTALL_HINT}")
