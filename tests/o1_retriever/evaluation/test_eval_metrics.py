"""Metrics against values worked out by hand on a toy qrels/run."""
import math

import pytest

from o1_retriever.evaluation.metrics import drop_identical_ids, evaluate_run, per_query_scores, top_n

QRELS = {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 1}, "q3": {"d9": 1}}
RUN = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7},
       "q2": {"d1": 0.5, "d2": 0.4},
       # q3 is judged but retrieved nothing: it must count as zero, not vanish from the mean
       "q4": {"d1": 1.0}}  # q4 is not judged: ignored


def test_per_query_values_match_hand_computation():
    s = per_query_scores(QRELS, RUN)
    # q1: relevant at ranks 1 and 3. DCG = 1 + 1/log2(4); ideal = 1 + 1/log2(3).
    assert s["q1"]["ndcg@10"] == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert s["q1"]["recall@100"] == pytest.approx(1.0)
    assert s["q1"]["mrr@10"] == pytest.approx(1.0)
    assert s["q1"]["map"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    # q2: the one relevant doc at rank 2.
    assert s["q2"]["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert s["q2"]["mrr@10"] == pytest.approx(0.5)
    assert s["q2"]["map"] == pytest.approx(0.5)
    assert s["q3"] == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "map": 0.0}
    assert "q4" not in s


def test_means_are_over_judged_queries():
    m = evaluate_run(QRELS, RUN)
    assert m.queries == 3
    ndcg1 = 1.5 / (1 + 1 / math.log2(3))
    assert m.ndcg_at_10 == pytest.approx((ndcg1 + 1 / math.log2(3) + 0) / 3)
    assert m.recall_at_100 == pytest.approx(2 / 3)
    assert m.mrr_at_10 == pytest.approx(1.5 / 3)
    assert m.map == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 3)
    assert set(m.as_dict()) == {"ndcg@10", "recall@100", "mrr@10", "map", "queries"}


def test_graded_relevance_uses_gains():
    qrels = {"q": {"a": 2, "b": 1}}
    worse = evaluate_run(qrels, {"q": {"b": 2.0, "a": 1.0}}).ndcg_at_10
    best = evaluate_run(qrels, {"q": {"a": 2.0, "b": 1.0}}).ndcg_at_10
    assert best == pytest.approx(1.0)
    # trec_eval gains are the raw grades: DCG = 1 + 2/log2(3), ideal = 2 + 1/log2(3)
    assert worse == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_mrr_is_cut_at_ten():
    run = {"q": {f"x{i:02d}": 100.0 - i for i in range(10)} | {"hit": 1.0}}  # relevant doc at rank 11
    scores = evaluate_run({"q": {"hit": 1}}, run)
    assert scores.mrr_at_10 == 0.0
    assert scores.recall_at_100 == 1.0


def test_ignore_identical_ids_drops_the_query_itself():
    qrels = {"7": {"3": 1}}
    run = {"7": {"7": 0.99, "3": 0.5}}
    assert evaluate_run(qrels, run).mrr_at_10 == pytest.approx(0.5)
    assert evaluate_run(qrels, run, ignore_identical_ids=True).mrr_at_10 == pytest.approx(1.0)
    assert drop_identical_ids(run) == {"7": {"3": 0.5}}


def test_top_n_keeps_best():
    assert list(top_n({"q": {"a": 0.1, "b": 0.9, "c": 0.5}}, 2)["q"]) == ["b", "c"]


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="non-empty"):
        per_query_scores({}, RUN)
    with pytest.raises(TypeError, match="run must be a dict"):
        per_query_scores(QRELS, [("q1", "d1")])
    with pytest.raises(ValueError, match="relevance > 0"):
        evaluate_run({"q": {"d": 0}}, {"q": {"d": 1.0}})
