"""aggregation.aggregate: how k thought vectors become one query vector."""
import numpy as np
import pytest

from o1_retriever.aggregation import aggregate


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_the_three_rules_on_known_vectors():
    thoughts = _unit(np.array([[[1.0, 0.0], [0.0, 1.0]]]))  # one query, k=2
    query = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(aggregate(thoughts, "mean"), [[0.5, 0.5]])  # official: not re-normalised
    np.testing.assert_allclose(aggregate(thoughts, "normalized_mean"), [[2 ** -0.5, 2 ** -0.5]])
    equal_share = aggregate(thoughts, "mean_with_query", query)  # 1/3 query + 2/3 mean = (2/3, 1/3), normalised
    np.testing.assert_allclose(equal_share, _unit(np.array([[2 / 3, 1 / 3]])))
    np.testing.assert_allclose(aggregate(thoughts, "mean_with_query", query, 1.0), query)
    np.testing.assert_allclose(aggregate(thoughts, "mean_with_query", query, 0.0), [[2 ** -0.5, 2 ** -0.5]])


def test_an_unknown_rule_no_thoughts_or_a_missing_query_vector_is_refused():
    thoughts = _unit(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"aggregation='max' is not supported; use one of \['mean'"):
        aggregate(thoughts, "max")  # was: the plain mean, silently
    with pytest.raises(ValueError, match=r"k >= 1.*got shape \(2, 0, 4\)"):
        aggregate(np.zeros((2, 0, 4)), "mean_with_query", np.ones((2, 4)))  # was: NaN vectors
    with pytest.raises(ValueError, match="mean_with_query' needs query_vectors"):
        aggregate(thoughts, "mean_with_query")
