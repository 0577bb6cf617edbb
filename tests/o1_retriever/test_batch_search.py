"""`search --queries FILE`: many queries in one run, as JSON lines or a TREC run (tiny random model, real Chroma)."""
import json

import pytest

from o1_retriever.cli import main


def _model_args(tiny_o1_dir):
    return ["--model", str(tiny_o1_dir), "--dtype", "fp32", "--max-new-tokens", "4"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def db(tiny_o1_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    texts = ["protein cell", "river ocean", "music city", "bread oven", "red planet"]
    corpus.write_text("\n".join(json.dumps({"_id": f"d{i}", "text": t}) for i, t in enumerate(texts)))
    path = tmp_path / "db"
    assert main(["index", *_model_args(tiny_o1_dir), "--corpus", str(corpus), "--db", str(path)]) == 0
    capsys.readouterr()
    return path


def _queries(tmp_path, rows, name="queries.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_every_query_gets_a_json_line_in_file_order_with_the_hits_a_single_search_gives(tiny_o1_dir, db, tmp_path,
                                                                                         capsys):
    queries = _queries(tmp_path, [{"_id": "q2", "text": "river ocean"}, {"_id": 7, "text": "music"},
                                  {"_id": "q1", "text": "red planet"}])
    assert main(["search", *_model_args(tiny_o1_dir), "--queries", str(queries), "--db", str(db), "--k", "1",
                 "--top-k", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["query_id"] for r in rows] == ["q2", "7", "q1"]
    assert all(len(r["hits"]) == 3 and len(r["thoughts"]) == 1 for r in rows)
    # the same query alone ranks the same documents (seeded thoughts; the batch changes nothing)
    assert main(["search", *_model_args(tiny_o1_dir), "music", "--db", str(db), "--k", "1", "--top-k", "3",
                 "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert [h["id"] for h in single["hits"]] == [h["id"] for h in rows[1]["hits"]]


def test_trec_run_from_a_tsv_file(tiny_o1_dir, db, tmp_path, capsys):
    queries = tmp_path / "queries.tsv"
    queries.write_text("a\triver ocean\nb\tbread\n")
    assert main(["search", *_model_args(tiny_o1_dir), "--queries", str(queries), "--db", str(db), "--k", "0",
                 "--top-k", "4", "--trec"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 8 and all(len(f) == 6 and f[1] == "Q0" and f[5] == "o1-retriever" for f in lines)
    for qid in ("a", "b"):
        mine = [f for f in lines if f[0] == qid]
        assert [int(f[3]) for f in mine] == [1, 2, 3, 4]
        scores = [float(f[4]) for f in mine]
        assert scores == sorted(scores, reverse=True) and len({f[2] for f in mine}) == 4


@pytest.mark.parametrize("flags, rows, name, message", [
    (["some query"], [{"_id": "q", "text": "x"}], "queries.jsonl", "not both"),
    ([], None, None, "not neither"),
    (["q", "--trec"], None, None, "--trec writes a run for --queries FILE"),
    (["--json"], [{"_id": "q", "text": "x"}], "queries.jsonl", "drop --json"),
    ([], [{"_id": "q", "text": "x"}, {"_id": "q", "text": "y"}], "queries.jsonl", "duplicate query id 'q'"),
    ([], [{"_id": "q", "text": "  "}], "queries.jsonl", "query 'q' has no text"),
    ([], [{"text": "x"}], "queries.jsonl", "a query id must be a non-empty string"),
    ([], [{"_id": "q", "text": "x"}], "queries.csv", "expected a .jsonl file"),
    (["--trec"], [{"_id": "q 1", "text": "x"}], "queries.jsonl", "holds whitespace"),
])
def test_a_bad_queries_file_or_flag_is_refused_before_the_database_or_a_model(tmp_path, capsys, flags, rows, name,
                                                                              message):
    args = ["search", "--model", str(tmp_path / "no-model"), "--db", str(tmp_path / "no-db")]
    if rows is not None:
        args += ["--queries", str(_queries(tmp_path, rows, name))]
    assert main(args + flags) == 2
    err = capsys.readouterr().err
    assert message in err and "no-db" not in err and "no-model" not in err


def test_a_queries_path_that_is_a_folder_is_named_as_one(tmp_path, capsys):
    (tmp_path / "queries.tsv").mkdir()
    assert main(["search", "--db", str(tmp_path / "no-db"), "--queries", str(tmp_path / "queries.tsv")]) == 2
    assert "queries.tsv is a directory" in capsys.readouterr().err
