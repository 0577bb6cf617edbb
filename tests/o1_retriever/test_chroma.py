"""The Chroma embedding function on a real PersistentClient: thinking queries, config round trip, reopen."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import chromadb
import numpy as np
import pytest

from o1_retriever import O1Embedder
from o1_retriever.chroma import O1EmbeddingFunction

DOCS = ["insulin resistance raises the risk of type 2 diabetes",
        "solar energy panels convert light into electricity",
        "the immune response to a vaccine involves antibody production",
        "river water flows to the ocean through the city",
        "tumor cells show increased gene expression in mice"]
QUERY = "does a vaccine trigger an immune response"


@pytest.fixture
def collection(tiny_embedder, tmp_path):
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    col = client.create_collection("docs", embedding_function=O1EmbeddingFunction(tiny_embedder, k=2))
    col.add(ids=[f"d{i}" for i in range(len(DOCS))], documents=DOCS)
    return col


def test_public_api_and_framework_base():
    import o1_retriever.chroma as module
    assert module.__all__ == ["O1EmbeddingFunction"]
    assert issubclass(O1EmbeddingFunction, chromadb.EmbeddingFunction)


def test_core_never_imports_llama_index_or_langchain():
    code = ("import sys, o1_retriever, o1_retriever.chroma; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('llama_index', 'langchain_core', 'langchain')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_documents_are_embedded_as_passages(tiny_embedder, collection):
    stored = collection.get(ids=["d0", "d3"], include=["embeddings"])["embeddings"]
    np.testing.assert_allclose(stored, tiny_embedder.encode_documents([DOCS[0], DOCS[3]]), atol=1e-5)


def test_query_texts_think_like_encode_queries(tiny_embedder, collection):
    by_text = collection.query(query_texts=[QUERY], n_results=3)
    by_vector = collection.query(query_embeddings=[tiny_embedder.encode_queries(QUERY, k=2)], n_results=3)
    assert by_text["ids"] == by_vector["ids"]
    np.testing.assert_allclose(by_text["distances"], by_vector["distances"], atol=1e-5)
    # thinking changes the query vector: the bare query (k=0) lands elsewhere
    bare = O1EmbeddingFunction(tiny_embedder, k=0).embed_query([QUERY])[0]
    assert not np.allclose(bare, tiny_embedder.encode_queries(QUERY, k=2), atol=1e-4)


def test_collection_uses_cosine_space(collection):
    config = collection.configuration_json
    assert config["hnsw"]["space"] == "cosine"
    assert config["embedding_function"]["name"] == "o1_retriever"


def test_config_round_trip_is_json_and_reuses_the_loaded_model(tiny_embedder):
    function = O1EmbeddingFunction(tiny_embedder, k=2, batch_size=4)
    config = json.loads(json.dumps(function.get_config()))
    assert config["model"] == tiny_embedder.name and config["k"] == 2 and config["options"]["dtype"] == "fp32"
    rebuilt = O1EmbeddingFunction.build_from_config(config)
    assert rebuilt.embedder is tiny_embedder  # never a second copy in one process
    assert (rebuilt.k, rebuilt.batch_size) == (2, 4)
    assert O1EmbeddingFunction.name() == "o1_retriever" and not function.is_legacy()


def test_config_keeps_the_query_weight(tiny_o1_dir):
    from o1_retriever import O1Embedder
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     aggregation="mean_with_query", query_weight=0.7)
    config = json.loads(json.dumps(O1EmbeddingFunction(emb, k=2).get_config()))
    assert config["options"]["query_weight"] == 0.7
    again = O1Embedder.from_pretrained(config["model"], **config["options"])  # what a new process would load
    np.testing.assert_allclose(again.encode_queries(QUERY, k=2), emb.encode_queries(QUERY, k=2), atol=1e-5)


def test_reopened_collection_in_same_process_rebuilds_from_config(tiny_embedder, collection, tmp_path):
    expected = collection.query(query_texts=[QUERY], n_results=3)["ids"]
    reopened = chromadb.PersistentClient(path=str(tmp_path / "chroma")).get_collection("docs")
    assert reopened.query(query_texts=[QUERY], n_results=3)["ids"] == expected
    assert reopened.configuration["embedding_function"].embedder is tiny_embedder


def test_reopened_collection_in_a_new_process_gets_the_same_hits(collection, tmp_path):
    expected = collection.query(query_texts=[QUERY], n_results=3)["ids"]
    script = textwrap.dedent(f"""
        import json, chromadb
        import o1_retriever.chroma as oc  # registers the function, so Chroma can rebuild it from the config
        col = chromadb.PersistentClient(path={str(tmp_path / "chroma")!r}).get_collection("docs")
        col.query(query_embeddings=[[0.0] * 63 + [1.0]], n_results=1)
        assert not oc._loaded, "searching by vector must not load a model"
        print(json.dumps(col.query(query_texts=[{QUERY!r}], n_results=3)["ids"]))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_bad_arguments_raise_clear_errors(tiny_embedder, collection):
    with pytest.raises(ValueError, match="k must be >= 0"):
        O1EmbeddingFunction(tiny_embedder, k=-1)
    with pytest.raises(TypeError, match="O1Embedder"):
        O1EmbeddingFunction("not a model object but a str")
    with pytest.raises(TypeError, match="unknown options"):
        O1EmbeddingFunction(model="x", colour="red")
    with pytest.raises(ValueError, match="not both"):
        O1EmbeddingFunction(tiny_embedder, model="other")
    with pytest.raises(ValueError, match="empty"):
        collection.query(query_texts=["   "], n_results=1)
    with pytest.raises(ValueError, match="cannot change"):
        O1EmbeddingFunction(tiny_embedder).validate_config_update({"model": "a"}, {"model": "b"})
    assert collection.count() == len(DOCS)  # a failed call loses nothing


def test_composite_embedders_explain_how_to_reopen():
    function = O1EmbeddingFunction.build_from_config({"model": "composite:a+b", "options": {}})
    with pytest.raises(ValueError, match="composite"):
        function.embed_query(["a query"])


def test_a_different_model_than_the_collection_was_built_with_warns(tiny_embedder):
    config = O1EmbeddingFunction(tiny_embedder).get_config() | {"fingerprint": "0123456789abcdef"}
    function = O1EmbeddingFunction.build_from_config(config)
    assert "not loaded yet" in repr(function)
    with pytest.warns(UserWarning, match="may not be comparable"):
        assert function.embedder is tiny_embedder


def test_loads_a_model_from_a_path_once(tiny_o1_dir):
    options = dict(device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=4)
    first = O1EmbeddingFunction(model=str(tiny_o1_dir), k=1, **options)
    second = O1EmbeddingFunction(model=tiny_o1_dir, k=1, **options)
    assert isinstance(first.embedder, O1Embedder) and first.embedder is second.embedder
    assert len(first(["one passage", "another passage"])) == 2
