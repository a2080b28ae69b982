"""`render_report`: the report as rich tables, unicode histograms and side-by-side suspects."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from hnmine.report.histogram import axis, bar, bucket_label, column_chart, count_buckets, rebin
from hnmine.report.text import doc_text, printable_data, trim, wrap_lines

SERIES = (("positives", "green"), ("kept", "cyan"), ("dropped", "red"))
TEXT_LINES = 3  # lines of document text per suspect cell
STACK_BELOW = 90  # narrower terminals list suspects as blocks, not side by side


def render_report(report: dict, console: Console | None = None) -> None:
    """Print `report` (from `build_report`) to `console` (default: stdout)."""
    console = console or Console()
    report = printable_data(report)  # ids, paths, texts: no control character reaches the terminal
    width = console.width
    console.print(_header(report))
    for title, body in (
        ("Stages", _stages(report)),
        ("Coverage", _coverage(report, width)),
        ("Teacher scores", _scores(report, width)),
        ("Drop reasons", _drops(report, width)),
        (_suspects_title(report), _suspects(report, console)),
    ):
        console.print()
        console.print(Rule(Text(title, style="bold"), align="left", style="dim"))
        console.print(body)


def _header(report: dict) -> Text:
    t = Text()
    t.append("hnmine report", style="bold")
    t.append("  ")
    t.append(report["run"])
    meta = report.get("meta") or {}
    if meta.get("method"):
        t.append(f"\nmethod   {meta['method']}", style="dim")
        cal = meta.get("calibration")
        if cal and cal.get("chosen"):
            params = ", ".join(f"{k} {v}" for k, v in cal["chosen"].get("params", {}).items())
            t.append(f" → {cal['chosen']['method']}{' (' + params + ')' if params else ''}: {cal.get('reason', '')}", style="dim")
    for m in meta.get("models") or []:
        t.append(f"\n{m['role']:<8} {model_name(m)}", style="dim")
    return t


def model_name(m: dict) -> str:
    return f"{m['kind']} {m['name']}" if m.get("kind") else m["name"]


def _stages(report: dict):
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("stage")
    table.add_column("rows in", justify="right")
    table.add_column("rows out", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("finished", style="dim", no_wrap=True, overflow="ellipsis")
    for s in report["stages"]:
        if not s["ran"]:
            table.add_row(Text(s["stage"], style="dim"), "", "", "", "not run")
            continue
        finished = "out of date" if s.get("out_of_date") else (s["finished_at"] or "").replace("T", " ").rstrip("Z")
        table.add_row(s["stage"], _n(s["rows_in"]), _n(s["rows_out"]), _secs(s["seconds"]), finished)
    stale = [{"stage": s["stage"], "message": s["out_of_date"]} for s in report["stages"] if s.get("out_of_date")]
    warnings = stale + ((report.get("meta") or {}).get("warnings") or [])
    if not warnings:
        return table
    lines = Text()
    for w in warnings:
        lines.append(f"\n{w['stage']}: ", style="bold yellow")
        lines.append(" ".join(w["message"].split()), style="yellow")
    return Group(table, lines)


def _coverage(report: dict, width: int) -> Group:
    cov = report["coverage"]
    total, target = cov["queries"], cov["target"]
    bar_w = max(10, min(30, width - 50))
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_column(justify="right")
    table.add_column()
    rows = [(f"full ({target} negatives)", cov["full"], "green"), ("short", cov["short"], "yellow")]
    rows += [
        (label, cov["status"].get(key, 0), "red") for key, label in (("no_candidates", "no candidates"), ("no_positive", "no positive"))
    ]
    if cov.get("exported") is not None:
        rows.append(("exported", cov["exported"], "default"))
    for label, n, style in rows:
        table.add_row(label, _n(n), _pct(n, total), Text(bar(n / total if total else 0, bar_w), style=style))

    hist = _per_query_line(cov["negatives_per_query"], width)
    parts: list[RenderableType] = [Text(f"{_n(total)} queries, target {target} negatives each"), Padding(table, (0, 0, 0, 2)), hist]

    if cov["shortest"]:
        short = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, title=None)
        short.add_column("query")
        short.add_column("negatives", justify="right")
        short.add_column("candidates", justify="right")
        short.add_column("status")
        short.add_column("text", no_wrap=True, overflow="ellipsis")
        text_w = max(10, width - 44)
        for r in cov["shortest"]:
            short.add_row(
                Text(r["query_id"]),
                f"{r['n_negatives']}/{target}",
                _n(r.get("n_candidates")),
                r["status"],
                Text(trim(doc_text("", r["query"]), text_w)),
            )
        more = cov["short"] - len(cov["shortest"])
        caption = f"shortest {len(cov['shortest'])} of {cov['short']}" if more > 0 else "short queries"
        parts += [Text(""), Text(caption, style="dim"), short]
    return Group(*parts)


def _per_query_line(per_query: list[int], width: int) -> Text:
    """'negatives per query  0:0  1:2 …': one bucket per number of negatives, or ranges of them
    for a large target (-n 1000), as many as fit on one line."""
    for most in range(12, 2, -1):
        buckets = count_buckets(per_query, most)
        cells = [f"{bucket_label(lo, hi)}:{_n(c)}" for lo, hi, c in buckets]
        if len("negatives per query  ") + sum(len(x) + 2 for x in cells) <= width:
            break
    hist = Text("negatives per query  ", style="dim")
    peak = max((c for _, _, c in buckets), default=0)
    for lo, hi, c in buckets:
        hist.append(f"{bucket_label(lo, hi)}:", style="dim")
        hist.append(_n(c), style="bold" if c == peak and c else "")
        hist.append("  ")
    return hist


def _scores(report: dict, width: int) -> Group:
    dist = report["scores"]
    edges = dist["edges"]
    label_w, stats_w = 16, 26
    chart_w = max(10, width - label_w - stats_w - 4)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=label_w, no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    n_bins = 0
    for name, style in SERIES:
        s = dist["series"][name]
        counts = rebin(s["counts"], chart_w)
        n_bins = len(counts)
        label = Text(name, style=f"bold {style}")
        label.append(f"\nn={_n(s['n'])}", style="dim")
        if s["n"]:
            chart = Text("\n".join(column_chart(counts, height=3)), style=style)
            stats = Text(
                f"median {s['median']:.3f}\nIQR {s['p25']:.3f} … {s['p75']:.3f}\nrange {s['min']:.3f} … {s['max']:.3f}", style="dim"
            )
        else:
            chart, stats = Text("(none)", style="dim"), Text("")
        grid.add_row(label, chart, stats)
    grid.add_row("", Text(axis(edges[0], edges[-1], n_bins), style="dim"), "")
    note = Text("teacher score on a shared axis; each row scaled to its own peak; dropped excludes known positives", style="dim")
    return Group(grid, note)


def _drops(report: dict, width: int) -> Group:
    f = report["funnel"]
    line = Text()
    # the same count as `hnmine mine`'s summary: what a rule dropped, retrieved known positives aside
    line.append(f"{_n(f['candidates'])} candidates (positives aside): ")
    line.append(f"{_n(f['kept'])} kept", style="cyan")
    line.append(" · ")
    line.append(f"{_n(f['dropped'])} dropped by the rules", style="red")
    line.append(f" · {_n(f['unused'])} unused")
    if f["random"]:
        line.append(f" · {_n(f['random'])} random added")
    lines = [line] + _judgment_lines(report.get("judgments")) + _reuse_lines(report.get("negative_reuse"))
    reasons = report["drop_reasons"]
    if not reasons:
        return Group(*lines, Text("nothing was dropped", style="dim"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("reason")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    table.add_column("", no_wrap=True)
    bar_w = max(4, min(30, width - 60))
    peak = max(r["count"] for r in reasons)
    for r in reasons:
        style = "dim" if r["reason"] == "known_positive" else ""
        table.add_row(
            Text(r["reason"], style=style), _n(r["count"]), f"{r['share'] * 100:.1f}%", Text(bar(r["count"] / peak, bar_w), style="red")
        )
    return Group(*lines, table)


def _reuse_lines(reuse: dict | None) -> list[Text]:
    """What --max-negative-reuse did (hnmine.selection.reuse)."""
    if not reuse:
        return []
    return [
        Text(
            f"negative reuse capped at {reuse.get('max_negative_reuse')} queries per document: "
            f"{_n(reuse.get('negatives_taken_back', 0))} negatives taken back from {_n(reuse.get('documents_over_cap', 0))} documents, "
            f"{_n(reuse.get('negatives_replaced', 0))} replaced, {_n(reuse.get('queries_short_by_cap', 0))} queries short by the cap "
            f"(most uses of a document {reuse.get('most_uses_before')} → {reuse.get('most_uses_after', reuse.get('most_uses_before'))})",
            style="dim",
        )
    ]


def _judgment_lines(judgments: dict | None) -> list[Text]:
    """Human verdicts counted apart from automatic ones (hnmine review vs relabelling)."""
    if not judgments:
        return []
    out = []
    for group, label in (("human", "human verdicts"), ("automatic", "automatic verdicts")):
        c = judgments.get(group) or {}
        total = sum(v for v in c.values() if isinstance(v, int))
        if total:
            out.append(
                Text(
                    f"{label}: {total:,} — {c.get('new_positives', 0):,} made positives, "
                    f"{c.get('not_relevant', 0):,} kept out of the false-negative rules, "
                    f"{c.get('unscored_positives', 0) + c.get('not_in_run', 0):,} not candidates of this run",
                    style="dim",
                )
            )
    return out


def _suspects_title(report: dict) -> str:
    s = report["suspects"]
    which = f" · {s['reason']}" if s["reason"] else ""
    queries = s.get("queries_above_positive", 0)
    return (
        f"Suspected false negatives{which} ({s['above_positive']:,} above their positive, "
        f"in {queries:,} {'query' if queries == 1 else 'queries'})"
    )


def suspects_note(s: dict) -> list[str]:
    """What the list shows and how it is ordered, in two lines (the terminal's and the HTML page's words)."""
    cap = f", at most {s['per_query']:,} per query" if s.get("per_query") else ""
    return [
        f"showing {len(s['rows']):,}{cap}, grouped by query, ranked by teacher score − positive score",
        f"{s['considered']:,} {_pool(s['reason'])} scored; the positive shown is the one repeated, else the reference",
    ]


def _pool(reason: str | None) -> str:
    """What the suspects are ranked among."""
    if reason is None:
        return "kept or dropped candidates"
    return "kept negatives" if reason == "kept" else f"candidates dropped as {reason}"


def same_query(rows: list[dict], k: int) -> tuple[bool, bool]:
    """(row k continues the previous row's query, and shows the same positive)."""
    if k == 0 or rows[k]["query_id"] != rows[k - 1]["query_id"]:
        return False, False
    same = all(rows[k].get(key) == rows[k - 1].get(key) for key in ("positive_id", "positive_chosen"))
    return True, same


def _suspects(report: dict, console: Console):
    s = report["suspects"]
    note = Text("\n".join(suspects_note(s)), style="dim")
    if not s["rows"]:
        return Group(note, Text("no suspects", style="dim"))
    if console.width < STACK_BELOW:
        return Group(note, Text(""), _suspects_stacked(s["rows"], console))
    # Widths chosen here so texts can be cut to whole lines: # and Δ, then 2:3:3 for the texts.
    verdict_w, num_w, delta_w = 12, 3, 6
    free = console.width - num_w - delta_w - verdict_w - 3 * 5  # five gaps: padding + separator
    query_w = max(8, free * 2 // 8)
    doc_w = max(10, (free - query_w) // 2)
    table = Table(box=box.SIMPLE_HEAD, show_lines=True, pad_edge=False, show_edge=False, padding=(0, 1))
    table.add_column("#", justify="right", width=num_w, no_wrap=True)
    table.add_column("Δ", justify="right", width=delta_w, no_wrap=True)
    table.add_column("query", width=query_w, no_wrap=True, overflow="ellipsis")
    table.add_column("positive", width=doc_w, no_wrap=True, overflow="ellipsis")
    table.add_column("suspect", width=doc_w, no_wrap=True, overflow="ellipsis")
    table.add_column("verdict", width=verdict_w)
    for k, r in enumerate(s["rows"]):
        again, same_positive = same_query(s["rows"], k)
        query = Text("same query", style="dim") if again else Text(trim(r["query_id"], query_w), style="dim")
        for ln in [] if again else wrap_lines(r["query"], query_w, TEXT_LINES, console):
            query.append("\n" + ln)
        positive = Text("same positive", style="dim") if same_positive else _positive_cell(r, doc_w, console)
        suspect = _doc_cell(r["doc_id"], r["teacher_score"], r["suspect_title"], r["suspect"], doc_w, console, _suspect_style(r))
        table.add_row(str(r["n"]), Text(f"{r['delta']:+.3f}", style="bold"), query, positive, suspect, _verdict(r))
    return Group(note, table)


def _suspects_stacked(rows: list[dict], console: Console) -> Text:
    """Narrow terminals: each suspect as a block of labelled lines instead of side by side; a
    query's second and later suspects do not repeat its text or an unchanged positive."""
    indent = " " * 14
    text_w = max(10, console.width - len(indent))
    out = Text()
    for k, r in enumerate(rows):
        again, same_positive = same_query(rows, k)
        out.append(f"{r['n']:>3}  ", style="bold")
        out.append(f"Δ {r['delta']:+.3f}  ", style="bold")
        out.append_text(_verdict(r))
        out.append("\n     query    ")
        out.append(
            "same query" if again else trim(f"{r['query_id']} · {' '.join(r['query'].split())}", text_w), style="dim" if again else ""
        )
        cells = [
            (
                "suspect ",
                _doc_cell(r["doc_id"], r["teacher_score"], r["suspect_title"], r["suspect"], text_w, console, _suspect_style(r), lines=2),
            )
        ]
        positive = Text("same positive", style="dim") if same_positive else _positive_cell(r, text_w, console, lines=2)
        for label, cell in [("positive", positive)] + cells:
            out.append(f"\n     {label} ")
            for i, line in enumerate(cell.split("\n")):
                if i:
                    out.append("\n" + indent)
                out.append_text(line)
        out.append("\n\n")
    out.rstrip()
    return out


def _positive_cell(r: dict, width: int, console: Console, lines: int = TEXT_LINES) -> Text:
    """The positive beside a suspect: its own score, and why it is this one when not the reference."""
    why = {"same_text": "same text", "nearest": "nearest"}.get(r.get("positive_chosen") or "")
    score = r.get("positive_doc_score", r["positive_score"])
    return _doc_cell(r["positive_id"], score, r["positive_title"], r["positive"], width, console, "green", lines, why)


def _verdict(r: dict) -> Text:
    if r["status"] == "kept":
        verdict = Text("kept", style="bold cyan")
        if r["rank"] is not None:
            verdict.append(f" #{r['rank']}")
        return verdict
    return Text(r["status"].replace("_", " "), style="yellow")


def _suspect_style(r: dict) -> str:
    return "red" if r["status"] == "kept" else "yellow"


def _doc_cell(doc_id, score, title, text, width, console, style, lines: int = TEXT_LINES, why: str | None = None) -> Text:
    cell = Text()
    if doc_id is None:
        return Text("(no scored positive)", style="dim")
    head = f"{doc_id} · {score:.3f}" if score is not None else str(doc_id)
    head += f" · {why}" if why else ""
    cell.append(trim(head, width), style=style)
    for ln in wrap_lines(doc_text(title, text), width, lines, console):
        cell.append("\n" + ln)
    return cell


def _n(x) -> str:
    return "" if x is None else f"{x:,}"


def _pct(n: int, total: int) -> str:
    return f"{n / total * 100:.1f}%" if total else ""


def _secs(s) -> str:
    if s is None:
        return ""
    if s < 60:
        return f"{s:.2f}"
    m, sec = divmod(s, 60)
    return f"{int(m)}m{sec:04.1f}s" if m < 60 else f"{int(m // 60)}h{int(m % 60):02d}m"
