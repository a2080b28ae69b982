"""`ReviewApp`: the full-screen terminal app of `hnmine review` (Textual).

One suspect at a time: the query across the top, its known positive(s) and the suspect side by
side (stacked on terminals narrower than 70 columns), a status line and the keys. Every user text
goes through `hnmine.report.text.clean`, every id and path through `hnmine.terminal_text.visible`
(control characters are shown as escapes, none reaches the terminal), and into rich `Text` objects, never Textual markup, so ids and texts holding `[` `]` show as themselves. Textual
wraps by terminal cells, so CJK takes two cells a character and nothing is cut mid-character.
"""

from __future__ import annotations

import io
from typing import Literal

from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static

from hnmine.errors import HnmineError
from hnmine.report.text import clean, doc_text, trim, wrap_lines
from hnmine.review.session import ReviewSession
from hnmine.terminal_text import visible

MAX_CHARS = 10_000  # of one text on screen; `i` (inspect) or the tables hold the rest
QUERY_LINES = 3  # of the query's text above the panes
NARROW = 70  # below this many columns the two panes stack
KEYS = (
    ("r", "relevant"),
    ("n", "not relevant"),
    ("s", "skip"),
    ("u", "undo"),
    ("b", "back"),
    ("g", "query"),
    ("i", "inspect"),
    ("q", "quit"),
)


REVIEW_ACTIONS = {"mark", "skip", "undo", "back", "go_to", "inspect"}


def shown(text: str | None) -> str:
    text = clean(text)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + f"… ({len(text) - MAX_CHARS:,} more characters)"


def verdict_label(verdict: tuple[int, str] | None) -> Text:
    if verdict is None:
        return Text("not judged yet", style="dim")
    relevance, source = verdict
    label = Text("RELEVANT" if relevance > 0 else "NOT RELEVANT", style="bold green" if relevance > 0 else "bold red")
    label.append(f" ({source})" if source != "human" else " (you)", style="dim")
    return label


def status_of(row: dict) -> Text:
    """'kept #2' or the drop reason, with the ranks."""
    if row["status"] == "kept":
        t = Text("kept as negative", style="bold cyan")
        if row.get("rank") is not None:
            t.append(f" #{row['rank']}")
    else:
        t = Text("dropped: " + row["status"].replace("_", " "), style="yellow")
    if row.get("retrieval_rank") is not None:
        t.append(f" · retrieval rank {row['retrieval_rank']}", style="dim")
    return t


def _score(x) -> str:
    return "–" if x is None else f"{x:.3f}"


class GoToQuery(ModalScreen[str | None]):
    """Ask for a query id (or #N for suspect number N)."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    GoToQuery { align: center middle; }
    GoToQuery > Vertical { width: 60; max-width: 100%; height: auto; border: round $accent; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Go to query id, or #N for suspect N (Esc: cancel)"))
            yield Input(id="target")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class InspectScreen(Screen):
    """One query's whole story (`hnmine inspect`), drawn by the report's own renderer."""

    BINDINGS = [Binding("escape,q,i", "close", "back")]
    DEFAULT_CSS = """
    InspectScreen #inspect-body { height: 1fr; }
    InspectScreen #inspect-keys { height: 1; background: $panel; }
    """

    def __init__(self, data: dict, width: int):
        super().__init__()
        self.data, self.width_ = data, width

    def compose(self) -> ComposeResult:
        from hnmine.report import render_inspect

        buffer = io.StringIO()
        console = Console(
            file=buffer, width=max(20, self.width_ - 2), force_terminal=True, color_system="standard", legacy_windows=False, emoji=False
        )
        render_inspect(self.data, console)
        with VerticalScroll(id="inspect-body"):
            yield Static(Text.from_ansi(buffer.getvalue()), id="inspect-text")
        yield Static(Text("↑↓ PgUp PgDn scroll · Esc/q/i back to the suspect"), id="inspect-keys")

    def on_mount(self) -> None:
        self.query_one("#inspect-body").focus()

    def action_close(self) -> None:
        self.app.pop_screen()


class ReviewApp(App):
    """Walk a run's suspected false negatives and judge them: r relevant, n not relevant, s skip,
    u undo, b back, g go to query, i inspect, q quit."""

    TITLE = "hnmine review"
    CSS = """
    Screen { layout: vertical; }
    #title { height: 1; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
    #query { height: auto; padding: 0 1; border-bottom: solid $primary-darken-2; }
    #panes { height: 1fr; }
    #panes.narrow { layout: vertical; }
    .pane { width: 1fr; height: 1fr; padding: 0 1; }
    #positives { border-right: solid $primary-darken-2; }
    #panes.narrow #positives { border-right: none; border-bottom: solid $primary-darken-2; }
    #status { height: 1; background: $panel; }
    #keys { height: 1; }
    """
    BINDINGS = [
        Binding("r", "mark(True)", "relevant"),
        Binding("n", "mark(False)", "not relevant"),
        Binding("s", "skip", "skip"),
        Binding("u", "undo", "undo"),
        Binding("b", "back", "back"),
        # before the panes' own left/right (horizontal scrolling: the texts wrap, there is none)
        Binding("right", "skip", "skip", show=False, priority=True),
        Binding("left", "back", "back", show=False, priority=True),
        Binding("g", "go_to", "go to query"),
        Binding("i", "inspect", "inspect"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, session: ReviewSession):
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="query")
        with Horizontal(id="panes"):
            with VerticalScroll(id="positives", classes="pane"):
                yield Static(id="positives-text")
            with VerticalScroll(id="suspect", classes="pane"):
                yield Static(id="suspect-text")
        yield Static(id="status")
        keys = Text()
        for k, label in KEYS:
            keys.append(k, style="bold reverse")
            keys.append(f" {label}  ")
        keys.rstrip()
        yield Static(keys, id="keys")

    def on_mount(self) -> None:
        self._layout(self.size.width)
        self.show()
        self.query_one("#suspect").focus()  # ↑↓ PgUp PgDn scroll the suspect; Tab the positives

    def on_resize(self, event) -> None:
        self._layout(event.size.width)
        self.show()  # the query is wrapped to the width

    def _layout(self, width: int) -> None:
        self.query_one("#panes").set_class(width < NARROW, "narrow")

    # -- drawing ------------------------------------------------------------------------------

    def show(self) -> None:
        s = self.session
        title = Text("hnmine review  ", style="bold")
        title.append(visible(s.run_dir))
        title.append(f"  ·  {visible(s.filters.describe())}", style="dim")
        self.query_one("#title", Static).update(title)
        self.query_one("#status", Static).update(self._status())
        row = s.current
        if row is None:
            self.query_one("#query", Static).update(Text("No suspected false negatives match these filters.", style="bold"))
            self.query_one("#positives-text", Static).update("")
            self.query_one("#suspect-text", Static).update("")
            return
        width = max(10, self.size.width - 2)
        query = Text(f"query {clean(row['query_id'])}", style="bold")
        query.append(f"   suspect #{row['n']}", style="dim")  # the report's numbering with --per-query 0
        query.truncate(width, overflow="ellipsis")
        for line in wrap_lines(row["query"], width, QUERY_LINES):  # `i` shows the whole query
            query.append("\n" + line)
        self.query_one("#query", Static).update(query)
        self.query_one("#positives-text", Static).update(self._positives(row))
        self.query_one("#suspect-text", Static).update(self._suspect(row))
        for pane in ("#positives", "#suspect"):
            self.query_one(pane, VerticalScroll).scroll_home(animate=False)

    def _positives(self, row: dict) -> Text:
        try:
            positives = self.session.positives(row["query_id"])
        except HnmineError:
            positives = []
        if not positives and row.get("positive_id"):
            positives = [
                {
                    "doc_id": row["positive_id"],
                    "teacher_score": row["positive_score"],
                    "rank": None,
                    "title": row["positive_title"],
                    "text": row["positive"],
                }
            ]
        t = Text(f"known positive{'s' if len(positives) != 1 else ''} ({len(positives)})", style="bold green")
        if row.get("positive_score") is not None:
            t.append(f"  reference {row['positive_score']:.3f}", style="dim")
        if not positives:
            t.append("\n(no scored positive)", style="dim")
        for p in positives:
            t.append(f"\n{visible(p['doc_id'])}", style="green")
            t.append(f" · {_score(p.get('teacher_score'))}")
            t.append(f" · rank {p['rank']}" if p.get("rank") is not None else " · missed by retrieval", style="dim")
            t.append("\n" + shown(doc_text(p.get("title") or "", p.get("text") or "")) + "\n")
        t.rstrip()
        return t

    def _suspect(self, row: dict) -> Text:
        t = Text("suspect  ", style="bold")
        t.append_text(verdict_label(self.session.verdict_of()))
        t.append(f"\n{visible(row['doc_id'])}", style="bold red" if row["status"] == "kept" else "bold yellow")
        t.append(f" · {_score(row['teacher_score'])}")
        if row.get("delta") is not None:
            t.append(f" · Δ {row['delta']:+.3f}", style="bold")
        t.append("\n")
        t.append_text(status_of(row))
        t.append("\n" + shown(doc_text(row.get("suspect_title") or "", row.get("suspect") or "")))
        return t

    def _status(self) -> Text:
        p = self.session.progress()
        t = Text(f" {p['position']}/{p['total']}", style="bold")
        t.append(f" · {p['relevant']} relevant · {p['not_relevant']} not relevant · {p['skipped']} skipped · {p['left']} left")
        if self.session.considered > p["total"]:
            t.append(f" · of {self.session.considered:,} suspects", style="dim")
        width = max(10, self.size.width)
        return Text(trim(t.plain, width), style="") if t.cell_len > width else t

    def say(self, message: str, severity: Literal["information", "warning", "error"] = "information") -> None:
        self.notify(visible(message), severity=severity, timeout=3, markup=False)

    # -- keys ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The app's keys judge the suspect on screen: not while the inspect view or a prompt covers it.
        if action in REVIEW_ACTIONS and len(self.screen_stack) > 1:
            return False
        return True

    def action_mark(self, relevant: bool) -> None:
        if self.session.current is None:
            return
        try:
            last = self.session.cursor == len(self.session.suspects) - 1
            self.session.mark(relevant)
        except HnmineError as exc:
            self.say(str(exc), "error")
            return
        if last:
            self.say("last suspect judged" if not self.session.progress()["left"] else "end of the list")
        self.show()

    def action_skip(self) -> None:
        if not self.session.suspects:
            return
        if self.session.cursor == len(self.session.suspects) - 1:
            self.session.skipped.add(self.session.key())
            self.say("end of the list")
        else:
            self.session.skip()
        self.show()

    def action_back(self) -> None:  # type: ignore[override]  # the review's "previous suspect", not the screen stack
        if not self.session.move(-1):
            self.say("first suspect")
        self.show()

    def action_undo(self) -> None:
        try:
            entry = self.session.undo()
        except HnmineError as exc:
            self.say(str(exc), "error")
            return
        if entry is None:
            self.say("nothing to undo")
        else:
            self.say(f"undone: {entry['query_id']} / {entry['doc_id']}")
        self.show()

    def action_go_to(self) -> None:
        def go(target: str | None) -> None:
            if not target or not target.strip():
                return
            try:
                self.session.jump(target)
            except HnmineError as exc:
                # a query of the run without a suspect here: show its whole story instead
                if not target.strip().startswith("#") and self._inspect(target.strip()):
                    self.say(f"{exc}; showing its candidates")
                else:
                    self.say(str(exc), "warning")
                return
            self.show()

        self.push_screen(GoToQuery(), go)

    def action_inspect(self) -> None:
        if self.session.current is not None:
            self._inspect(self.session.current["query_id"])

    def _inspect(self, query_id: str) -> bool:
        from hnmine.report import inspect_query

        try:
            data = inspect_query(self.session.run_dir, query_id=query_id)
        except HnmineError as exc:
            self.say(str(exc), "error")
            return False
        self.push_screen(InspectScreen(data, self.size.width))
        return True
