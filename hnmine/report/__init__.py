"""The false-negative report of a run: terminal, JSON and HTML, and one query's story.

    report = build_report(run_dir, top=20, reason=None)   # JSON-able dict
    render_report(report, console)                        # rich terminal report
    render_html(build_report(run_dir, include_points=True), "report.html")
    render_inspect(inspect_query(run_dir, "q1"), console)

Submodules import lazily here, so `import hnmine.report` is cheap; matplotlib is imported only
when an HTML page is drawn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report", "render_report", "render_html", "html_page", "inspect_query", "render_inspect", "find_query"]

_WHERE = {
    "build_report": "hnmine.report.build",
    "render_report": "hnmine.report.terminal",
    "render_html": "hnmine.report.html",
    "html_page": "hnmine.report.html",
    "inspect_query": "hnmine.report.inspect",
    "render_inspect": "hnmine.report.inspect",
    "find_query": "hnmine.report.inspect",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'hnmine.report' has no attribute {name!r}")
