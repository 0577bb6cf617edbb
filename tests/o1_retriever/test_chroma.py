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
    assert module.__all__ == ["O1EmbeddingFunction", "check_model", "model_record", "open_collection"]
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
    assert config["model"] == tiny_embedder.name and config["num_thoughts"] == 2 and config["options"]["dtype"] == "fp32"
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
    with pytest.raises(ValueError, match="num_thoughts must be >= 0"):
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


def test_called_directly_one_str_is_one_document(tiny_embedder):
    """`function("river")` embedded each character (five vectors); None and [] failed with TypeError / IndexError
    naming nothing."""
    function = O1EmbeddingFunction(tiny_embedder, num_thoughts=1)
    vectors = function("river water")
    assert len(vectors) == 1
    np.testing.assert_allclose(vectors[0], tiny_embedder.encode_documents("river water"), atol=1e-5)
    with pytest.raises(TypeError, match="documents must be a str or a list of str, got None"):
        function(None)
    with pytest.raises(ValueError, match="got no documents"):
        function([])
    with pytest.raises(TypeError, match="queries must be a str or a list of str, got None"):
        function.embed_query(None)
    assert len(function.embed_query(QUERY)) == 1


def test_composite_embedders_explain_how_to_reopen():
    function = O1EmbeddingFunction.build_from_config({"model": "composite:a+b", "options": {}})
    with pytest.raises(ValueError, match="composite"):
        function.embed_query(["a query"])


def test_a_rebuilt_function_refuses_a_different_model_than_the_collection_was_built_with(tiny_embedder):
    config = O1EmbeddingFunction(tiny_embedder).get_config() | {"fingerprint": "0123456789abcdef"}
    function = O1EmbeddingFunction.build_from_config(config)
    assert "not loaded yet" in repr(function)
    with pytest.raises(ValueError, match="loaded another way .*fingerprint 0123456789abcdef"):
        function.embed_query(["a query"])  # it used to warn and search with mismatched vectors


def test_loads_a_model_from_a_path_once(tiny_o1_dir):
    options = dict(device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=4)
    first = O1EmbeddingFunction(model=str(tiny_o1_dir), k=1, **options)
    second = O1EmbeddingFunction(model=tiny_o1_dir, k=1, **options)
    assert isinstance(first.embedder, O1Embedder) and first.embedder is second.embedder
    assert len(first(["one passage", "another passage"])) == 2


# ---- one collection contract: O1Index, plain Chroma and the frameworks share one record of the model --------------

def _fresh_process(script: str) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_o1index_collection_records_the_o1_function_and_one_fingerprint(tiny_embedder, tmp_path):
    from o1_retriever.chroma import model_record
    from o1_retriever.index import O1Index
    index = O1Index(tiny_embedder, path=tmp_path / "db", collection="docs")
    function = index.collection.configuration_json["embedding_function"]
    assert function["name"] == "o1_retriever"  # was {'name': 'default'}: Chroma's MiniLM against our vectors
    assert function["config"]["fingerprint"] == tiny_embedder.fingerprint
    assert not any(key.startswith("o1:") and key != "o1:incomplete" for key in index.collection.metadata or {})
    assert model_record(index.collection) == {"fingerprint": tiny_embedder.fingerprint, "dim": tiny_embedder.dim,
                                              "name": tiny_embedder.name, "encoder_dtype": "float32"}
    assert index.collection.configuration_json["hnsw"]["space"] == "cosine"


def test_plain_query_texts_in_a_fresh_process_match_o1index(tiny_embedder, tmp_path):
    from o1_retriever.index import O1Index
    index = O1Index(tiny_embedder, path=tmp_path / "db", collection="docs", num_thoughts=2)
    index.add([f"d{i}" for i in range(len(DOCS))], DOCS)
    expected = [h.id for h in index.search(QUERY, top_k=3, k=2)]
    got = _fresh_process(f"""
        import json, sys, chromadb
        import o1_retriever.chroma  # Chroma's registration: the one import a plain-Chroma process needs
        assert "o1_retriever.index" not in sys.modules
        col = chromadb.PersistentClient(path={str(tmp_path / "db")!r}).get_collection("docs")
        print(json.dumps(col.query(query_texts=[{QUERY!r}], n_results=3)["ids"][0]))
    """)
    assert json.loads(got) == expected


def test_o1index_opens_a_collection_made_with_plain_chroma(tiny_embedder, tiny_lm_dir, collection, tmp_path):
    from o1_retriever.index import O1Index
    index = O1Index(tiny_embedder, path=tmp_path / "chroma", collection="docs")  # was refused: no o1:* metadata
    assert len(index) == len(DOCS)
    assert [h.id for h in index.search(QUERY, top_k=3, k=2)] == collection.query(query_texts=[QUERY], n_results=3)["ids"][0]
    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    with pytest.raises(ValueError, match=r"collection 'docs' was built with model .*fingerprint"):
        O1Index(other, path=tmp_path / "chroma", collection="docs")


def test_a_wrong_model_is_refused_with_one_message(tiny_embedder, tiny_lm_dir, tmp_path):
    from o1_retriever.chroma import check_model, model_record, open_collection
    from o1_retriever.index import O1Index
    index = O1Index(tiny_embedder, path=tmp_path / "db", collection="docs")
    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    with pytest.raises(ValueError) as by_index:
        O1Index(other, path=tmp_path / "db", collection="docs")
    with pytest.raises(ValueError) as by_check:
        check_model("collection 'docs'", model_record(index.collection), other)
    with pytest.raises(ValueError) as by_open:
        open_collection(index.client, "docs", other)
    assert str(by_index.value) == str(by_check.value) == str(by_open.value)


def test_a_collection_without_an_o1_record_is_refused(tiny_embedder, tmp_path):
    from o1_retriever.index import O1Index
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    client.create_collection("minilm")
    with pytest.raises(ValueError, match=r"'minilm' records no O1 model \(its embedding function: 'default'\)"):
        O1Index(tiny_embedder, client=client, collection="minilm")


def test_collections_from_before_the_contract_still_open(tiny_embedder, tiny_lm_dir, tmp_path):
    """O1Index used to keep the record in the metadata (and Chroma recorded 'default'): such databases keep working."""
    from o1_retriever.index import O1Index
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    old = client.create_collection("docs", metadata={
        "o1:fingerprint": tiny_embedder.fingerprint, "o1:dim": tiny_embedder.dim, "o1:model": tiny_embedder.name,
        "hnsw:space": "cosine"})
    old.add(ids=["d0", "d1"], documents=DOCS[:2], embeddings=tiny_embedder.encode_documents(DOCS[:2]).tolist())
    assert [h.id for h in O1Index(tiny_embedder, client=client, collection="docs").search(DOCS[1], top_k=1, k=0)] == ["d1"]
    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    with pytest.raises(ValueError, match="fingerprint"):
        O1Index(other, client=client, collection="docs")


@pytest.mark.real_model
def test_the_bundled_default_collection_thinks_in_a_fresh_plain_chroma_process(tmp_path):
    """Built by O1Index in one process; queried by text in another that only imports o1_retriever.chroma: the
    recorded default (model None) is rebuilt, passes the fingerprint check, and ranks as O1Index did."""
    db = str(tmp_path / "db")
    built = _fresh_process(f"""
        import json
        from o1_retriever import O1Embedder
        from o1_retriever.index import O1Index
        index = O1Index(O1Embedder.from_pretrained(), path={db!r}, collection="docs")
        index.add(["b", "m"], ["Yeast ferments sugar into CO2 bubbles that raise dough.", "Mars is red from iron oxide."])
        print(json.dumps([h.id for h in index.search("why does bread rise?", top_k=2, k=3)]))
    """)
    queried = _fresh_process(f"""
        import json, chromadb
        import o1_retriever.chroma
        col = chromadb.PersistentClient({db!r}).get_collection("docs")
        print(json.dumps(col.query(query_texts=["why does bread rise?"], n_results=2)["ids"][0]))
    """)
    assert json.loads(queried) == json.loads(built) == ["b", "m"]



def test_modify_refuses_the_same_model_loaded_another_way(tiny_embedder, tiny_o1_dir, collection, tmp_path):
    """The same path in bf16 has another fingerprint: modify() took it silently over fp32 vectors (a later fp32
    O1Index was then refused, a bf16 one accepted). chromadb stores the new function before asking ours, so the
    refusal says how to record the right model again, and that works."""
    from o1_retriever.index import O1Index
    bf16 = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="bf16", thought_cache=False)
    with pytest.raises(ValueError, match=rf"cannot change \(fingerprint '{tiny_embedder.fingerprint}' -> "
                                         rf"'{bf16.fingerprint}', encoder_dtype .*record the model it was built with"):
        collection.modify(configuration={"embedding_function": O1EmbeddingFunction(bf16)})
    reopened = chromadb.PersistentClient(str(tmp_path / "chroma")).get_collection("docs")
    assert reopened.configuration_json["embedding_function"]["config"]["fingerprint"] == bf16.fingerprint
    with pytest.raises(ValueError, match="cannot change"):  # the way back, as the message says
        reopened.modify(configuration={"embedding_function": O1EmbeddingFunction(tiny_embedder)})
    assert len(O1Index(tiny_embedder, path=tmp_path / "chroma", collection="docs")) == len(DOCS)
    collection.modify(configuration={"embedding_function": O1EmbeddingFunction(tiny_embedder, num_thoughts=5)})
    config = chromadb.PersistentClient(str(tmp_path / "chroma")).get_collection("docs").configuration_json
    assert config["embedding_function"]["config"]["num_thoughts"] == 5  # the thinking may change, the model not
