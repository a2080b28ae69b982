"""Every path of a run directory, named once, with the stage that writes it; and the rule for touching them.

A stage declares what it reads and writes by these names (`LAYOUT`), a reader asks `stage_making` which
stage (and so which command) makes a path it misses, and nothing else spells a path of a run
(tests/test_rundir.py holds every module to it). hnmine writes and removes the run's files only inside
it, never through a link (`refuse_link`, `remove_inside`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hnmine.errors import RunDirError

MARKER = ".hnmine-run"
LOCK = ".hnmine-lock"


@dataclass(frozen=True)
class Entry:
    """A file or folder of a run, and the stage whose outputs it is (None: a command that is no stage writes it)."""

    path: str
    stage: str | None = None
    folder: bool = False  # everything under it is the same stage's (index/dense2, export/triplet.jsonl)


ENTRIES: dict[str, Entry] = {
    "inputs": Entry("inputs", "inputs", folder=True),
    "corpus": Entry("inputs/corpus.parquet", "inputs"),
    "queries": Entry("inputs/queries.parquet", "inputs"),
    "qrels": Entry("inputs/qrels.parquet", "inputs"),
    "hidden_qrels": Entry("inputs/hidden_qrels.parquet", "inputs"),
    "premined": Entry("inputs/premined.parquet", "inputs"),  # --premined: the file's lists of candidates
    "index": Entry("index", "index", folder=True),
    "dense_index": Entry("index/dense", "index", folder=True),
    "embeddings": Entry("index/dense/embeddings.npy", "index"),
    "dense_info": Entry("index/dense/info.json", "index"),
    "ann_index": Entry("index/dense/faiss.index", "index"),
    "bm25_index": Entry("index/bm25", "index", folder=True),
    "bm25_info": Entry("index/bm25/info.json", "index"),
    "candidates": Entry("candidates.parquet", "retrieve"),
    "scores": Entry("scores.parquet", "score"),
    "negatives": Entry("negatives.parquet", "filter"),
    "dropped": Entry("dropped.parquet", "filter"),
    "query_summary": Entry("query_summary.parquet", "filter"),
    "positives": Entry("positives.parquet", "filter"),
    "export": Entry("export", "export", folder=True),
    "judgments": Entry("judgments.parquet"),  # hnmine review, relabelling: read by the filter
    "review_journal": Entry("review/journal.jsonl"),  # hnmine review
    "finetune_results": Entry("finetune/results.parquet"),  # hnmine finetune
    "sources": Entry("sources", folder=True),  # inputs handed to the Python API in memory, written once as files
    "manifests": Entry("manifests", folder=True),  # one per stage, written by the pipeline
    "embedding_cache": Entry("cache/embeddings", folder=True),
}
# The run-relative path of each name (what stages, readers and tests name a path by).
LAYOUT: dict[str, str] = {name: entry.path for name, entry in ENTRIES.items()}
# Folders hnmine writes into: the stale-temp sweep looks only here and at the run's top level.
OWN_FOLDERS = ("inputs", "index", "cache", "export", "manifests", "review", "sources", "finetune")
# Folders hnmine writes into, none of which may be a link (the Ray engine's scratch folder too).
LINK_CHECKED = OWN_FOLDERS + (".hnmine-ray",)


def stage_making(rel: str) -> str:
    """The stage whose outputs hold `rel` (a name or run-relative path); "mine" for a path no stage writes."""
    rel = LAYOUT.get(rel, rel)
    for entry in ENTRIES.values():
        if entry.stage is not None and (rel == entry.path or (entry.folder and rel.startswith(entry.path + "/"))):
            return entry.stage
    return "mine"


def candidate_index(i: int) -> str:
    """The folder of the i-th extra dense candidate model (i >= 2)."""
    return f"index/dense{i}"


def export_path(fmt: str, file_format: str, table: str | None = None) -> str:
    """export/<format>.<ext>, or export/<format>/<table>.<ext> for one table of a layout of several (the scored pool)."""
    return f"{LAYOUT['export']}/{fmt}.{file_format}" if table is None else f"{LAYOUT['export']}/{fmt}/{table}.{file_format}"


def first_link(root: Path, path: Path) -> Path | None:
    """The first link on the way from the run directory `root` down to `path` (itself included), or None.

    A path that is not below `root` (or climbs with '..') leaves it as surely as a link: it is returned.
    `root` itself may be a link (`--out` naming a link to the run): only what is below it is checked."""
    root, path = Path(root), Path(path)
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path
    if ".." in rel.parts:
        return path
    here = root
    for part in rel.parts:
        here = here / part
        if here.is_symlink():
            return here
    return None


def remove_inside(root: Path, path: Path) -> bool:
    """Remove a file or a folder (with what it holds) of the run directory `root`, never through a link.

    Refused (False) when a folder on the way from `root` to `path` is a link or `path` is not below
    `root`; a link at `path` itself is removed as a link, and a folder is removed without following
    the links inside it (shutil.rmtree never does)."""
    path = Path(path)
    if path == Path(root) or first_link(root, path.parent) is not None:
        return False
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return True


def refuse_link(root: Path, path: Path) -> None:
    """A RunDirError when hnmine would write or remove files of `root` through a link (see first_link)."""
    link = first_link(root, path)
    if link is None:
        return
    if link.is_symlink():
        raise RunDirError(
            f"{link}: a link to {os.readlink(link)}; hnmine writes and removes files only inside its run "
            f"directory ({root}), never through a link: put a folder there instead, or use another --out"
        )
    raise RunDirError(f"{path}: not inside the run directory {root}; hnmine writes and removes files only inside it")
