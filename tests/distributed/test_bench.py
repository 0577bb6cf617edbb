"""`python -m o1_retriever.distributed bench`: the corpus it builds or takes, its refusals, and one real run on the tiny
model (one process, then a local Ray with 2 actors) whose report, vectors check and figure are read back."""
from __future__ import annotations

import json
import re

import pytest

from tests.distributed.corpora import embedded_text, make_documents, write_jsonl


def test_demo_variants_are_distinct_repeatable_demo_sentences():
    from o1_retriever.corpus import DEMO_CORPUS, read_corpus
    from o1_retriever.distributed.bench import demo_variants
    rows = demo_variants(700)
    assert len({r["_id"] for r in rows}) == len({r["text"] for r in rows}) == 700
    assert demo_variants(700) == rows and demo_variants(50) == rows[:50]
    passages = read_corpus(DEMO_CORPUS)
    sentences = {s for p in passages for s in re.split(r"(?<=[.!?])\s+", p.text.strip())}
    titles = {p.title for p in passages}
    for row in rows:
        parts = re.split(r"(?<=[.!?])\s+", row["text"])
        assert 2 <= len(parts) <= 3 and set(parts) <= sentences
        assert row["title"] in titles


def test_a_given_corpus_is_cut_to_its_first_rows_in_the_temporary_folder(tmp_path):
    from o1_retriever.distributed.bench import corpus_texts, prepare_corpus
    docs = make_documents(40)
    write_jsonl(tmp_path / "corpus.jsonl", docs)
    work = tmp_path / "work"
    work.mkdir()
    path, about = prepare_corpus(str(tmp_path / "corpus.jsonl"), 25, work)
    assert path.parent == work and "first 25 rows" in about["source"]
    ids, texts = corpus_texts(path, 7)
    assert ids == [d["_id"] for d in docs[:25]]
    assert texts == [embedded_text(d) for d in docs[:25]]  # what the actors embed: "title. text"
    whole, _ = prepare_corpus(str(tmp_path / "corpus.jsonl"), 0, work)
    assert whole == tmp_path / "corpus.jsonl"  # --docs 0: read in place, no copy
    with pytest.raises(ValueError, match="--docs 41: .* holds only 40 rows"):
        prepare_corpus(str(tmp_path / "corpus.jsonl"), 41, work)


def test_bad_options_are_refused_before_any_work(capsys):
    from o1_retriever.distributed.cli import main
    assert main(["bench", "--docs", "0"]) == 2
    assert "--docs 0 (the whole corpus) needs --corpus PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--actors", "0"])
    assert "expected a positive int, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_runs_one_process_and_ray_and_reports_them(tmp_path, tiny_o1_dir, monkeypatch):
    """A real run: a local Ray started (and timed) by the command, 2 CPU actors, 24 documents in shards of 4."""
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    pytest.importorskip("matplotlib")
    import os

    import ray

    from o1_retriever.distributed.cli import main
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))  # the workers inherit it
    assert not ray.is_initialized()
    out, png = tmp_path / "report.json", tmp_path / "report.png"
    assert main(["bench", "--model", str(tiny_o1_dir), "--dtype", "fp32", "--docs", "24", "--shard-size", "4",
                 "--actors", "2", "--output", str(out), "--png", str(png), "--workdir", str(tmp_path)]) == 0
    assert not ray.is_initialized()  # the Ray it started is shut down
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("o1-scale-out-")] == []  # temporaries gone
    report = json.loads(out.read_text())
    one, two = report["runs"]
    assert (one["ray"], two["ray"], two["actors"]) == (False, True, 2)
    assert report["corpus"]["docs"] == two["rows"] == 24 and two["shards"] == 6
    assert two["every_document_once"] and two["max_abs_diff_vs_one_process"] < 1e-5
    assert one["fingerprint"] == two["fingerprint"] == report["model"]["fingerprint"]
    share = max(1, (os.cpu_count() or 1) // 2)  # a local Ray has every CPU; each of 2 actors gets half
    assert two["actor"]["num_cpus"] == share and two["actor"]["torch_threads"] == share
    assert two["ray_start_s"] > 0 and two["ray_session"] == "started by this run"
    assert 0 < two["first_shard_s"] <= two["encode_s"]
    assert [p["when"] for p in one["passes"]] == ["before the Ray runs", "after the Ray runs"]
    mean = sum(p["encode_s"] for p in one["passes"]) / 2
    assert one["docs_per_s"] == pytest.approx(24 / mean, rel=0.02)
    assert two["docs_per_s"] == pytest.approx(24 / two["encode_s"], rel=0.01)
    ratios = two["overhead_vs_one_process"]
    # ratios are reported to 2 decimals: a small one (a slow Ray run on a busy machine) is off by up to 0.005
    assert ratios["encode"] == pytest.approx(one["docs_per_s"] / two["docs_per_s"], rel=0.02, abs=0.006)
    assert ratios["end_to_end"] == pytest.approx(two["end_to_end_s"] / one["end_to_end_s"], rel=0.02, abs=0.006)
    assert report["gpu"].startswith("not measured") or two["actor"]["num_gpus"] == 1
    assert len(report["load_average"]["start"]) == 3 and report["machine"]["cpu_count"] == os.cpu_count()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
