"""How long an HTTP client waits before trying again: shared by `RemoteEmbedder` and `OpenAIThinker`.

The openai client's values: 0.5 s before the first retry, doubled for each next one up to 8 s, less up to a quarter at
random (so clients that failed together do not all come back at once); a server's Retry-After, seconds or an HTTP
date, is waited instead, up to 30 s.
"""
from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

BACKOFF = 0.5
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 30.0


def retry_after(response) -> float | None:
    """The seconds a response's Retry-After asks for, at most MAX_RETRY_AFTER; None without a readable one."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if seconds == seconds else None  # NaN: unreadable


def backoff(attempt: int, first: float = BACKOFF) -> float:
    """The wait before retry `attempt + 1` (0-based), with jitter."""
    return min(first * 2 ** attempt, MAX_BACKOFF) * (1 - 0.25 * random.random())
