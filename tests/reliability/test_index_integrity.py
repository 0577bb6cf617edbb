"""Issue 27, findings 6-8 and 10: an index is never silently partial or stale; hostile input fails before writing.

Real Chroma databases on disk, two O1Index instances as two writers, the real CLI.
"""
from __future__ import annotations

import math

import pytest

from o1_retriever.cli import main as cli
from o1_retriever.index import O1Index


@pytest.fixture
def db(tmp_path):
    return tmp_path / "db"


def test_hybrid_search_survives_another_writer(tiny_embedder, db):
    a = O1Index(tiny_embedder, path=db, collection="docs")
    a.add(["s1", "s2"], ["zebra stripes savanna", "quantum photons"])
    assert {h.id for h in a.search("zebra", top_k=2, k=0, hybrid=True)} == {"s1", "s2"}
    b = O1Index(tiny_embedder, path=db, collection="docs")
    b.collection.delete(ids=["s1"])
    b.add(["s3"], ["giraffe zebra neck"])  # same count as before: a count check alone sees no change
    hits = a.search("zebra", top_k=2, k=0, hybrid=True)  # was KeyError: 's1'
    assert {h.id for h in hits} == {"s2", "s3"}
    assert hits[0].id == "s3"  # the new document is in the lexical half too


def test_add_validates_everything_before_the_first_write(tiny_embedder, db):
    index = O1Index(tiny_embedder, path=db, collection="docs")
    metas = [{"lang": "en"}, {"lang": "fr"}, {"nested": {"a": 1}}]
    with pytest.raises(TypeError, match=r"metadatas\[2\].*'d3'.*nested.*dict"):
        index.add(["d1", "d2", "d3"], ["one text", "two text", "three text"], metas, batch_size=1)
    assert len(index) == 0
    with pytest.raises(ValueError, match=r"'score'.*finite"):
        index.add(["d1", "d2"], ["one", "two"], [{"score": 1.0}, {"score": math.nan}], batch_size=1)
    assert len(index) == 0


def test_a_failed_write_is_rolled_back(tiny_embedder, db, monkeypatch):
    index = O1Index(tiny_embedder, path=db, collection="docs")
    index.add(["old"], ["the old text"], [{"v": 1}])
    before = index.collection.get(ids=["old"], include=["documents", "metadatas", "embeddings"])
    real_upsert, calls = index.collection.upsert, []

    def failing_upsert(**kw):  # the second batch's write fails, as a full disk or a lost server would
        calls.append(kw["ids"])
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_upsert(**kw)

    monkeypatch.setattr(index.collection, "upsert", failing_upsert)
    with pytest.raises(RuntimeError, match="disk full"):
        index.add(["old", "new1", "new2"], ["replaced", "a new one", "another"], [{"w": 2}, None, None], batch_size=1)
    monkeypatch.undo()
    after = index.collection.get(include=["documents", "metadatas", "embeddings"])
    assert after["ids"] == ["old"] and after["documents"] == before["documents"]
    assert after["metadatas"] == [{"v": 1}]
    assert (after["embeddings"] == before["embeddings"]).all()


def test_re_adding_an_id_replaces_its_metadata_entirely(tiny_embedder, db):
    index = O1Index(tiny_embedder, path=db, collection="docs")
    index.add(["m1"], ["the sky is blue"], [{"lang": "en", "topic": "sky"}])
    index.add(["m1"], ["le ciel est bleu"], [{"lang": "fr"}])
    got = index.collection.get(ids=["m1"], include=["metadatas", "documents"])
    assert got["metadatas"] == [{"lang": "fr"}] and got["documents"] == ["le ciel est bleu"]
    assert index.search("sky", top_k=1, k=0, where={"topic": "sky"}) == []
    index.add(["m1"], ["no metadata now"])
    assert index.collection.get(ids=["m1"], include=["metadatas"])["metadatas"] in ([None], [{}])


def test_a_bad_filter_fails_before_thinking(tiny_embedder, db, monkeypatch):
    index = O1Index(tiny_embedder, path=db, collection="docs")
    index.add(["a"], ["some text"])

    def no_thinking(*a, **kw):
        raise AssertionError("thought before checking the filter")

    monkeypatch.setattr(index.embedder, "encode_queries", no_thinking)
    with pytest.raises(ValueError):
        index.search("query", k=3, where={"$nonsense": 1})


def _model_args(tiny_o1_dir):
    return ["--model", str(tiny_o1_dir), "--device", "cpu", "--dtype", "fp32", "--max-new-tokens", "4"]


def test_search_refuses_a_mistyped_db_or_collection(tiny_o1_dir, tiny_embedder, tmp_path, capsys):
    db = tmp_path / "db"
    O1Index(tiny_embedder, path=db, collection="docs").add(["a"], ["some text"])
    typo = tmp_path / "dbb"
    assert cli(["search", "text", "--db", str(typo), "--collection", "docs", *_model_args(tiny_o1_dir)]) == 2
    assert "no Chroma database" in capsys.readouterr().err and not typo.exists()
    assert cli(["search", "text", "--db", str(db), "--collection", "dcos", *_model_args(tiny_o1_dir)]) == 2
    assert "no collection 'dcos'" in capsys.readouterr().err
    import chromadb
    assert [c.name for c in chromadb.PersistentClient(path=str(db)).list_collections()] == ["docs"]
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    assert cli(["search", "text", "--db", str(afile), *_model_args(tiny_o1_dir)]) == 2
    assert "is a file" in capsys.readouterr().err and afile.read_text() == "x"


def test_cuda_on_a_cpu_only_torch_is_one_clear_line(tiny_o1_dir, tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "text": "some text"}\n')
    args = _model_args(tiny_o1_dir)
    args[args.index("cpu")] = "cuda"
    assert cli(["index", "--corpus", str(corpus), "--db", str(tmp_path / "db"), *args]) == 2
    assert "device='cuda': this torch build has no CUDA; available: cpu" in capsys.readouterr().err


def test_corpus_faults_name_the_file_and_line(tmp_path):
    from o1_retriever.corpus import read_corpus
    with pytest.raises(ValueError, match="is a directory"):
        read_corpus(tmp_path)
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"latin1\.jsonl:2: not valid UTF-8"):
        read_corpus(bad)
    for bad_id in ("null", '{"x": 1}', '""', "true"):
        f = tmp_path / "ids.jsonl"
        f.write_text(f'{{"_id": {bad_id}, "text": "t"}}\n')
        with pytest.raises(ValueError, match=r"ids\.jsonl:1: '_id' must be"):
            read_corpus(f)
    f = tmp_path / "meta.jsonl"
    f.write_text('{"_id": 1, "text": "t", "year": 2020, "extra": {"a": 1}}\n{"_id": 2, "text": "u", "score": NaN}\n')
    with pytest.warns(UserWarning, match=r"\['extra', 'score'\] are not kept.*line 1"):
        passages = read_corpus(f)
    assert [p.id for p in passages] == ["1", "2"] and passages[0].metadata == {"year": 2020}


def test_hostile_text_and_k(tiny_embedder):
    with pytest.raises(ValueError, match=r"queries\[0\] contains a lone surrogate '\\ud83d' at position 4"):
        tiny_embedder.encode_queries("why \ud83d?", k=1)
    with pytest.raises(ValueError, match=r"documents\[1\] contains a lone surrogate"):
        tiny_embedder.encode_documents(["fine", "bad \udc00 text"])
    with pytest.raises(ValueError, match="at most 64"):
        tiny_embedder.encode_queries("q", k=10**9)


def _writer_deletes_the_lexical_best(collection, query):
    """Another writer deletes BM25's best hit for `query` and adds a document, keeping the count."""
    from o1_retriever.bm25 import BM25Searcher
    listed = collection.get(include=["documents", "embeddings"])
    best = BM25Searcher(listed["ids"], listed["documents"]).search([query], 1)[0][0][0]
    collection.delete(ids=[best])
    collection.add(ids=["newcomer"], documents=["an unrelated newcomer"], embeddings=[listed["embeddings"][0].tolist()],
                   metadatas=[{"corpus_id": "newcomer"}])
    return best


def test_langchain_hybrid_survives_another_writer(tiny_embedder, tmp_path):
    from langchain_chroma import Chroma
    from langchain_o1 import O1Embeddings, O1Retriever
    texts = ["zebra stripes on the savanna", "quantum photons", "river ocean water", "solar energy plant"]
    store = Chroma.from_texts(texts, embedding=O1Embeddings(embedder=tiny_embedder, num_thoughts=0),
                              ids=[f"t{i}" for i in range(4)], collection_name="docs", persist_directory=str(tmp_path),
                              collection_metadata={"hnsw:space": "cosine"})
    retriever = O1Retriever(vectorstore=store, k=4, hybrid=True)
    assert len(retriever.invoke("zebra savanna")) == 4  # BM25 built over the four texts
    gone = _writer_deletes_the_lexical_best(store._collection, "zebra savanna")
    docs = retriever.invoke("zebra savanna")
    assert gone not in [d.id for d in docs] and "newcomer" in [d.id for d in docs]


def test_llama_index_hybrid_survives_another_writer(tiny_embedder, tmp_path):
    from llama_index.core.schema import Document
    from llama_index.retrievers.o1 import O1Retriever
    texts = ["zebra stripes on the savanna", "quantum photons", "river ocean water", "solar energy plant"]
    docs = [Document(text=t, metadata={"corpus_id": f"t{i}"}) for i, t in enumerate(texts)]
    retriever = O1Retriever.from_documents(docs, embedder=tiny_embedder, similarity_top_k=4, k=0, hybrid=True,
                                           persist_dir=str(tmp_path))
    assert len(retriever.retrieve("zebra savanna")) == 4
    gone = _writer_deletes_the_lexical_best(retriever.vector_store._collection, "zebra savanna")
    hits = retriever.retrieve("zebra savanna")
    assert hits and gone not in [h.node.node_id for h in hits]


def test_a_dtype_mismatch_says_what_differs(tiny_o1_dir, tiny_embedder, db):
    from o1_retriever import O1Embedder
    O1Index(tiny_embedder, path=db, collection="docs").add(["a"], ["some text"])
    bf16 = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="bf16", thought_cache=False)
    with pytest.raises(ValueError, match=r"loaded another way \(.*float32\); this embedder loads it as .*bfloat16"):
        O1Index(bf16, path=db, collection="docs")


def test_a_batch_larger_than_chroma_takes_in_one_write(tiny_embedder):
    """Chroma refuses a write of more records than get_max_batch_size(): add(batch_size=N) embedded everything and
    then failed ('Batch size 5462 exceeds maximum batch size 5461'), storing nothing."""
    index = O1Index(tiny_embedder)  # in memory: the limit is the same for every client kind
    n = index.client.get_max_batch_size() + 1
    ids = [f"d{i}" for i in range(n)]
    assert index.add(ids, ["w"] * n, [{"i": i} for i in range(n)], batch_size=n, show_progress_bar=False) == n
    assert len(index) == n
    assert index.collection.get(ids=[ids[-1]], include=["metadatas"])["metadatas"] == [{"i": n - 1}]
