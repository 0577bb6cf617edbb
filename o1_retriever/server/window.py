"""What the model reads of an input, for the server: each input cut to it up front, and `usage`.

The engine cuts every text it tokenizes to a prefix holding what the model reads (`o1_retriever.text_window`); the
server cuts each input once more, up front, with the same code, to the longest prefix any of the engine's readers
needs: `usage` counts what the model reads, an input whose window cannot be found cheaply is refused (HTTP 413)
instead of holding the one engine thread every client shares while it is tokenized whole, and a huge document costs
its window from the start. A query reaches the engine whole (its thoughts are seeded from its whole text: see app.py).
"""
from __future__ import annotations

from ..text_window import (CHARS_PER_TOKEN, CUT_FROM, MARGIN, InputTooLong, cut_point, sentence_read_length,
                           sentence_window, truncates_at_end)

_cut_point = cut_point  # its former name here, still importable


def _encoder_readers(encoder, kind: str, settings) -> list | None:
    """(tokenizer, window in tokens) for each model that embeds a `kind` text, or None where unknown."""
    members = getattr(encoder, "members", None) or [encoder]
    readers = []
    for member in members:
        model = getattr(member, "model", None)
        if hasattr(model, "max_seq_length"):  # sentence-transformers: where a cut keeps what it reads
            found = sentence_window(model)
            if found is None:
                return None
            readers.append(found)
        elif getattr(member, "tokenizer", None) is not None:  # an O1 model (LMEncoder): the settings' window
            readers.append((member.tokenizer, getattr(settings, f"{kind}_max_length")))
        else:
            return None
    if not all(isinstance(window, int) and window > 0 for _, window in readers):  # a model without a limit
        return None
    return readers


def readers(embedder, kind: str) -> list | None:
    """Who reads a text of `kind` ("query", "think" or "document"), read live: windows may be changed in place.
    Queries and thoughts share one set, so a text is cut alike for /v1/think and /v1/embeddings (its thoughts are
    seeded from the text). None: some reader's window is unknown (a thinker behind an API reads the whole query)."""
    settings = getattr(embedder, "settings", None)
    if settings is None:
        return None
    if kind == "document":
        return _encoder_readers(embedder.encoder, "document", settings)
    found = _encoder_readers(embedder.encoder, "query", settings)
    thinker = getattr(embedder, "thinker", None)
    if found is None or thinker is None:
        return found
    if getattr(thinker, "tokenizer", None) is None or not truncates_at_end(thinker.tokenizer):
        return None
    return found + [(thinker.tokenizer, settings.prompt_max_length)]


def cut(embedder, kind: str, texts: list[str]) -> list[str]:
    """Each text cut to a prefix that holds every token the model reads of it: the same vectors, thoughts and
    usage, at a cost bounded by the window instead of the text's length. Raises InputTooLong naming the input."""
    found = readers(embedder, kind)
    if not found:
        return texts
    out = []
    for i, text in enumerate(texts):
        if len(text) > _cut_from(found):
            try:
                points = [cut_point(tok, text, window) for tok, window in found]
            except (NotImplementedError, TypeError, KeyError):  # a slow tokenizer has no offsets: keep it whole
                points = [None]
            except InputTooLong as e:
                raise InputTooLong(f"input[{i}] {e}") from None
            if None not in points:
                text = text[:max(points)]
        out.append(text)
    return out


def needs_cut(embedder, kind: str, texts: list[str]) -> bool:
    """Whether `cut` may change any of `texts` (cheap: lengths only)."""
    found = readers(embedder, kind)
    return bool(found) and max(map(len, texts), default=0) > _cut_from(found)


def _cut_from(found: list) -> int:
    return (max(window for _, window in found) + MARGIN) * CHARS_PER_TOKEN * CUT_FROM


def token_counts(embedder, texts: list[str], kind: str = "document") -> list[int]:
    """Tokens the encoder reads of each input text (the `usage` an OpenAI client expects): without special tokens
    or thoughts, at most the encoder's window. An ensemble counts its first encoder's tokens."""
    settings = getattr(embedder, "settings", None)
    enc = embedder.encoder
    enc = getattr(enc, "members", [enc])[0]
    model = getattr(enc, "model", None)
    tok = getattr(enc, "tokenizer", None) or getattr(model, "tokenizer", None)
    if tok is None:
        return [0] * len(texts)
    role = "document" if kind == "document" else "query"
    window = sentence_read_length(model, role) if hasattr(model, "max_seq_length") \
        else getattr(settings, f"{role}_max_length", None)  # sentence-transformers' window, or an O1 model's
    counts = [len(ids) for ids in tok(texts, add_special_tokens=False, verbose=False)["input_ids"]]
    if not isinstance(window, int) or window <= 0:  # a model without a limit reads every token
        return counts
    return [min(n, window - tok.num_special_tokens_to_add()) for n in counts]

