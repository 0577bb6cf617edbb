import json
import os

import pytest
import torch

from o1_retriever.cli import main


def _model_args(tiny_o1_dir):
    return ["--model", str(tiny_o1_dir), "--dtype", "fp32", "--max-new-tokens", "4"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))


def test_help_lists_every_core_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for verb in ("demo", "index", "search", "bench", "eval"):
        assert verb in out
    for verb in ("demo", "index", "search", "bench"):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        assert "--model" in capsys.readouterr().out


def test_demo_prints_thoughts_and_hits(tiny_o1_dir, capsys):
    assert main(["demo", *_model_args(tiny_o1_dir), "--k", "2", "--top-k", "2"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert out.count("Query:") == 3 and "thought 2:" in out and "Indexed 32 passages" in out
    assert "Loading weights" not in captured.err  # transformers' per-model bar: noise for a local load


def test_the_removed_backend_flag_is_refused(tiny_o1_dir, capsys):
    with pytest.raises(SystemExit):
        main(["demo", *_model_args(tiny_o1_dir), "--backend", "transformers"])
    assert "unrecognized arguments: --backend" in capsys.readouterr().err


def test_index_then_search(tiny_o1_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": f"d{i}", "title": "T", "text": t, "year": 2000 + i})
                                for i, t in enumerate(["protein cell", "river ocean", "music city"])))
    db = tmp_path / "db"
    assert main(["index", *_model_args(tiny_o1_dir), "--corpus", str(corpus), "--db", str(db)]) == 0
    assert "indexed 3 passages" in capsys.readouterr().out
    assert main(["search", *_model_args(tiny_o1_dir), "river ocean", "--db", str(db), "--k", "1", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "thought 1:" in out and out.count(" d") >= 2
    # --hybrid: BM25 alone (W=0) puts the only keyword match first, whatever the random tiny model thinks.
    assert main(["search", *_model_args(tiny_o1_dir), "music", "--db", str(db), "--k", "0", "--top-k", "1",
                 "--hybrid", "0"]) == 0
    assert "d2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["search", *_model_args(tiny_o1_dir), "music", "--db", str(db), "--hybrid", "2"])
    assert "--hybrid takes the dense share W in [0, 1], got '2'" in capsys.readouterr().err
    # --where filters on the corpus' extra keys; --json prints what a script reads
    assert main(["search", *_model_args(tiny_o1_dir), "river ocean", "--db", str(db), "--k", "1", "--top-k", "3",
                 "--where", '{"year": {"$gte": 2001}}', "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["query"] == "river ocean" and len(found["thoughts"]) == 1
    assert sorted(h["id"] for h in found["hits"]) == ["d1", "d2"] and found["hits"][0]["metadata"]["year"] >= 2001
    with pytest.raises(SystemExit):
        main(["search", *_model_args(tiny_o1_dir), "music", "--db", str(db), "--where", "year>2000"])
    assert "--where takes a JSON object" in capsys.readouterr().err
    # a filter that admits nothing says so, with the keys there are, instead of an empty table
    assert main(["search", *_model_args(tiny_o1_dir), "music", "--db", str(db), "--where", '{"year": 1999}']) == 0
    captured = capsys.readouterr()
    assert ('no stored document matches --where {"year": 1999}; metadata keys in this collection: year'
            in captured.err) and "rank" not in captured.out
    assert main(["search", *_model_args(tiny_o1_dir), "music", "--db", str(db), "--where", '{"title": "T"}',
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["hits"] == [] and "the title is part of the text" in captured.err


@pytest.mark.parametrize("line, message", [
    ('{"_id": "a", "text": "ok"}\nnot json', "corpus.jsonl:2: not valid JSON"),
    ('{"_id": "a", "text": "ok"}\n{"text": "no id"}', "corpus.jsonl:2: missing required key '_id'"),
    ('{"_id": "a"}', "corpus.jsonl:1: missing required key 'text'"),
    ('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}', "duplicate _id"),
])
def test_bad_corpus_lines_name_the_line(tiny_o1_dir, tmp_path, capsys, line, message):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(line)
    db = tmp_path / "db"
    assert main(["index", *_model_args(tiny_o1_dir), "--corpus", str(corpus), "--db", str(db)]) == 2
    assert message in capsys.readouterr().err
    assert not db.exists()  # nothing was created before the corpus was validated


def test_index_into_a_chroma_server_without_ray_is_refused(tiny_o1_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "ok"}')
    db = tmp_path / "db"
    assert main(["index", *_model_args(tiny_o1_dir), "--corpus", str(corpus), "--db", str(db),
                 "--host", "localhost"]) == 2
    assert "--host localhost: loading into a Chroma server needs --ray" in capsys.readouterr().err
    assert not db.exists()  # was: indexed into --db, the --host silently ignored


def test_bench_writes_json(tiny_o1_dir, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tiny_o1_dir), "--queries", "2", "--one-by-one", "1", "--docs", "32",
                 "--max-new-tokens", "4", "--device", "cpu", "--paths-k", "1", "--paths-batch", "2",
                 "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["k"], r["batch_size"], r["queries"]) for r in result["paths"]] == [(1, 2, 2)]
    assert (result["meta"]["device"], result["meta"]["gpu"]) == ("cpu", None)
    assert result["meta"]["machine"]["cpu_count"] == os.cpu_count()  # the description eval and the load tests share
    assert set(result["queries"]) == {"fused", "two_pass_batched", "one_at_a_time", "cache_hit", "vector_cache_hit"}
    assert all(r["queries_per_s"] > 0 and r["thought_tokens_per_s"] >= 0 for r in result["queries"].values())
    # timed in the dtype "auto" picks on this machine (bf16 only where it is fast), and in fp32 beside it
    from o1_retriever.device import dtype_name, resolve_dtype
    auto = dtype_name(resolve_dtype("auto", torch.device("cpu")))
    assert result["meta"]["dtype"] == auto and set(result["encode_documents"]) == {auto, "fp32"}
    assert all(0 < r["tokens_per_s"] and 0 < r["fraction_of_peak"] for r in result["encode_documents"].values())
    assert all(v > 0 for v in result["matmul_tflops"].values())
    assert "bf16" in result["thinker_memory_mb"] and "4bit" in result["thinker_memory_mb"]
    assert set(result["load_seconds"]) == {"first_run", "later_runs"}
    assert all(r["import_s"] > 0 and r["from_pretrained_s"] > 0 for r in result["load_seconds"].values())


def test_bench_throughput_only_at_a_batch_size(tiny_o1_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tiny_o1_dir), "--queries", "20", "--one-by-one", "1", "--docs", "32",
                 "--max-new-tokens", "4", "--device", "cpu", "--batch-size", "8", "--throughput-only",
                 "--dtype", "fp32", "--paths-k", "1", "--paths-batch", "4", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["meta"]["dtype"] == "fp32" and set(result["encode_documents"]) == {"fp32"}  # as asked
    assert result["meta"]["batch_size"] == 8 and result["meta"]["queries"] == 20  # goes past the 16 built in
    from o1_retriever.bench import BENCH_QUERIES, bench_queries_text
    texts = bench_queries_text(40)  # distinct: the embedder thinks once per distinct query
    assert len(set(texts)) == 40 and texts[:16] == BENCH_QUERIES and texts[16].startswith(BENCH_QUERIES[0])
    assert result["queries"]["fused"]["queries"] == 20 and result["encode_documents"]["fp32"]["docs_per_s"] > 0
    assert result["load_seconds"] == {} and result["thinker_memory_mb"] == {}  # the fresh-process rows skipped
    out.unlink()
    with pytest.raises(SystemExit):  # refused by its parser, before any loading or timing
        main(["bench", "--model", str(tiny_o1_dir), "--device", "cpu", "--batch-size", "0", "--throughput-only",
              "--output", str(out)])
    assert "argument --batch-size: expected a positive int, got 0" in capsys.readouterr().err and not out.exists()


def test_bench_paths_reference_against_ours(tiny_o1_dir, tmp_path, capsys):
    """Both thinking paths on the same queries per (k, batch): times, tokens, the compute bound, and a plot."""
    out = tmp_path / "paths.json"
    assert main(["bench", "--model", str(tiny_o1_dir), "--max-new-tokens", "3", "--device", "cpu", "--dtype", "fp32",
                 "--paths-only", "--paths-k", "1,2", "--paths-batch", "2,5", "--paths-queries", "5", "--paths-repeats", "1",
                 "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "queries" not in result and "encode_documents" not in result  # --paths-only
    assert result["meta"]["max_new_tokens"] == 3
    assert [(r["k"], r["batch_size"], r["queries"]) for r in result["paths"]] == [(1, 2, 5), (1, 5, 5), (2, 2, 5),
                                                                                  (2, 5, 5)]
    for r in result["paths"]:
        for path in ("reference", "ours"):
            t = r[path]
            assert t["seconds"] > 0 and abs(t["ms_per_query"] - 1000 * t["seconds"] / 5) < 1e-6
            assert t["thought_tokens"] >= 0 and 0 < t["bound_seconds"] < t["seconds"]
            assert abs(t["fraction_of_bound"] - t["bound_seconds"] / t["seconds"]) < 1e-9
        assert abs(r["speedup"] - r["reference"]["seconds"] / r["ours"]["seconds"]) < 1e-9
    assert (tmp_path / "paths_paths.png").stat().st_size > 5000 and "reference" in capsys.readouterr().out
    for bad in (["--paths-k", "0"], ["--paths-batch", "1,x"]):
        with pytest.raises(SystemExit):
            main(["bench", "--model", str(tiny_o1_dir), "--paths-only", *bad, "--output", str(out)])
    assert "--paths-batch must be comma-separated ints >= 1 such as 32,128; got '1,x'" in capsys.readouterr().err


def test_reference_embed_matches_encode_queries_on_the_same_thoughts(tiny_o1_dir):
    """The reference path's second forward reads the same vectors the engine makes from the same thoughts. One row
    per forward on both sides: on this tiny random fp32 model the batch's shape alone (GEMM summation order) moves
    a vector by up to ~1e-3; padding itself is covered by test_embedder's batch-neighbour test."""
    import dataclasses

    import numpy as np

    from o1_retriever import O1Embedder
    from o1_retriever.speed import reference_embed, reference_think
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), thought_cache=False, fused=False, max_new_tokens=3,
                                     aggregation="mean")
    queries = ["why is the sky blue", "what is a cell"]
    thoughts = reference_think(emb, queries, 2)
    assert [len(ts) for ts in thoughts] == [2, 2]
    ours = np.stack([emb.encoder.encode(emb._query_texts([q, q], ts), emb.query_max_length, batch_size=1).mean(0)
                     for q, ts in zip(queries, thoughts)])
    np.testing.assert_allclose(reference_embed(emb, queries, thoughts, batch_size=1), ours, atol=1e-5)
    # mean_with_query (the joint model's own setting): the bare query's vector joins at its share
    emb.settings = dataclasses.replace(emb.settings, aggregation="mean_with_query", query_weight=0.5)
    bare = np.stack([emb.encode_queries(q, k=0) for q in queries])  # the engine's own bare-query vectors
    mixed = 0.5 * bare + 0.5 * ours
    mixed /= np.linalg.norm(mixed, axis=-1, keepdims=True)
    np.testing.assert_allclose(reference_embed(emb, queries, thoughts, batch_size=1), mixed, atol=1e-5)


def test_cli_thought_limit_defaults_to_the_models_own(tiny_o1_dir, tmp_path):
    import argparse
    import shutil

    from o1_retriever.cli_args import _load
    model = tmp_path / "model"
    shutil.copytree(tiny_o1_dir, model)
    (model / "o1_generation.json").write_text('{"max_new_tokens": 3, "temperature": 0.7, "aggregation": "mean_with_query"}')
    args = dict(model=str(model), device="cpu", dtype="fp32", quantization=None, seed=0)
    own = _load(argparse.Namespace(**args, max_new_tokens=None))
    assert (own.settings.max_new_tokens, own.settings.temperature, own.aggregation) == (3, 0.7, "mean_with_query")
    mine = _load(argparse.Namespace(**args, max_new_tokens=7, temperature=0.2, aggregation="mean"))
    assert (mine.settings.max_new_tokens, mine.settings.temperature, mine.aggregation) == (7, 0.2, "mean")
    weighted = _load(argparse.Namespace(**args, max_new_tokens=None, query_weight=0.9))
    assert (weighted.aggregation, weighted.query_weight) == ("mean_with_query", 0.9)
    plain = dict(args, model=str(tiny_o1_dir))
    assert _load(argparse.Namespace(**plain, max_new_tokens=None)).settings.max_new_tokens == 128


@pytest.mark.parametrize("size", ["0", "-5"])
def test_index_refuses_a_batch_size_below_one_before_loading(tmp_path, capsys, size):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "ok"}')
    with pytest.raises(SystemExit):
        main(["index", "--model", str(tmp_path / "no-model"), "--corpus", str(corpus), "--db", str(tmp_path / "db"),
              "--batch-size", size])
    assert f"argument --batch-size: expected a positive int, got {size}" in capsys.readouterr().err
    assert not (tmp_path / "db").exists()


def test_the_hits_table_cuts_passages_between_words_and_marks_the_cut():
    from o1_retriever.display import shorten
    text = "Insulin resistance raises the risk of type 2 diabetes."
    assert shorten(text, width=len(text)) == text  # fits: unchanged, no mark
    assert shorten(text, width=22) == "Insulin resistance…"  # "raises" would be cut to "r": dropped whole
    assert shorten(text, width=19) == "Insulin resistance…"  # the cut falls on the space after a whole word
    assert shorten("x" * 200, width=10) == "x" * 9 + "…"  # one long word: cut inside it, still marked
    assert all(len(shorten(text, width=w)) <= w for w in range(2, 60))


@pytest.mark.parametrize("verb, flag, default", [
    ("demo", "--k", "3"), ("demo", "--top-k", "3"), ("search", "--k", "3"), ("search", "--top-k", "10"),
    ("index", "--batch-size", "64"), ("bench", "--batch-size", "32"), ("bench", "--queries", "16"),
    ("bench", "--output", "bench.json, in the current directory")])
def test_help_states_each_flags_default(capsys, verb, flag, default):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    entry = help_text.split(f" {flag} ", 1)[1].split("  ")[0].split(" --")[0]
    assert f"default: {default})" in entry, entry
