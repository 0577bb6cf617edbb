"""BM25 baseline: behaviour on a toy corpus and the published SciFact figure on the real data."""
import pytest

from o1_retriever.bm25 import BM25Config, BM25Searcher
from o1_retriever.evaluation import EvalConfig, evaluate_bm25, load_beir


def test_stemming_and_stopwords_match_inflected_terms():
    ids = ["a", "b", "c"]
    texts = ["proteins folding in cells", "the a of and to in is", "river water flows"]
    hits = BM25Searcher(ids, texts).search(["protein folded"], top_k=3)[0]
    assert hits[0][0] == "a"  # 'proteins'/'protein' and 'folding'/'folded' share Snowball stems
    assert all(doc != "b" for doc, _ in hits)  # a stopword-only document never matches
    unstemmed = BM25Searcher(ids, texts, BM25Config(stemmer=None)).search(["protein folded"], top_k=3)[0]
    assert unstemmed == []  # without stemming nothing matches at all


def test_top_k_larger_than_corpus_and_mismatched_input():
    searcher = BM25Searcher(["a", "b"], ["blood sugar", "sugar cane"])
    hits = searcher.search(["sugar"], top_k=100)[0]
    assert sorted(d for d, _ in hits) == ["a", "b"]
    with pytest.raises(ValueError, match="2 ids but 1 texts"):
        BM25Searcher(["a", "b"], ["only one"])


def test_scifact_reproduces_pyserini_flat(shared_data):
    """Pyserini's published flat BM25 on BEIR SciFact test: nDCG@10 0.672 (BEIR paper: 0.665)."""
    dataset = load_beir(shared_data / "scifact", "test")
    row = evaluate_bm25(dataset, EvalConfig(dataset=str(shared_data / "scifact"), run_model=False, baselines=["bm25"]))
    assert row.queries == 300
    assert row.ndcg_at_10 == pytest.approx(0.672, abs=0.01)
    assert 0.85 < row.recall_at_100 <= 1.0  # Pyserini: 0.908


def test_a_corpus_without_any_term_matches_nothing():
    """Texts made only of stopwords, one-letter words and punctuation: bm25s failed to index them ('max() arg is an
    empty sequence'), so hybrid search over such a collection failed."""
    searcher = BM25Searcher(["a", "b"], ["the of and", "A - ! I"])
    assert searcher.search(["river", "the"], top_k=5) == [[], []]
