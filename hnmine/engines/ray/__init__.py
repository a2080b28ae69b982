"""The Ray engine (`--engine ray`): the stages as Ray pipelines over the run directory's tables.

Imported only when a stage runs on Ray (never by `hnmine --help` or a local run). Every stage reads and
writes the same tables, with the same keys, manifests and skip rules as the local engine; its heavy
work is spread over the cluster, and the driver (this process) never holds the corpus embeddings, the
candidate table or the scores: workers write parts into the run directory and the driver streams them,
in order, into the one file the layout names (hnmine.engines.ray.parts).

  session   start or join a cluster, Ray's own logging kept off the terminal, stop what was started
  parts     ordered part files, streamed into one Parquet/JSONL file with the local writer's row groups
  corpus    corpus shards (row ranges) held by actors: doc ids, texts, vectors; lookups and sharded search
  encode    the embedding cache filled by an actor pool that holds the model (the local cache's chunks)
  bm25      BM25 built with global statistics from corpus blocks; search in query batches
  stages    each stage's work on Ray, and the cases it leaves to the local implementation on the driver
"""

from __future__ import annotations


def start(address, reporter=None):
    from hnmine.engines.ray.session import start as start_session

    return start_session(address, reporter)


def stop(session) -> None:
    from hnmine.engines.ray.session import stop as stop_session

    stop_session(session)


def stage_work(stage, ctx, local_work):
    from hnmine.engines.ray.stages import stage_work as work

    return work(stage, ctx, local_work)
