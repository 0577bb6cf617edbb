"""Per-query scores and the paired significance test of `o1-retriever eval`: the eval JSON held only means, so no
one could test a gain for significance or see which queries gained from thinking."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from beir_fixtures import write_beir  # noqa: E402

from o1_retriever.cli import main  # noqa: E402
from o1_retriever.evaluation.significance import (RESAMPLES, baselines_of, compare_rows,  # noqa: E402
                                                  paired_randomization_test)


def test_identical_rows_have_p_one():
    scores = [0.2, 0.5, 1.0, 0.0, 0.7]
    test = paired_randomization_test(scores, scores)
    assert (test.p_value, test.delta, test.wins, test.ties, test.losses, test.exact) == (1.0, 0.0, 0, 5, 0, True)
    many = np.random.default_rng(0).random(500)  # past exact counting: sampled, and still every assignment ties
    assert paired_randomization_test(many, many).p_value == 1.0


def test_p_values_worked_out_by_hand():
    # differences +0.5 and +0.25: sums of the 4 sign assignments 0.75, 0.25, -0.25, -0.75; |sum| >= 0.75 twice
    assert paired_randomization_test([1.0, 0.5], [0.5, 0.25]).p_value == 0.5
    # differences +0.5 and -0.25: every |sum| (0.75, 0.25, 0.25, 0.75) reaches the observed 0.25
    assert paired_randomization_test([1.0, 0.25], [0.5, 0.5]).p_value == 1.0
    # better on each of 10 queries: only all-plus and all-minus reach the observed sum, 2 of 2^10
    ten = paired_randomization_test(np.linspace(0.5, 0.95, 10), np.linspace(0.1, 0.4, 10))
    assert ten.exact and ten.p_value == 2 / 1024 and (ten.wins, ten.ties, ten.losses) == (10, 0, 0)
    # a tie neither helps nor hurts: the same 2 of 2^10 with two tied queries added
    tied = paired_randomization_test(list(np.linspace(0.5, 0.95, 10)) + [0.3, 0.3],
                                     list(np.linspace(0.1, 0.4, 10)) + [0.3, 0.3])
    assert tied.p_value == 2 / 1024 and tied.ties == 2
    assert tied.delta == pytest.approx(np.mean(np.linspace(0.4, 0.55, 10)) * 10 / 12)


def test_a_row_better_on_every_query_of_many_gets_the_smallest_sampled_p():
    rng = np.random.default_rng(1)
    base = rng.random(300) * 0.5
    test = paired_randomization_test(base + 0.05 + rng.random(300) * 0.1, base, seed=3)
    assert not test.exact and test.p_value == 1 / (RESAMPLES + 1)  # none of the random assignments reaches it
    assert test.wins == 300 and test.delta > 0.05
    worse = paired_randomization_test(base, base + 0.05 + rng.random(300) * 0.1, seed=3)
    assert worse.p_value == test.p_value and worse.delta < 0  # two-sided: a loss is as significant


def test_sampled_p_is_seeded_and_agrees_with_exact_counting():
    rng = np.random.default_rng(7)
    a, b = rng.random(40), rng.random(40) + 0.08
    first = paired_randomization_test(a, b, seed=5)
    assert paired_randomization_test(a, b, seed=5).p_value == first.p_value
    assert 0 < paired_randomization_test(a, b, seed=-1).p_value <= 1  # eval --seed -1 is a valid seed
    scipy_stats = pytest.importorskip("scipy.stats")  # an independent count, where installed
    a, b = rng.random(12), rng.random(12) + 0.1
    exact = paired_randomization_test(a, b)
    reference = scipy_stats.permutation_test((a - b,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                             alternative="two-sided")
    assert exact.exact and exact.p_value == pytest.approx(reference.pvalue)


def test_bad_score_lists_are_refused():
    with pytest.raises(ValueError, match="equally long"):
        paired_randomization_test([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="NaN or inf"):
        paired_randomization_test([0.1, math.nan], [0.1, 0.2])
    with pytest.raises(ValueError, match="resamples must be a positive int, got 0"):
        paired_randomization_test([0.1], [0.2], resamples=0)


def _row(system, k, per_query):
    from o1_retriever.evaluation.config import ResultRow
    return ResultRow(system, None, k, 0, 0, 0, 0, len(per_query), 0, per_query=per_query)


def test_each_row_is_tested_against_bm25_the_encoder_and_its_own_k0():
    rows = [_row(s, k, {}) for s, k in (("bm25", None), ("o1", 0), ("o1+bm25", 0), ("o1", 3), ("o1+bm25", 3),
                                        ("encoder", None), ("encoder+bm25", None))]
    against = {(r.system, r.k): [(b.system, b.k) for b in baselines_of(r, rows)] for r in rows}
    assert against == {("bm25", None): [], ("encoder", None): [("bm25", None)],
                       ("o1", 0): [("bm25", None), ("encoder", None)],
                       ("o1+bm25", 0): [("bm25", None), ("encoder", None)],
                       ("o1", 3): [("bm25", None), ("encoder", None), ("o1", 0)],
                       ("o1+bm25", 3): [("bm25", None), ("encoder", None), ("o1+bm25", 0)],
                       ("encoder+bm25", None): [("bm25", None), ("encoder", None)]}


def test_rows_are_scored_per_query_and_tested_by_query_id(tmp_path):
    """Hand-made rankings on the toy split: each query's nDCG@10 by hand, paired by id whatever the order."""
    from o1_retriever.evaluation.config import EvalConfig
    from o1_retriever.evaluation.data import load_beir
    from o1_retriever.evaluation.runner import _row as scored_row
    dataset = load_beir(write_beir(tmp_path / "toy"))  # judged: q1 {d1}, q2 {d2}, q3 {d3, d10}, q4 {d10: 2}
    config = EvalConfig(dataset=str(dataset.path), run_model=False, baselines=["bm25"])
    first = [[("d1", 3), ("d2", 2)], [("d2", 3)], [("d3", 3), ("d5", 2), ("d10", 1)], [("d10", 1)]]
    second = [[("d2", 3), ("d1", 2)], [("d9", 3)], [("d10", 3), ("d3", 2)], [("d10", 1)]]
    base, thought = (scored_row(s, None if s == "bm25" else 1, None, hits, 1.0, dataset, config, "x")
                     for s, hits in (("bm25", first), ("o1", second)))
    ideal_q3 = 1 + 1 / math.log2(3)
    assert base.per_query == {
        "q1": {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0, "map": 1.0},
        "q2": {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0, "map": 1.0},
        "q3": {"ndcg@10": pytest.approx((1 + 1 / math.log2(4)) / ideal_q3), "recall@100": 1.0, "mrr@10": 1.0,
               "map": pytest.approx((1 + 2 / 3) / 2)},
        "q4": {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0, "map": 1.0}}
    assert {q: s["ndcg@10"] for q, s in thought.per_query.items()} == pytest.approx(
        {"q1": 1 / math.log2(3), "q2": 0.0, "q3": 1.0, "q4": 1.0})
    assert base.ndcg_at_10 == pytest.approx(sum(s["ndcg@10"] for s in base.per_query.values()) / 4)
    thought.per_query = dict(reversed(thought.per_query.items()))  # pairing is by query id, not by position
    compare_rows([base, thought], seed=0)
    (test,) = thought.significance
    assert base.significance == []
    differences = [1 / math.log2(3) - 1, -1.0, 1 - (1 + 1 / math.log2(4)) / ideal_q3]  # q1, q2, q3; q4 ties
    assert test["baseline"] == {"system": "bm25", "k": None} and test["metric"] == "ndcg@10"
    assert (test["wins"], test["ties"], test["losses"]) == (1, 1, 2)
    assert test["delta"] == pytest.approx(sum(differences) / 4)
    observed = abs(sum(differences))  # all 8 sign assignments of the 3 differences, counted by hand
    sums = [abs(a * differences[0] + b * differences[1] + c * differences[2])
            for a in (1, -1) for b in (1, -1) for c in (1, -1)]
    assert test["p_value"] == pytest.approx(sum(s >= observed - 1e-12 for s in sums) / 8)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    return write_beir(tmp_path / "toy")


def test_eval_writes_per_query_scores_and_tests_each_row(toy, tiny_o1_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "--dataset", str(toy), "--model", str(tiny_o1_dir), "--k", "0,1", "--max-new-tokens", "8",
                 "--baseline", "bm25", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "vs baseline" in printed and "paired randomization test" in printed and "r.per_query.json" in printed
    data = json.loads(out.read_text())
    meta, rows = data["meta"], data["results"]
    assert meta["per_query"] == "r.per_query.json"
    assert meta["significance"]["resamples"] == RESAMPLES and meta["significance"]["seed"] == 0
    assert [[(s["baseline"]["system"], s["baseline"]["k"]) for s in r["significance"]] for r in rows] == \
        [[], [("bm25", None)], [("bm25", None), ("o1", 0)]]
    for r in rows[1:]:
        for s in r["significance"]:
            assert 0 < s["p_value"] <= 1 and s["wins"] + s["ties"] + s["losses"] == 4
    assert "per_query" not in rows[0] and len(out.read_text().splitlines()) < 250  # the record stays readable
    sidecar = json.loads((tmp_path / "r.per_query.json").read_text())
    assert sidecar["results"] == "r.json" and sidecar["dataset"]["hash"] == meta["dataset"]["hash"]
    assert sidecar["queries"] == 4 and sidecar["created"] == meta["created"]
    assert [(r["system"], r["k"]) for r in sidecar["rows"]] == [(r["system"], r["k"]) for r in rows]
    for kept, row in zip(sidecar["rows"], rows):
        for metric in ("ndcg@10", "recall@100", "mrr@10", "map"):
            assert set(kept[metric]) == {"q1", "q2", "q3", "q4"}  # judged queries, keyed by id
            assert sum(kept[metric].values()) / 4 == pytest.approx(row[metric], abs=1e-12)
    bm25 = np.array(list(sidecar["rows"][0]["ndcg@10"].values()))
    thought = np.array([sidecar["rows"][2]["ndcg@10"][q] for q in sidecar["rows"][0]["ndcg@10"]])
    assert rows[2]["significance"][0]["delta"] == pytest.approx((thought - bm25).mean())


def test_a_folder_where_the_per_query_scores_go_is_refused_before_any_work(toy, tmp_path, capsys):
    (tmp_path / "r.per_query.json").mkdir()
    assert main(["eval", "--dataset", str(toy), "--no-model", "--baseline", "bm25",
                 "--output", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "r.per_query.json is a folder" in err and "BM25 ..." not in err
