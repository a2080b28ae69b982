"""Show user text as itself: whitespace collapsed, control characters as visible escapes
(hnmine.terminal_text), trimmed to a width with an ellipsis.

Widths are terminal cells (a CJK character takes two), measured by rich.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from hnmine.terminal_text import one_line, printable

ELLIPSIS = "…"
# The keys of the report's and inspect's data that hold document or query texts: shown on one line.
TEXT_KEYS = frozenset({"query", "title", "text", "positive", "positive_title", "suspect", "suspect_title", "message"})


def clean(text: str | None) -> str:
    """One line: runs of whitespace (newlines, tabs) become one space; control characters are shown
    as escapes (`\\x1b`), never sent to the terminal."""
    return one_line(text)


def printable_data(data: dict) -> dict:
    """The report's (or inspect's) data with every id, name and path `visible` and every text on one
    line: what the terminal and HTML renderers draw, so no user string reaches them raw."""
    return printable(data, TEXT_KEYS)


def trim(text: str, width: int) -> str:
    """`text` cut to at most `width` cells, ending in an ellipsis when cut."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = cell_len(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out).rstrip() + ELLIPSIS


def trim_chars(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (for HTML, where the browser wraps)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def wrap_lines(text: str, width: int, max_lines: int, console: Console | None = None) -> list[str]:
    """Word-wrap `text` into at most `max_lines` lines of `width` cells; the last line of a
    text that does not fit ends in an ellipsis."""
    text = clean(text)
    if not text or width <= 0 or max_lines <= 0:
        return []
    console = console or _CONSOLE
    lines = [ln.plain.rstrip() for ln in Text(text).wrap(console, width, overflow="fold")]
    if len(lines) <= max_lines:
        return lines
    kept = lines[:max_lines]
    last = kept[-1]
    if cell_len(last) + 1 <= width:
        kept[-1] = last + ELLIPSIS
    else:
        kept[-1] = trim(last + "  ", width)  # forces a cut that ends in the ellipsis
    return kept


_CONSOLE = Console(width=200, file=None, force_terminal=False, color_system=None)


def doc_text(title: str, text: str) -> str:
    """A document as one string: 'Title — text', or just the text when it has no title."""
    title, text = clean(title), clean(text)
    return f"{title} — {text}" if title and text else (title or text)
