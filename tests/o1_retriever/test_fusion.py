"""Hybrid fusion of a dense and a lexical ranking: z-scored scores, mixed by the dense share."""
import pytest

from o1_retriever import O1Index
from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT, fuse, fuse_many, resolve_hybrid

DENSE = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
LEXICAL = [("c", 30.0), ("b", 25.0), ("d", 10.0)]


def test_the_weight_moves_the_ranking_from_one_list_to_the_other():
    assert [d for d, _ in fuse(DENSE, LEXICAL, 1.0)][:3] == ["a", "b", "c"]
    assert [d for d, _ in fuse(DENSE, LEXICAL, 0.0)][:2] == ["c", "b"]
    # Half and half: 'b' is good in both lists, 'a' only in one, so 'b' wins.
    assert fuse(DENSE, LEXICAL, 0.5)[0][0] == "b"


def test_scores_are_zscores_mixed_and_a_missing_doc_counts_one_sd_under_the_lists_floor():
    fused = dict(fuse([("a", 3.0), ("b", 1.0)], [("b", 5.0), ("c", 1.0)], 0.25))
    # Two scores z-normalise to +1 / -1; 'a' is missing from the lexical list: it counts one sd under -1 there.
    assert fused == pytest.approx({"a": 0.25 * 1 + 0.75 * -2, "b": 0.25 * -1 + 0.75 * 1, "c": 0.25 * -2 + 0.75 * -1})
    assert list(dict(fuse([("a", 3.0), ("b", 1.0)], [("b", 5.0), ("c", 1.0)], 0.25))) == ["b", "a", "c"]  # a, c tie: dense order


def test_a_document_a_list_missed_ranks_strictly_below_that_lists_weakest_hit():
    # At w=0 dense-only "x" lands under BM25's weakest hit "y", not level with it.
    assert [d for d, _ in fuse([("x", 2.0), ("y", 1.0), ("z", 0.0)], [("z", 1.0), ("y", 0.0)], 0.0)] == ["z", "y", "x"]


def test_scales_do_not_matter_only_the_shape_of_each_list():
    scaled = [(d, 1000 * s + 7) for d, s in LEXICAL]
    a, b = fuse(DENSE, scaled, 0.5), fuse(DENSE, LEXICAL, 0.5)
    assert [d for d, _ in a] == [d for d, _ in b]
    assert [s for _, s in a] == pytest.approx([s for _, s in b])


def test_edge_cases_empty_lists_ties_and_top_k():
    assert fuse([], [], 0.5) == []
    assert [d for d, _ in fuse(DENSE, [], 0.5)] == ["a", "b", "c"]  # nothing lexical: dense order survives
    assert [d for d, _ in fuse([], LEXICAL, 0.5)] == ["c", "b", "d"]
    tied = fuse([("x", 0.5), ("y", 0.5)], [], 0.5)  # equal scores carry no signal: z = 0, dense order kept
    assert tied == [("x", -0.5), ("y", -0.5)]
    # One lexical hit has z = 0, and everything BM25 missed counts 1 below it: the sole keyword match rises.
    assert fuse([("x", 0.9), ("y", 0.8), ("z", 0.1)], [("y", 3.0)], 0.5)[0][0] == "y"
    assert len(fuse(DENSE, LEXICAL, 0.5, top_k=2)) == 2


@pytest.mark.parametrize("weight, error, message", [(1.5, ValueError, r"dense_weight must be in \[0, 1\]"),
                                                    (-0.1, ValueError, r"dense_weight must be in \[0, 1\]"),
                                                    ("0.5", TypeError, "dense_weight must be a number"),
                                                    (True, TypeError, "dense_weight must be a number")])
def test_bad_weights_are_refused(weight, error, message):
    with pytest.raises(error, match=message):
        fuse(DENSE, LEXICAL, weight)


def test_fuse_many_pairs_rankings_per_query():
    out = fuse_many([DENSE, DENSE], [LEXICAL, []], 1.0)
    assert [d for d, _ in out[1]] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2 dense rankings but 1 lexical"):
        fuse_many([DENSE, DENSE], [LEXICAL])
    with pytest.raises(ValueError, match=r"dense_weight must be in \[0, 1\]"):
        fuse_many([DENSE], [LEXICAL], 1.5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_score_is_refused_by_name(bad):
    """One NaN made every z-score of its list NaN: the whole fused order came out arbitrary, silently."""
    with pytest.raises(ValueError, match=r"the dense score of 'b' is (nan|inf|-inf); fusion needs finite scores"):
        fuse([("a", 0.9), ("b", bad), ("c", 0.1)], LEXICAL, 0.5)
    with pytest.raises(ValueError, match=r"the lexical score of 'd'"):
        fuse_many([DENSE], [[("c", 3.0), ("d", bad)]], 0.5)


def test_top_k_zero_is_empty_and_a_negative_or_fractional_top_k_is_refused():
    assert fuse(DENSE, LEXICAL, 0.5, top_k=0) == []
    assert len(fuse(DENSE, LEXICAL, 0.5, top_k=10)) == 4
    with pytest.raises(ValueError, match="top_k must be >= 0 or None.*got -1"):  # was: all but the last, silently
        fuse(DENSE, LEXICAL, 0.5, top_k=-1)
    with pytest.raises(TypeError, match="top_k must be an int >= 0 or None.*got 2.5"):
        fuse_many([DENSE], [LEXICAL], 0.5, top_k=2.5)


def test_resolve_hybrid_accepts_true_false_none_and_a_share():
    assert resolve_hybrid(True) == DEFAULT_DENSE_WEIGHT
    assert resolve_hybrid(False) is None and resolve_hybrid(None) is None
    assert resolve_hybrid(0) == 0.0 and resolve_hybrid(0.3) == 0.3


@pytest.mark.parametrize("hybrid, error", [(1.5, ValueError), (-0.1, ValueError), ("0.5", TypeError)])
def test_a_bad_hybrid_is_named_as_the_caller_passed_it(tiny_embedder, tmp_path, hybrid, error):
    """index.search(q, hybrid=1.5) used to answer only "dense_weight must be in [0, 1]", a name the user never passed."""
    index = O1Index(tiny_embedder, path=str(tmp_path / "db"))
    index.add(["a"], ["Yeast ferments sugar."])
    with pytest.raises(error, match=rf"hybrid={hybrid!r} is not allowed: pass True \(dense share 0.4\), False or None"):
        index.search("bread", top_k=1, k=0, hybrid=hybrid)
    assert index.collection.count() == 1  # nothing stored is lost by the refused call
