"""hnmine: mine hard negatives for retrieval training, with positive-aware filtering."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`hnmine.mine` and `hnmine.mine_hard_negatives` are imported on first use, so `import hnmine` (and
    `hnmine --help`) stays light."""
    if name in ("mine", "MiningResult", "api"):
        import importlib

        api = importlib.import_module("hnmine.api")  # not `from hnmine import api`: that would ask this function again
        return api if name == "api" else getattr(api, name)
    if name == "mine_hard_negatives":  # sentence-transformers' miner, the same call (hnmine.st_compat)
        import importlib

        return importlib.import_module("hnmine.st_compat").mine_hard_negatives
    raise AttributeError(f"module 'hnmine' has no attribute {name!r}")
