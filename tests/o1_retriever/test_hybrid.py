"""The one hybrid path (`o1_retriever.hybrid.fuse_with_bm25`) on a real Chroma collection embedded by the tiny model."""
import chromadb
import pytest

from o1_retriever.bm25 import BM25Searcher
from o1_retriever.fusion import POOL, fuse
from o1_retriever.hybrid import CollectionBM25, fuse_with_bm25

IDS = ["a", "b", "c", "d", "e"]
TEXTS = ["volcano lava eruption on the island", "lava fields cooled into black rock", "the river and the ocean water",
         "solar energy plant and climate", "volcano ash clouds stop flights"]
METAS = [{"lang": "is"}, {"lang": "en", "n": 1}, {"lang": "en", "n": 2}, {"lang": "en", "n": 3}, {"lang": "en", "n": 4}]
QUERY = "volcano lava"


@pytest.fixture
def collection(tiny_embedder, tmp_path):
    collection = chromadb.PersistentClient(path=str(tmp_path)).create_collection(
        "texts", metadata={"hnsw:space": "cosine"})
    collection.add(ids=IDS, documents=TEXTS, metadatas=METAS,
                   embeddings=tiny_embedder.encode_documents(TEXTS).tolist())
    return collection


def _dense(tiny_embedder, collection, query, keep):
    """The tiny model's real cosine hits for `query`, kept to `keep`: a dense side that missed the keyword matches."""
    found = collection.query(query_embeddings=[tiny_embedder.encode_queries(query, k=0).tolist()], n_results=len(IDS))
    return [(i, 1.0 - d) for i, d in zip(found["ids"][0], found["distances"][0]) if i in keep]


def test_filters_bm25_only_documents_and_fused_order(tiny_embedder, collection):
    dense = _dense(tiny_embedder, collection, QUERY, keep={"c", "d"})
    [hits] = fuse_with_bm25(CollectionBM25(collection), [QUERY], [dense], 0.5, top_k=3, where={"lang": "en"})
    # The fused order is fusion.fuse over the dense hits and BM25 over every text, less what the filter refuses.
    everything = BM25Searcher(IDS, TEXTS).search([QUERY], POOL)[0]
    lexical = [(i, s) for i, s in everything if METAS[IDS.index(i)]["lang"] == "en"]
    assert {i for i, _ in lexical} == {"b", "e"}  # "a", BM25's best match, is filtered out as on the dense side
    assert [(h.id, h.score) for h in hits] == [(i, pytest.approx(s)) for i, s in fuse(dense, lexical, 0.5, 3)]
    assert "a" not in [h.id for h in hits] and {"b", "e"} & {h.id for h in hits}
    for hit in hits:  # BM25-only documents come with their text and metadata; dense ones are the caller's
        if hit.id in {"b", "e"}:
            assert (hit.text, hit.metadata) == (TEXTS[IDS.index(hit.id)], METAS[IDS.index(hit.id)])
        else:
            assert hit.text is None and hit.metadata == {}
    # The weight moves the order: all dense first, or BM25's best (admitted) match first.
    bm25 = CollectionBM25(collection)
    assert [h.id for h in fuse_with_bm25(bm25, [QUERY], [dense], 1.0, 2)[0]] == [i for i, _ in dense]
    assert fuse_with_bm25(bm25, [QUERY], [dense], 0.0, 1, where={"lang": "en"})[0][0].id == lexical[0][0]


def test_each_query_fetches_what_its_own_dense_hits_lack(tiny_embedder, collection):
    queries = [QUERY, "river ocean water"]
    dense = [_dense(tiny_embedder, collection, q, keep={own}) for q, own in zip(queries, ["c", "b"])]
    first, second = fuse_with_bm25(CollectionBM25(collection), queries, dense, 0.5, top_k=5)
    assert next(h for h in first if h.id == "c").text is None  # its own dense hit
    assert next(h for h in second if h.id == "c").text == TEXTS[2]  # BM25 alone found it for this query
    with pytest.raises(ValueError, match="2 queries but 1 dense rankings"):
        fuse_with_bm25(CollectionBM25(collection), queries, dense[:1], 0.5, top_k=5)


def test_a_filter_ranks_bm25_among_the_documents_it_admits(tiny_embedder, tmp_path):
    """BM25 took its top hits over the whole collection and then dropped what the filter refused: when more than
    the pool of better matches lay outside the filter, the admitted keyword matches got no BM25 score at all."""
    ids = [f"en{i}" for i in range(POOL + 10)] + ["is-zebra", "is-glacier"]
    texts = [f"zebra zebra zebra note {i}" for i in range(POOL + 10)] + [
        "a zebra seen on the long dusty road of the northern savanna plain", "glacier ice melting into the river"]
    metas = [{"lang": "en"}] * (POOL + 10) + [{"lang": "is"}] * 2
    collection = chromadb.PersistentClient(path=str(tmp_path)).create_collection("many")
    collection.add(ids=ids, documents=texts, metadatas=metas, embeddings=[[1.0, float(i)] for i in range(len(ids))])
    bm25 = CollectionBM25(collection)
    [hits] = bm25.search(["zebra"], 5, where={"lang": "is"})
    assert [doc for doc, _ in hits] == ["is-zebra"]
    assert hits[0][1] == pytest.approx(dict(BM25Searcher(ids, texts).search(["zebra"], len(ids))[0])["is-zebra"])
    assert bm25.search(["zebra"], 5, where_document={"$contains": "glacier"}) == [[]]
    [fused] = fuse_with_bm25(bm25, ["zebra"], [[("is-glacier", 0.9)]], 0.0, 2, where={"lang": "is"})
    assert [h.id for h in fused] == ["is-zebra", "is-glacier"] and fused[0].text == texts[-2]


def test_a_write_while_bm25_is_built_is_not_lost(collection):
    """A write (re-adding an id with a new text, then invalidate(), as O1Index.add does) that lands while a search is
    reading the texts: that search kept the BM25 it built from the old text, and as the ids had not changed, every
    later search used it. The collection is real; the wrapper only makes the write land at that moment."""
    class WriteWhileReading:
        def __init__(self):
            self.written = False

        def get(self, **kwargs):
            got = collection.get(**kwargs)
            if kwargs.get("include") == ["documents"] and not self.written:
                self.written = True
                vector = collection.get(ids=["d"], include=["embeddings"])["embeddings"][0]
                collection.upsert(ids=["d"], documents=["glacier ice sheet melting"], embeddings=[vector])
                bm25.invalidate()
            return got

    bm25 = CollectionBM25(WriteWhileReading())
    assert bm25.search(["glacier"], 3) == [[]]  # built from the texts read before the write
    assert [i for i, _ in bm25.search(["glacier"], 3)[0]] == ["d"]
