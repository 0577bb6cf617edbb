"""The first line of a qrels file: column names are skipped, a judgement with a word for a score is refused. A first
line `q1 d1 one` was taken for a header and its judgement dropped without a word."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from beir_fixtures import write_beir  # noqa: E402

from o1_retriever.evaluation.data import load_beir, read_qrels  # noqa: E402


def _qrels(tmp_path, text: str) -> Path:
    path = tmp_path / "qrels.tsv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("first", ["q1\td1\tone", "MED-10\tdoc-5\trelevant", "4983\t17\tyes", "q1\td1\tscore",
                                   "test-env-1\tc67482ba-2019\thigh"])
def test_a_first_judgement_with_a_word_for_a_score_is_refused(tmp_path, first):
    score = first.split("\t")[2]
    with pytest.raises(ValueError, match=rf"qrels.tsv:1: score must be an integer, got '{score}'"):
        read_qrels(_qrels(tmp_path, f"{first}\nq2\td2\t1\n"))


@pytest.mark.parametrize("header", ["query-id\tcorpus-id\tscore", "qid\tdocid\trel", "query_id\tdoc_id\trelevance",
                                    "Query ID\tDoc ID\tLabel", "topic\tdocument\tjudgement", "qid\tpid\tgrade",
                                    "query.id\tcorpus.id\tscore", "requête\tdocument\tpertinence"])
def test_column_names_of_any_words_are_a_header(tmp_path, header):
    assert read_qrels(_qrels(tmp_path, f"{header}\nq1\td1\t1\n")) == {"q1": {"d1": 1}}


def test_a_header_naming_a_query_and_a_document_of_the_dataset_is_a_judgement(tmp_path):
    """Ids without digits read as column names; when they are this dataset's query and document ids, the line is a
    judgement with a bad score, and load_beir says so."""
    docs = {"alpha": ("A", "first passage"), "beta": ("B", "second passage")}
    queries = {"query": "a question", "other": "another question"}
    root = write_beir(tmp_path / "words", docs=docs, queries=queries, qrels=[("other", "beta", 1)])
    qrels = root / "qrels" / "test.tsv"
    qrels.write_text("query\talpha\tone\nother\tbeta\t1\n")
    with pytest.raises(ValueError, match=r"test.tsv:1: score must be an integer, got 'one'"):
        load_beir(root)
    qrels.write_text("query\tdocument\tscore\nother\tbeta\t1\n")  # "document" is no document: a header
    assert load_beir(root).qrels == {"other": {"beta": 1}}
