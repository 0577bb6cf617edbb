"""Loaders: clear errors with file and line, counted warnings for skipped items, real BEIR data."""
import json

import pytest

from o1_retriever_training.data import labeled_pairs, load_beir, load_triplets


def test_beir_pairs_from_tiny_dataset(tiny_beir):
    pairs = labeled_pairs(load_beir(tiny_beir, "train"))
    assert [p.query_id for p in pairs] == [f"q{i}" for i in range(12)]
    assert pairs[3].positive_ids == ["d3"]


def test_missing_qrels_split_names_the_available_ones(tiny_beir):
    with pytest.raises(FileNotFoundError, match=r"split 'dev'.*splits available: \['train'\]"):
        load_beir(tiny_beir, "dev")


def test_positive_missing_from_corpus_and_unknown_query_are_counted(tiny_beir):
    with (tiny_beir / "qrels" / "train.tsv").open("a") as f:
        f.write("q0\tnope1\t1\nq1\tnope2\t1\nq_unknown\td0\t1\nq99\td5\t0\n")
    with pytest.warns(UserWarning) as record:
        pairs = labeled_pairs(load_beir(tiny_beir, "train"))
    messages = [str(w.message) for w in record]
    assert any("skipped 2 positives whose passage id is not in the corpus" in m and "q0->nope1" in m for m in messages)
    assert any("skipped 2 qrels whose query id is not in queries.jsonl" in m for m in messages)
    assert len(pairs) == 12  # q0 and q1 keep their valid positive


def test_query_without_any_usable_positive_is_skipped(tiny_beir):
    lines = (tiny_beir / "qrels" / "train.tsv").read_text().splitlines()
    lines = [ln if not ln.startswith("q2\t") else "q2\tghost\t1" for ln in lines]
    (tiny_beir / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as record:
        pairs = labeled_pairs(load_beir(tiny_beir, "train"))
    messages = [str(w.message) for w in record]
    assert "skipped 1 positives whose passage id is not in the corpus: q2->ghost" in messages
    assert "skipped 1 queries without any positive passage in the corpus: q2" in messages
    assert "q2" not in {p.query_id for p in pairs}


def test_malformed_lines_name_file_and_line(tmp_path, tiny_beir):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"query": "a", "pos": "b"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"t\.jsonl:2: not valid JSON"):
        load_triplets(path)
    path.write_text(json.dumps({"pos": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"t\.jsonl:1: missing field 'query'"):
        load_triplets(path)
    path.write_text(json.dumps({"query": "a", "pos": "b", "neg": [1, 2]}) + "\n")
    with pytest.raises(ValueError, match=r":1: field 'neg' must be a string or a list of strings"):
        load_triplets(path)
    (tiny_beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0 d0 1\n")
    with pytest.raises(ValueError, match=r"train\.tsv:2: expected 3 tab-separated columns"):
        load_beir(tiny_beir, "train")


def test_triplets_without_positive_are_counted(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"query": "a", "pos": "p", "neg": ["n"], "thought": "t"}, {"query": "b", "pos": []},
            {"query": "c", "pos": ["p2", "p3"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning, match="skipped 1 records .* without a positive passage: line 2"):
        records = load_triplets(path)
    assert [(r.query, r.pos, r.neg, r.thought, r.line) for r in records] == [
        ("a", ["p"], ["n"], "t", 1), ("c", ["p2", "p3"], [], None, 3)]


def test_real_scifact_train_split(shared_data):
    data = load_beir(shared_data / "scifact", "train")
    pairs = labeled_pairs(data)
    assert len(data.corpus) == 5183
    assert 700 < len(pairs) <= 809  # README: 809 train queries
    assert all(all(d in data.corpus for d in p.positive_ids) for p in pairs)
