"""`inspect_query`: one query's whole story; `render_inspect` prints it."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
from rich.cells import cell_len
from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from hnmine.errors import InputError, OptionError
from hnmine.report import load
from hnmine.report.build import _f
from hnmine.report.text import doc_text, printable_data, trim, wrap_lines
from hnmine.rundir import RunDir


def find_query(run_dir: str | Path, query_id: str | None = None, query_text: str | None = None) -> tuple[str, str]:
    """(query_id, text) of the query named by id, or the one query whose text contains `query_text`."""
    run = RunDir(run_dir)
    if (query_id is None) == (query_text is None):
        raise OptionError("give a query id, or --query TEXT to find one (not both)")
    if query_id is not None:
        hit = run.read_current("queries", ["query_id", "text"], where=("query_id", [query_id]))
        if hit.num_rows:
            return query_id, hit.column("text")[0].as_py()
        ids = run.read_current("queries", ["query_id"]).column("query_id").to_pylist()
        close = difflib.get_close_matches(query_id, ids, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else f"ids look like {', '.join(ids[:3])}"
        raise InputError(f"no query '{query_id}' in {run.path_of('queries')} ({len(ids):,} queries; {hint})")

    needle = " ".join((query_text or "").split()).casefold()
    if not needle:
        raise OptionError("--query needs some text to look for")
    table = run.read_current("queries", ["query_id", "text"])
    ids, texts = table.column("query_id").to_pylist(), table.column("text").to_pylist()
    exact = [i for i, t in enumerate(texts) if " ".join((t or "").split()).casefold() == needle]
    hits = exact or [i for i, t in enumerate(texts) if needle in " ".join((t or "").split()).casefold()]
    if len(hits) == 1:
        return ids[hits[0]], texts[hits[0]]
    if not hits:
        raise InputError(f"no query text contains '{query_text}' ({len(ids):,} queries in {run.path_of('queries')})")
    shown = ", ".join(ids[i] for i in hits[:5]) + (", …" if len(hits) > 5 else "")
    raise InputError(f"{len(hits):,} queries contain '{query_text}': {shown} (give one query id)")


def inspect_query(run_dir: str | Path, query_id: str | None = None, query_text: str | None = None) -> dict:
    """Everything the run knows about one query: its positives and every candidate, with rank,
    source, retriever and teacher scores, and what the filter did with it (and why)."""
    run = RunDir(run_dir)
    run.check_shows_a_run()
    run.require_all("queries", "corpus", "scores")
    qid, qtext = find_query(run.path, query_id, query_text)
    where = ("query_id", [qid])
    scores = run.read_current(
        "scores",
        ["doc_id", "rank", "source", "is_positive", "teacher_score"],
        optional=["score", "dense_score", "bm25_score"],
        where=where,
    )
    filtered = all(run.path_of(n).is_file() for n in ("negatives", "dropped"))
    if not filtered and run.manifest("filter") is not None:
        # the filter ran, but a table of it is gone: say which, not "the filter has not run"
        run.require_all("negatives", "dropped")
    kept, dropped, summary = _filter_rows(run, where) if filtered else ({}, {}, None)
    ref = summary.get("positive_score") if summary else None
    if ref is None:
        refs = [r.get("positive_score") for r in [*kept.values(), *dropped.values()] if r.get("positive_score") is not None]
        ref = _f(refs[0]) if refs else None
    qrels_pos: dict[str, int | None] = {}
    if run.path_of("qrels").is_file():
        qrels = run.read_current("qrels", ["doc_id", "is_positive"], optional=["relevance"], where=where).to_pylist()
        qrels_pos = {r["doc_id"]: r.get("relevance") for r in qrels if r["is_positive"]}
    score_rows = scores.to_pylist()
    docs = load.lookup_texts(run, "corpus", [r["doc_id"] for r in score_rows] + list(kept) + list(qrels_pos))
    candidates = _candidates(score_rows, kept, dropped, filtered, ref, docs)
    positives = _positives(candidates, qrels_pos, docs)
    counts = {v: sum(1 for c in candidates if c["verdict"] == v) for v in ("positive", "kept", "dropped", "unused")}
    counts["random"] = sum(1 for c in candidates if c["verdict"] == "kept" and c["rank"] is None)
    return {
        "run": str(run.path),
        "query_id": qid,
        "query": qtext,
        "filtered": filtered,
        "summary": summary,
        "positive_score": ref,
        "positives": positives,
        "candidates": candidates,
        "counts": counts,
    }


def _filter_rows(run: RunDir, where) -> tuple[dict[str, dict], dict[str, dict], dict | None]:
    """(kept negatives, dropped candidates, the query_summary row) of one query, by doc id."""
    neg = run.read_current(
        "negatives", ["doc_id", "teacher_score"], optional=["rank", "is_random", "source", "positive_score"], where=where
    )
    drop = run.read_current("dropped", ["doc_id", "reason"], optional=["rank", "positive_score"], where=where)
    summary = None
    if run.path_of("query_summary").is_file():
        rows = run.read_current(
            "query_summary",
            ["query_id"],
            optional=["n_positives", "positive_score", "n_candidates", "depth_used", "n_negatives", "shortfall", "exported", "status"],
            where=where,
        ).to_pylist()
        summary = {k: (_f(v) if isinstance(v, float) else v) for k, v in rows[0].items()} if rows else None
    return {r["doc_id"]: r for r in neg.to_pylist()}, {r["doc_id"]: r for r in drop.to_pylist()}, summary


def _candidates(score_rows: list[dict], kept: dict, dropped: dict, filtered: bool, ref, docs: dict) -> list[dict]:
    """Every scored row of the query with its verdict, plus random negatives (not in scores.parquet)."""
    candidates = []
    for r in score_rows:
        d = r["doc_id"]
        teacher = _f(r["teacher_score"])
        if r["is_positive"]:
            verdict, reason, teacher_rank = "positive", None, None
        elif d in kept:
            verdict, reason, teacher_rank = "kept", None, kept[d].get("rank")
        elif d in dropped:
            verdict, reason, teacher_rank = "dropped", dropped[d]["reason"], dropped[d].get("rank")
        else:
            verdict, reason, teacher_rank = ("unused" if filtered else "unfiltered"), None, None
        delta = _f(teacher - ref) if teacher is not None and ref is not None and not r["is_positive"] else None
        candidates.append(
            _candidate(
                r["rank"],
                d,
                r["source"],
                teacher,
                delta,
                teacher_rank,
                bool(r["is_positive"]),
                verdict,
                reason,
                docs,
                score=_f(r.get("score")),
                dense=_f(r.get("dense_score")),
                bm25=_f(r.get("bm25_score")),
            )
        )
    seen = {r["doc_id"] for r in score_rows}
    for d, r in kept.items():
        if d not in seen:
            candidates.append(
                _candidate(None, d, r.get("source") or "random", _f(r.get("teacher_score")), None, r.get("rank"), False, "kept", None, docs)
            )
    candidates.sort(key=lambda c: (c["rank"] is None, c["rank"] or 0, -(c["teacher_score"] if c["teacher_score"] is not None else -np.inf)))
    return candidates


def _candidate(
    rank, doc_id, source, teacher, delta, teacher_rank, is_positive, verdict, reason, docs, *, score=None, dense=None, bm25=None
) -> dict:
    title, text = docs.get(doc_id, ("", ""))
    return {
        "rank": rank,
        "doc_id": doc_id,
        "source": source,
        "score": score,
        "dense_score": dense,
        "bm25_score": bm25,
        "teacher_score": teacher,
        "delta": delta,
        "teacher_rank": teacher_rank,
        "is_positive": is_positive,
        "verdict": verdict,
        "reason": reason,
        "title": title,
        "text": text,
    }


def _positives(candidates: list[dict], qrels_pos: dict, docs: dict) -> list[dict]:
    by_doc = {c["doc_id"]: c for c in candidates}
    pos_ids = list(qrels_pos) or [c["doc_id"] for c in candidates if c["is_positive"]]
    out = []
    for d in pos_ids:
        c = by_doc.get(d, {})
        out.append(
            {
                "doc_id": d,
                "relevance": qrels_pos.get(d),
                "rank": c.get("rank"),
                "source": c.get("source"),
                "teacher_score": c.get("teacher_score"),
                "title": docs.get(d, ("", ""))[0],
                "text": docs.get(d, ("", ""))[1],
            }
        )
    return out


# -- terminal ---------------------------------------------------------------------------------

VERDICT_STYLE = {"positive": "green", "kept": "cyan", "dropped": "yellow", "unused": "dim", "unfiltered": "dim"}


def render_inspect(data: dict, console: Console | None = None) -> None:
    """Print `data` (from `inspect_query`) to `console` (default: stdout)."""
    console = console or Console()
    data = printable_data(data)  # ids, paths, texts: no control character reaches the terminal
    width = console.width
    qid = trim(data["query_id"], 30)
    head = Text(qid, style="bold")
    indent = " " * (len(qid) + 2)
    for i, ln in enumerate(wrap_lines(data["query"], max(10, width - len(indent)), 3, console)):
        head.append(("  " if i == 0 else "\n" + indent) + ln)
    console.print(head)
    console.print(_summary_line(data))

    console.print()
    console.print(Rule(Text(f"Positives ({len(data['positives'])})", style="bold"), align="left", style="dim"))
    rows = [
        [p["doc_id"], _num(p["rank"], "missed"), p["source"] or "", _score(p["teacher_score"]), doc_text(p["title"], p["text"])]
        for p in data["positives"]
    ]
    console.print(_table(["doc", "rank", "source", "teacher", "text"], "lrlrl", rows, width), no_wrap=True, overflow="ellipsis", crop=True)

    console.print()
    c = data["counts"]
    title = (
        f"Candidates ({len(data['candidates'])}: {c['kept']} kept, {c['dropped']} dropped, {c['unused']} unused)"
        if data["filtered"]
        else f"Candidates ({len(data['candidates'])}, not filtered yet)"
    )
    console.print(Rule(Text(title, style="bold"), align="left", style="dim"))
    hybrid = any(x["dense_score"] is not None for x in data["candidates"]) and any(x["bm25_score"] is not None for x in data["candidates"])
    # hybrid runs: the fused (RRF) score only restates the rank, so show each retriever's score
    headers = ["rank", "doc", "source"] + (["dense", "bm25"] if hybrid else ["retriever"]) + ["teacher", "Δ pos", "verdict", "text"]
    justify = "rll" + ("rr" if hybrid else "r") + "rrll"
    rows = []
    for x in data["candidates"]:
        row = [_num(x["rank"], "—"), x["doc_id"], x["source"] or ""]
        row += [_score(x["dense_score"]), _score(x["bm25_score"], 2)] if hybrid else [_score(x["score"], 4)]
        delta = "" if x["delta"] is None else f"{x['delta']:+.3f}"
        row += [_score(x["teacher_score"]), delta, _verdict(x), doc_text(x["title"], x["text"])]
        rows.append(row)
    console.print(_table(headers, justify, rows, width), no_wrap=True, overflow="ellipsis", crop=True)


GAP = "   "
MIN_TEXT = 30  # narrower than this, the text goes on its own line under the row


def _table(headers: list[str], justify: str, rows: list[list], width: int) -> Text:
    """Rows of cells, the last one a text that gets the width the others leave, cut with an
    ellipsis; on a narrow terminal the text goes on a line of its own under its row."""
    cells = [[c if isinstance(c, Text) else Text(str(c)) for c in r[:-1]] for r in rows]
    widths = [max([cell_len(h)] + [c[i].cell_len for c in cells]) for i, h in enumerate(headers[:-1])]
    used = sum(widths) + len(GAP) * (len(widths))
    inline = width - used >= MIN_TEXT
    if not inline and headers[-2] == "verdict":
        # the verdict moves to the text's own line, in front of the text
        rows = [r[:-2] + [r[-2], r[-1]] for r in rows]
        texts = [Text.assemble(c[-1], "  ", r[-1]) for c, r in zip(cells, rows)]
        cells = [c[:-1] for c in cells]
        headers, widths = headers[:-2] + headers[-1:], widths[:-1]
        used = sum(widths) + len(GAP) * (len(widths))
    else:
        texts = [Text(r[-1]) for r in rows]
    indent = widths[0] + len(GAP)

    def line(parts: list[Text]) -> Text:
        out = Text()
        for i, (cell, w) in enumerate(zip(parts, widths)):
            pad = " " * (w - cell.cell_len)
            out.append_text(Text(pad) + cell if justify[i] == "r" else cell + Text(pad))
            if i < len(widths) - 1:
                out.append(GAP)
        return out

    out = line([Text(h, style="bold") for h in headers[:-1]])
    if inline:
        out.append(GAP + headers[-1], style="bold")
    out.rstrip()
    out.append("\n" + "─" * width + "\n", style="dim")
    for text, parts in zip(texts, cells):
        row = line(parts)
        if inline:
            row.append(GAP + trim(text.plain, width - used))
            row.rstrip()
        else:
            row.rstrip()
            row.append("\n" + " " * indent)
            text.truncate(width - indent, overflow="ellipsis")
            row.append_text(text)
        out.append_text(row)
        out.append("\n")
    out.rstrip()
    return out


def _summary_line(data: dict) -> Text:
    s = data["summary"]
    t = Text(style="dim")
    if s is None:
        t.append("filter has not run on this query" if not data["filtered"] else "no query_summary row")
        return t
    target = (s.get("n_negatives") or 0) + (s.get("shortfall") or 0)
    bits = [f"status {s.get('status')}", f"{s.get('n_positives')} positive(s)"]
    if data["positive_score"] is not None:
        bits[-1] += f", reference score {data['positive_score']:.3f}"
    if s.get("exported") is not None:
        bits.append("exported" if s["exported"] else "not exported")
    t.append(" · ".join(bits) + "\n")
    bits = []
    if s.get("n_candidates") is not None:
        bits.append(f"{s['n_candidates']} candidates at depth {s.get('depth_used')}")
    kept = f"{s.get('n_negatives')}/{target} negatives kept"
    if data["counts"]["random"]:
        kept += f" ({data['counts']['random']} random)"
    bits.append(kept)
    t.append(" · ".join(bits))
    return t


def _verdict(x: dict) -> Text:
    v = x["verdict"]
    if v == "kept":
        label = "kept (random)" if x["rank"] is None and x["source"] == "random" else "kept"
        if x["teacher_rank"] is not None:
            label += f" #{x['teacher_rank']}"
    elif v == "dropped":
        label = (x["reason"] or "").replace("_", " ")
    else:
        label = v
    return Text(label, style=VERDICT_STYLE.get(v, ""))


def _num(x, missing: str = "") -> str:
    return missing if x is None else f"{x:,}"


def _score(x, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"
