"""O1Index and O1EmbeddingFunction against a real Chroma server (`chroma run` on loopback, started here), through
chromadb.HttpClient: the path where several clients and processes share one collection."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid

import chromadb
import pytest

from o1_retriever import O1Embedder
from o1_retriever.index import O1Index
from tests.fixtures import chroma_server

IDS = ["d1", "d2", "d3", "d4"]
TEXTS = ["protein cell gene expression", "the river and the ocean water", "music history of the city",
         "solar energy plant and climate"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with chroma_server(tmp_path_factory.mktemp("chroma_server")) as address:
        yield address


@pytest.fixture
def name():
    return f"c{uuid.uuid4().hex[:10]}"  # one collection per test on the shared server


def _ids(hits):
    return [h.id for h in hits]


def test_add_upsert_delete_search_round_trip(tiny_embedder, server, name):
    index = O1Index(tiny_embedder, collection=name, **server)
    assert index.search("anything", k=1) == [] and index.search("anything", k=0, hybrid=True) == []
    assert index.add(IDS, TEXTS, [{"n": i, "lang": "en"} for i in range(4)]) == 4
    hits = index.search(TEXTS[1], top_k=50, k=1)  # top_k past the collection: every document, once
    assert sorted(_ids(hits)) == sorted(IDS)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    index.add(["d2"], ["volcano lava eruption"], [{"n": 9}])  # replaced whole: 'lang' is gone
    got = index.collection.get(ids=["d2"], include=["documents", "metadatas"])
    assert got["documents"] == ["volcano lava eruption"] and got["metadatas"] == [{"n": 9}]
    assert _ids(index.search("volcano lava", top_k=1, k=0, hybrid=0.0)) == ["d2"]
    assert index.search("volcano", top_k=4, k=0, where={"lang": "en"}, hybrid=True) != []
    assert "d2" not in _ids(index.search("volcano", top_k=4, k=0, where={"lang": "en"}, hybrid=True))
    assert index.delete(where={"n": {"$gte": 2}}) == 3 and index.delete(["d1", "never"]) == 1 and len(index) == 0
    assert index.search("volcano", k=0, hybrid=True) == []
    with pytest.raises(ValueError, match=rf"no collection 'missing' in '127\.0\.0\.1:{server['port']}'"):
        O1Index(tiny_embedder, collection="missing", create=False, **server)


def test_another_client_with_another_model_is_refused_and_changes_nothing(tiny_embedder, tiny_lm_dir, server, name):
    index = O1Index(tiny_embedder, collection=name, **server)
    index.add(IDS, TEXTS, [{"n": i} for i in range(4)])
    client = chromadb.HttpClient(**server)
    before = client.get_collection(name, embedding_function=None)
    stored = before.get(include=["documents", "metadatas", "embeddings"])
    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    with pytest.raises(ValueError, match=rf"collection '{name}' was built with model .*fingerprint "
                                         rf"{tiny_embedder.fingerprint}.*this embedder is .*{other.fingerprint}"):
        O1Index(other, collection=name, num_thoughts=5, **server)
    after = client.get_collection(name, embedding_function=None)
    assert after.configuration_json == before.configuration_json
    again = after.get(include=["documents", "metadatas", "embeddings"])
    assert again["ids"] == stored["ids"] and again["documents"] == stored["documents"]
    assert again["metadatas"] == stored["metadatas"] and (again["embeddings"] == stored["embeddings"]).all()


def test_hybrid_search_follows_another_clients_deletes_and_adds(tiny_embedder, server, name):
    mine = O1Index(tiny_embedder, collection=name, **server)
    mine.add(IDS + ["z1"], TEXTS + ["zebra stripes savanna"])
    assert _ids(mine.search("zebra savanna", top_k=1, k=0, hybrid=0.0)) == ["z1"]  # BM25 built over five texts
    theirs = O1Index(tiny_embedder, collection=name, **server)  # another client of the same server
    theirs.delete(["z1"])
    theirs.add(["z2"], ["zebra herd on the savanna"])  # the count is unchanged
    hits = mine.search("zebra savanna", top_k=5, k=0, hybrid=0.0)
    assert "z1" not in _ids(hits) and hits[0].id == "z2" and hits[0].text == "zebra herd on the savanna"


def test_plain_query_texts_in_a_fresh_process_think_as_o1index(tiny_embedder, server, name):
    index = O1Index(tiny_embedder, collection=name, num_thoughts=2, **server)
    index.add(IDS, TEXTS)
    expected = _ids(index.search("ocean water", top_k=3, k=2))
    script = textwrap.dedent(f"""
        import json, chromadb
        import o1_retriever.chroma  # registers the function: Chroma rebuilds it from the server's record
        col = chromadb.HttpClient(host={server['host']!r}, port={server['port']}).get_collection({name!r})
        print(json.dumps(col.query(query_texts=["ocean water"], n_results=3)["ids"][0]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_add_resumable_marks_and_clears_incomplete_on_a_server(tiny_embedder, server, name):
    index = O1Index(tiny_embedder, collection=name, **server)
    assert index.add_resumable(IDS, TEXTS, batch_size=2) == (4, 0) and not index.incomplete
    reopened = O1Index(tiny_embedder, collection=name, **server)
    assert not reopened.incomplete and reopened.add_resumable(IDS, TEXTS) == (0, 4)


def test_threads_add_and_search_one_server_collection(tiny_embedder, server, name):
    index = O1Index(tiny_embedder, collection=name, **server)
    index.add(IDS, TEXTS)
    errors, done = [], threading.Event()

    def writer(tag):
        try:
            for i in range(8):
                index.add([f"{tag}{i}"], [f"volcano lava {tag} {i}"], [{"tag": tag}])
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    def searcher():
        try:
            while not done.is_set():
                for hit in index.search("volcano lava", top_k=5, k=0, hybrid=True):
                    assert hit.text and (hit.id in IDS or hit.text.startswith("volcano lava"))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    writers = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    searchers = [threading.Thread(target=searcher) for _ in range(2)]
    for t in writers + searchers:
        t.start()
    for t in writers:
        t.join(timeout=120)
    done.set()
    for t in searchers:
        t.join(timeout=120)
    assert errors == []
    assert len(index) == 4 + 16
    assert len(index.search("volcano lava", top_k=20, k=0, hybrid=0.0, where={"tag": "a"})) == 8
