"""`hnmine cache`: the embedding store listed by model (texts, size, last use), or pruned (by model, age, size).

Thin: its options are declared in hnmine.command_options (CacheOptions) and the command is made from them by
hnmine.cli_options.helper_command; the store's own code is hnmine.inference.store. Named hnmine errors
propagate; the main CLI turns them into a one-line message and exit 2.
"""

from __future__ import annotations

import time

import typer

from hnmine.cli_options import helper_command
from hnmine.command_options import CacheOptions


def cache(o: CacheOptions) -> None:
    from hnmine.inference.store import check_cache_dir, list_store, parse_age, parse_size, prune, store_root

    check_cache_dir(o.cache_dir)
    root = store_root(o.cache_dir)
    pruned = None
    if o.prune:
        pruned = prune(
            root,
            model=o.model,
            older_than=parse_age(o.older_than, "--older-than") if o.older_than is not None else None,
            max_size=parse_size(o.max_size, "--max-size") if o.max_size is not None else None,
        )
    shards = [s for s in list_store(root) if o.model is None or o.model in (s.model, s.identity.get("model"))]
    if o.json:
        from hnmine.terminal_text import dumps

        out = {"store": str(root), "shards": [s.as_json() for s in shards], "texts": sum(s.texts for s in shards)}
        out["bytes"] = sum(s.size for s in shards)
        if pruned is not None:
            out["pruned"] = pruned.as_json()
        typer.echo(dumps(out, indent=2))
        return
    _print(root, shards, pruned)


def _print(root, shards, pruned) -> None:
    from hnmine.inference.store import size_text
    from hnmine.terminal_text import visible

    if pruned is not None:
        removed = ", ".join(f"{visible(m)} {n:,}" for m, n in sorted(pruned.models.items())) or "nothing"
        typer.echo(f"pruned {pruned.texts:,} texts ({size_text(pruned.bytes)}, {pruned.segments} segments): {removed}")
    typer.echo(f"embedding store: {visible(root)}")
    if not shards:
        typer.echo("(empty)")
        return
    rows = [("model", "shard", "dtype", "backend", "texts", "size", "last use")]
    for s in shards:
        d = s.identity
        rows.append(
            (
                visible(s.model),
                s.folder.name[:8],
                str(d.get("dtype", "?")),
                str(d.get("backend", "?")),
                f"{s.texts:,}",
                size_text(s.size),
                _when(s.last_use),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(c.rjust(w) if i in (4, 5) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    total = sum(s.size for s in shards)
    typer.echo(f"{len(shards)} shard(s), {sum(s.texts for s in shards):,} texts, {size_text(total)}")


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    ago = max(0.0, time.time() - stamp)
    for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60)):
        if ago >= seconds:
            return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(stamp))} ({ago / seconds:.0f} {unit} ago)"
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(stamp))} (just now)"


cache_command = helper_command(
    "cache", "List the embedding store by model (texts, size, last use); --prune removes by model, age or size.", cache, CacheOptions
)
