"""What the CLI shows of queries, thoughts and passages: each on one terminal line, as plain text."""
from __future__ import annotations

import sys


def bars_shown() -> bool:
    """Whether progress bars are drawn: only on a terminal. Off one (a log file, a pipe, CI) a bar redrawn with
    carriage returns is one unreadable line."""
    return sys.stderr.isatty()


def one_line(text: str) -> str:
    """`text` as one terminal line: whitespace runs (newlines included) and control characters become one space, and
    the ends are trimmed. For display only: thoughts are embedded exactly as generated."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def shown_thought(thought: str) -> str:
    return one_line(thought) or "(empty thought)"  # a blank line would read as a missing one


def shorten(text: str, width: int = 160) -> str:
    """`text` in at most `width` characters, cut at a word boundary and marked with "…" when cut."""
    if len(text) <= width:
        return text
    cut = text[:width - 1]
    if not text[width - 1].isspace() and " " in cut:  # the cut falls inside a word: drop the partial word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


def print_hits(console, query, hits) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text
    # Texts from users and models are escaped or passed as Text: "[/x]" in a passage is text, not rich markup.
    thoughts = hits[0].thoughts if hits else []
    console.print(f"\n[bold]Query:[/bold] {escape(one_line(query))}")
    for i, t in enumerate(thoughts, 1):
        console.print(f"  [dim]thought {i}:[/dim] {escape(shown_thought(t))}")
    table = Table(show_header=True, header_style="bold")
    for col in ("rank", "score", "id", "passage"):
        table.add_column(col, overflow="fold")
    for rank, h in enumerate(hits, 1):
        table.add_row(str(rank), f"{h.score:.3f}", Text(h.id), Text(shorten(one_line(h.text))))
    console.print(table)
