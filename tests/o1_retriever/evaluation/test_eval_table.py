"""Markdown table over results JSONs written by a real (BM25-only) `o1-retriever eval` run."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from beir_fixtures import write_beir  # noqa: E402

from o1_retriever.cli import main  # noqa: E402
from o1_retriever.evaluation.table import main as table_main, markdown_table  # noqa: E402


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    toy = write_beir(tmp_path / "toy")
    full, sub = tmp_path / "full.json", tmp_path / "sub.json"
    assert main(["eval", "--dataset", str(toy), "--split", "test", "--no-model", "--baseline", "bm25",
                 "--output", str(full)]) == 0
    assert main(["eval", "--dataset", str(toy), "--split", "test", "--no-model", "--baseline", "bm25",
                 "--max-queries", "2", "--output", str(sub)]) == 0
    return full, sub


def test_table_has_one_row_per_result_and_marks_subsamples(results, capsys):
    full, sub = results
    table = markdown_table([full, sub])
    lines = table.splitlines()
    assert len(lines) == 2 + 2  # header, rule, one BM25 row per file
    score = json.loads(full.read_text())["results"][0]["ndcg@10"]
    assert f"{score:.4f}" in lines[2] and "subsampled" not in lines[2]
    assert "subsampled: 2 q" in lines[3]
    assert table_main([str(full)]) == 0
    assert capsys.readouterr().out.strip() == markdown_table([full])


def test_table_rejects_a_file_that_is_not_results(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="bad.json is not an `o1-retriever eval` results JSON"):
        markdown_table([bad])


def test_a_glob_of_the_results_folder_skips_the_per_query_files(results):
    """eval writes r.per_query.json beside r.json: `table runs/*.json` (and choose, plot) read the results only."""
    full, sub = results
    everything = sorted(full.parent.glob("*.json"))
    assert full.with_name("full.per_query.json") in everything
    assert markdown_table(everything) == markdown_table(sorted([full, sub]))

