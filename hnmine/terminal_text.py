"""Text from the user's files made safe to print: control characters shown as visible escapes.

Ids, titles, texts, paths and model names come from files hnmine did not write, and a terminal obeys
the control sequences they may hold: ESC ] 0 ; … BEL sets the window title, ESC ] 52 ; … writes the
clipboard, ESC [ 2 J clears the screen, U+009B is an 8-bit ESC [, a carriage return overwrites the
line, U+202E shows what follows right to left. Everything hnmine prints goes through `visible` (or
`dumps` for JSON): each such character becomes its Python escape (`\\x1b`, `\\x9b`, `\\r`, `\\u202e`),
so the text stays recognisable and none of them reaches the terminal. Only these characters change:
letters of every script, punctuation and `[` markup-like text print as themselves.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls (tab, newline and carriage return included), DEL and the C1 controls; the
# bidirectional formatting characters (marks, embeddings, overrides, isolates); line and paragraph
# separators (a line break to some terminals and to str.splitlines).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
# Lone surrogates: a path's bytes that are not UTF-8 (os.fsdecode gives 0xff as U+DCFF), which no
# terminal or UTF-8 stream can take as they are.
_SURROGATES = "\ud800-\udfff"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_SURROGATES}]")
# What json.dumps(ensure_ascii=False) leaves raw (it escapes C0 itself): DEL, C1, bidirectional, surrogates.
_JSON_RAW = re.compile(f"[\x7f-\x9f{_BIDI}{_SURROGATES}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_NOT_UTF8 = re.compile("[\udc80-\udcff]+")


def _escape(match: re.Match) -> str:
    ch = match.group()
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # the byte a path held (os.fsdecode's escape): shown as that byte
        return f"\\x{code - 0xDC00:02x}"
    return _NAMED.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def not_utf8(text: object) -> str | None:
    """The bytes of a path that are not UTF-8, as escapes (`\\xff`), or None: pyarrow opens no such path."""
    found = "".join(_NOT_UTF8.findall(str(text)))
    return visible(found) if found else None


def visible(text: object) -> str:
    """`text` on one line with every control character shown as its escape (`\\x1b`, `\\u202e`)."""
    text = "" if text is None else str(text)
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def one_line(text: str | None) -> str:
    """A document or query text to show: runs of whitespace (newlines, tabs, carriage returns) one
    space, trimmed, then `visible`."""
    return visible(" ".join(text.split())) if text else ""


def printable(data: Any, text_keys: frozenset[str] = frozenset()) -> Any:
    """A copy of JSON-like `data` (dicts, lists, strings, numbers) with every string `visible`;
    strings under a key in `text_keys` (texts, where a line break is a space) go through `one_line`."""
    if isinstance(data, str):
        return visible(data)
    if isinstance(data, dict):
        return {k: (one_line(v) if k in text_keys and isinstance(v, str) else printable(v, text_keys)) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [printable(v, text_keys) for v in data]
    return data


def dumps(data: Any, **kwargs: Any) -> str:
    """`json.dumps(data, ensure_ascii=False)` (characters as themselves) with the control characters
    it leaves raw written as `\\u` escapes: the same JSON value, nothing a terminal obeys."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(data, ensure_ascii=False, **kwargs))
