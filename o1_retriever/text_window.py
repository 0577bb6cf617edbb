"""What a model reads of a long text, found from a bounded prefix of it.

A model reads a text's first N tokens only (an O1 model's query/document window, a sentence-transformers model's
max_seq_length, the thinker's prompt window), but a tokenizer asked to truncate still tokenizes the whole text first:
a 2-million-character text costs tens of seconds and a lot of memory per pass. So wherever the engine tokenizes a text
for a model (`encoding.py`, `thinking.py`), it first cuts the text to a prefix that holds every token the model reads
plus a margin: the same tokens, at a cost bounded by the window instead of the text's length. The server cuts its
inputs with the same code before they reach the engine (`server/window.py`).
"""
from __future__ import annotations

# Tokens kept past a window: a prompt's own tokens around the text, and a tokenizer's look-ahead at the cut.
MARGIN = 64
CHARS_PER_TOKEN = 8  # characters first probed per token kept; the probe grows 4x while it holds too few tokens
PROBES = 3  # probes at most: past 16x the first, the engine reads a text whole and the server refuses it
CUT_FROM = 4  # texts shorter than 4x the first probe go whole: probing them would cost what it saves


class InputTooLong(ValueError):
    """A text whose window could not be found in a bounded prefix (the server answers HTTP 413)."""


def _ids(tokenizer, text: str, offsets: bool = False):
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=offsets, verbose=False)


def cut_point(tokenizer, text: str, window: int) -> int | None:
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


def cut_from(window: int) -> int:
    """Texts of up to this many characters are tokenized whole."""
    return (window + MARGIN) * CHARS_PER_TOKEN * CUT_FROM


def read_prefixes(tokenizer, texts: list[str], window) -> list[str]:
    """`texts`, each longer one cut to a prefix whose first `window` tokens (as `tokenizer` reads them, special
    tokens aside) are the whole text's. Never refuses: a text whose window is not found cheaply (see `cut_point`), or
    a tokenizer without offsets, reads the text whole, as it did before the cut. A window that is not a positive int
    (a model without a limit) cuts nothing."""
    if tokenizer is None or not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return texts
    longest = cut_from(window)
    out = []
    for text in texts:
        if len(text) > longest:
            try:
                point = cut_point(tokenizer, text, window)
            except (InputTooLong, NotImplementedError, TypeError, KeyError):  # KeyError: no offsets (slow tokenizer)
                point = None
            if point is not None:
                text = text[:point]
        out.append(text)
    return out


def truncates_at_end(tokenizer) -> bool:
    """Whether a tokenizer's own truncation keeps a text's first tokens, so that a cut prefix reads the same
    (truncation_side="left" keeps the last ones: such a text must go whole)."""
    return getattr(tokenizer, "truncation_side", "right") == "right"


def sentence_window(model) -> tuple | None:
    """(tokenizer, window in tokens) of a sentence-transformers model whose reading of a text a prefix cut keeps:
    a plain text Transformer first module with a fast tokenizer that truncates at the end. The window is the largest
    length it may truncate to (max_seq_length, sentence-transformers 6's query_length/document_length, a max_length
    in its processing_kwargs): cutting past the largest keeps every smaller one's tokens. None where any of that is
    unknown (a Router, a chat-template backbone, a model without a limit): such texts go whole."""
    first = _first_module(model)
    tokenizer = getattr(first, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "is_fast", False) or not truncates_at_end(tokenizer):
        return None
    if set(getattr(first, "modality_config", None) or {"text": None}) != {"text"}:
        return None
    lengths = [getattr(model, "max_seq_length", None), getattr(first, "query_length", None),
               getattr(first, "document_length", None)]
    lengths += [_processing_max_length(first, part) for part in ("text", "common")]
    if lengths[0] is None or not all(n is None or (isinstance(n, int) and n > 0) for n in lengths):
        return None
    return tokenizer, max(n for n in lengths if n is not None)


def sentence_read_length(model, role: str) -> int:
    """The tokens a sentence-transformers model reads of a `role` ("query" or "document") text, as its first module
    truncates it: a max_length in its processing_kwargs ("common" over "text"), else sentence-transformers 6's
    query_length / document_length, else max_seq_length."""
    first = _first_module(model)
    for part in ("common", "text"):
        if (length := _processing_max_length(first, part)) is not None:
            return length
    length = getattr(first, f"{role}_length", None)
    return model.max_seq_length if length is None else length


def _first_module(model):
    try:
        return model[0]
    except (TypeError, IndexError, KeyError):  # not a module list
        return None


def _processing_max_length(first, part: str):
    return ((getattr(first, "processing_kwargs", None) or {}).get(part) or {}).get("max_length")
