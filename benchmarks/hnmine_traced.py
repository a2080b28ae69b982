"""Run the hnmine CLI and record which heavy modules it imported (for the rerun and scale benchmarks).

  python benchmarks/hnmine_traced.py MODULES_JSON [--block mod1,mod2] -- mine DATA --out RUN ...

--block makes importing those modules fail at once (ImportError): a stage that would load a model
then stops with an error instead of spending hours encoding; the benchmark reports it.
"""

from __future__ import annotations

import atexit
import json
import sys
import time

HEAVY = ("torch", "sentence_transformers", "transformers", "faiss", "bm25s", "datasets", "scipy", "sklearn", "matplotlib")


class _Blocker:
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"[benchmark] import of '{name}' blocked: this stage should need no model")
        return None


def main() -> None:
    argv = sys.argv[1:]
    out_path = argv.pop(0)
    block = []
    if argv and argv[0] == "--block":
        argv.pop(0)
        block = [b for b in argv.pop(0).split(",") if b]
    if argv and argv[0] == "--":
        argv.pop(0)
    started = time.perf_counter()
    if block:
        sys.meta_path.insert(0, _Blocker(block))

    def record() -> None:
        mods = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY and "." not in m)
        with open(out_path, "w") as fh:
            json.dump({"heavy_modules_imported": mods, "blocked": block, "seconds_in_process": round(time.perf_counter() - started, 3)}, fh)

    atexit.register(record)
    sys.argv = ["hnmine"] + argv
    from hnmine.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
