"""Argument checks shared by every entry point: fail early, name the value and what is allowed."""
from __future__ import annotations

import json
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

AGGREGATIONS = ("mean", "normalized_mean", "mean_with_query")
QUANTIZATIONS = (None, "4bit", "8bit")
# Thoughts per query. Each is a sampled sequence in the batch (k=64 at batch 32 is 2,048 rows): past this, a typo
# such as k=10**9 would try to allocate tens of GB before failing. The paper's gains flatten by k=16.
MAX_K = 64


def as_text_list(texts, name: str = "texts") -> tuple[list[str], bool]:
    """Return (list, was_single_str). Rejects None, non-str items, empty and whitespace-only text."""
    if texts is None:
        raise TypeError(f"{name} must be a str or a list of str, got None")
    if type(texts).__module__ == "numpy" and getattr(texts, "ndim", None) == 0:
        texts = texts.item()  # a 0-d array holds one text, as a plain str does
    single = isinstance(texts, str)
    if single:
        texts = [texts]
    elif type(texts).__module__ == "numpy" and getattr(texts, "ndim", None) is not None:
        if texts.ndim != 1:  # sentence-transformers takes a 1-D array of texts as a batch
            raise TypeError(f"{name} must be a 1-D array of str, got an array of shape {texts.shape}")
    elif isinstance(texts, (bytes, dict)) or not isinstance(texts, Sequence):
        hint = " (pass a list or tuple: the vectors come back in its order)" \
            if isinstance(texts, Iterable) and not isinstance(texts, (bytes, dict)) else ""
        raise TypeError(f"{name} must be a str or a list of str, got {type(texts).__name__}{hint}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(t).__name__}: {t!r:.60}")
        if not t.strip():
            raise ValueError(f"{name}[{i}] is empty or whitespace-only; every text must have content")
        check_unicode(t, f"{name}[{i}]")
    # a str subclass (numpy.str_) as a plain str: caches, JSON and Chroma then see the same text
    return [t if type(t) is str else str.__str__(t) for t in texts], single


def check_unicode(text: str, name: str) -> str:
    """Refuse lone surrogates (e.g. from a JSON `\\ud83d` escape): they cannot be encoded as UTF-8, and would
    otherwise fail deep inside the tokenizer or the cache with an unrelated error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{name} contains a lone surrogate {text[e.start]!r} at position {e.start}: "
                         "text must be valid Unicode (decode your input with errors='replace' or fix it)") from None
    return text


def plain_int(value):
    """A numpy integer (np.int64 from an array's shape or an argmax, say) as a plain int, as sentence-transformers
    takes one; anything else unchanged, for the check that follows to judge (np.bool_ stays a bool-like refusal)."""
    if type(value).__module__ == "numpy" and isinstance(value, numbers.Integral):
        return int(value)
    return value


def check_k(k, name: str = "k") -> int:
    """Thoughts per query; `name` is the argument's name where the caller calls it otherwise (num_thoughts)."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"{name} must be an int >= 0 (0 = no thinking), got {k!r}")
    if not 0 <= k <= MAX_K:
        raise ValueError(f"{name} must be >= 0 (0 = no thinking) and at most {MAX_K} (thoughts per query), got {k}")
    return k


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def positive_int_arg(text: str) -> int:
    """argparse `type=` for flags that take a count: the error names the value."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def int_list_arg(text: str, *, minimum: int, flag: str, example: str) -> list[int]:
    """argparse `type=` body for comma-separated ints such as '0,1,3' (bind the keywords with a lambda)."""
    import argparse
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"{flag} must be comma-separated ints >= {minimum} such as {example}; "
                                         f"got {text!r}")
    return values


def positive_int_setting(value, env: str, default: int, what: str) -> int:
    """`value`, else $env, else `default`, as a positive int; the error names the setting and the variable."""
    given = os.environ.get(env, default) if value is None else value
    try:
        number = int(given)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise ValueError(f"{what} (${env}) must be a positive int, got {given!r}")
    return number


def check_query_weight(weight, aggregation: str):
    """The bare query's share of the vector under `mean_with_query` (None: an equal share, 1/(k+1))."""
    if weight is None:
        return None
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"query_weight must be a number in [0, 1] or None, got {weight!r}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"query_weight must be in [0, 1] (0: thoughts only, 1: bare query only), got {weight}")
    if aggregation != "mean_with_query":
        raise ValueError(f"query_weight={weight} only applies to aggregation='mean_with_query', "
                         f"got aggregation={aggregation!r}")
    return float(weight)


def check_choice(value, name: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; use one of {list(allowed)}")
    return value


def read_json_object(path, what: str = "a JSON object", fix: str = "") -> dict | None:
    """The JSON object in the file at `path`, None when there is no such file; a clear error when it is not JSON
    or not an object (`what` says what it should be, `fix` what to do)."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}){fix}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold {what}, got {type(values).__name__}{fix}")
    return values


def check_writable_from(start: Path, path: Path, flag: str) -> None:
    """`start`, or where it does not exist yet its nearest existing parent (missing folders are made on write), must be
    a folder this process may write in; the error names `flag` and `path`."""
    existing = start
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: the folder {existing} is not writable")
