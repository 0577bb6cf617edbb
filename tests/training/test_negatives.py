"""Hard-negative mining with the real BM25 and MiniLM members."""
import pytest

from o1_retriever_training.data import labeled_pairs, load_beir
from o1_retriever_training.members import BM25Member
from o1_retriever_training.negatives import mine_negatives


def test_mined_negatives_are_on_topic_and_never_positives(tiny_beir, minilm_member):
    data = load_beir(tiny_beir, "train")
    pairs = labeled_pairs(data)
    ids = list(data.corpus)
    corpus = [data.corpus[i] for i in ids]
    bm25 = BM25Member(corpus)
    for miners in ([bm25], [minilm_member], [bm25, minilm_member]):
        negs = mine_negatives([p.query for p in pairs], [set(p.positive_ids) for p in pairs], ids, corpus,
                              miners, num_negatives=4)
        assert all(len(n) == 4 and len(set(n)) == 4 for n in negs)
        assert all(not set(n) & set(p.positive_ids) for n, p in zip(negs, pairs))
        on_topic = sum(int(d[1:]) % 6 == int(p.query_id[1:]) % 6 for n, p in zip(negs, pairs) for d in n)
        assert on_topic >= 0.6 * 4 * len(pairs)  # 1 in 6 by chance


def test_bad_input(tiny_beir):
    with pytest.raises(ValueError, match="2 queries but 1 positive sets"):
        mine_negatives(["a", "b"], [set()], ["d"], ["x"], [], 3)
    with pytest.raises(TypeError, match="BM25Member or DenseMember"):
        mine_negatives(["a"], [set()], ["d"], ["x"], ["bm25"], 3)
    assert mine_negatives(["a"], [set()], ["d"], ["x"], [], 3) == [[]]
