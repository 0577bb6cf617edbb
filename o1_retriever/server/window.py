"""What the model reads of an input, found from a bounded prefix of it.

The engine reads a text's first N tokens only (an O1 model's query/document window, a sentence-transformers model's
max_seq_length, the thinker's prompt window), but a tokenizer asked to truncate still tokenizes the whole text first:
a 2-million-character input takes seconds per pass, on the one engine thread every client shares. So the server cuts
each text to a prefix that holds every token the model reads (plus a margin), before the engine sees it, and counts
`usage` on what the model reads.
"""
from __future__ import annotations

# Tokens kept past a window: a prompt's own tokens around the text, and a tokenizer's look-ahead at the cut.
MARGIN = 64
CHARS_PER_TOKEN = 8  # characters first probed per token kept; the probe grows 4x while it holds too few tokens
PROBES = 3  # probes at most: past 16x the first, a text is refused rather than tokenized whole
CUT_FROM = 4  # texts shorter than 4x the first probe go whole: probing them would cost what it saves


class InputTooLong(ValueError):
    """An input whose window could not be found in a bounded prefix (HTTP 413)."""


def _encoder_readers(encoder, kind: str, settings) -> list | None:
    """(tokenizer, window in tokens) for each model that embeds a `kind` text, or None where unknown."""
    members = getattr(encoder, "members", None) or [encoder]
    readers = []
    for member in members:
        model = getattr(member, "model", None)
        if hasattr(model, "max_seq_length") and getattr(model, "tokenizer", None) is not None:  # sentence-transformers
            readers.append((model.tokenizer, model.max_seq_length))
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
    if getattr(thinker, "tokenizer", None) is None:
        return None
    return found + [(thinker.tokenizer, settings.prompt_max_length)]


def _ids(tokenizer, text: str, offsets: bool = False):
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=offsets, verbose=False)


def _cut_point(tokenizer, text: str, window: int) -> int | None:
    """A character offset whose prefix tokenizes to the same first `window` tokens as the text, MARGIN tokens
    past them (len(text) when the text has no more), or None when the cut would change them: the text then goes
    whole. Raises InputTooLong for a text whose first PROBES probes hold no token past the `window` the model reads
    (runs of hundreds of characters that are one token, such as base64): only tokenizing all of it would tell what the
    model reads."""
    keep = window + MARGIN
    size = keep * CHARS_PER_TOKEN
    for probe in range(1, PROBES + 1):
        encoded = _ids(tokenizer, text[:size], offsets=True)
        ids = encoded["input_ids"]
        if len(ids) > keep:
            past = keep
        elif size >= len(text):
            return len(text)
        elif probe == PROBES and len(ids) > window:  # the last probe: less margin, but every token the model reads
            past = len(ids) - 1
        else:
            size *= 4
            continue
        cut = encoded["offset_mapping"][past][0]  # where the first token past the margin starts
        # Checked, not assumed: a tokenizer that merged across the cut would read the cut text differently.
        return cut if _ids(tokenizer, text[:cut])["input_ids"][:window] == ids[:window] else None
    raise InputTooLong(f"has only {len(ids)} tokens in its first {size // 4} of {len(text)} characters, fewer than "
                       f"the {window} the model reads (a long run without spaces, such as base64 data?); send text "
                       "or cut it to what should be embedded")


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
                points = [_cut_point(tok, text, window) for tok, window in found]
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
    role = "document" if kind == "document" else "query"
    found = _encoder_readers(embedder.encoder, role, settings) if settings is not None else None
    enc = embedder.encoder
    enc = getattr(enc, "members", [enc])[0]
    tok = getattr(enc, "tokenizer", None) or getattr(getattr(enc, "model", None), "tokenizer", None)
    if tok is None:
        return [0] * len(texts)
    window = found[0][1] - tok.num_special_tokens_to_add() if found else None
    counts = [len(ids) for ids in tok(texts, add_special_tokens=False, verbose=False)["input_ids"]]
    return counts if window is None else [min(n, window) for n in counts]
