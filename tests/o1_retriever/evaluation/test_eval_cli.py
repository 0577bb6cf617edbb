"""`o1-retriever eval` end to end on a tiny BEIR dataset with a tiny real model: table, JSON, PNG."""
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from beir_fixtures import write_beir  # noqa: E402

from o1_retriever.cli import build_parser, main  # noqa: E402
from o1_retriever.device import dtype_name, resolve_dtype  # noqa: E402

# A model that is not a path (so the config does not check it) and that would fail to load: any work before a
# check under test would end in a loading error instead.
UNLOADABLE = "no-such-org/no-such-model"
ROW_KEYS = {"system", "model", "k", "ndcg@10", "recall@100", "mrr@10", "map", "queries", "ms_per_query"}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))  # corpus vectors land here, not in ~
    return write_beir(tmp_path / "toy")


def _eval(toy, model_dir, out, *extra):
    argv = ["eval", "--dataset", str(toy), "--split", "test", "--model", str(model_dir), "--k", "0,1",
            "--max-new-tokens", "8", "--output", str(out), *extra]
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_eval_writes_json_png_and_repeats_exactly(toy, tiny_o1_dir, tmp_path, capsys):
    first = _eval(toy, tiny_o1_dir, tmp_path / "r1.json", "--baseline", "bm25")
    printed = capsys.readouterr().out
    assert "nDCG@10" in printed and "bm25" in printed
    rows = first["results"]
    assert [(r["system"], r["k"]) for r in rows] == [("bm25", None), ("o1", 0), ("o1", 1)]
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert r["queries"] == 4  # judged queries only
        assert 0.0 <= r["ndcg@10"] <= 1.0 and r["ms_per_query"] > 0
    assert rows[0]["ndcg@10"] > 0.5  # the toy queries share words with their documents
    assert rows[2]["thinking_tokens_per_query"] > 0 and rows[1]["thinking_tokens_per_query"] == 0
    meta = first["meta"]
    assert meta["model"] == str(tiny_o1_dir) and len(meta["fingerprint"]) == 16
    assert meta["k"] == [0, 1] and meta["seed"] == 0 and meta["generation"]["max_new_tokens"] == 8
    assert meta["dataset"]["documents"] == 12 and meta["subsampled"] is False and len(meta["dataset"]["hash"]) == 16
    assert meta["versions"]["torch"] and meta["machine"]["cpu_count"]
    assert meta["systems"][0]["corpus_embeddings"] == "computed"
    auto = dtype_name(resolve_dtype("auto", torch.device("cpu")))  # what --dtype auto became on this machine
    assert meta["systems"][0]["dtypes"] == {"thinker": auto, "encoder": auto}  # the joint model: one LM
    png = tmp_path / "r1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Same command again: corpus vectors come from the cache, thoughts are re-sampled with the same seed.
    second = _eval(toy, tiny_o1_dir, tmp_path / "r2.json", "--baseline", "bm25")
    assert second["meta"]["systems"][0]["corpus_embeddings"] == "cache"
    metric = ("ndcg@10", "recall@100", "mrr@10", "map", "thinking_tokens_per_query")
    assert [[r.get(m) for m in metric] for r in second["results"]] == [[r.get(m) for m in metric] for r in rows]


def test_max_docs_is_recorded_and_keeps_judged_docs(toy, tiny_o1_dir, tmp_path):
    out = _eval(toy, tiny_o1_dir, tmp_path / "r.json", "--max-docs", "6", "--seed", "3")
    sub = out["meta"]["dataset"]["subsample"]
    assert out["meta"]["subsampled"] is True
    assert sub == {"max_docs": 6, "seed": 3, "docs_total": 12, "docs_kept": 6, "judged_docs_kept": 4}
    assert out["meta"]["dataset"]["documents"] == 6


def test_chroma_index_agrees_with_exact_search(toy, tiny_o1_dir, tmp_path):
    exact = _eval(toy, tiny_o1_dir, tmp_path / "exact.json")
    chroma = _eval(toy, tiny_o1_dir, tmp_path / "chroma.json", "--index", "chroma")
    assert [r["index"] for r in chroma["results"]] == ["chroma", "chroma"]
    # 12 documents: HNSW is exhaustive at this size, so the rankings (and metrics) agree.
    for a, b in zip(exact["results"], chroma["results"]):
        assert a["ndcg@10"] == pytest.approx(b["ndcg@10"], abs=1e-6)
        assert a["recall@100"] == pytest.approx(b["recall@100"], abs=1e-6)


@pytest.mark.real_model
def test_encoder_baseline_and_composite(toy, tiny_lm_dir, tmp_path):
    from o1_retriever.default_model import minilm_path
    minilm = str(minilm_path())
    argv = ["eval", "--dataset", str(toy), "--no-model", "--composite", "--composite-thinker", str(tiny_lm_dir),
            "--composite-encoder", minilm, "--baseline-encoder", minilm, "--k", "0,1", "--max-new-tokens", "8",
            "--output", str(tmp_path / "c.json")]
    assert main(argv) == 0
    out = json.loads((tmp_path / "c.json").read_text())
    rows = out["results"]
    assert [(r["system"], r["k"]) for r in rows] == [("composite", 0), ("composite", 1), ("encoder", None)]
    # MiniLM keeps its own max_seq_length: the O1 token windows are not recorded as if they applied
    assert "document_max_length" not in out["meta"]["generation"] and out["meta"]["generation"]["max_new_tokens"] == 8
    # composite at k=0 embeds the bare query with MiniLM: exactly the plain encoder baseline
    assert rows[0]["ndcg@10"] == pytest.approx(rows[2]["ndcg@10"], abs=1e-9)
    assert rows[2]["ndcg@10"] > 0.5
    # --hybrid fuses every dense system, the plain encoder included.
    assert main([*argv, "--hybrid"]) == 0
    rows = json.loads((tmp_path / "c.json").read_text())["results"]
    assert [(r["system"], r["k"]) for r in rows] == [("composite", 0), ("composite+bm25", 0), ("composite", 1),
                                                     ("composite+bm25", 1), ("encoder", None),
                                                     ("encoder+bm25", None)]
    assert rows[1]["ndcg@10"] == pytest.approx(rows[5]["ndcg@10"], abs=1e-9)


def test_bad_arguments_fail_clearly(toy, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--dataset", str(toy), "--k", "0,x"])
    assert "--k must be comma-separated ints" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--dataset", str(toy), "--max-docs", "0"])
    assert main(["eval", "--dataset", str(toy), "--split", "dev", "--no-model", "--baseline", "bm25"]) == 2
    assert "splits available: ['test']" in capsys.readouterr().err
    assert main(["eval", "--dataset", str(toy), "--no-model"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_thought_cache_share_is_reported(toy, tiny_o1_dir, tmp_path):
    first = _eval(toy, tiny_o1_dir, tmp_path / "a.json", "--thought-cache")["results"]
    again = _eval(toy, tiny_o1_dir, tmp_path / "b.json", "--thought-cache")["results"]
    assert [r["thoughts_from_cache"] for r in first] == [None, 0.0]  # k=0 never thinks
    assert [r["thoughts_from_cache"] for r in again] == [None, 1.0]  # the latency now excludes thinking
    assert [r["ndcg@10"] for r in again] == [r["ndcg@10"] for r in first]


def test_sampling_and_aggregation_options_reach_the_model_and_the_json(toy, tiny_o1_dir, tmp_path):
    out = _eval(toy, tiny_o1_dir, tmp_path / "r.json", "--temperature", "0.7", "--top-p", "0.8",
                "--aggregation", "mean_with_query", "--query-weight", "0.6")
    generation = out["meta"]["generation"]
    assert (generation["temperature"], generation["top_p"], generation["aggregation"], generation["query_weight"]) \
        == (0.7, 0.8, "mean_with_query", 0.6)
    default = _eval(toy, tiny_o1_dir, tmp_path / "d.json")["meta"]["generation"]
    assert (default["temperature"], default["aggregation"], default["query_weight"]) == (0.1, "mean", None)


def test_token_windows_reach_the_model_the_json_and_the_corpus_cache(toy, tiny_o1_dir, tmp_path):
    default = _eval(toy, tiny_o1_dir, tmp_path / "d.json", "--k", "0")
    with pytest.warns(UserWarning, match="longer than 4 tokens and were truncated"):  # the user is told
        short = _eval(toy, tiny_o1_dir, tmp_path / "s.json", "--k", "0", "--document-max-length", "4",
                      "--query-max-length", "6")
    assert (default["meta"]["generation"]["document_max_length"], default["meta"]["generation"]["query_max_length"]) \
        == (512, 512)  # no o1_generation.json: the official windows
    assert (short["meta"]["generation"]["document_max_length"], short["meta"]["generation"]["query_max_length"]) \
        == (4, 6)
    # Cut documents are other vectors: they must not come from the full-length cache entry.
    assert short["meta"]["systems"][0]["corpus_embeddings"] == "computed"
    assert short["results"][0]["ndcg@10"] != default["results"][0]["ndcg@10"]
    from o1_retriever.evaluation.runner import EvalConfig
    with pytest.raises(TypeError, match="query_max_length must be a positive int, got 2.5"):
        EvalConfig(dataset=str(toy), query_max_length=2.5)


@pytest.mark.parametrize("field, value, message", [("temperature", -1.0, "temperature must be >= 0"),
                                                   ("top_p", 1.5, "top_p must be in"),
                                                   ("aggregation", "max", "aggregation='max' is not supported"),
                                                   ("query_weight", 1.2, r"query_weight must be in \[0, 1\]"),
                                                   ("document_max_length", 0, "document_max_length must be > 0, got 0")])
def test_bad_sampling_options_fail_before_any_work(toy, field, value, message):
    from o1_retriever.evaluation.runner import EvalConfig
    with pytest.raises(ValueError, match=message):
        EvalConfig(dataset=str(toy), **{field: value})


def test_query_weight_needs_mean_with_query(toy):
    from o1_retriever.evaluation.runner import EvalConfig
    with pytest.raises(ValueError, match="only applies to aggregation='mean_with_query', got aggregation='mean'"):
        EvalConfig(dataset=str(toy), aggregation="mean", query_weight=0.5)


def test_hybrid_rows_fuse_each_k_with_bm25(toy, tiny_o1_dir, tmp_path):
    out = _eval(toy, tiny_o1_dir, tmp_path / "h.json", "--baseline", "bm25", "--hybrid", "0.5")
    rows = out["results"]
    assert [(r["system"], r["k"]) for r in rows] == [("bm25", None), ("o1", 0), ("o1+bm25", 0), ("o1", 1),
                                                      ("o1+bm25", 1)]
    assert out["meta"]["hybrid"] == {"dense_weight": 0.5, "fusion": "zscore", "pool": 100}
    bm25, o1, hybrid = rows[0], rows[1], rows[2]
    # The hybrid row costs both searches, and on this toy data (the random model is near chance, BM25 is not)
    # fusion lands between its two halves.
    assert hybrid["ms_per_query"] >= o1["ms_per_query"]
    assert min(bm25["ndcg@10"], o1["ndcg@10"]) - 1e-9 <= hybrid["ndcg@10"] <= max(bm25["ndcg@10"], o1["ndcg@10"])
    assert hybrid["thinking_tokens_per_query"] == o1["thinking_tokens_per_query"] and hybrid["index"] == "exact+bm25s"
    # Dense share 1: the dense ranking itself (the pool holds every toy document, so nothing is lexical-only).
    dense_only = _eval(toy, tiny_o1_dir, tmp_path / "d.json", "--hybrid", "1")["results"]
    assert [r["ndcg@10"] for r in dense_only[1::2]] == pytest.approx([r["ndcg@10"] for r in dense_only[0::2]],
                                                                     abs=1e-9)
    # Dense share 0: BM25's hits first, in BM25's order, then what only the dense side found: never worse than BM25.
    lexical_only = _eval(toy, tiny_o1_dir, tmp_path / "l.json", "--baseline", "bm25", "--hybrid", "0")["results"]
    assert lexical_only[2]["ndcg@10"] >= lexical_only[0]["ndcg@10"] - 1e-9
    # Without --baseline bm25 the hybrid rows still come; --hybrid alone means the default share.
    from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT
    args = build_parser().parse_args(["eval", "--dataset", str(toy), "--hybrid"])
    assert args.hybrid == DEFAULT_DENSE_WEIGHT
    alone = _eval(toy, tiny_o1_dir, tmp_path / "a.json", "--hybrid")
    assert [r["system"] for r in alone["results"]] == ["o1", "o1+bm25", "o1", "o1+bm25"]
    assert alone["meta"]["bm25"]["k1"] == 0.9


def test_bad_hybrid_requests_fail_before_any_work(toy, capsys):
    from o1_retriever.evaluation.runner import EvalConfig
    with pytest.raises(SystemExit):  # the same parse-time check as search/demo --hybrid
        build_parser().parse_args(["eval", "--dataset", str(toy), "--hybrid", "2"])
    assert "--hybrid takes the dense share W in [0, 1], got '2'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"dense_weight must be in \[0, 1\]"):
        EvalConfig(dataset=str(toy), hybrid=2.0)
    with pytest.raises(ValueError, match="hybrid fuses dense rows with BM25: enable the model"):
        EvalConfig(dataset=str(toy), run_model=False, baselines=["bm25"], hybrid=0.5)


def test_plot_merges_a_sweep_run_in_parts_and_refuses_mixed_runs(toy, tiny_o1_dir, tmp_path, capsys):
    """k=0 with BM25, then k=1 against the cached corpus vectors: one PNG over both; two runs of the same k, or of
    different datasets, are refused (a curve would double back or mix corpora)."""
    from o1_retriever.evaluation.plot import main as plot_main, merged_rows
    part1, part2 = tmp_path / "k0.json", tmp_path / "k1.json"
    assert main(["eval", "--dataset", str(toy), "--split", "test", "--model", str(tiny_o1_dir), "--k", "0",
                 "--baseline", "bm25", "--output", str(part1)]) == 0
    with pytest.raises(ValueError, match=r"repeats \('bm25', .*None\)"):
        merged_rows([part1, part1])
    assert main(["eval", "--dataset", str(toy), "--split", "test", "--model", str(tiny_o1_dir), "--k", "1",
                 "--max-new-tokens", "8", "--output", str(part2)]) == 0
    rows, title = merged_rows([part1, part2])
    assert [(r["system"], r["k"]) for r in rows] == [("bm25", None), ("o1", 0), ("o1", 1)] and title == "toy/test"
    assert not part1.with_suffix(".png").exists()  # one k per run: eval drew no sweep of its own
    capsys.readouterr()
    assert plot_main([str(part1), str(part2)]) == 0
    assert part1.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == str(part1.with_suffix(".png"))
    other = write_beir(tmp_path / "other")
    elsewhere = tmp_path / "other.json"
    assert main(["eval", "--dataset", str(other), "--split", "test", "--no-model", "--baseline", "bm25",
                 "--output", str(elsewhere)]) == 0
    with pytest.raises(ValueError, match="plot one dataset and split at a time"):
        merged_rows([part1, elsewhere])


def test_unwritable_output_fails_before_any_work(toy, tmp_path, capsys):
    """A folder, or a path under a file, failed with a traceback once the whole evaluation had run; the model here
    does not exist, so any work before the check would fail with another message."""
    not_a_folder = toy / "corpus.jsonl"
    for output, message in ((tmp_path, "is a folder: name a file"),
                            (not_a_folder / "r.json", "corpus.jsonl is a file, not a folder")):
        assert main(["eval", "--dataset", str(toy), "--model", UNLOADABLE, "--baseline", "bm25",
                     "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert message in err and "BM25 ..." not in err
    deep = tmp_path / "new" / "deeper" / "r.json"  # missing folders are made
    assert main(["eval", "--dataset", str(toy), "--no-model", "--baseline", "bm25", "--output", str(deep)]) == 0
    assert json.loads(deep.read_text())["results"][0]["system"] == "bm25"


def test_split_without_relevant_judgements_fails_before_any_work(tmp_path, capsys, monkeypatch):
    """Only score-0 judgements: the run failed once BM25 and every model had run; now at load time, naming the file."""
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    root = write_beir(tmp_path / "zero", qrels=[("q1", "d1", 0), ("q2", "d2", 0)])
    assert main(["eval", "--dataset", str(root), "--model", UNLOADABLE, "--baseline", "bm25"]) == 2
    err = capsys.readouterr().err
    assert f"{root / 'qrels' / 'test.tsv'}: no judged query has a relevant document (score > 0)" in err
    assert "BM25 ..." not in err


@pytest.mark.parametrize("package, extra, message", [
    ("pytrec_eval", [], "metrics need pytrec_eval"),
    ("matplotlib", ["--k", "0,1"], "plots need matplotlib"),
])
def test_missing_optional_package_fails_before_any_work(toy, tmp_path, capsys, monkeypatch, package, extra, message):
    """Without the [eval] extra the scorer (or, for a sweep's PNG, matplotlib) was imported only after BM25 and every
    model had run. A None entry in sys.modules is how Python marks a module that cannot be imported."""
    monkeypatch.setitem(sys.modules, package, None)
    assert main(["eval", "--dataset", str(toy), "--model", UNLOADABLE, "--baseline", "bm25",
                 "--output", str(tmp_path / "r.json"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "BM25 ..." not in err
