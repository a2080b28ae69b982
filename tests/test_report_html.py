"""The HTML report: self-contained, escaped, non-Latin text as itself, and plots that a real
browser (headless Chromium, Debian's `chromium` package) renders."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hnmine.cli_report import report_command
from hnmine.report import build_report, html_page, render_html

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")
PLOTS = ("plot-scores", "plot-scatter", "plot-coverage")

_spec = importlib.util.spec_from_file_location("report_run_build", HERE / "fixtures" / "report_run" / "build.py")
fixture_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture_build)


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("html")
    run = fixture_build.build_run(base / "report_run")
    return render_html(build_report(run, include_points=True), base / "report.html")


@pytest.fixture(scope="module")
def page(page_file) -> str:
    return page_file.read_text(encoding="utf-8")


def test_page_has_plots_and_tables(page):
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    for fid in PLOTS:
        m = re.search(rf'<figure id="{fid}"><svg id="[^"]+"', page)
        assert m, f"no inline svg in figure #{fid}"
    for sid in ("stages", "coverage", "scores", "scatter", "drops", "suspects"):
        assert f'<section id="{sid}">' in page
    assert "within_margin_of_positive" in page and "kept #2" in page


def test_page_is_self_contained(page):
    assert "<script" not in page  # no scripts at all (the one in the data is escaped)
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)  # nothing fetched
    assert "@import" not in page and "url(http" not in page


def test_page_escapes_and_keeps_characters(page):
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "Tea &lt;polyphenols&gt;" in page and "[bold]cholesterol[/bold]" in page
    for text in ("吸烟会导致肺癌吗？", "ما هي أعراض مرض السكري", "Caféine et fréquence cardiaque", "흡연"):
        assert text in page, text
    assert "&#" not in page.replace("&#x27;", "")  # characters, not numeric references
    assert 'dir="auto"' in page  # right-to-left text reads right to left


def test_long_text_is_trimmed(page):
    assert (
        "l&#x27;habitude. Cette revue systématique réunit des essais contrôlés et des cohortes prospectives" not in page.split('title="')[0]
    )
    assert "…" in page


def test_svg_ids_unique(page):
    ids = re.findall(r'\sid="([^"]+)"', page)
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes


def test_without_points_the_scatter_says_why(tmp_path):
    run = fixture_build.build_run(tmp_path / "report_run")
    page = html_page(build_report(run))
    assert 'id="plot-scatter"' not in page and "include_points=True" in page


def test_cli_html(tmp_path):
    run = fixture_build.build_run(tmp_path / "report_run")
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("other")(lambda: None)
    out = tmp_path / "out" / "r.html"
    result = CliRunner().invoke(app, ["report", str(run), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the page only; the note goes to stderr
    assert f"wrote {out}" in result.stderr
    assert 'id="plot-scatter"' in out.read_text(encoding="utf-8")


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    profile = cwd / "chromium-profile"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium; the Makefile's test target installs it)"
)
def test_chromium_renders_the_plots(page_file, tmp_path):
    result = _chromium("--dump-dom", page_file.as_uri(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    for fid in PLOTS:
        m = re.search(rf'<figure id="{fid}">(.*?)</figure>', dom, re.S)
        assert m, f"figure #{fid} missing from the rendered page"
        inner = m.group(1)
        assert "<svg" in inner and ("<path" in inner or "<image" in inner), f"figure #{fid} has no drawing"
    assert "吸烟会导致肺癌吗？" in dom and "السكري" in dom

    shot = tmp_path / "report.png"
    result = _chromium("--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={shot}", page_file.as_uri(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real, non-blank picture
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
