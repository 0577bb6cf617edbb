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
