"""Audit of `o1-retriever eval` as a researcher uses it on their own BEIR-layout data: the metrics against a case
computed by hand, ids given as ints, malformed files, atomic outputs, quiet progress bars."""
import math
import re

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


def _qrels_file(tmp_path, content: bytes):
    path = tmp_path / "qrels.tsv"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("content", [
    "\ufeffquery-id\tcorpus-id\tscore\nq1\td1\t1\n".encode(),   # saved by a Windows editor: BOM before the header
    "\ufeffq1\td1\t1\n".encode(),                               # ... before the first query id
    b"\nquery-id\tcorpus-id\tscore\nq1\td1\t1\n",               # a blank line before the header
    b"qid\tdocid\trelevance\r\nq1\td1\t1\r\n",                  # other column names, CRLF
    b"q1\td1\t1\n",                                             # no header at all
    b"q1\td1\t1\t\n",                                           # a trailing tab, as spreadsheets export
])
def test_qrels_headers_and_byte_order_marks(tmp_path, content):
    """A BOM made the header's score 'score' an error ("score must be an integer, got 'score'") or the first query
    id '\\ufeffq1' (missing from queries.jsonl); a header after a blank line or with other names was refused."""
    from o1_retriever.evaluation.data import read_qrels
    assert read_qrels(_qrels_file(tmp_path, content)) == {"q1": {"d1": 1}}


@pytest.mark.parametrize("content, message", [
    (b"q1\t\t1\n", r"qrels.tsv:1: empty corpus-id"),                        # was judged as doc ''
    (b"query-id\tcorpus-id\tscore\n\td1\t1\n", r"qrels.tsv:2: empty query-id"),
    (b"q1\td1\tnan\n", r"qrels.tsv:1: score must be an integer, got 'nan'"),  # a number, not a header
    (b"q1\td1\t1x\n", r"qrels.tsv:1: score must be an integer, got '1x'"),
    (b"q1\t0\td1\t1\n", r"got 4 \(TREC qrels `query 0 doc score`\? drop the second column\)"),
    (b"q1 d1 1\n", r"got 1 \(separated by spaces\? BEIR qrels separate columns with tabs\)"),
    (b"q1\td1\t1\tx\n", r"got 4: "),                                     # no TREC hint: not its layout
    (b"q1\td\xe9\t1\n", r"qrels.tsv:1: not valid UTF-8 \(byte 0xe9 at column 5\)"),  # was a bare UnicodeDecodeError
])
def test_malformed_qrels_lines_name_the_line(tmp_path, content, message):
    from o1_retriever.evaluation.data import read_qrels
    with pytest.raises(ValueError, match=message):
        read_qrels(_qrels_file(tmp_path, content))


@pytest.mark.parametrize("bad_id", [None, 1.0, True, "", " "])
def test_ids_that_no_qrels_line_can_name_are_refused(tmp_path, bad_id):
    """A null `_id` became the document "None", 1.0 became "1.0": silently unmatched by every qrels line."""
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from beir_fixtures import write_beir
    from o1_retriever.evaluation import load_beir
    root = write_beir(tmp_path / "ds")
    with open(root / "corpus.jsonl", "a") as f:
        f.write(json.dumps({"_id": bad_id, "text": "an extra passage"}) + "\n")
    with pytest.raises(ValueError, match=rf"corpus.jsonl:13: _id must be a non-empty string or an integer, "
                                         rf"got {repr(bad_id).replace('.', '[.]')}"):
        load_beir(root)


def test_int_ids_in_the_files_match_string_ids_in_the_qrels(tmp_path):
    import json
    from o1_retriever.evaluation import load_beir
    root = tmp_path / "ints"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "text": f"doc {i}"}) for i in (1, 2)) + "\n\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": 10, "text": "q"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("10\t2\t1\n")
    ds = load_beir(root)
    assert ds.queries == {"10": "q"} and ds.qrels == {"10": {"2": 1}} and list(ds.corpus) == ["1", "2"]


# A model that is not a path (so the config does not check it) and that would fail to load: any work before a
# check under test would end in a loading error instead.
UNLOADABLE = "no-such-org/no-such-model"
ROWS = [{"system": "o1", "model": "m", "k": k, "ndcg@10": 0.3 + k / 10, "ms_per_query": 10.0 + k} for k in (0, 1, 3)]


def test_a_png_cut_short_by_a_kill_leaves_the_previous_one_whole(tmp_path):
    """savefig wrote straight into the target: a run killed mid-write (here by the kernel, past a file-size limit)
    left a truncated PNG where the last good one was."""
    import os
    import subprocess
    import sys
    from o1_retriever.evaluation.plot import plot_k_sweep
    png = plot_k_sweep(ROWS, tmp_path / "sweep.png", "first")
    before = png.read_bytes()
    code = ("import resource, sys; from o1_retriever.evaluation.plot import plot_k_sweep, _pyplot; _pyplot();"
            f"rows = {ROWS!r}; plot_k_sweep(rows, sys.argv[1] + '.warm.png', 'warm-up');"  # fonts cached
            "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000));"                     # past 2 kB: SIGXFSZ
            "plot_k_sweep(rows, sys.argv[1], 'second')")
    done = subprocess.run([sys.executable, "-c", code, str(png)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"})
    assert done.returncode != 0, "the file-size limit did not stop the writer"
    assert png.read_bytes() == before


def _many(tmp_path, n=70):
    """More documents and queries than the bar threshold (64) and the corpus chunk (64)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from beir_fixtures import write_beir
    words = "insulin vaccine tumor gene river brain climate music food computer".split()
    docs = {f"d{i}": (words[i % 10], f"{words[i % 10]} passage number {i}") for i in range(n)}
    queries = {f"q{i}": f"{words[i % 10]} {i}" for i in range(n)}
    return write_beir(tmp_path / "many", docs, queries, [(f"q{i}", f"d{i}", 1) for i in range(n)])


def test_progress_bars_stay_out_of_a_log_file(tmp_path, tiny_o1_dir, capfd, monkeypatch):
    """Off a terminal (`eval ... 2> log`, as here under pytest), the corpus and query bars wrote every redraw into
    the log; from Python (`progress=None`) long inputs keep their bars."""
    from o1_retriever.cli import main
    from o1_retriever.evaluation.runner import EvalConfig, run_evaluation
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    root = _many(tmp_path)
    common = ["--dataset", str(root), "--model", str(tiny_o1_dir), "--k", "0", "--dtype", "fp32", "--batch-size", "64"]
    assert main(["eval", *common]) == 0
    err = capfd.readouterr().err
    assert "o1: " in err and "%|" not in err
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache2"))  # the corpus is embedded again
    run_evaluation(EvalConfig(dataset=str(root), model=str(tiny_o1_dir), k=[0], dtype="fp32", batch_size=64),
                   log=lambda _: None)
    err = capfd.readouterr().err
    assert "Embedding corpus" in err and "70/70" in err


def test_eval_through_chroma_draws_no_query_bars_into_a_log_file(tmp_path, tiny_o1_dir, capfd, monkeypatch):
    """`eval --index chroma` off a terminal: O1Index.search took no progress setting, so its query bars went to the
    log while the exact index's did not."""
    from o1_retriever.cli import main
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    common = ["--dataset", str(_many(tmp_path)), "--model", str(tiny_o1_dir), "--k", "0", "--dtype", "fp32"]
    assert main(["eval", *common, "--index", "chroma"]) == 0
    err = capfd.readouterr().err
    assert "o1: " in err and "%|" not in err


def test_a_config_of_paths_is_written_to_json(tmp_path):
    """EvalConfig(dataset=Path(...)) ran the whole evaluation, then write_json failed: "Object of type PosixPath is
    not JSON serializable"."""
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from beir_fixtures import write_beir
    from o1_retriever.evaluation import EvalConfig, build_meta, run_evaluation, write_json
    config = EvalConfig(dataset=write_beir(tmp_path / "toy"), model=tmp_path / "unused", run_model=False,
                        baselines=["bm25"])
    outcome = run_evaluation(config, log=lambda _: None)
    written = json.loads(write_json(tmp_path / "r.json", build_meta(config, outcome), outcome).read_text())
    assert written["meta"]["config"]["dataset"] == str(tmp_path / "toy")
    assert written["meta"]["config"]["model"] == str(tmp_path / "unused")


@pytest.mark.parametrize("field, value, error, message", [
    ("dataset", None, TypeError, "dataset must be a path (str or os.PathLike), got None"),
    ("split", "", TypeError, "split must be a qrels split name such as 'test', got ''"),
    ("hybrid", 1.5, ValueError, "hybrid=1.5 is not allowed"),
    ("hybrid", -0.1, ValueError, "hybrid=-0.1 is not allowed"),
    ("hybrid", "0.5", TypeError, "hybrid='0.5' is not allowed"),
    ("progress", "yes", TypeError, "progress must be None (bars for long inputs), True or False, got 'yes'"),
    ("baselines", "bm25", TypeError, "baselines must be a list such as ['bm25'], got 'bm25'"),  # was "got 'b'"
])
def test_bad_config_values_are_named(field, value, error, message):
    from o1_retriever.evaluation import EvalConfig
    with pytest.raises(error, match=re.escape(message)):
        EvalConfig(**{"dataset": "toy", field: value})


def test_hybrid_true_takes_the_default_share_as_the_index_does():
    """hybrid=True, as O1Index.search(hybrid=True) takes, failed with "dense_weight must be a number"."""
    from o1_retriever.evaluation import EvalConfig
    from o1_retriever.fusion import DEFAULT_DENSE_WEIGHT
    assert EvalConfig(dataset="toy", hybrid=True).hybrid == DEFAULT_DENSE_WEIGHT
    assert EvalConfig(dataset="toy", hybrid=False).hybrid is None
    assert EvalConfig(dataset="toy", hybrid=0).hybrid == 0.0


def test_dollar_signs_in_names_are_drawn_as_written(tmp_path):
    """matplotlib read "$_x$" in a model folder's name (or a dataset's) as math: the plot failed after the whole
    evaluation with a mathtext ParseSyntaxException."""
    from o1_retriever.evaluation.plot import plot_k_sweep
    rows = [dict(r, model="m$_x$y") for r in ROWS] + [{"system": "bm25", "model": "$\\frac$", "k": None,
                                                        "ndcg@10": 0.2, "ms_per_query": 1.0}]
    png = plot_k_sweep(rows, tmp_path / "s.png", "data$^$set/test")
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("module", ["plot", "table"])
def test_plot_and_table_commands_refuse_a_bad_file_without_a_traceback(tmp_path, capsys, module):
    import importlib
    main = importlib.import_module(f"o1_retriever.evaluation.{module}").main
    assert main([str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'missing.json'} is not an `o1-retriever eval` "
                                              "results JSON")


def test_corpus_vectors_are_cached_per_dtype(tiny_o1_dir, tmp_path):
    """Weights stored in bf16 hash the same loaded in fp32: `eval --dtype fp32` after a bf16 run reused the bf16
    vectors (and its JSON said the encoder ran in fp32)."""
    import shutil

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM
    from o1_retriever import O1Embedder
    from o1_retriever.evaluation.search import corpus_embeddings
    stored_bf16 = tmp_path / "bf16_model"
    AutoModelForCausalLM.from_pretrained(tiny_o1_dir, dtype=torch.bfloat16).save_pretrained(stored_bf16)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_o1_dir / name).exists():
            shutil.copy(tiny_o1_dir / name, stored_bf16 / name)
    ids, texts = ["a", "b"], ["insulin lowers blood sugar", "the river reaches the ocean"]
    found = {}
    for dtype in ("bf16", "fp32"):
        emb = O1Embedder.from_pretrained(str(stored_bf16), device="cpu", dtype=dtype, thought_cache=False)
        found[dtype] = corpus_embeddings(emb, ids, texts, root=tmp_path / "vectors")
    assert found["fp32"][1] is False, "the fp32 run was served the bf16 run's vectors"
    assert not np.array_equal(found["bf16"][0], found["fp32"][0])


def test_an_earlier_runs_png_beside_the_json_is_pointed_out(tmp_path, capsys, monkeypatch):
    """A single-k rerun to the same --output left the earlier sweep's PNG beside the new JSON, passing for its
    plot without a word."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from beir_fixtures import write_beir
    from o1_retriever.cli import main
    from o1_retriever.evaluation.plot import plot_k_sweep
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "r.json"
    plot_k_sweep(ROWS, out.with_suffix(".png"), "earlier")
    assert main(["eval", "--dataset", str(write_beir(tmp_path / "toy")), "--no-model", "--baseline", "bm25",
                 "--output", str(out)]) == 0
    assert f"note: {out.with_suffix('.png')} is an earlier run's k sweep, not this run's" in capsys.readouterr().err


def test_seed_help_says_it_draws_the_query_sample_too(capsys):
    from o1_retriever.cli import build_parser
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    assert "--max-queries samples" in " ".join(capsys.readouterr().out.split())


def test_an_output_the_png_would_overwrite_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """--output sweep.png: the JSON went to sweep.png, then the sweep's PNG overwrote it (the results were lost);
    a folder where the PNG goes failed only after the evaluation. The model does not exist: any work before the
    check would fail with another message."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from beir_fixtures import write_beir
    from o1_retriever.cli import main
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    toy = write_beir(tmp_path / "toy")
    (tmp_path / "taken.png").mkdir()
    for output, message in ((tmp_path / "sweep.PNG", "names the results JSON, and a k sweep's PNG goes beside it"),
                            (tmp_path / "taken.json", f"--output's PNG {tmp_path / 'taken.png'} is a folder")):
        assert main(["eval", "--dataset", str(toy), "--model", UNLOADABLE, "--k", "0,1",
                     "--output", str(output)]) == 2
        assert message in capsys.readouterr().err


def test_exact_search_refuses_ids_that_do_not_match_the_vectors():
    """Three ids for four vectors were paired silently (or failed with an IndexError when the fourth ranked)."""
    import numpy as np
    from o1_retriever.evaluation.search import exact_search
    with pytest.raises(ValueError, match="3 doc ids for 4 document vectors"):
        exact_search(np.ones((2, 3)), np.ones((4, 3)), ["a", "b", "c"], 2)


def test_a_bad_device_or_dtype_fails_before_the_data_and_bm25(tmp_path, capsys):
    """--dtype fp8 or --device tpu failed only once the data was loaded and BM25 had run ("o1: ..." was logged)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from beir_fixtures import write_beir
    from o1_retriever.cli import main
    toy = write_beir(tmp_path / "toy")
    with pytest.raises(SystemExit) as exit_info:  # --dtype is checked while the arguments are parsed
        main(["eval", "--dataset", str(toy), "--model", UNLOADABLE, "--baseline", "bm25", "--dtype", "fp8"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "argument --dtype: expected auto, bf16, fp16 or fp32" in err
    assert "BM25 ..." not in err
    assert main(["eval", "--dataset", str(toy), "--model", UNLOADABLE, "--baseline", "bm25", "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert "device='tpu' is not a torch device" in err and "BM25 ..." not in err


def test_a_torch_dtype_and_device_are_recorded_by_name():
    """EvalConfig(dtype=torch.bfloat16) ran, then the results JSON could not hold the torch.dtype."""
    import torch
    from o1_retriever.evaluation import EvalConfig
    config = EvalConfig(dataset="toy", dtype=torch.bfloat16, device=torch.device("cpu"))
    assert (config.dtype, config.device) == ("bf16", "cpu")
    assert EvalConfig(dataset="toy", dtype=None).dtype == "auto"  # as from_pretrained reads None


def test_a_dataset_path_to_a_file_says_so(tmp_path):
    """--dataset toy/corpus.jsonl said "BEIR folder toy/corpus.jsonl does not exist"."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from beir_fixtures import write_beir
    from o1_retriever.evaluation import load_beir
    toy = write_beir(tmp_path / "toy")
    with pytest.raises(NotADirectoryError, match=rf"{toy / 'corpus.jsonl'} is a file: name the folder .* perhaps"):
        load_beir(toy / "corpus.jsonl")


def test_a_cap_the_split_fits_under_is_not_called_a_sample(tmp_path, capsys, monkeypatch):
    """--max-queries 1000 on a 4-query split (a cap shared across datasets) marked the full-split figures
    "SUBSAMPLED" in the table, the JSON and the PNG title; a cap that does cut still is."""
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from beir_fixtures import write_beir
    from o1_retriever.cli import main
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    toy = write_beir(tmp_path / "toy")
    base = ["eval", "--dataset", str(toy), "--no-model", "--baseline", "bm25"]
    assert main([*base, "--max-queries", "1000", "--max-docs", "1000", "--output", str(tmp_path / "all.json")]) == 0
    assert "SUBSAMPLED" not in capsys.readouterr().out
    meta = json.loads((tmp_path / "all.json").read_text())["meta"]
    assert meta["subsampled"] is False and meta["dataset"]["query_subsample"]["queries_kept"] == 4
    assert main([*base, "--max-queries", "2", "--output", str(tmp_path / "part.json")]) == 0
    assert "queries SUBSAMPLED from 4" in capsys.readouterr().out
    assert json.loads((tmp_path / "part.json").read_text())["meta"]["subsampled"] is True


def test_exact_search_memory_is_bounded_by_the_corpus_size_not_1024_queries(monkeypatch):
    """Scores were computed 1,024 queries at a time whatever the corpus size (20 GB at once against 5M documents,
    twice over with the negated copy); the block now fits SCORE_BLOCK_BYTES. Here 1 MB: 256 queries x 50,000
    documents used to take 100 MB."""
    import tracemalloc

    import numpy as np
    from o1_retriever.evaluation import search
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((50_000, 4)).astype(np.float32)
    queries = rng.standard_normal((256, 4)).astype(np.float32)
    ids = [f"d{i}" for i in range(len(docs))]
    expected = [np.argsort(-(q @ docs.T), kind="stable")[:10] for q in queries[:3]]
    monkeypatch.setattr(search, "SCORE_BLOCK_BYTES", 1 << 20, raising=False)
    tracemalloc.start()
    try:
        hits = search.exact_search(queries, docs, ids, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 << 20, f"{peak / 2**20:.0f} MB at the peak"
    assert [[d for d, _ in row] for row in hits[:3]] == [[ids[i] for i in e] for e in expected]


def test_output_with_a_tilde_the_shell_left_goes_home(tmp_path, monkeypatch, capsys):
    """--output=~/r.json (the shell expands no "~" after "=") was checked as ~/r.json but written to ./~/r.json."""
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from beir_fixtures import write_beir
    from o1_retriever.cli import main
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    toy = write_beir(tmp_path / "toy")
    assert main(["eval", "--dataset", str(toy), "--no-model", "--baseline", "bm25", "--output=~/r.json"]) == 0
    assert json.loads((tmp_path / "home" / "r.json").read_text())["results"][0]["system"] == "bm25"
    assert not (tmp_path / "~").exists()
