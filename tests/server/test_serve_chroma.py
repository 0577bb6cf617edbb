"""Chroma pointed at a server: `O1EmbeddingFunction(url=...)` embeds through `o1-retriever serve`, the collection
records the server (never the key), a fresh client rebuilds the function from that record, and `search --url`
searches a collection built locally."""
from __future__ import annotations

import numpy as np

DOCS = {"b1": "Yeast ferments sugar into bubbles that raise dough.", "m1": "Mars is red from iron oxide dust.",
        "t1": "The Moon's pull raises the tides twice a day."}


def test_chroma_function_with_url_matches_the_local_model(server, served_embedder, tmp_path):
    import chromadb

    from o1_retriever.chroma import O1EmbeddingFunction
    url, _ = server
    remote = O1EmbeddingFunction(url=url, num_thoughts=2)
    local = O1EmbeddingFunction(served_embedder, num_thoughts=2)
    queries = ["why does bread rise", "what colour is mars"]
    np.testing.assert_allclose(np.array(remote(queries)), np.array(local(queries)), atol=1e-5)
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    collection = client.create_collection("remote", embedding_function=remote)
    collection.add(ids=list(DOCS), documents=list(DOCS.values()))
    hits = collection.query(query_texts=queries, n_results=1)["ids"]
    recorded = collection.configuration_json["embedding_function"]
    assert recorded["name"] == "o1_retriever" and recorded["config"]["url"].rstrip("/") == url.rstrip("/")
    reopened = chromadb.PersistentClient(path=str(tmp_path / "db")).get_collection("remote")
    assert reopened.query(query_texts=queries, n_results=1)["ids"] == hits  # rebuilt from the record: the server


def test_search_url_uses_the_server(server, served_embedder, tmp_path, capsys, free_port):
    from o1_retriever.cli import main
    from o1_retriever.index import O1Index
    url, _ = server
    O1Index(served_embedder, path=str(tmp_path / "db")).add(list(DOCS), list(DOCS.values()))
    expected = [h.id for h in O1Index(served_embedder, path=str(tmp_path / "db")).search("why does bread rise",
                                                                                         top_k=2, k=1)]
    assert main(["search", "--db", str(tmp_path / "db"), "--url", url, "--k", "1", "--top-k", "2",
                 "why does bread rise"]) == 0
    out = capsys.readouterr().out
    assert [i for i in sorted(DOCS, key=out.find) if i in out] == expected  # the local model's hits, in order
    # the server, not a local model, embeds: one that does not answer is a one-line error, not a traceback
    assert main(["search", "--db", str(tmp_path / "db"), "--url", f"http://127.0.0.1:{free_port()}", "x"]) == 2
    assert "cannot reach" in capsys.readouterr().err
