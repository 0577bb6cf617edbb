"""Audit of `o1-retriever eval` as a researcher comparing retrievers on BEIR-layout data: figures against
pytrec_eval's and BEIR's own rules."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from beir_fixtures import write_beir  # noqa: E402


def _own_doc_beyond_the_cut(tmp_path):
    """ArguAna's layout: the query is also a document under its own id, and ranks first. 101 documents match the
    query's one term, each shorter one higher (BM25's length norm); the relevant one, the longest, ranks 101st."""
    docs = {"x": ("", "apple")}
    docs |= {f"f{i}": ("", "apple " + " ".join(f"w{i}n{j}" for j in range(i))) for i in range(1, 100)}
    docs["r"] = ("", "apple " + " ".join(f"rel{j}" for j in range(120)))
    return write_beir(tmp_path / "arguana", docs, {"x": "apple"}, [("x", "r", 1)])


def test_a_dropped_identical_id_leaves_100_hits_as_beir_does(tmp_path):
    """--ignore-identical-ids retrieved 100 hits, then dropped the query's own document: 99 were left (BEIR
    retrieves one more), and a relevant document at rank 101 (100th once the own one is gone) was missed: Recall@100
    0 where BEIR reports 1."""
    from o1_retriever.evaluation import EvalConfig, run_evaluation
    root = _own_doc_beyond_the_cut(tmp_path)
    config = EvalConfig(dataset=str(root), run_model=False, baselines=["bm25"], ignore_identical_ids=True)
    row = run_evaluation(config, log=lambda _: None).rows[0]
    assert row.recall_at_100 == 1.0
    kept = EvalConfig(dataset=str(root), run_model=False, baselines=["bm25"])  # the own document counts: 100 hits
    assert run_evaluation(kept, log=lambda _: None).rows[0].recall_at_100 == 0.0


@pytest.mark.parametrize("index", ["exact", "chroma"])
def test_dense_search_leaves_100_hits_without_the_own_document(tmp_path, tiny_embedder, index):
    """The dense side (exact and Chroma) also cut at 100 before dropping the query's own document."""
    from o1_retriever.evaluation import EvalConfig, load_beir
    from o1_retriever.evaluation.runner import _DenseIndex
    root = _own_doc_beyond_the_cut(tmp_path)
    config = EvalConfig(dataset=str(root), k=[0], ignore_identical_ids=True, index=index, embedding_cache=False)
    dense = _DenseIndex(tiny_embedder, load_beir(root), config)
    try:
        (hits,), _ = dense.search(["x"], ["apple"], 0)
    finally:
        dense.close()
    ids = [d for d, _ in hits]
    assert len(ids) == 100 and "x" not in ids and len(set(ids)) == 100


def test_a_settings_chart_cut_short_by_a_kill_leaves_the_previous_one_whole(tmp_path):
    """`choose --plot` saved straight into the target: a run killed mid-write (here by the kernel, past a file-size
    limit) left a truncated PNG where the last good chart was."""
    import os
    import subprocess
    from o1_retriever.evaluation.choose import plot_choice
    table = [({"temperature": t, "top_p": 0.9, "aggregation": "mean"}, 0.3 + t) for t in (0.1, 0.7)]
    png = plot_choice(table, table[1][0], tmp_path / "chart.png", 3, "ndcg@10", 0.25)
    before = png.read_bytes()
    code = ("import resource, sys; from o1_retriever.evaluation.choose import plot_choice;"
            f"table = {table!r}; plot_choice(table, table[0][0], sys.argv[1] + '.warm.png', 3, 'ndcg@10');"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000));"  # past 2 kB: SIGXFSZ
            "plot_choice(table, table[0][0], sys.argv[1], 3, 'ndcg@10')")
    done = subprocess.run([sys.executable, "-c", code, str(png)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"})
    assert done.returncode != 0, "the file-size limit did not stop the writer"
    assert png.read_bytes() == before


def test_the_plain_encoder_row_runs_in_the_dtype_asked_as_the_composites_encoder_does(tmp_path, tiny_o1_dir,
                                                                                      monkeypatch):
    """--dtype bf16 (or auto on a GPU) loaded the composite's encoder in bf16 but the --baseline-encoder row, the same
    encoder without thinking, in fp32: the two rows compared precisions, not thinking, and the JSON's config said
    bf16 for both."""
    from tests.fixtures import tiny_composite
    from o1_retriever.evaluation import EvalConfig, run_evaluation
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    tiny_composite(tmp_path / "c", tiny_o1_dir)
    encoder = str(tmp_path / "c" / "st0")
    config = EvalConfig(dataset=str(write_beir(tmp_path / "toy")), run_model=False, composite=True,
                        composite_thinker=str(tiny_o1_dir), composite_encoder=encoder, baseline_encoder=encoder,
                        k=[0], dtype="bf16", device="cpu", max_new_tokens=4)
    outcome = run_evaluation(config, log=lambda _: None)
    assert {s.system: s.dtypes["encoder"] for s in outcome.systems} == {"composite": "bf16", "encoder": "bf16"}
    composite, plain = outcome.rows
    assert plain.per_query == composite.per_query  # the same encoder, no thinking: the same figures


def test_results_are_written_when_the_table_cannot_be_printed(tmp_path):
    """`eval ... --output r.json | head -3`: the table was printed before the JSON was written, so a reader that had
    gone (a closed pipe: BrokenPipeError) lost the whole evaluation's results. A real process, its stdout's read end
    closed before it prints."""
    import json
    import os
    import subprocess
    out = tmp_path / "r.json"
    code = "import sys; from o1_retriever.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "eval", "--dataset", str(write_beir(tmp_path / "toy")),
                             "--no-model", "--baseline", "bm25", "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "O1_RETRIEVER_CACHE": str(tmp_path / "cache")})
    proc.stdout.close()  # the reader is gone before the table comes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) != 0, err
    assert json.loads(out.read_text())["results"][0]["system"] == "bm25", err
    assert (tmp_path / "r.per_query.json").is_file()


def test_a_failed_runs_finished_rows_are_kept_when_the_table_cannot_be_printed(tmp_path):
    """The same for a run that failed part way (here an encoder folder holding no model, after BM25): its finished
    rows were shown first and kept in r.partial.json after, so a closed stdout lost them too."""
    import json
    import os
    import subprocess
    (tmp_path / "not-a-model").mkdir()
    out = tmp_path / "r.json"
    code = "import sys; from o1_retriever.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "eval", "--dataset", str(write_beir(tmp_path / "toy")),
                             "--no-model", "--baseline", "bm25", "--baseline-encoder", str(tmp_path / "not-a-model"),
                             "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "O1_RETRIEVER_CACHE": str(tmp_path / "cache")})
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) != 0, err
    kept = json.loads((tmp_path / "r.partial.json").read_text())
    assert [r["system"] for r in kept["results"]] == ["bm25"], err
    assert str(tmp_path / "not-a-model") in kept["meta"]["incomplete"]
    assert f"its 1 finished rows are in {tmp_path / 'r.partial.json'}" in err


def test_a_run_ended_by_sigterm_keeps_its_finished_rows(tmp_path, tiny_o1_dir):
    """A batch job's time limit (or `kill`, or `timeout`) sends SIGTERM, whose default action ended eval at once:
    unlike Ctrl-C, the finished rows (here BM25's, the model still running) were lost, no r.partial.json. A real
    process, signalled once it has started on the model."""
    import json
    import os
    import signal
    import subprocess
    words = "insulin vaccine tumor gene river brain climate music food computer".split()
    docs = {f"d{i}": (words[i % 10], f"{words[i % 10]} passage number {i}") for i in range(300)}
    queries = {f"q{i}": f"{words[i % 10]} {i}" for i in range(100)}
    root = write_beir(tmp_path / "many", docs, queries, [(f"q{i}", f"d{i}", 1) for i in range(100)])
    code = "import sys; from o1_retriever.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "eval", "--dataset", str(root), "--baseline", "bm25",
                             "--model", str(tiny_o1_dir), "--k", "0,2", "--max-new-tokens", "32", "--dtype", "fp32",
                             "--output", str(tmp_path / "r.json")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "O1_RETRIEVER_CACHE": str(tmp_path / "cache")})
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("o1: "):  # BM25's row is done; the model is loading
            proc.send_signal(signal.SIGTERM)
            break
    err = "".join(seen) + proc.stderr.read()
    assert proc.wait(timeout=60) == 143 and "terminated" in err, err  # 128 + SIGTERM, as shells report it
    kept = json.loads((tmp_path / "r.partial.json").read_text())
    assert [r["system"] for r in kept["results"]] == ["bm25"], err
    assert kept["meta"]["incomplete"] == "Terminated: terminated (SIGTERM)"
    assert not (tmp_path / "r.json").exists()


def test_the_command_list_names_every_metric_the_table_shows(capsys):
    """`o1-retriever --help` listed eval's metrics as nDCG@10, Recall@100 and MRR@10; the table and JSON hold MAP."""
    from o1_retriever.cli import main
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = " ".join(capsys.readouterr().out.split())
    assert "(nDCG@10, Recall@100, MRR@10, MAP)" in listed


def test_the_table_says_when_its_figures_are_over_fewer_queries_than_its_title(tmp_path, capsys, monkeypatch):
    """A query judged only "not relevant" counts in the title's "5 queries" but not in the means (as trec_eval
    leaves it out): the table said 5 queries for figures over 4."""
    from o1_retriever.cli import main
    from beir_fixtures import QRELS
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    toy = write_beir(tmp_path / "toy", qrels=QRELS + [("q5", "d6", 0)])
    assert main(["eval", "--dataset", str(toy), "--no-model", "--baseline", "bm25"]) == 0
    title = " ".join(capsys.readouterr().out.split())
    assert "toy / test: 5 queries, 12 docs (figures over the 4 with a relevant document)" in title


def test_qrels_with_bare_carriage_returns_say_so(tmp_path):
    """A qrels file saved with classic Mac line endings ('\\r' alone) read as one line: "expected 3 tab-separated
    columns, got 7", with no word of the line endings."""
    from o1_retriever.evaluation.data import read_qrels
    path = tmp_path / "test.tsv"
    path.write_bytes(b"query-id\tcorpus-id\tscore\rq1\td1\t1\rq2\td2\t1\r")
    with pytest.raises(ValueError, match=r"test.tsv:1: expected 3 tab-separated columns .*got 7 \(lines end in a "
                                         r"bare carriage return '\\r'\? save the file with '\\n' line endings\)"):
        read_qrels(path)


def test_qrels_whose_relevant_documents_are_all_missing_from_the_corpus_are_refused(tmp_path):
    """A corpus of another dataset (or another version of it) beside the qrels: a warning, then every system ran to
    score 0 on every metric. Some documents missing still only warn, as BEIR keeps them."""
    from o1_retriever.evaluation import load_beir
    other = write_beir(tmp_path / "other", qrels=[("q1", "x1", 1), ("q2", "x2", 2), ("q2", "d2", 0)])
    with pytest.raises(ValueError, match=r"test.tsv: none of the 2 document\(s\) judged relevant is in .*corpus.jsonl, "
                                         r"e.g. \['x1', 'x2'\]: a corpus of another dataset or version\?"):
        load_beir(other)
    some = write_beir(tmp_path / "some", qrels=[("q1", "x1", 1), ("q2", "d2", 1)])
    with pytest.warns(UserWarning, match="judges 1 document id"):
        assert load_beir(some).qrels == {"q1": {"x1": 1}, "q2": {"d2": 1}}
