"""Audit of `o1-retriever eval` as a researcher uses it on their own BEIR-layout data: the metrics against a case
computed by hand, ids given as ints, malformed files, atomic outputs, quiet progress bars."""
import math

import pytest

from o1_retriever.evaluation.metrics import evaluate_run


def test_metrics_match_a_case_computed_by_hand_with_ids_given_as_ints():
    """A run of ints (ids from a numpy array, say) against qrels of strings matched nothing: every metric was
    silently 0; ints on both sides failed inside pytrec_eval with "Expected string as key"."""
    qrels = {"7": {"1": 2, "2": 1, "3": 0, "9": 1}}            # doc 9 is never retrieved
    run = {7: {0: 0.9, 2: 0.8, 1: 0.7, 3: 0.6}}                # ranks: 0 (unjudged), 2 (rel 1), 1 (rel 2), 3
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    ideal = 2 + 1 / math.log2(3) + 1 / math.log2(4)            # gains 2, 1, 1 (linear, as trec_eval)
    expected = {"ndcg_at_10": dcg / ideal, "recall_at_100": 2 / 3, "mrr_at_10": 1 / 2, "map": (1 / 2 + 2 / 3) / 3}
    for judged in (qrels, {7: {1: 2, 2: 1, 3: 0, 9: 1}}, {"7": {"1": "2", "2": "1", "3": "0", "9": "1"}}):
        scores = evaluate_run(judged, run)
        assert scores.queries == 1
        for name, value in expected.items():
            assert getattr(scores, name) == pytest.approx(value), (judged, name)


def test_bad_scores_and_relevances_name_the_query_and_document():
    """A NaN score (a model gone to NaN) was ranked somewhere arbitrary and the metrics looked fine."""
    with pytest.raises(ValueError, match=r"run\['q'\]\['b'\]: score is NaN"):
        evaluate_run({"q": {"a": 1}}, {"q": {"a": 0.5, "b": float("nan")}})
    with pytest.raises(ValueError, match=r"qrels\['q'\]\['a'\]: relevance must be an integer, got 'high'"):
        evaluate_run({"q": {"a": "high"}}, {"q": {"a": 0.5}})
    with pytest.raises(TypeError, match=r"run\['q'\] must be a dict \{doc id: value\}, got list"):
        evaluate_run({"q": {"a": 1}}, {"q": [("a", 0.5)]})
    with pytest.raises(ValueError, match=r"holds query id 1 twice"):
        evaluate_run({"1": {"a": 1}, 1: {"a": 1}}, {"1": {"a": 0.5}})
