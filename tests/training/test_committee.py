"""Committee voting against hand-computed numbers, and the real members' scoring."""
import math

import numpy as np
import pytest

from o1_retriever_training.committee import Committee, vote
from o1_retriever_training.members import BM25Member


def _softmax(xs):
    z = [math.exp(x) for x in xs]
    return [v / sum(z) for v in z]


def test_soft_vote_matches_hand_computed_probabilities():
    # bm25 strongly prefers candidate 0; two dense members mildly prefer candidate 2.
    scores = {"bm25": [2.0, 1.0, 0.0], "d1": [0.0, 0.5, 1.0], "d2": [0.0, 0.9, 1.0]}
    decision = vote(scores, "soft")
    p = {m: _softmax(s) for m, s in scores.items()}
    total = [p["bm25"][i] + p["d1"][i] + p["d2"][i] for i in range(3)]
    # By hand: bm25 -> [0.6652, 0.2447, 0.0900]; d1 -> [0.1863, 0.3072, 0.5065]; d2 -> [0.1619, 0.3981, 0.4400]
    assert total == pytest.approx([1.0134, 0.9500, 1.0365], abs=2e-4)
    assert decision.chosen == 2 == int(np.argmax(total))
    assert decision.total == pytest.approx(total)
    assert decision.votes == {"bm25": 0, "d1": 2, "d2": 2}
    assert decision.scores == scores  # every member's raw scores are returned
    for m in scores:
        assert decision.probabilities[m] == pytest.approx(p[m])


def test_soft_vote_uses_member_temperatures():
    scores = {"bm25": [2.0, 1.0, 0.0], "dense": [0.30, 0.25, 0.20]}
    assert vote(scores, "soft").chosen == 0  # raw cosines are nearly flat: bm25 decides
    decision = vote(scores, "soft", {"dense": 0.01})  # sharpened dense: softmax([30, 25, 20])
    assert decision.probabilities["dense"] == pytest.approx(_softmax([30, 25, 20]))
    assert decision.chosen == 0
    assert vote({"bm25": [1.0, 1.2, 0.0], "dense": [0.30, 0.20, 0.25]}, "soft", {"dense": 0.01}).chosen == 0
    assert vote({"bm25": [1.0, 1.2, 0.0], "dense": [0.30, 0.20, 0.25]}, "soft").chosen == 1


def test_hard_vote_is_majority_and_ties_go_to_the_soft_total():
    scores = {"a": [5.0, 0.0, 0.0, 0.0], "b": [0.0, 0.1, 0.0, 0.0], "c": [0.0, 0.2, 0.0, 0.0]}
    assert vote(scores, "hard").chosen == 1  # 2 votes for candidate 1 beat 1 vote for 0
    assert vote(scores, "soft").chosen == 0  # while the soft vote follows a's confident softmax
    tie = {"a": [3.0, 0.0], "b": [0.0, 0.1]}
    # one vote each; soft totals: softmax(3,0)+softmax(0,.1) -> candidate 0 wins (0.953+0.475 > 0.047+0.525)
    assert vote(tie, "hard").chosen == 0


@pytest.mark.parametrize("n", [2, 5])
def test_any_number_of_candidates(n):
    rng = np.random.default_rng(n)
    scores = {"x": rng.normal(size=n), "y": rng.normal(size=n)}
    d = vote(scores, "soft")
    assert len(d.total) == n and sum(d.total) == pytest.approx(2.0)


def test_vote_rejects_bad_input():
    with pytest.raises(ValueError, match="N >= 2"):
        vote({"a": [1.0]}, "soft")
    with pytest.raises(ValueError, match="same N"):
        vote({"a": [1.0, 2.0], "b": [1.0, 2.0, 3.0]}, "soft")
    with pytest.raises(ValueError, match="vote='majority'"):
        vote({"a": [1.0, 2.0]}, "majority")
    with pytest.raises(ValueError, match="at least one member"):
        Committee([], "soft")


def test_real_members_prefer_the_on_topic_candidate(minilm_member):
    corpus = ["insulin resistance raises blood glucose in type 2 diabetes",
              "coral reefs bleach when ocean temperatures rise",
              "vaccines train the immune system to recognise a virus"]
    bm25 = BM25Member(corpus)
    candidates = ["the ocean is warming and reefs bleach", "diabetes: insulin and glucose control",
                  "the the of and"]
    committee = Committee([bm25, minilm_member], "soft")
    decision = committee.decide(candidates, corpus[0])
    assert set(decision.scores) == {"bm25", "minilm"}
    assert decision.chosen == 1
    assert decision.votes == {"bm25": 1, "minilm": 1}
    assert decision.scores["bm25"][2] == 0.0  # only stopwords: no BM25 match at all
    with pytest.raises(ValueError, match="not in its corpus"):
        bm25.score(candidates, "a passage that was never indexed")
    with pytest.raises(ValueError, match="N >= 2"):
        committee.decide(["only one"], corpus[0])
