"""One writer at a time on a bucket prefix, with nothing but put, list and delete (what every object store and
pyarrow's file systems offer; S3 and GCS list what was written at once).

A writer puts its own lease object, `PREFIX/.hnmine-lock/<token>.json` (host, pid, start), then lists the
leases. It holds the prefix only when it sees no other live lease; else it deletes its own and is refused,
naming the holder. Two writers starting together cannot both hold: whichever lists second sees the other's
lease (each lists after its own put finished), and if both see both, both are refused. A lease is refreshed
every `HEARTBEAT` seconds by a thread; one not refreshed for `STALE_AFTER` seconds (by the store's clock:
the times of the leases' own objects), or left by a process of this host that is gone, is stale and removed.
The holder checks its lease before each upload, so a writer whose lease was taken as stale stops there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from hnmine.errors import RunDirError
from hnmine.io.storage import Remote, call, filesystem

LEASES = ".hnmine-lock"
HEARTBEAT = 20.0
STALE_AFTER = 120.0


def _process_start(pid: int) -> str | None:
    """The start time of a process of this host (field 22 of /proc/PID/stat), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(owner: dict) -> bool:
    """Whether the process that wrote a lease on this host still runs (the same pid started at the same time)."""
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    started = owner.get("process_start")
    return started is None or _process_start(pid) in (None, started)


class Lease:
    """The lease of one writer on `root` (a run directory's prefix)."""

    def __init__(self, root: Remote, warn: Any = None):
        self.root = root
        self.fs = filesystem(root)
        self.token = f"{time.time_ns()}-{uuid.uuid4().hex[:12]}"
        self.remote = root.child(f"{LEASES}/{self.token}.json")
        self.owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "process_start": _process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "token": self.token,
        }
        self._warn = warn
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

    def acquire(self) -> None:
        self._put()
        try:
            holders = self._others()
        except BaseException:
            self._delete_own()
            raise
        if holders:
            self._delete_own()
            held = holders[0]
            raise RunDirError(
                f"{self.root.uri}: another hnmine process is writing this run (host {held.get('host')}, pid {held.get('pid')}, "
                f"since {held.get('since')}); wait for it to finish, or use another --out"
            )
        self.held = True
        self._thread = threading.Thread(target=self._beat, name="hnmine-lease", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Still held: the lease object is there (another writer removes it only when it was stale)."""
        import pyarrow.fs as pafs

        info = call(self.remote, "checking the lock", self.fs.get_file_info, self.remote.path)
        if info.type == pafs.FileType.NotFound:
            raise RunDirError(
                f"{self.root.uri}: this process lost its lock on the run (its lease {self.remote.uri} was removed as stale "
                f"by another writer); nothing more is uploaded: run the command again"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:
            self._delete_own()
            self.held = False

    # -- inside ----------------------------------------------------------------------------------

    def _put(self) -> None:
        body = json.dumps(self.owner).encode()
        with call(self.remote, "taking the lock", self.fs.open_output_stream, self.remote.path) as out:
            out.write(body)

    def _delete_own(self) -> None:
        with contextlib.suppress(OSError):
            self.fs.delete_file(self.remote.path)

    def _others(self) -> list[dict]:
        """The live leases of other writers; stale ones are removed on the way."""
        import pyarrow.fs as pafs

        folder = self.root.child(LEASES)
        selector = pafs.FileSelector(folder.path, allow_not_found=True)
        infos = [i for i in call(folder, "listing the locks", self.fs.get_file_info, selector) if i.type == pafs.FileType.File]
        mine = next((i for i in infos if i.path == self.remote.path), None)
        now = mine.mtime_ns if mine is not None and mine.mtime_ns else time.time_ns()
        live = []
        for info in infos:
            if info.path == self.remote.path:
                continue
            owner = self._read(info.path)
            if owner is None:
                continue  # gone meanwhile (its writer finished)
            stale_by_time = info.mtime_ns is not None and now - info.mtime_ns > STALE_AFTER * 1e9
            stale_here = owner.get("host") == self.owner["host"] and not _alive(owner)
            if stale_by_time or stale_here:
                with contextlib.suppress(OSError):
                    self.fs.delete_file(info.path)
                if self._warn is not None:
                    why = "its process is gone" if stale_here else f"not refreshed for over {STALE_AFTER:.0f} s"
                    self._warn(f"{self.root.uri}: removed the lock of host {owner.get('host')}, pid {owner.get('pid')} ({why})")
                continue
            live.append(owner)
        return live

    def _read(self, path: str) -> dict | None:
        try:
            with self.fs.open_input_stream(path) as fh:
                owner = json.loads(fh.read().decode("utf-8"))
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else {}

    def _beat(self) -> None:
        import pyarrow.fs as pafs

        while not self._stop.wait(HEARTBEAT):
            try:  # a lease removed as stale is not put back: check() says it is gone
                if self.fs.get_file_info(self.remote.path).type == pafs.FileType.NotFound:
                    return
                self._put()
            except Exception:  # noqa: S112 (a missed beat is retried at the next)
                continue
