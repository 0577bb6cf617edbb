"""BEIR loader: the happy path, errors that name file and line, and the judged-doc-preserving subsample."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from beir_fixtures import DOCS, QRELS, write_beir  # noqa: E402

from o1_retriever.evaluation.data import load_beir, subsample_corpus  # noqa: E402


def test_loads_judged_queries_only(tmp_path):
    ds = load_beir(write_beir(tmp_path / "toy"), "test")
    assert ds.name == "toy" and ds.split == "test"
    assert len(ds.corpus) == len(DOCS)
    assert set(ds.queries) == {"q1", "q2", "q3", "q4"}  # q5 has no qrels
    assert ds.qrels["q3"] == {"d3": 1, "d10": 1}
    assert ds.qrels["q4"] == {"d10": 2}
    assert ds.doc_texts()[0] == "Insulin and diabetes insulin therapy lowers blood sugar in diabetes patients"
    assert len(ds.digest) == 16


def test_digest_changes_with_content(tmp_path):
    a = load_beir(write_beir(tmp_path / "a")).digest
    b = load_beir(write_beir(tmp_path / "b", qrels=QRELS[:-1])).digest
    assert a != b
    assert load_beir(write_beir(tmp_path / "c")).digest == a


def _break(path: Path, lineno: int, new_line: str):
    lines = path.read_text().splitlines()
    lines[lineno - 1] = new_line
    path.write_text("\n".join(lines) + "\n")


def test_bad_json_names_the_line(tmp_path):
    root = write_beir(tmp_path / "t")
    _break(root / "corpus.jsonl", 3, '{"_id": "d3", "title": oops}')
    with pytest.raises(ValueError, match=r"corpus.jsonl:3: not valid JSON"):
        load_beir(root)


def test_missing_field_and_duplicate_id(tmp_path):
    root = write_beir(tmp_path / "t")
    _break(root / "queries.jsonl", 2, json.dumps({"_id": "q2"}))
    with pytest.raises(ValueError, match=r"queries.jsonl:2: missing field 'text'"):
        load_beir(root)
    root = write_beir(tmp_path / "u")
    _break(root / "corpus.jsonl", 5, json.dumps({"_id": "d1", "title": "", "text": "again"}))
    with pytest.raises(ValueError, match=r"corpus.jsonl:5: duplicate _id 'd1'"):
        load_beir(root)


def test_bad_qrels_lines(tmp_path):
    root = write_beir(tmp_path / "t")
    _break(root / "qrels" / "test.tsv", 3, "q2 d2 1")  # spaces, not tabs
    with pytest.raises(ValueError, match=r"test.tsv:3: expected 3 tab-separated columns"):
        load_beir(root)
    root = write_beir(tmp_path / "u")
    _break(root / "qrels" / "test.tsv", 2, "q1\td1\trelevant")
    with pytest.raises(ValueError, match=r"test.tsv:2: score must be an integer, got 'relevant'"):
        load_beir(root)


def test_missing_files_and_splits(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_beir(tmp_path / "nowhere")
    root = write_beir(tmp_path / "t")
    with pytest.raises(FileNotFoundError, match=r"split 'dev'.*splits available: \['test'\]"):
        load_beir(root, "dev")
    (root / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="queries.jsonl is missing"):
        load_beir(root)


def test_missing_split_in_an_empty_or_absent_qrels_folder(tmp_path):
    root = write_beir(tmp_path / "t")
    (root / "qrels" / "test.tsv").unlink()  # the folder stays, empty
    with pytest.raises(FileNotFoundError) as empty:
        load_beir(root, "test")
    message = str(empty.value)
    assert "split 'test'" in message and "test.tsv is missing" in message
    assert "holds no .tsv file" in message and "no qrels/ folder" not in message and "no folder" not in message
    (root / "qrels").rmdir()
    with pytest.raises(FileNotFoundError, match=r"splits available: none \(no folder .*qrels\)"):
        load_beir(root, "test")


def test_qrels_for_unknown_query(tmp_path):
    root = write_beir(tmp_path / "t", qrels=QRELS + [("q99", "d1", 1)])
    with pytest.raises(ValueError, match=r"missing from .*queries.jsonl: \['q99'\]"):
        load_beir(root)


def test_judged_doc_absent_from_corpus_warns_and_stays_judged(tmp_path):
    root = write_beir(tmp_path / "t", qrels=QRELS + [("q1", "gone", 1)])
    with pytest.warns(UserWarning, match="absent from the corpus"):
        ds = load_beir(root)
    assert ds.qrels["q1"] == {"d1": 1, "gone": 1}


def test_subsample_keeps_every_judged_doc_and_is_seeded(tmp_path):
    ds = load_beir(write_beir(tmp_path / "t"))
    judged = ds.judged_doc_ids()
    small = subsample_corpus(ds, 6, seed=1)
    assert len(small.corpus) == 6 and judged <= set(small.corpus)
    assert small.subsample == {"max_docs": 6, "seed": 1, "docs_total": 12, "docs_kept": 6, "judged_docs_kept": 4}
    assert list(subsample_corpus(ds, 6, seed=1).corpus) == list(small.corpus)
    picks = {tuple(subsample_corpus(ds, 6, seed=s).corpus) for s in range(6)}
    assert len(picks) > 1  # the seed matters
    tiny = subsample_corpus(ds, 2)
    assert set(tiny.corpus) == judged  # judged docs are never dropped, even past max_docs
    assert ds.subsample is None  # the original is untouched
    with pytest.raises(ValueError, match="max_docs must be a positive int"):
        subsample_corpus(ds, 0)


def test_query_subsample_is_seeded_and_recorded(tmp_path):
    from o1_retriever.evaluation.data import subsample_queries
    ds = load_beir(write_beir(tmp_path / "t"))
    two = subsample_queries(ds, 2, seed=5)
    assert len(two.queries) == 2 and set(two.qrels) == set(two.queries)
    assert two.query_subsample == {"max_queries": 2, "seed": 5, "queries_total": 4, "queries_kept": 2}
    assert two.corpus is ds.corpus and ds.query_subsample is None
    assert subsample_queries(ds, 2, seed=5).queries == two.queries
    assert len({tuple(subsample_queries(ds, 2, seed=s).queries) for s in range(8)}) > 1
    assert len(subsample_queries(ds, 99).queries) == 4


def test_fractional_and_conflicting_scores_are_refused(tmp_path):
    """A grade of 0.5 became 0 (not relevant) and 1.7 became 1 without a word; a pair judged 1 then 0 kept
    whichever line came last."""
    root = write_beir(tmp_path / "f", qrels=QRELS + [("q1", "d4", "0.5")])
    with pytest.raises(ValueError, match=r"test.tsv:7: score must be an integer, got '0.5'"):
        load_beir(root)
    root = write_beir(tmp_path / "c", qrels=QRELS + [("q1", "d1", 0)])
    with pytest.raises(ValueError, match=r"test.tsv:7: \('q1', 'd1'\) judged again with score 0, after 1 on line 2"):
        load_beir(root)
    ds = load_beir(write_beir(tmp_path / "ok", qrels=QRELS + [("q1", "d1", "1.0"), ("q2", "d2", 1)]))
    assert ds.qrels["q1"] == {"d1": 1} and ds.qrels["q2"] == {"d2": 1}  # the same judgement twice is harmless
