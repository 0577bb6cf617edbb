import pytest

from o1_retriever import O1Embedder
from o1_retriever.index import Hit, O1Index
from tests.fixtures import free_port

IDS = ["d1", "d2", "d3", "d4"]
TEXTS = ["protein cell gene expression", "the river and the ocean water", "music history of the city",
         "solar energy plant and climate"]


def test_add_search_and_reopen(tiny_embedder, tmp_path):
    index = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    assert index.add(IDS, TEXTS, [{"n": i} for i in range(4)]) == 4
    hits = index.search(TEXTS[1], top_k=3, k=1)
    assert len(hits) == 3 and all(isinstance(h, Hit) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(len(h.thoughts) == 1 for h in hits) and hits[0].metadata.keys() == {"n"}
    # Chroma's scores are the cosine similarity of our own vectors
    q = tiny_embedder.encode_queries(TEXTS[1], k=1)
    d = tiny_embedder.encode_documents(TEXTS)
    best = max(range(4), key=lambda i: float(d[i] @ q) / float((q @ q) ** 0.5))
    assert hits[0].id == IDS[best]
    reopened = O1Index(tiny_embedder, path=tmp_path, collection="docs")
    assert len(reopened) == 4
    assert [h.id for h in reopened.search(TEXTS[1], top_k=3, k=1)] == [h.id for h in hits]
    many = reopened.search([TEXTS[0], TEXTS[2]], top_k=2, k=0)
    assert len(many) == 2 and all(len(h) == 2 for h in many) and many[1][0].thoughts == []


def test_reopening_with_another_model_is_refused(tiny_embedder, tiny_lm_dir, tmp_path):
    O1Index(tiny_embedder, path=tmp_path, collection="docs").add(IDS, TEXTS)
    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    with pytest.raises(ValueError, match="fingerprint"):
        O1Index(other, path=tmp_path, collection="docs")
    assert len(O1Index(tiny_embedder, path=tmp_path, collection="docs")) == 4  # still intact


def test_readding_an_id_updates_it(tiny_embedder, tmp_path):
    index = O1Index(tiny_embedder, path=tmp_path)
    index.add(IDS, TEXTS)
    index.add(["d2"], ["protein cell gene expression again"], [{"v": 2}])
    got = index.collection.get(ids=["d2"], include=["documents", "metadatas"])
    assert len(index) == 4 and got["documents"] == ["protein cell gene expression again"]
    assert got["metadatas"] == [{"v": 2}]


def test_delete_by_id_or_filter_and_hybrid_search_forgets_them(tiny_embedder, tmp_path):
    index = O1Index(tiny_embedder, path=tmp_path)
    index.add(IDS, TEXTS, [{"n": i} for i in range(4)])
    assert _ids(index.search("river ocean water", top_k=1, k=0, hybrid=0.0)) == ["d2"]  # BM25 is built
    assert index.delete(["d2", "never-stored"]) == 1 and len(index) == 3
    assert "d2" not in _ids(index.search("river ocean water", top_k=4, k=0, hybrid=0.0))
    assert index.delete(where={"n": {"$gte": 2}}) == 2
    assert index.collection.get(include=[])["ids"] == ["d1"]
    for args, kwargs, match in [((), {}, "ids or where="), ((["d1"],), {"where": {"n": 0}}, "ids or where="),
                                ((), {"where": {"n": {"$bad": 1}}}, "not a valid Chroma filter"),
                                (([""],), {}, "ids")]:
        with pytest.raises(ValueError, match=match):
            index.delete(*args, **kwargs)
    assert len(index) == 1  # refused calls deleted nothing


def test_failed_add_leaves_the_collection_as_it_was(tiny_embedder, tmp_path):
    index = O1Index(tiny_embedder, path=tmp_path)
    index.add(IDS, TEXTS)
    before = index.collection.get(include=["documents", "embeddings"])
    for ids, texts, exc in [(["d1", "x"], ["changed", "  "], ValueError), (["d1"], [None], TypeError),
                            (["d1", "d1"], ["a", "b"], ValueError), (["d1", "d2"], ["only one"], ValueError)]:
        with pytest.raises(exc):
            index.add(ids, texts)
    # an error while embedding a later batch happens before any write: nothing changes
    original = tiny_embedder.encode_documents
    calls = []

    def failing(texts, **kw):
        calls.append(texts)
        if len(calls) == 2:
            raise RuntimeError("simulated failure in the second batch")
        return original(texts, **kw)
    tiny_embedder.encode_documents = failing
    try:
        with pytest.raises(RuntimeError):
            index.add(["d1", "d5"], ["first batch changes d1", "never stored"], batch_size=1)
    finally:
        del tiny_embedder.encode_documents
    after = index.collection.get(include=["documents", "embeddings"])
    assert after["ids"] == before["ids"] and after["documents"] == before["documents"]
    assert (after["embeddings"] == before["embeddings"]).all()


def test_bad_search_arguments(tiny_embedder, tmp_path):
    index = O1Index(tiny_embedder, path=tmp_path)
    assert index.search("anything", k=1) == []  # empty index
    index.add(IDS, TEXTS)
    with pytest.raises(ValueError, match="top_k"):
        index.search("q", top_k=0)
    with pytest.raises(ValueError, match="k must be"):
        index.search("q", k=-1)
    with pytest.raises(ValueError, match="empty"):
        index.search("   ")
    for name in ("", "a..b", "10.0.0.1"):  # the last two were chromadb's InvalidArgumentError, no ValueError
        with pytest.raises(ValueError, match=rf"collection={name!r} is not a valid Chroma name"):
            O1Index(tiny_embedder, path=tmp_path, collection=name)


def _ids(hits):
    return [h.id for h in hits]


def test_hybrid_search_fuses_bm25_over_the_stored_texts(tiny_embedder, tmp_path):
    from o1_retriever.bm25 import BM25Searcher
    from o1_retriever.fusion import fuse
    index = O1Index(tiny_embedder, path=tmp_path)
    index.add(IDS, TEXTS, [{"n": i} for i in range(4)])
    query = "ocean water"
    dense = index.search(query, top_k=4, k=1)
    hybrid = index.search(query, top_k=4, k=1, hybrid=0.5)
    # The fused ranking is fusion.fuse over the cosine hits and BM25 over the same texts.
    lexical = BM25Searcher(IDS, TEXTS).search([query], 4)[0]
    expected = fuse([(h.id, h.score) for h in dense], lexical, 0.5)
    assert [(h.id, h.score) for h in hybrid] == [(d, pytest.approx(s)) for d, s in expected]
    assert hybrid[0].id == "d2" and hybrid[0].text == TEXTS[1] and hybrid[0].metadata == {"n": 1}
    assert all(h.thoughts == dense[0].thoughts for h in hybrid)  # same seed, same thoughts
    # w=0: BM25's own order first (the random tiny model cannot do that on its own: that is the point of hybrid).
    assert _ids(index.search(query, top_k=1, k=0, hybrid=0.0)) == ["d2"]
    assert _ids(index.search(query, top_k=4, k=0, hybrid=1.0)) == _ids(index.search(query, top_k=4, k=0))
    # True: the default share; False: plain dense search.
    from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT
    default = index.search(query, top_k=4, k=1, hybrid=True)
    assert [h.score for h in default] == pytest.approx([h.score for h in index.search(query, top_k=4, k=1,
                                                                                          hybrid=DEFAULT_DENSE_WEIGHT)])
    assert [(h.id, h.score) for h in index.search(query, top_k=4, k=1, hybrid=False)] == \
        [(h.id, h.score) for h in dense]


def test_hybrid_search_sees_new_documents_and_respects_where(tiny_embedder, tmp_path):
    index = O1Index(tiny_embedder, path=tmp_path)
    index.add(IDS, TEXTS, [{"lang": "en"}] * 4)
    assert _ids(index.search("volcano lava", top_k=1, k=0, hybrid=0.0)) != ["d5"]
    index.add(["d5"], ["volcano lava eruption"], [{"lang": "is"}])  # the lexical index is rebuilt
    assert _ids(index.search("volcano lava", top_k=1, k=0, hybrid=0.0)) == ["d5"]
    # Re-adding an id with new text keeps the count: add() itself tells the lexical index to rebuild.
    index.add(["d1"], ["tsunami wave warning"], [{"lang": "en"}])
    hits = index.search("tsunami wave", top_k=2, k=0, hybrid=0.0)
    assert hits[0].id == "d1" and hits[0].score > hits[1].score  # a real BM25 match, not a tie among misses
    # Another O1Index on the same collection (another process, say) adds: the count moved, so it is seen too.
    O1Index(tiny_embedder, path=tmp_path).add(["d6"], ["glacier ice melting"], [{"lang": "is"}])
    assert _ids(index.search("glacier ice", top_k=1, k=0, hybrid=0.0)) == ["d6"]
    # A metadata filter applies to both sides: BM25's best match is filtered out, never returned.
    hits = index.search("volcano lava", top_k=6, k=0, hybrid=0.5, where={"lang": "en"})
    assert hits and "d5" not in _ids(hits) and "d6" not in _ids(hits) and len(hits) == 4
    # A text filter too, on both sides and without hybrid
    for hybrid in (None, 0.5):
        hits = index.search("volcano lava", top_k=6, k=0, hybrid=hybrid, where_document={"$contains": "ice"})
        assert _ids(hits) == ["d6"]
    with pytest.raises(ValueError, match="where_document=.*not a valid Chroma filter"):
        index.search("volcano", where_document={"$nope": "x"})


def test_bad_hybrid_weights_fail_before_any_work(tiny_embedder, tmp_path):
    index = O1Index(tiny_embedder, path=tmp_path)
    index.add(IDS, TEXTS)
    for weight, exc in [(1.5, ValueError), (-1, ValueError), ("half", TypeError)]:
        with pytest.raises(exc, match="dense_weight"):
            index.search("q", hybrid=weight)
    assert len(index) == 4


def test_the_package_root_exports_the_index_without_importing_chroma_up_front():
    import subprocess
    import sys
    script = ("import sys, o1_retriever; assert 'chromadb' not in sys.modules; "
              "from o1_retriever import O1Index, Hit, O1EmbeddingFunction; import o1_retriever.index as i, "
              "o1_retriever.chroma as c; from o1_retriever.store import O1Index as old; "
              "assert O1Index is i.O1Index is old and Hit is i.Hit and O1EmbeddingFunction is c.O1EmbeddingFunction")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    import o1_retriever
    with pytest.raises(AttributeError, match="no attribute 'Index'"):
        o1_retriever.Index  # noqa: B018


def test_plain_chroma_clients_share_the_database_in_one_process(tiny_o1_dir, tmp_path):
    """Chroma refuses a second client of one database with other settings: O1Index used its own settings, so a
    plain `chromadb.PersistentClient(path)` / `EphemeralClient()` opened before it (or after it) in the same process
    failed with 'An instance of Chroma already exists ... with different settings'."""
    import os
    import subprocess
    import sys
    script = f"""
import chromadb
from o1_retriever import O1Embedder
from o1_retriever.index import O1Index
emb = O1Embedder.from_pretrained({str(tiny_o1_dir)!r}, device="cpu", dtype="fp32", thought_cache=False)
db = {str(tmp_path / "db")!r}
chromadb.PersistentClient(db)  # the user's own client first
O1Index(emb, path=db, collection="docs").add(["a"], ["some text"])
assert chromadb.PersistentClient(db).get_collection("docs").count() == 1  # and after
chromadb.EphemeralClient().get_or_create_collection("mine")
O1Index(emb).add(["a"], ["some text"])
assert [c.name for c in chromadb.EphemeralClient().list_collections()] == ["mine"]
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "ANONYMIZED_TELEMETRY"}  # as a user's shell has it
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_each_in_memory_index_is_its_own(tiny_embedder, tiny_lm_dir):
    """Every EphemeralClient in a process shares one in-memory Chroma: a second in-memory O1Index opened the first
    one's collection, with its documents, and refused another model."""
    import gc

    first = O1Index(tiny_embedder)
    first.add(IDS, TEXTS)
    second = O1Index(tiny_embedder)
    assert len(second) == 0 and len(first) == 4
    second.add(["x"], ["volcano lava"])
    assert _ids(first.search("volcano lava", top_k=5, k=0)) != ["x"] and len(first) == 4
    other = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    assert len(O1Index(other)) == 0  # was: "collection 'o1-retriever' was built with model ..."
    collection, client = second.collection, second.client
    del second
    gc.collect()
    # what the user kept of a dropped index still reads its documents
    assert collection.count() == 1 and [c.name for c in client.list_collections()] == ["o1-retriever"]
    assert len(first) == 4


def test_where_the_index_lives_is_given_once_and_a_missing_server_is_named(tiny_embedder, tmp_path):
    import chromadb
    with pytest.raises(ValueError, match=r"path=.*or host=.*not both.*'127\.0\.0\.1'"):
        O1Index(tiny_embedder, path=tmp_path, host="127.0.0.1")  # path was silently ignored
    with pytest.raises(ValueError, match="client= or path=/host=, not both"):
        O1Index(tiny_embedder, path=tmp_path, client=chromadb.EphemeralClient())
    assert not (tmp_path / "chroma.sqlite3").exists()
    port = free_port()  # nothing listens there
    with pytest.raises(ValueError, match=rf"could not connect to a Chroma server at 127\.0\.0\.1:{port}"):
        O1Index(tiny_embedder, host="127.0.0.1", port=port)


def test_no_queries_no_hits_and_filter_errors_name_the_bad_filter(tiny_embedder):
    index = O1Index(tiny_embedder)
    index.add(IDS, TEXTS, [{"n": i} for i in range(4)])
    assert index.search([], k=1) == [] and index.search([], k=0, hybrid=True) == []  # was IndexError
    with pytest.raises(ValueError, match=r"where_document=\{\}: not a valid Chroma filter"):
        index.search("q", where_document={})  # the message named only where=None


def test_metadata_ints_chroma_would_round_are_refused(tiny_embedder):
    index = O1Index(tiny_embedder)
    with pytest.raises(ValueError, match=r"metadatas\[1\] \(id 'b'\)\['big'\] is 1180591620717411303424; .*64 bits"):
        index.add(["a", "b"], ["one", "two"], [{"big": 1}, {"big": 2**70}])  # was stored as 1.18e21
    assert len(index) == 0
    index.add(["a"], ["one"], [{"big": 2**63 - 1}])
    assert index.collection.get(ids=["a"], include=["metadatas"])["metadatas"] == [{"big": 2**63 - 1}]


def test_hybrid_search_over_texts_bm25_cannot_index(tiny_embedder):
    index = O1Index(tiny_embedder)
    index.add(["s1", "s2"], ["The", "A, I."])
    hits = index.search("river water", top_k=2, k=0, hybrid=True)  # was ValueError: max() arg is an empty sequence
    assert sorted(_ids(hits)) == ["s1", "s2"]
    assert _ids(hits) == _ids(index.search("river water", top_k=2, k=0))  # dense order: BM25 has no say



def test_an_empty_collection_answers_before_any_thinking(tiny_o1_dir):
    import chromadb
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     max_new_tokens=4)
    calls, real = [], emb.thinker._generate
    emb.thinker._generate = lambda *a, **kw: calls.append(a[0]) or real(*a, **kw)  # spy, real model
    index = O1Index(emb, collection="empty-first", client=chromadb.EphemeralClient())
    assert index.search("anything", k=2) == [] and index.search(["a", "b"], k=2, hybrid=0.5) == [[], []]
    assert calls == []  # nothing to find: no thoughts written for it
    index.add(["d"], ["the river and the ocean"])
    assert [h.id for h in index.search("ocean", k=1)] == ["d"] and len(calls) == 1
    index.delete(["d"])
    assert index.search("ocean", k=1) == [] and len(calls) == 1
