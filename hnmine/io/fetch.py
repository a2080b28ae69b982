"""Local copies of remote inputs: an input named by a URI (DATA, --corpus, --judgments, user vectors …) is
copied once into the user's cache folder and read from there by the same readers as a local file, so every
check, message and content hash is the local file's.

A copy lives in `<cache>/objects/<bucket>-<hash of the URI>/` with `.hnmine-source.json` (the URI and, per
object, the size and modification time it was copied at); it is copied again when an object's size or time
changes. A URI naming a prefix (a BEIR folder) is copied whole: every object below it. `uri_of` maps a path
inside a copy back to its URI (for the run's record and for messages).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from hnmine.errors import InputError
from hnmine.io.storage import Remote, call, filesystem, is_uri, parse
from hnmine.io.user_cache import cache_dir

SOURCE = ".hnmine-source.json"
# One part of a path as a message quotes it: up to a separator, a space, a quote or a bracket.
PATH_PART = r"""[^/\s:,;()'"`]+"""


def objects_root() -> Path:
    return cache_dir() / "objects"


def local_copy(value: Any, reporter: Any = None) -> Any:
    """A URI's local copy (a Path); anything else as it is."""
    return fetch(str(value), reporter) if is_uri(value) else value


def fetch(uri: str, reporter: Any = None) -> Path:
    """The local copy of the object or prefix `uri`, copied now where it is missing or out of date."""
    import pyarrow.fs as pafs

    remote = parse(uri)
    fs = filesystem(remote)
    info = call(remote, "reading", fs.get_file_info, remote.path) if remote.key else None
    if info is not None and info.type == pafs.FileType.File:
        listing = {"": (info.size, info.mtime_ns)}
    else:
        selector = pafs.FileSelector(remote.path, recursive=True, allow_not_found=True)
        found = call(remote, "listing", fs.get_file_info, selector)
        listing = {remote.rel(i.path): (i.size, i.mtime_ns) for i in found if i.type == pafs.FileType.File}
        if not listing:
            from hnmine.io.storage import check_bucket

            check_bucket(remote)
            raise InputError(f"{remote.uri}: no such file or folder")
    root = objects_root() / f"{_safe(remote.bucket)}-{hashlib.sha256(remote.uri.encode()).hexdigest()[:16]}"
    name = _safe(remote.key.rsplit("/", 1)[-1] or remote.bucket)
    top = root / name
    _sync(remote, fs, listing, top, root, reporter)
    return top


def _sync(remote: Remote, fs: Any, listing: dict[str, tuple], top: Path, root: Path, reporter: Any) -> None:
    from hnmine.io.atomic import atomic_path, write_json

    state_path = root / SOURCE
    state = _read_state(state_path, remote.uri)
    held = state.get("objects", {})
    todo = [rel for rel, stamp in listing.items() if held.get(rel) != list(stamp) or not _local(top, rel).is_file()]
    if todo and reporter is not None:
        reporter.info(f"copying {len(todo)} object(s) of {remote.uri} to {root}")
    for rel in todo:
        target = _local(top, rel)
        with atomic_path(target) as tmp:
            download(remote.child(rel) if rel else remote, fs, tmp)
        held[rel] = list(listing[rel])
    for rel in [r for r in held if r not in listing]:  # an object deleted from the prefix is not an input any more
        with contextlib.suppress(OSError):
            _local(top, rel).unlink()
        held.pop(rel)
    if todo or len(held) != len(state.get("objects", {})) or state.get("name") != top.name:
        write_json({"uri": remote.uri, "name": top.name, "objects": held}, state_path)


def download(remote: Remote, fs: Any, target: Path) -> None:
    """One object into a local file, streamed."""
    import shutil

    with call(remote, "reading", fs.open_input_stream, remote.path) as src, open(target, "wb") as dst:
        try:
            shutil.copyfileobj(src, dst, 1 << 22)
        except OSError as exc:
            from hnmine.io.storage import failure

            raise failure(remote, exc, "reading") from None


def _local(top: Path, rel: str) -> Path:
    return top / rel if rel else top


def _read_state(path: Path, uri: str) -> dict:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("uri") == uri and isinstance(state.get("objects"), dict) else {}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:80] or "_"


def uri_of(path: Any) -> str | None:
    """The URI a path inside a local copy came from, or None for any other path."""
    root = objects_root().resolve()
    try:
        rel = Path(path).resolve().relative_to(root)
    except (ValueError, OSError):
        return None
    if len(rel.parts) < 2:
        return None
    state = _read_state_any(root / rel.parts[0] / SOURCE)
    if state is None or rel.parts[1] != state.get("name"):
        return None
    rest = "/".join(rel.parts[2:])
    return state["uri"] + (f"/{rest}" if rest else "")


def _read_state_any(path: Path) -> dict | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("uri"), str) else None


def in_uris(message: str) -> str:
    """A message with the paths of local copies said as the URIs they came from."""
    for root in {str(objects_root()), str(objects_root().resolve())}:
        if root not in message:
            continue
        for m in set(re.findall(re.escape(root) + r"/[^/\s]+/" + PATH_PART, message)):
            uri = uri_of(m)
            if uri is not None:
                message = message.replace(m, uri)
    return message


def local_values(values: dict[str, Any], reporter: Any = None) -> dict[str, Any]:
    """Option values with each URI (an input in a bucket) replaced by its local copy; the run directory
    (`out`) is not an input and stays as it is."""
    return {k: v if k == "out" else local_copy(v, reporter) for k, v in values.items()}


def local_options(options: Any, reporter: Any = None) -> Any:
    """An options object with each URI-valued field replaced by its local copy."""
    from dataclasses import fields, replace

    changed = {f.name: fetch(getattr(options, f.name), reporter) for f in fields(options) if is_uri(getattr(options, f.name))}
    return replace(options, **changed) if changed else options
