"""A pretty-printed JSON file, or one JSON array, given where JSONL is read: the error says what JSONL is."""
from __future__ import annotations

import json

import pytest

from o1_retriever.corpus import read_corpus

PASSAGES = [{"_id": "a", "text": "first"}, {"_id": "b", "text": "second"}]


@pytest.mark.parametrize("text", [json.dumps(PASSAGES, indent=2), json.dumps(PASSAGES)],
                         ids=["pretty-printed", "one array"])
def test_json_that_is_not_one_object_per_line_says_what_jsonl_is(tmp_path, text):
    path = tmp_path / "corpus.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"corpus\.jsonl:1: .*a JSONL file holds one JSON object per line"):
        read_corpus(path)


def test_a_passage_with_no_text_and_a_null_title_is_refused(tmp_path):
    """str(None) is "None": the row passed the empty-passage check and embedded an empty string."""
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "", "title": null}\n')
    with pytest.raises(ValueError, match=r"corpus\.jsonl:2"):
        read_corpus(path)

