"""`self_select`: a composite's own best thoughts, judged by its own encoder, as records for training its thinker.

The real all-MiniLM-L6-v2 (PyPI package) judges; the thinker is the tiny random O1 Llama, so thinking is instant."""
from __future__ import annotations

import json
import shutil

import pytest

from o1_retriever import O1Embedder
from o1_retriever.composite import write_composite
from o1_retriever.default_model import MINILM_HUB_ID
from o1_retriever_training.self_select import SelfSelectArguments, main, self_select


@pytest.fixture
def composite(tmp_path, tiny_o1_dir, minilm_member, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))  # self_select reads and writes the thought cache
    shutil.copytree(tiny_o1_dir, tmp_path / "source" / "thinker")
    write_composite(tmp_path / "source", "thinker", MINILM_HUB_ID, max_new_tokens=6, aggregation="mean_with_query",
                    query_weight=0.5)
    return tmp_path / "source"


def test_records_hold_one_of_the_thinkers_own_thoughts_that_beats_the_bare_query(composite, tiny_beir, tmp_path):
    held_out = tmp_path / "dev"
    held_out.mkdir()
    (held_out / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": "held out"}) + "\n")
    out = tmp_path / "records.jsonl"
    result = self_select(SelfSelectArguments(model=str(composite), data=f"{tiny_beir}:train", output=str(out),
                                             exclude_dir=str(held_out), seeds=[0, 1], k=2, num_negatives=2))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert result.queries == 11 and result.kept == len(records) <= 11
    assert records and all(r["query_id"] != "q0" for r in records)
    queries = [r["query"] for r in records]
    per_seed = [O1Embedder.from_pretrained(str(composite), thought_cache=False, seed=s).think(queries, k=2)
                for s in (0, 1)]
    candidates = [a + b for a, b in zip(*per_seed)]
    for record, options in zip(records, candidates):
        assert record["thought"] in options          # the thinker's own sample, not someone else's text
        assert record["margin_gain"] > 0             # it helped this encoder more than the bare query did
        assert record["pos"] and len(record["neg"]) == 2 and not set(record["pos"]) & set(record["neg"])
    assert result.mean_gain == pytest.approx(sum(r["margin_gain"] for r in records) / len(records))

    strict = self_select(SelfSelectArguments(model=str(composite), data=f"{tiny_beir}:train",
                                             output=str(tmp_path / "none.jsonl"), seeds=[0], k=2, min_gain=10.0))
    assert strict.kept == 0 and (tmp_path / "none.jsonl").read_text() == ""


@pytest.mark.parametrize("flags, message", [(["--k", "0"], "k=0"), (["--seeds"], "seeds"), ([], "model")])
def test_bad_arguments_are_refused_by_name(composite, tiny_beir, tmp_path, flags, message):
    base = [] if message == "model" else ["--model", str(composite)]
    with pytest.raises(ValueError, match=message):
        main(base + ["--data", f"{tiny_beir}:train", "--output", str(tmp_path / "r.jsonl"), *flags])


def test_a_tilde_output_is_written_where_it_was_checked(composite, tiny_beir, tmp_path, monkeypatch):
    """--output=~/records.jsonl (a '~' the shell leaves after '=') was checked as the home path, then written to
    ./~/records.jsonl; it now goes to the home folder it was checked in."""
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    result = self_select(SelfSelectArguments(model=str(composite), data=f"{tiny_beir}:train",
                                             output="~/records.jsonl", seeds=[0], k=2, num_negatives=2))
    assert result.output == str(home / "records.jsonl") and (home / "records.jsonl").is_file()
    assert list(elsewhere.iterdir()) == []
