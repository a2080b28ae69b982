"""A run's own verdicts: the review journal, and the `judgments.parquet` it is folded into.

A review session writes every verdict to an append-only journal (`review/journal.jsonl`, one
fsynced line each, undo included) before it does anything else, and folds it into the run's
`judgments.parquet` (written atomically); a crash loses nothing that was acknowledged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import pyarrow as pa

from hnmine.errors import OptionError, RunDirError
from hnmine.io.inputs import RELEVANCE_MAX, RELEVANCE_MIN
from hnmine.judgment_files import read_judgments
from hnmine.judgments import HUMAN, empty_judgments, judgments_table, merge_source, now_utc, set_aside_changed, text_sha256
from hnmine.run_layout import LAYOUT

JUDGMENTS_FILE = LAYOUT["judgments"]  # at the run root: what the next filter reads by default
JOURNAL_FILE = LAYOUT["review_journal"]


def run_judgments(run_dir: str | Path) -> pa.Table:
    """The run's own judgments: `judgments.parquet` with the review journal folded in (the journal
    is newer when a review session was killed before it rewrote the table)."""
    run_dir = Path(run_dir)
    path = run_dir / JUDGMENTS_FILE
    table = read_judgments(path) if path.is_file() else empty_judgments()
    if (run_dir / JOURNAL_FILE).is_file():
        table = merge_source(table, JudgmentLog(run_dir).latest())
    return table


def run_verdicts(run_dir: str | Path) -> tuple[pa.Table, pa.Table]:
    """(the run's own verdicts that hold, those set aside): a person's verdict on a query or document whose
    text changed since (`set_aside_changed`) is set aside wherever the run's verdicts are used (the filter,
    `review --export`, the review's own list), so none of them applies it to another text."""
    from hnmine.rundir import RunDir

    table = run_judgments(run_dir)
    run = RunDir(run_dir)
    if not table.num_rows or not (run.exists("queries") and run.exists("corpus")):
        return table, table.slice(0, 0)
    return set_aside_changed(table, run.read_table("queries"), run.read_table("corpus"))


def save_judgments(run_dir: str | Path, table: pa.Table, source: str) -> pa.Table:
    """Replace the rows of `source` in the run's `judgments.parquet` with `table` (atomically),
    keeping every other source's rows: how automatic relabelling (source "teacher") and a review
    session (source "human") share one table without overwriting each other. Returns the table."""
    from hnmine.io.atomic import write_parquet

    target = Path(run_dir) / JUDGMENTS_FILE
    existing = read_judgments(target) if target.is_file() else empty_judgments()
    wrong = set(table.column("source").to_pylist()) - {source}
    if wrong:
        raise OptionError(f"judgments to save as source '{source}' hold other sources: {', '.join(sorted(wrong))}")
    merged = merge_source(existing, table, source)
    write_parquet(merged, target)
    return merged


def journal_entry_problem(entry: object) -> str | None:
    """What is wrong with one decoded journal line, or None: every field its op needs, of the type
    the journal writes (a hand-edited or damaged line must not reach the fold as a traceback)."""
    if not isinstance(entry, dict):
        return f"expected a JSON object, got {type(entry).__name__}"
    if entry.get("op") not in ("judge", "undo"):
        return f"op must be 'judge' or 'undo', got {_shown(entry, 'op')}"
    for key in ("query_id", "doc_id"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            return f"{key} must be a non-empty text, got {_shown(entry, key)}"
    if entry["op"] == "judge":
        rel = entry.get("relevance")
        if isinstance(rel, bool) or not isinstance(rel, int):
            return f"relevance must be a whole number, got {_shown(entry, 'relevance')}"
        if not RELEVANCE_MIN <= rel <= RELEVANCE_MAX:
            return f"relevance {rel} is out of range ({RELEVANCE_MIN:,} to {RELEVANCE_MAX:,})"
    for key in ("source", "time", "session", "undoes", "query_text_sha256", "doc_text_sha256"):
        if key in entry and not isinstance(entry[key], str):
            return f"{key} must be a text, got {_shown(entry, key)}"
    return None


def _shown(entry: dict, key: str) -> str:
    """A field's value for a one-line message: 'nothing' when absent, a long value cut short."""
    if key not in entry:
        return "nothing"
    text = json.dumps(entry[key], ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


class JudgmentLog:
    """Verdicts of one source, appended to `RUN/review/journal.jsonl` as they are made.

    Each `judge` or `undo` is one JSON line, flushed and fsynced before the call returns, so a
    verdict the reviewer saw acknowledged survives a crash or a killed terminal. `latest()` folds
    the journal: an undo withdraws the verdict it names, and the last live verdict per pair wins.
    A line cut short by a crash mid-write (never acknowledged) is trimmed when the journal is opened
    again.

    Every entry names the session that wrote it. A session holds a lock on `review/sessions/ID.lock`
    from its first verdict until it closes (or its process ends), so `undo` can tell a session still
    open elsewhere from one that ended: it withdraws this session's latest verdict or one of a session
    that ended, never the verdict of a review still open in another terminal.
    """

    def __init__(self, run_dir: str | Path, source: str = HUMAN, clock: Callable[[], str] = now_utc, session: str | None = None):
        import uuid

        self.run_dir = Path(run_dir)
        self.path = self.run_dir / JOURNAL_FILE
        self.judgments_path = self.run_dir / JUDGMENTS_FILE  # what save() folds the journal into
        self.source = source
        self.clock = clock
        self.session = session or uuid.uuid4().hex[:16]
        self._lock_file: TextIO | None = None  # held while this session is open (_hold_session)

    # sessions

    def _session_lock(self, session: str) -> Path:
        return self.path.parent / "sessions" / f"{session}.lock"

    def _hold_session(self) -> None:
        """Mark this session open (a lock the OS releases when the process ends, however it ends)."""
        import fcntl

        if self._lock_file is not None:
            return
        path = self._session_lock(self.session)
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+", encoding="utf-8")
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_file = fh

    def close(self) -> None:
        """End this session: its verdicts may now be undone by a later one."""
        import contextlib

        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._session_lock(self.session).unlink()
            self._lock_file.close()
            self._lock_file = None

    def session_open(self, session: str | None) -> bool:
        """Whether another session that wrote to this journal is still open (its lock held)."""
        import fcntl

        if session is None or session == self.session:
            return False
        try:
            fh = open(self._session_lock(session), "r+", encoding="utf-8")
        except OSError:
            return False  # no lock file: the session ended (or an older hnmine wrote the entry)
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False

    # reading

    def entries(self) -> list[dict]:
        """Every journal entry, oldest first, read afresh (another session may have appended)."""
        if not self.path.is_file():
            return []
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise RunDirError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        from hnmine.io.files import DuplicateKey, loads_object

        complete = data[: data.rfind(b"\n") + 1]  # a torn last line was never acknowledged
        if complete.startswith(b"\xef\xbb\xbf"):
            complete = complete[3:]  # a byte-order mark an editor added is not part of the first entry
        entries = []
        # Lines end at "\n" alone: an id may hold U+2028 or NEL, which JSON leaves unescaped and str.splitlines splits at.
        for lineno, raw in enumerate(complete.split(b"\n")[:-1], start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RunDirError(f"{self.path}:{lineno}: not valid UTF-8 (byte {exc.start}); fix or remove the line") from None
            if not line.strip():
                continue
            try:
                entry = loads_object(line)
            except DuplicateKey as exc:
                raise RunDirError(
                    f"{self.path}:{lineno}: not a journal entry (key '{exc.key}' appears twice); fix or remove the line"
                ) from None
            except ValueError:
                raise RunDirError(f"{self.path}:{lineno}: not a journal entry (invalid JSON); fix or remove the line") from None
            problem = journal_entry_problem(entry)
            if problem:
                raise RunDirError(f"{self.path}:{lineno}: not a journal entry ({problem}); fix or remove the line")
            entries.append(entry)
        return entries

    def live(self) -> list[dict]:
        """The verdicts not undone, oldest first (the undo stack)."""
        stack: list[dict] = []
        for e in self.entries():
            if e["op"] == "judge":
                stack.append(e)
                continue
            for i in range(len(stack) - 1, -1, -1):
                same_pair = (stack[i]["query_id"], stack[i]["doc_id"]) == (e["query_id"], e["doc_id"])
                if same_pair and ("undoes" not in e or stack[i].get("session", "") == e["undoes"]):
                    del stack[i]
                    break
        return stack

    def latest(self) -> pa.Table:
        """The current verdict per (query, document), in the order they were last made."""
        last: dict[tuple[str, str], dict] = {}
        for e in self.live():
            key = (e["query_id"], e["doc_id"])
            last.pop(key, None)
            last[key] = e
        return judgments_table(
            {
                "query_id": e["query_id"],
                "doc_id": e["doc_id"],
                "relevance": int(e["relevance"]),
                "source": e.get("source") or self.source,
                "time": e.get("time") or "",
                "query_text_sha256": e.get("query_text_sha256"),
                "doc_text_sha256": e.get("doc_text_sha256"),
            }
            for e in last.values()
        )

    def verdicts(self) -> dict[tuple[str, str], int]:
        """{(query, document): relevance} of the live verdicts."""
        return {(e["query_id"], e["doc_id"]): int(e["relevance"]) for e in self.live()}

    # writing

    def judge(self, query_id: str, doc_id: str, relevance: int, texts: tuple[str, str] | None = None) -> dict:
        """Record a verdict; it is on disk when this returns. `texts`: the (query, document) texts the
        person judged, recorded as hashes so the verdict is never applied to other texts."""
        if isinstance(relevance, bool) or not isinstance(relevance, int):
            raise OptionError(f"relevance must be a whole number, not {relevance!r}")
        entry = {
            "op": "judge",
            "query_id": str(query_id),
            "doc_id": str(doc_id),
            "relevance": relevance,
            "source": self.source,
            "time": self.clock(),
            "session": self.session,
        }
        if texts is not None:
            entry["query_text_sha256"], entry["doc_text_sha256"] = text_sha256(texts[0]), text_sha256(texts[1])
        self._append(entry)
        return entry

    def undo(self) -> dict | None:
        """Withdraw the most recent live verdict of this session or of one that has ended (an earlier
        review); a review still open in another terminal keeps its verdicts. None when there is nothing
        to undo."""
        stack = [e for e in self.live() if not self.session_open(e.get("session"))]
        if not stack:
            return None
        last = stack[-1]
        entry = {"op": "undo", "query_id": last["query_id"], "doc_id": last["doc_id"], "source": self.source, "time": self.clock()}
        entry.update(session=self.session, undoes=last.get("session", ""))
        self._append(entry)
        return last

    def _append(self, entry: dict) -> None:
        from hnmine.run_layout import refuse_link

        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        refuse_link(self.run_dir, self.path)  # the journal and session locks are written only inside the run
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._hold_session()
            with open(self.path, "ab") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size:
                    # bytes after the last newline: a line a killed process did not finish
                    data = self.path.read_bytes()
                    torn = len(data) - (data.rfind(b"\n") + 1)
                    if torn:
                        fh.truncate(size - torn)
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise RunDirError(f"{self.path}: cannot write the verdict ({exc.strerror or exc})") from None

    def save(self) -> pa.Table:
        """Fold the journal into the run's `judgments.parquet` (atomically), keeping the rows
        other sources (the teacher's relabelling, imported files) wrote there. Returns the table."""
        return save_judgments(self.run_dir, self.latest(), self.source)
