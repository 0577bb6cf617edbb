"""A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/) given where the Ray path takes a folder of input files
(`o1-retriever index --ray --corpus DIR`, as `eval --dataset DIR` takes it) had its queries.jsonl read as corpus rows
too: the queries were indexed as documents (or, where a query shares a document's id as in ArguAna, refused as a
duplicate id). It is refused, naming the file to pass. Needs no Ray: the input is planned before Ray starts."""
from __future__ import annotations

import json

import pytest

from o1_retriever.distributed.shards import input_files, plan_shards


def _beir(folder):
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": f"doc {i}"}) + "\n"
                                                 for i in range(3)))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "a query"}) + "\n")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\n")
    return folder


def test_a_beir_folder_is_refused_naming_its_corpus_file(tmp_path):
    folder = _beir(tmp_path / "scifact")
    for call in (lambda: input_files(folder), lambda: plan_shards(folder, 10, "documents")):
        with pytest.raises(ValueError, match=r"BEIR dataset folder.*queries\.jsonl.*corpus\.jsonl"):
            call()
    assert [f.name for f, _ in input_files(folder / "corpus.jsonl")] == ["corpus.jsonl"]
    inputs, shards = plan_shards(folder / "corpus.jsonl", 10, "documents")
    assert inputs[0]["rows"] == 3 and len(shards) == 1


def test_a_folder_of_corpus_parts_is_still_read_whole(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for n in range(2):
        (folder / f"corpus-{n}.jsonl").write_text(json.dumps({"_id": f"d{n}", "text": "t"}) + "\n")
    assert [f.name for f, _ in input_files(folder)] == ["corpus-0.jsonl", "corpus-1.jsonl"]
