"""`render_html`: the report as one self-contained HTML page with real plots.

No scripts, no network: the plots are matplotlib figures inlined as SVG, the styles are inline.
Text is escaped and shown as its own characters (the page is UTF-8); each text cell has
`dir="auto"` so right-to-left text reads right to left.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import numpy as np

from hnmine.report.text import clean, doc_text, printable_data, trim_chars

COLORS = {"positives": "#2a9d55", "kept": "#2b6cb0", "dropped": "#d1495b"}
TEXT_CHARS = 360  # characters of a document shown in a cell before the ellipsis
TITLE_CHARS = 4000  # characters of the full text in the hover title
SCATTER_MAX = 50_000  # points per series drawn in the scatter (a fixed-seed sample beyond)

CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#fff; --soft:#f6f8fa;
        --pos:#2a9d55; --kept:#2b6cb0; --drop:#d1495b; --warn:#b7791f; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC",
       "Noto Sans Arabic", sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.muted { color: var(--muted); }
.run { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
nav a { margin-right: 14px; color: var(--kept); text-decoration: none; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 8px 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; }
.cols { display: flex; gap: 28px; flex-wrap: wrap; align-items: flex-start; }
.bar { display: inline-block; height: 10px; background: var(--drop); border-radius: 2px; vertical-align: middle; }
.bar.full { background: var(--pos); } .bar.short { background: var(--warn); }
table.suspects { width: 100%; table-layout: fixed; }
table.suspects td { font-size: 13px; }
table.suspects tr.again td { border-top-color: transparent; }
.doc .head { font-family: ui-monospace, monospace; font-size: 12px; color: var(--muted); }
.doc .title { font-weight: 600; }
.clip { display: -webkit-box; -webkit-line-clamp: 6; -webkit-box-orient: vertical; overflow: hidden;
        overflow-wrap: anywhere; }
.verdict.kept { color: var(--kept); font-weight: 600; } .verdict.dropped { color: var(--warn); }
.delta { font-weight: 600; }
.warning { color: var(--warn); margin: 4px 0; }
"""


def render_html(report: dict, path: str | Path) -> Path:
    """Write `report` (from `build_report`, with `include_points=True` for the scatter plot) as
    a self-contained HTML page at `path`; returns the path."""
    from hnmine.io.atomic import write_user_text

    path = Path(path)
    page = html_page(report)
    write_user_text(page, path)  # atomic (through a link); a folder that cannot be written is a one-line RunDirError
    return path


def html_page(report: dict) -> str:
    """The page as a string."""
    # ids, paths, texts with control characters as visible escapes (a page shown with `cat` or
    # `less` sends none to the terminal), then HTML-escaped cell by cell (_e)
    points = report.get("points")
    report = printable_data({k: v for k, v in report.items() if k != "points"})
    if points is not None:
        report["points"] = points
    sections = [
        ("stages", "Stages", _stages(report)),
        ("coverage", "Coverage", _coverage(report)),
        ("scores", "Teacher scores", _scores(report)),
        ("scatter", "Positive vs negative score", _scatter(report)),
        ("drops", "Drop reasons", _drops(report)),
        ("suspects", "Suspected false negatives", _suspects(report)),
    ]
    e = _e
    meta = report.get("meta") or {}
    bits = ([f"method {meta['method']}"] if meta.get("method") else []) + [
        f"{m['role']} {m['kind'] + ' ' if m.get('kind') else ''}{m['name']}" for m in meta.get("models") or []
    ]
    nav = "".join(f'<a href="#{sid}">{e(title)}</a>' for sid, title, _ in sections)
    body = "\n".join(f'<section id="{sid}">\n<h2>{e(title)}</h2>\n{content}\n</section>' for sid, title, content in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hnmine report — {e(report["run"])}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<h1>hnmine report</h1>
<div class="run">{e(report["run"])}</div>
<div class="muted">{e(" · ".join(bits))}</div>
<nav>{nav}</nav>
</header>
{body}
<footer class="muted"><p>hnmine {e(report.get("hnmine_version", ""))}</p></footer>
</main>
</body>
</html>
"""


# -- sections ---------------------------------------------------------------------------------


def _stages(report: dict) -> str:
    rows = []
    for s in report["stages"]:
        if not s["ran"]:
            rows.append(f'<tr class="muted"><td>{_e(s["stage"])}</td><td colspan="4">not run</td></tr>')
            continue
        rows.append(
            f'<tr><td>{_e(s["stage"])}</td><td class="num">{_n(s["rows_in"])}</td>'
            f'<td class="num">{_n(s["rows_out"])}</td><td class="num">{_secs(s["seconds"])}</td>'
            f'<td class="muted">{_e((s["finished_at"] or "").replace("T", " ").rstrip("Z"))}</td></tr>'
        )
        if s.get("out_of_date"):
            rows.append(f'<tr><td></td><td colspan="4" class="warning">{_e(s["out_of_date"])}</td></tr>')
    return (
        '<table><thead><tr><th>stage</th><th class="num">rows in</th><th class="num">rows out</th>'
        '<th class="num">seconds</th><th>finished</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
        + "".join(
            f'<p class="warning"><b>{_e(w["stage"])}:</b> {_e(w["message"])}</p>' for w in (report.get("meta") or {}).get("warnings") or []
        )
    )


def _coverage(report: dict) -> str:
    cov = report["coverage"]
    total, target = cov["queries"], cov["target"]
    rows = [
        (f"full ({target} negatives)", cov["full"], "full"),
        ("short", cov["short"], "short"),
        ("no candidates", cov["status"].get("no_candidates", 0), ""),
        ("no positive", cov["status"].get("no_positive", 0), ""),
    ]
    if cov.get("exported") is not None:
        rows.append(("exported", cov["exported"], "full"))
    trs = "".join(
        f'<tr><td>{_e(label)}</td><td class="num">{_n(n)}</td><td class="num">{_pct(n, total)}</td>'
        f'<td><span class="bar {cls}" style="width:{_w(n, total, 160)}px"></span></td></tr>'
        for label, n, cls in rows
    )
    table = f"<table><tbody>{trs}</tbody></table>"
    fig = _figure("plot-coverage", _coverage_svg(cov), f"Queries by number of negatives kept ({_n(total)} queries, target {target}).")
    out = f'<div class="cols">{fig}<div><p>{_n(total)} queries, target {target} negatives each</p>{table}</div></div>'
    if cov["shortest"]:
        trs = "".join(
            f'<tr><td>{_e(r["query_id"])}</td><td class="num">{r["n_negatives"]}/{target}</td>'
            f'<td class="num">{_n(r.get("n_candidates"))}</td><td>{_e(r["status"])}</td>'
            f'<td dir="auto">{_e(trim_chars(clean(r["query"]), 200))}</td></tr>'
            for r in cov["shortest"]
        )
        more = cov["short"] - len(cov["shortest"])
        caption = f"Shortest {len(cov['shortest'])} of {cov['short']} short queries" if more > 0 else "Short queries"
        out += (
            f'<h3>{_e(caption)}</h3><table><thead><tr><th>query</th><th class="num">negatives</th>'
            f'<th class="num">candidates</th><th>status</th><th>text</th></tr></thead><tbody>{trs}</tbody></table>'
        )
    return out


def _scores(report: dict) -> str:
    dist = report["scores"]
    fig = _figure(
        "plot-scores",
        _scores_svg(dist),
        "Teacher scores of positives, kept negatives and dropped candidates (known positives aside), each as a share of its own total.",
    )
    rows = []
    for name, s in dist["series"].items():
        cells = "".join(f'<td class="num">{_s(s[k])}</td>' for k in ("min", "p25", "median", "p75", "max", "mean"))
        rows.append(f'<tr><td style="color:{COLORS[name]};font-weight:600">{_e(name)}</td><td class="num">{_n(s["n"])}</td>{cells}</tr>')
    head = "".join(f'<th class="num">{h}</th>' for h in ("n", "min", "p25", "median", "p75", "max", "mean"))
    return fig + f"<table><thead><tr><th>series</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _scatter(report: dict) -> str:
    points = report.get("points")
    if not points:
        return '<p class="muted">No points: build the report with include_points=True.</p>'
    n = sum(len(p["teacher_score"]) for p in points.values())
    return _figure(
        "plot-scatter",
        _scatter_svg(points),
        f"Each negative's teacher score against its query's positive score ({_n(n)} pairs). "
        "Points above the diagonal score higher than the positive: likely false negatives.",
    )


def _drops(report: dict) -> str:
    f = report["funnel"]
    line = (
        f'<p>{_n(f["candidates"])} candidates (known positives aside): <b style="color:var(--kept)">{_n(f["kept"])} kept</b> · '
        f'<b style="color:var(--drop)">{_n(f["dropped"])} dropped by the rules</b> · {_n(f["unused"])} unused '
        f"(passed every rule, not needed)" + (f" · {_n(f['random'])} random added" if f["random"] else "") + "</p>"
    )
    reasons = report["drop_reasons"]
    if not reasons:
        return line + '<p class="muted">Nothing was dropped.</p>'
    peak = max(r["count"] for r in reasons)
    trs = "".join(
        f"<tr{' class=muted' if r['reason'] == 'known_positive' else ''}><td>{_e(r['reason'])}</td>"
        f'<td class="num">{_n(r["count"])}</td><td class="num">{r["share"] * 100:.1f}%</td>'
        f'<td><span class="bar" style="width:{_w(r["count"], peak, 240)}px"></span></td></tr>'
        for r in reasons
    )
    return (
        line + '<table><thead><tr><th>reason</th><th class="num">count</th><th class="num">share</th><th></th>'
        f"</tr></thead><tbody>{trs}</tbody></table>"
    )


def _suspects(report: dict) -> str:
    from hnmine.report.terminal import same_query, suspects_note

    s = report["suspects"]
    which = f" (reason <b>{_e(s['reason'])}</b>)" if s["reason"] else ""
    queries = s.get("queries_above_positive", 0)
    intro = (
        f"<p><b>{_n(s['above_positive'])} score above their positive, in {_n(queries)} {'query' if queries == 1 else 'queries'}</b>"
        f"{which}.<br>" + "<br>".join(_e(line) for line in suspects_note(s)) + ".</p>"
    )
    if not s["rows"]:
        return intro + '<p class="muted">No suspects.</p>'
    trs = []
    for k, r in enumerate(s["rows"]):
        again, same_positive = same_query(s["rows"], k)
        if r["status"] == "kept":
            verdict = '<span class="verdict kept">kept' + (f" #{r['rank']}" if r["rank"] is not None else "") + "</span>"
        else:
            verdict = f'<span class="verdict dropped">{_e(r["status"]).replace("_", "_<wbr>")}</span>'
        query = (
            '<span class="muted">same query</span>'
            if again
            else f'<div class="head muted">{_e(r["query_id"])}</div><div class="clip" dir="auto">{_e(clean(r["query"]))}</div>'
        )
        why = {"same_text": "same text", "nearest": "nearest"}.get(r.get("positive_chosen") or "")
        positive = (
            '<span class="muted">same positive</span>'
            if same_positive
            else _doc(r["positive_id"], r.get("positive_doc_score", r["positive_score"]), r["positive_title"], r["positive"], why)
        )
        trs.append(
            f'<tr class="suspect{" again" if again else ""}"><td class="num">{r["n"]}</td><td class="num delta">{r["delta"]:+.3f}</td>'
            f'<td>{query}</td><td class="doc">{positive}</td>'
            f'<td class="doc">{_doc(r["doc_id"], r["teacher_score"], r["suspect_title"], r["suspect"])}</td>'
            f"<td>{verdict}</td></tr>"
        )
    return (
        intro + '<table class="suspects"><colgroup><col style="width:3%"><col style="width:6%">'
        '<col style="width:19%"><col style="width:30%"><col style="width:30%"><col style="width:12%">'
        '</colgroup><thead><tr><th class="num">#</th><th class="num">Δ</th><th>query</th><th>positive</th>'
        f"<th>suspect</th><th>verdict</th></tr></thead><tbody>{''.join(trs)}</tbody></table>"
    )


def _doc(doc_id, score, title, text, why: str | None = None) -> str:
    if doc_id is None:
        return '<span class="muted">(no scored positive)</span>'
    full = doc_text(title, text)
    head = f'<div class="head">{_e(doc_id)} · {_s(score)}{" · " + _e(why) if why else ""}</div>'
    t, x = clean(title), clean(text)
    body = (f'<span class="title">{_e(t)}</span> — ' if t and x else "") + _e(trim_chars(x or t, max(60, TEXT_CHARS - len(t))))
    return f'{head}<div class="clip" dir="auto" title="{_e(trim_chars(full, TITLE_CHARS))}">{body}</div>'


# -- plots ------------------------------------------------------------------------------------


def _new_figure(w: float, h: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig, prefix: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "hnmine"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    # ids are per figure: prefix them so several figures can share one page
    for old in set(re.findall(r'id="([^"]+)"', svg)):
        svg = (
            svg.replace(f'id="{old}"', f'id="{prefix}-{old}"')
            .replace(f"#{old})", f"#{prefix}-{old})")
            .replace(f'"#{old}"', f'"#{prefix}-{old}"')
        )
    return svg.replace("<svg ", f'<svg id="{prefix}-svg" role="img" ', 1)


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    ax.tick_params(labelsize=9)


def _scores_svg(dist: dict) -> str:
    fig, ax = _new_figure(9, 3.4)
    edges = np.asarray(dist["edges"], dtype=float)
    for name, s in dist["series"].items():
        counts = np.asarray(s["counts"], dtype=float)
        if not counts.sum():
            continue
        share = counts / counts.sum()
        ax.stairs(share, edges, fill=True, alpha=0.22, color=COLORS[name])
        ax.stairs(share, edges, color=COLORS[name], linewidth=1.4, label=f"{name} (n={s['n']:,})")
    pos_median = dist["series"]["positives"]["median"]
    if pos_median is not None:
        ax.axvline(pos_median, color=COLORS["positives"], linestyle="--", linewidth=1)
    ax.set_xlabel("teacher score", fontsize=10)
    ax.set_ylabel("share of series", fontsize=10)
    ax.legend(frameon=False, fontsize=9)
    _style(ax)
    return _svg(fig, "scores")


def _scatter_svg(points: dict) -> str:
    fig, ax = _new_figure(6.2, 5.2)
    lo, hi = np.inf, -np.inf
    rng = np.random.default_rng(0)
    for name in ("dropped", "kept"):  # kept on top: they are the ones that go into training
        p = points.get(name) or {"positive_score": [], "teacher_score": []}
        x, y = np.asarray(p["positive_score"], float), np.asarray(p["teacher_score"], float)
        if not x.size:
            continue
        if x.size > SCATTER_MAX:
            pick = np.sort(rng.choice(x.size, SCATTER_MAX, replace=False))
            x, y = x[pick], y[pick]
        lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
        ax.scatter(
            x,
            y,
            s=28 if x.size < 2000 else 6,
            alpha=0.6 if x.size < 2000 else 0.35,
            color=COLORS[name],
            linewidths=0,
            rasterized=x.size > 2000,
            label=f"{name} ({x.size:,})",
        )
    if np.isfinite(lo):
        pad = (hi - lo) * 0.04 or 0.5
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#656d76", linestyle="--", linewidth=1, label="negative = positive")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("positive score (query's reference)", fontsize=10)
    ax.set_ylabel("negative's teacher score", fontsize=10)
    ax.legend(frameon=False, fontsize=9, loc="lower right")
    _style(ax)
    return _svg(fig, "scatter")


def _coverage_svg(cov: dict) -> str:
    from hnmine.report.histogram import bucket_label, count_buckets

    fig, ax = _new_figure(5.6, 3.0)
    # one bar per number of negatives, or ranges of them for a large target (as the terminal)
    buckets = count_buckets(cov["negatives_per_query"], 21)
    per = [c for _, _, c in buckets]
    x = np.arange(len(per))
    colors = [COLORS["positives"] if lo == cov["target"] else "#b7791f" for lo, _, _ in buckets]
    bars = ax.bar(x, per, color=colors, width=0.8)
    ax.bar_label(bars, labels=[f"{c:,}" if c else "" for c in per], fontsize=8, padding=2)
    ax.set_xlabel("negatives kept", fontsize=10)
    ax.set_ylabel("queries", fontsize=10)
    ax.set_xticks(x, [bucket_label(lo, hi) for lo, hi, _ in buckets], fontsize=8, rotation=45 if len(per) > 12 else 0)
    ax.margins(y=0.15)
    _style(ax)
    ax.grid(False, axis="x")
    return _svg(fig, "coverage")


def _figure(fid: str, svg: str, caption: str) -> str:
    return f'<figure id="{fid}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


# -- formatting -------------------------------------------------------------------------------


def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _n(x) -> str:
    return "" if x is None else f"{x:,}"


def _s(x) -> str:
    return "" if x is None else f"{x:.3f}"


def _pct(n, total) -> str:
    return f"{n / total * 100:.1f}%" if total else ""


def _w(n, total, width) -> int:
    return 0 if not total or not n else max(1, round(n / total * width))


def _secs(s) -> str:
    return "" if s is None else f"{s:.2f}"
