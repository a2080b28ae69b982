"""Judgments: verdicts on (query, document) pairs that the next filter obeys.

One table and one rule, shared by the people who review suspects (`hnmine review`, source
"human") and by automatic relabelling (source "teacher"), and open to qrels files from elsewhere
(source = the file's name). Columns (JUDGMENTS_SCHEMA):

    query_id   string   as written, never type-inferred ("001" stays "001")
    doc_id     string
    relevance  int32    > 0 relevant, <= 0 not relevant
    source     string   "human", "teacher", or the name of the file it came from
    time       string   ISO 8601 UTC ("" when a file gave none)
    query_text_sha256, doc_text_sha256
               string   the texts a person judged (text_sha256; null for files and the teacher): a verdict
                        whose query or document text has changed since is set aside, never applied

The rule, in one place (`fold_judgments`): one verdict per (query, document); a person's beats any
other source, any other source beats the teacher's, and within one source the latest wins.
`apply_judgments` is what the filter does with them: relevant pairs become positives (so never
negatives), not-relevant ones are never dropped as suspected false negatives.

A review session writes every verdict to an append-only journal (`review/journal.jsonl`, one
fsynced line each, undo included) before it does anything else, and folds it into the run's
`judgments.parquet` (written atomically); a crash loses nothing that was acknowledged.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import pyarrow as pa

from hnmine.errors import InputError, OptionError, RunDirError
from hnmine.io.inputs import RELEVANCE_MAX, RELEVANCE_MIN
from hnmine.rundir import LAYOUT

if TYPE_CHECKING:
    import numpy as np

HUMAN = "human"
TEACHER = "teacher"
RELEVANT, NOT_RELEVANT = 1, 0

JUDGMENTS_FILE = LAYOUT["judgments"]  # at the run root: what the next filter reads by default
JOURNAL_FILE = LAYOUT["review_journal"]

JUDGMENTS_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("relevance", pa.int32()),
        ("source", pa.string()),
        ("time", pa.string()),
        ("query_text_sha256", pa.string()),
        ("doc_text_sha256", pa.string()),
    ]
)
QRELS_FORMATS = ("beir", "trec")

# Which source wins for one pair: a person over any file, any file over the teacher.
_PRIORITY_HUMAN, _PRIORITY_OTHER, _PRIORITY_TEACHER = 2, 1, 0


def now_utc() -> str:
    """The time a verdict is made: ISO 8601, UTC, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def empty_judgments() -> pa.Table:
    return JUDGMENTS_SCHEMA.empty_table()


def judgments_table(rows: Iterable[dict]) -> pa.Table:
    """A judgments table from dicts with the schema's keys (the text hashes may be left out)."""
    rows = list(rows)
    return pa.table({f.name: [r.get(f.name) for r in rows] for f in JUDGMENTS_SCHEMA}, schema=JUDGMENTS_SCHEMA)


def text_sha256(text: str) -> str:
    """What a verdict records of a text it judged (a query's text; a document's title and text joined)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- the rule ---------------------------------------------------------------------------------


def _priority(source: str) -> int:
    if source == HUMAN:
        return _PRIORITY_HUMAN
    return _PRIORITY_TEACHER if source == TEACHER else _PRIORITY_OTHER


def fold_judgments(*tables: pa.Table) -> pa.Table:
    """One verdict per (query, document) from any number of judgments tables: a person's beats any
    other source, any other beats the teacher's; within a source the latest `time` wins, and among
    equal times the later row. Rows come out in the order their winning verdict was first seen."""
    best: dict[tuple[str, str], tuple[tuple, dict]] = {}
    n = 0
    for table in tables:
        for row in table.select(JUDGMENTS_SCHEMA.names).to_pylist():
            key = (row["query_id"], row["doc_id"])
            rank = (_priority(row["source"] or ""), row["time"] or "", n)
            n += 1
            if key not in best or rank >= best[key][0]:
                best[key] = (rank, row)
    return judgments_table(row for _, row in best.values())


# -- reading ----------------------------------------------------------------------------------


def read_judgments(path: str | Path) -> pa.Table:
    """Judgments from a file: this module's Parquet table, a BEIR qrels TSV (`query-id corpus-id
    score` with its header), a TREC qrels file (`qid 0 docid rel`, whitespace separated), or a CSV or
    JSON-lines qrels table (as `eval --qrels` reads them); text files may be gzip-compressed (.gz).
    Ids stay text exactly as written. Rows of a qrels file get the file's name as their source."""
    from hnmine.io.files import check_regular_file, check_utf8_path

    path = Path(path)
    check_utf8_path(path)
    check_regular_file(path, "--judgments")  # the filter reads it again for its fingerprint
    if not path.is_file():
        raise InputError(f"{path}: no such judgments file")
    kind = _table_kind(path)
    if kind == "parquet":
        return _read_parquet(path)
    if kind is not None:  # CSV or JSON lines: a qrels table with named columns, as `eval --qrels` reads it
        return _read_qrels_table(path)
    try:
        opened = gzip.open(path, "rt", encoding="utf-8-sig") if path.suffix.lower() == ".gz" else open(path, encoding="utf-8-sig")
        with opened as fh:  # a byte-order mark is not part of the first query id
            lines = fh.read().split("\n")  # at "\n" alone: an id may hold U+2028 or NEL (\r is stripped with the fields)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:  # EOFError: a .gz cut short
        raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return _parse_qrels(lines, str(path), path.name)


def _table_kind(path: Path) -> str | None:
    """'parquet', 'csv' or 'jsonl' for a table file (by its name, .gz aside); None for qrels text (BEIR TSV, TREC)."""
    from hnmine.io.files import READERS

    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = READERS.get(suffixes[-1]) if suffixes else None
    return kind if kind in ("parquet", "csv", "jsonl") else None


def _read_qrels_table(path: Path) -> pa.Table:
    """A CSV or JSON-lines qrels table (query-id/query_id, corpus-id/doc_id, score/relevance columns)."""
    from hnmine.errors import MissingColumn
    from hnmine.io.files import read_table
    from hnmine.io.inputs import QREL_SCORE_COLUMNS, InputSpec, qrels_from_table

    table = read_table(path)
    if not any(name in table.column_names for name in QREL_SCORE_COLUMNS):  # a verdict needs its grade
        raise MissingColumn(str(path), f"relevance (tried {'/'.join(QREL_SCORE_COLUMNS)})", table.column_names)
    qrels = qrels_from_table(InputSpec(), table, path)
    columns = (qrels.column(c).to_pylist() for c in ("query_id", "doc_id", "relevance"))
    return judgments_table({"query_id": q, "doc_id": d, "relevance": r, "source": path.name, "time": ""} for q, d, r in zip(*columns))


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.compute as pc

    from hnmine.errors import MissingColumn
    from hnmine.io.files import read_table

    table = read_table(path)  # one line for a damaged file, or for a column named twice
    for name in ("query_id", "doc_id", "relevance"):
        if name not in table.column_names:
            raise MissingColumn(str(path), name, list(table.column_names))
    n = table.num_rows
    cols = {}
    for name in ("query_id", "doc_id", "source", "time", "query_text_sha256", "doc_text_sha256"):
        if name in table.column_names:
            col = table.column(name)
            if pa.types.is_dictionary(col.type):  # a categorical column (pandas): its values are the texts
                col = pc.cast(col, col.type.value_type)
            if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
                # a number column would lose "001" -> 1 long before here: refuse rather than guess
                raise InputError(f"{path}: column '{name}' must hold text, not {col.type}")
            cols[name] = pc.cast(col, pa.string())
        elif name == "source":
            cols[name] = pa.array([path.name] * n, pa.string())
        elif name == "time":
            cols[name] = pa.array([""] * n, pa.string())
        else:  # a file's verdicts are by id, as qrels are: no text to check them against
            cols[name] = pa.nulls(n, pa.string())
    for name in ("query_id", "doc_id"):
        if cols[name].null_count:
            raise InputError(f"{path}: column '{name}' has empty values")
        empty = pc.equal(pc.utf8_trim_whitespace(cols[name]), "").to_numpy(zero_copy_only=False)
        if empty.any():  # as a qrels text with an empty id is refused: a verdict on no document
            raise InputError(f"{path}: row {int(empty.argmax()) + 1}: column '{name}' is empty")
    rel = table.column("relevance")
    if not pa.types.is_integer(rel.type) or rel.null_count:
        raise InputError(f"{path}: column 'relevance' must hold whole numbers (it is {rel.type})")
    bounds = pc.min_max(rel)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is not None and (low < RELEVANCE_MIN or high > RELEVANCE_MAX):
        raise InputError(f"{path}: column 'relevance' holds values out of range ({RELEVANCE_MIN:,} to {RELEVANCE_MAX:,})")
    cols["relevance"] = pc.cast(rel, pa.int32())
    cols["source"] = pc.fill_null(cols["source"], path.name)
    cols["time"] = pc.fill_null(cols["time"], "")
    return pa.table({f.name: cols[f.name] for f in JUDGMENTS_SCHEMA}, schema=JUDGMENTS_SCHEMA)


_INT = re.compile(r"[+-]?\d+")


def _parse_qrels(lines: list[str], label: str, source: str) -> pa.Table:
    """BEIR (3 tab-separated fields, a header line) or TREC (4 whitespace-separated fields)."""
    rows = []
    fields_seen = None
    by_tab = False  # BEIR files are tab-separated (an id may hold a space); TREC ones any whitespace
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if fields_seen is None:
            by_tab = len(line.split("\t")) in (3, 4)
        fields = [f.strip() for f in (line.split("\t") if by_tab else line.split())]
        if fields_seen is None:
            fields_seen = len(fields)
            if fields_seen not in (3, 4):
                raise InputError(
                    f"{label}:{lineno}: expected `query-id corpus-id score` (BEIR) or `qid 0 docid rel` (TREC), got {len(fields)} field(s)"
                )
            if not _INT.fullmatch(fields[-1]):
                continue  # the header line ("query-id corpus-id score")
        if len(fields) != fields_seen:
            raise InputError(f"{label}:{lineno}: {len(fields)} field(s), the file's first line has {fields_seen}")
        query_id, doc_id, rel = (fields[0], fields[2], fields[3]) if fields_seen == 4 else fields
        if not _INT.fullmatch(rel):
            raise InputError(f"{label}:{lineno}: relevance '{rel}' is not a whole number")
        if not RELEVANCE_MIN <= int(rel) <= RELEVANCE_MAX:
            raise InputError(f"{label}:{lineno}: relevance {rel} is out of range ({RELEVANCE_MIN:,} to {RELEVANCE_MAX:,})")
        if not query_id or not doc_id:
            raise InputError(f"{label}:{lineno}: empty query or document id")
        rows.append({"query_id": query_id, "doc_id": doc_id, "relevance": int(rel), "source": source, "time": ""})
    return judgments_table(rows)


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


def set_aside_message(set_aside: pa.Table) -> str:
    """What a warning says of verdicts set aside (the first named)."""
    first = f"query '{set_aside.column('query_id')[0]}', document '{set_aside.column('doc_id')[0]}'"
    return f"{set_aside.num_rows} review verdict(s) set aside: the query or document text they judged has changed since (first: {first})"


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


def merge_source(table: pa.Table, replacement: pa.Table, source: str = HUMAN) -> pa.Table:
    """`table` with its rows of `source` replaced by `replacement` (other sources kept as they are)."""
    import pyarrow.compute as pc

    others = table.filter(pc.invert(pc.equal(table.column("source"), source)))
    return pa.concat_tables([others, replacement.cast(JUDGMENTS_SCHEMA)])


def judged_texts(queries: pa.Table, corpus: pa.Table, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """{(query, document): (query text, document title and text joined)} for the pairs whose ids are in the
    tables: the texts a person sees when judging a pair, which a verdict is tied to."""
    import pyarrow.compute as pc

    from hnmine.formats import joined_text

    pairs = list(pairs)
    qids = pa.array(sorted({q for q, _ in pairs}), pa.string())
    dids = pa.array(sorted({d for _, d in pairs}), pa.string())
    q_rows = queries.filter(pc.is_in(pc.cast(queries.column("query_id"), pa.string()), value_set=qids))
    d_rows = corpus.filter(pc.is_in(pc.cast(corpus.column("doc_id"), pa.string()), value_set=dids))
    q_text = dict(zip(q_rows.column("query_id").to_pylist(), q_rows.column("text").to_pylist()))
    titles = d_rows.column("title").to_pylist() if "title" in d_rows.column_names else [""] * d_rows.num_rows
    d_text = {
        d: joined_text(t or "", x or "") for d, t, x in zip(d_rows.column("doc_id").to_pylist(), titles, d_rows.column("text").to_pylist())
    }
    return {(q, d): (q_text[q] or "", d_text[d]) for q, d in pairs if q in q_text and d in d_text}


def set_aside_changed(table: pa.Table, queries: pa.Table, corpus: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(verdicts to apply, verdicts set aside): a verdict that recorded the texts it judged is set aside when
    the run's query or document text is no longer that text (the run's inputs were replaced or edited), so
    it is never applied to another text. Verdicts without recorded texts (files, the teacher) are kept."""
    import numpy as np

    qsha, dsha = table.column("query_text_sha256").to_pylist(), table.column("doc_text_sha256").to_pylist()
    recorded = [i for i in range(table.num_rows) if qsha[i] is not None or dsha[i] is not None]
    if not recorded:
        return table, table.slice(0, 0)
    qids, dids = table.column("query_id").to_pylist(), table.column("doc_id").to_pylist()
    texts = judged_texts(queries, corpus, [(qids[i], dids[i]) for i in recorded])
    changed = np.zeros(table.num_rows, bool)
    for i in recorded:
        now = texts.get((qids[i], dids[i]))
        if now is not None and (
            (qsha[i] is not None and qsha[i] != text_sha256(now[0])) or (dsha[i] is not None and dsha[i] != text_sha256(now[1]))
        ):
            changed[i] = True
    return table.filter(pa.array(~changed)), table.filter(pa.array(changed))


# -- the review journal -----------------------------------------------------------------------


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
        from hnmine.rundir import refuse_link

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


# -- exporting --------------------------------------------------------------------------------


def export_qrels(table: pa.Table, path: str | Path, format: str = "beir") -> int:
    """Write judgments (folded to one per pair first) as a qrels file: `beir` is the TSV with a
    `query-id corpus-id score` header, `trec` is `qid 0 docid rel`. Returns the rows written."""
    from hnmine.errors import UnknownName
    from hnmine.io.atomic import write_user_text

    if format not in QRELS_FORMATS:
        raise UnknownName("qrels format", format, list(QRELS_FORMATS))
    rows = fold_judgments(table).to_pylist()
    bad = re.compile(r"\s") if format == "trec" else re.compile(r"[\t\r\n]")
    for r in rows:
        for name in ("query_id", "doc_id"):
            if bad.search(r[name]):
                what = "whitespace" if format == "trec" else "a tab or line break"
                raise InputError(f"{name} {r[name]!r} holds {what}: it cannot be written as {format} qrels")
    if format == "beir":
        lines = ["query-id\tcorpus-id\tscore"] + [f"{r['query_id']}\t{r['doc_id']}\t{r['relevance']}" for r in rows]
    else:
        lines = [f"{r['query_id']} 0 {r['doc_id']} {r['relevance']}" for r in rows]
    write_user_text("\n".join(lines) + "\n", Path(path))
    return len(rows)


# -- what the filter does with them -----------------------------------------------------------


def apply_judgments(scores: pa.Table, judgments: pa.Table) -> tuple[pa.Table, dict]:
    """Apply judgments to the scores table (pure: neither input is changed).

    Returns `(scores, info)`:
    - `scores` with judged-relevant pairs (relevance > 0) marked `is_positive = True`, so the filter
      treats them as positives and never as negatives, and two columns added: `judged` (the
      verdict's source, null where the pair was not judged) and `judged_relevance` (int32, null
      where not judged);
    - `info["unscored_positives"]`: judged-relevant pairs absent from `scores` (not candidates of this
      run, so the teacher never scored them), as a judgments table;
    - `info["not_relevant"]`: judged not-relevant pairs (relevance <= 0) present in `scores` and not
      known positives, as a judgments table: the filter must never drop these as suspected false
      negatives;
    - `info["counts"]`: what the judgments did, per source (`by_source`) and summed over `human`
      and `automatic` (every other source): `new_positives`, `already_positive`,
      `unscored_positives`, `not_relevant`, `not_relevant_known_positive`, `not_in_run`.

    Judgments are folded first (`fold_judgments`). A not-relevant verdict on a known positive is
    counted (`not_relevant_known_positive`) but does not demote it: the qrels stay the authority on
    positives, and the filter never drops a positive as a suspect anyway.
    """
    import numpy as np
    import pyarrow.compute as pc

    from hnmine.errors import MissingColumn

    for name in ("query_id", "doc_id", "is_positive"):
        if name not in scores.column_names:
            raise MissingColumn("scores", name, list(scores.column_names))
    folded = fold_judgments(judgments)
    row_of = _score_rows_of(scores, folded)
    relevance = folded.column("relevance").to_numpy().astype(np.int64)
    sources = folded.column("source").to_pylist()
    present = row_of >= 0
    was_positive = np.asarray(pc.fill_null(scores.column("is_positive"), False).to_numpy(zero_copy_only=False), bool)
    positive_before = np.zeros(folded.num_rows, bool)
    positive_before[present] = was_positive[row_of[present]]

    is_positive = was_positive.copy()
    is_positive[row_of[present & (relevance > 0)]] = True
    out = _with_verdict_columns(scores, is_positive, row_of[present], np.asarray(sources, dtype=object)[present], relevance[present])
    counts = _judgment_counts(relevance, present, positive_before, sources, folded.num_rows)
    return out, {
        "unscored_positives": folded.filter(pa.array((relevance > 0) & ~present)),
        "not_relevant": folded.filter(pa.array((relevance <= 0) & present & ~positive_before)),
        "counts": counts,
    }


def _score_rows_of(scores: pa.Table, folded: pa.Table) -> np.ndarray:
    """For each folded judgment, the row of `scores` with its (query, document), or -1 if none."""
    import numpy as np
    import pyarrow.compute as pc

    def text(name: str) -> pa.ChunkedArray:
        col = scores.column(name)
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        return pc.cast(col, pa.string())

    row_of = np.full(folded.num_rows, -1, dtype=np.int64)
    if not folded.num_rows:
        return row_of
    left = pa.table({"query_id": text("query_id"), "doc_id": text("doc_id"), "__row": pa.array(np.arange(scores.num_rows, dtype=np.int64))})
    right = folded.append_column("__judgment", pa.array(np.arange(folded.num_rows, dtype=np.int64)))
    hits = left.join(right, keys=["query_id", "doc_id"], join_type="inner")
    if hits.num_rows:
        row_of[hits.column("__judgment").to_numpy()] = hits.column("__row").to_numpy()
    return row_of


def _with_verdict_columns(
    scores: pa.Table, is_positive: np.ndarray, rows: np.ndarray, sources: np.ndarray, relevance: np.ndarray
) -> pa.Table:
    """`scores` with `is_positive` replaced and `judged` / `judged_relevance` set on `rows`."""
    import numpy as np

    n = scores.num_rows
    judged_source = np.full(n, None, dtype=object)
    judged_rel = np.zeros(n, dtype=np.int32)
    judged_mask = np.zeros(n, dtype=bool)
    judged_source[rows] = sources
    judged_rel[rows] = relevance
    judged_mask[rows] = True
    out = scores.set_column(
        scores.column_names.index("is_positive"), pa.field("is_positive", pa.bool_()), pa.array(is_positive, pa.bool_())
    )
    for name, col in (
        ("judged", pa.array(judged_source.tolist(), pa.string())),
        ("judged_relevance", pa.array(judged_rel, pa.int32(), mask=~judged_mask)),
    ):
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, col)
        else:
            out = out.append_column(name, col)
    return out


def _judgment_counts(relevance, present, positive_before, sources: list[str], total: int) -> dict:
    """What each judgment did, per source and summed over human and automatic verdicts."""
    import numpy as np

    outcome = np.where(
        relevance > 0,
        np.where(~present, "unscored_positives", np.where(positive_before, "already_positive", "new_positives")),
        np.where(~present, "not_in_run", np.where(positive_before, "not_relevant_known_positive", "not_relevant")),
    )
    kinds = ("new_positives", "already_positive", "unscored_positives", "not_relevant", "not_relevant_known_positive", "not_in_run")
    by_source: dict[str, dict[str, int]] = {}
    for source, what in zip(sources, outcome.tolist()):
        per = by_source.setdefault(source, dict.fromkeys(kinds, 0))
        per[what] += 1
    counts: dict = {"judgments": total, "by_source": by_source}
    for group, pick in ((HUMAN, lambda s: s == HUMAN), ("automatic", lambda s: s != HUMAN)):
        counts[group] = {k: sum(per[k] for s, per in by_source.items() if pick(s)) for k in kinds}
    return counts
