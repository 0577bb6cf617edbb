"""O1Embedding's settings after construction: checked as the constructor checks them; the engine's own are fixed."""
from __future__ import annotations

import pickle

import pytest

from llama_index.embeddings.o1 import O1Embedding

QUERY = "Does ALDH1 expression predict poor prognosis in breast cancer?"


def test_settings_are_checked_on_assignment_and_the_engine_is_fixed(tiny_embedder, tiny_o1_dir):
    """num_thoughts=-1 was accepted and failed at the next query naming the engine's `k`; model_path='elsewhere' was
    accepted and written by to_dict() while the old model kept embedding."""
    embed_model = O1Embedding(embedder=tiny_embedder, num_thoughts=1)
    for name, value, error in (("num_thoughts", -1, "num_thoughts must be >= 0"),
                               ("num_thoughts", True, "num_thoughts must be an int >= 0 .*got True"),
                               ("embed_batch_size", 0, "embed_batch_size must be > 0, got 0"),
                               ("embed_batch_size", 5000, "less than or equal to 2048"),
                               ("show_progress_bar", "maybe", "show_progress_bar")):
        with pytest.raises((TypeError, ValueError), match=error):
            setattr(embed_model, name, value)
    for name, value in (("model_path", "elsewhere"), ("model_kwargs", {"dtype": "bf16"}), ("url", "http://x"),
                        ("api_key", "k"), ("timeout", 5.0), ("model_name", "other")):
        with pytest.raises(AttributeError, match=f"{name} is fixed once the model is loaded"):
            setattr(embed_model, name, value)
    assert embed_model.to_dict()["model_path"] == str(tiny_o1_dir) and embed_model.num_thoughts == 1
    with pytest.raises((TypeError, ValueError), match="embed_batch_size must be a positive int, got True"):
        O1Embedding(embedder=tiny_embedder, embed_batch_size=True)  # was: read as 1
    embed_model.num_thoughts, embed_model.embed_batch_size = 2, 8
    embed_model.get_query_embedding(QUERY)
    assert embed_model.last_thoughts == tiny_embedder.think(QUERY, k=2)
    assert O1Embedding.from_dict(embed_model.to_dict()).num_thoughts == 2
    restored = pickle.loads(pickle.dumps(embed_model))  # LlamaIndex's worker processes rebuild it so
    assert (restored.num_thoughts, restored.embed_batch_size) == (2, 8)
    with pytest.raises(AttributeError, match="fixed once the model is loaded"):
        restored.model_path = "elsewhere"
