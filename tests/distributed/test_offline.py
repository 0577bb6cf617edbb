"""The distributed path's parts that need no Ray: shard planning and reading (equal to the project's own corpus
reader), bad input refused before any worker starts, and the message when Ray is not installed."""
from __future__ import annotations

import argparse
import json
import sys

import pytest

from tests.distributed.corpora import embedded_text, make_documents, write_jsonl
from tests.fixtures import free_port

pytest.importorskip("pyarrow")


def test_shards_read_back_what_read_corpus_reads(tmp_path):
    """Shards seek to byte offsets; together they hold exactly the corpus `o1-retriever index` reads, in order."""
    from o1_retriever.corpus import read_corpus
    from o1_retriever.distributed.shards import plan_shards, read_shard
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, make_documents(103))  # blank lines included
    inputs, shards = plan_shards(path, 10, "documents")
    assert [s.rows for s in shards] == [10] * 10 + [3]
    assert inputs == [{"name": "corpus.jsonl", "format": "jsonl", "bytes": path.stat().st_size, "rows": 103}]
    records = [r for s in shards for r in read_shard(s, "documents")]
    passages = read_corpus(path)
    assert [(r.id, r.text, r.metadata) for r in records] == [(p.id, p.full_text, p.metadata or None) for p in passages]
    assert plan_shards(path, 10, "documents")[1] == shards  # the same input and size: the same shards


def test_parquet_folder_shards_cross_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from o1_retriever.distributed.shards import plan_shards, read_shard
    docs = make_documents(70)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "_SUCCESS").write_text("")  # markers are skipped
    for n, part in enumerate((docs[:45], docs[45:])):
        rows = [{"id": d["_id"], "text": d["text"], "title": d.get("title"), "year": d.get("year")} for d in part]
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / f"{n}.parquet", row_group_size=7)
    inputs, shards = plan_shards(tmp_path / "in", 20, "documents")
    assert [(s.name, s.rows) for s in shards] == [("part-00000-000000.parquet", 20), ("part-00000-000001.parquet", 20),
                                                  ("part-00000-000002.parquet", 5), ("part-00001-000000.parquet", 20),
                                                  ("part-00001-000001.parquet", 5)]
    records = [r for s in shards for r in read_shard(s, "documents")]
    assert [r.id for r in records] == [d["_id"] for d in docs]
    assert [r.text for r in records] == [embedded_text(d) for d in docs]
    assert [r.metadata for r in records] == [{"year": d["year"]} if "year" in d else None for d in docs]


@pytest.mark.parametrize("line, message", [
    ('{"_id": "x", "text": }', r"corpus.jsonl:4: not valid JSON"),
    ('{"_id": "x"}', r"corpus.jsonl:4: needs an id \('_id' or 'id'\) and 'text'"),
    ('{"_id": true, "text": "t"}', r"corpus.jsonl:4: '_id' must be a non-empty string"),
    ('{"_id": "a", "text": "again"}', r"corpus.jsonl:4: duplicate id 'a'"),
    ('["a list"]', r"corpus.jsonl:4: expected a JSON object"),
])
def test_a_bad_row_is_refused_before_any_worker_with_its_line(tmp_path, line, message):
    from o1_retriever.distributed import encode_corpus
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "one"}\n\n{"_id": "b", "text": "two"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):  # raised while planning: no Ray is started for it
        encode_corpus(path, tmp_path / "vectors", "unused-model")
    assert not (tmp_path / "vectors").exists()


def test_inputs_that_are_not_a_corpus(tmp_path):
    from o1_retriever.distributed.shards import plan_shards
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plan_shards(tmp_path / "missing.jsonl", 10, "documents")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .jsonl or .parquet file"):
        plan_shards(tmp_path / "empty", 10, "documents")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="bad.parquet: not a readable Parquet file"):
        plan_shards(tmp_path / "bad.parquet", 10, "documents")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(ValueError, match="holds no rows"):
        plan_shards(tmp_path / "blank.jsonl", 10, "documents")


def test_without_ray_the_error_says_how_to_install(tmp_path, monkeypatch, capsys):
    """`import ray` failing (as where it is not installed): the package still imports; running says what to do."""
    monkeypatch.setitem(sys.modules, "ray", None)
    import o1_retriever.distributed as distributed
    from o1_retriever.distributed.cli import main
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, make_documents(5))
    with pytest.raises(ImportError, match=r'pip install "o1-retriever\[ray\]"'):
        distributed.encode_corpus(path, tmp_path / "vectors")
    assert main(["encode", str(path), "--vectors", str(tmp_path / "v2")]) == 2
    assert 'pip install "o1-retriever[ray]"' in capsys.readouterr().err


def test_without_pyarrow_load_says_how_to_install(tmp_path, monkeypatch, capsys):
    """`load` needs pyarrow, not Ray: where it is missing, the pip command, before a model loads or a store opens."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    from o1_retriever.distributed import load_into_chroma, read_vectors
    from o1_retriever.distributed.cli import main
    with pytest.raises(ImportError, match=r'needs pyarrow .*pip install "o1-retriever\[ray\]"'):
        load_into_chroma(tmp_path / "vectors", path=tmp_path / "db")
    with pytest.raises(ImportError, match=r'needs pyarrow .*pip install "o1-retriever\[ray\]"'):
        read_vectors(tmp_path / "vectors")
    assert main(["load", "--vectors", str(tmp_path / "vectors"), "--db", str(tmp_path / "db")]) == 2
    assert 'pip install "o1-retriever[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "db").exists()


def test_ray_arguments_wire_into_an_existing_parser():
    from o1_retriever.distributed.cli import add_ray_arguments, eval_options, run_index_ray
    index = argparse.ArgumentParser()
    index.add_argument("--corpus")
    index.add_argument("--db")
    add_ray_arguments(index)
    args = index.parse_args(["--corpus", "c.jsonl", "--ray", "--actors", "3", "--host", "h", "--db", "d"])
    assert (args.ray, args.actors, args.host, args.port, args.address) == (True, 3, "h", 8000, None)
    with pytest.raises(ValueError, match="exactly one of --db DIR"):
        run_index_ray(args)  # refused before Ray starts
    evaluation = argparse.ArgumentParser()
    add_ray_arguments(evaluation, "eval")
    assert eval_options(evaluation.parse_args([])) == {}
    assert eval_options(evaluation.parse_args(["--ray", "--address", "auto", "--cpu-actors"])) == \
        {"address": "auto", "actors": None, "use_gpus": False}
    with pytest.raises(SystemExit):
        evaluation.parse_args(["--ray", "--actors", "0"])
    with pytest.raises(ValueError, match="command='search' is not supported"):
        add_ray_arguments(argparse.ArgumentParser(), "search")


def test_a_vectors_folder_is_not_reused_for_other_inputs(tmp_path):
    from o1_retriever.distributed import encode_corpus
    from o1_retriever.distributed.shards import MANIFEST
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, make_documents(20))
    out = tmp_path / "vectors"
    out.mkdir()
    (out / "part-00000-000000.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="holds shards but no o1_vectors.json"):
        encode_corpus(path, out)
    (out / MANIFEST).write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="not an o1-retriever vectors manifest"):
        encode_corpus(path, out)


def test_the_main_cli_routes_index_and_eval_to_ray():
    """`o1-retriever index --ray` and `eval --ray` reach the distributed path; refusals come before any model loads."""
    from o1_retriever.cli import build_parser
    from o1_retriever.commands import run_index
    from o1_retriever.evaluation.cli import config_from_args
    parser = build_parser()
    args = parser.parse_args(["index", "--corpus", "c.jsonl", "--ray", "--actors", "2", "--host", "h", "--db", "d"])
    assert args.func is run_index and args.ray and args.actors == 2
    with pytest.raises(ValueError, match="exactly one of --db DIR"):
        run_index(args)
    with pytest.raises(ValueError, match="--db DIR is required"):
        run_index(parser.parse_args(["index", "--corpus", "c.jsonl"]))
    config = config_from_args(parser.parse_args(["eval", "--dataset", "d", "--ray", "--actors", "1", "--cpu-actors"]))
    assert config.ray == {"address": None, "actors": 1, "use_gpus": False}
    assert config_from_args(parser.parse_args(["eval", "--dataset", "d"])).ray is None
    with pytest.raises(ValueError, match="--ray embeds the corpus for --index exact"):
        config_from_args(parser.parse_args(["eval", "--dataset", "d", "--ray", "--index", "chroma"]))


@pytest.mark.parametrize("inside", [".", "vectors", "deeper/vectors"])
def test_an_output_folder_inside_the_input_folder_is_refused(tmp_path, inside):
    """Its shards and o1_vectors.json would be the next run's input: a re-run (a resume) failed reading them."""
    from o1_retriever.distributed import encode_corpus
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_jsonl(folder / "docs.jsonl", make_documents(5))
    with pytest.raises(ValueError, match=r"is inside the input folder .*; pass one outside it, e.g. '.*corpus"
                                         r"\.o1-vectors'"):
        encode_corpus(folder, folder / inside, "unused-model")
    assert sorted(p.name for p in folder.rglob("*")) == ["docs.jsonl"]


def test_index_ray_refuses_what_would_fail_the_load_before_encoding(tmp_path):
    """`o1-retriever index --ray`: a --device (actors choose theirs), a --db that is a file or a Chroma server that
    does not answer failed only after the whole corpus was encoded. (--batch-size below 1: refused by its parser.)"""
    from o1_retriever.cli import build_parser
    from o1_retriever.commands import run_index
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, make_documents(5))
    port = free_port()  # nothing listens there
    base = ["index", "--corpus", str(corpus), "--ray", "--vectors", str(tmp_path / "vectors"), "--model", "unused"]
    (tmp_path / "file").write_text("not a database")
    cases = [(["--db", str(tmp_path / "db"), "--device", "cuda:1"], r"--device cuda:1 does not apply with --ray"),
             (["--db", str(tmp_path / "file")], r"is a file; a Chroma database is a directory"),
             (["--host", "127.0.0.1", "--port", str(port)], rf"could not connect to a Chroma server at 127.0.0.1:{port}")]
    for extra, message in cases:
        with pytest.raises(ValueError, match=message):
            run_index(build_parser().parse_args(base + extra))
    assert not (tmp_path / "vectors").exists() and not (tmp_path / "db").exists()  # the load creates --db, not a check


def test_a_ray_address_where_no_cluster_runs_is_a_clear_error(tmp_path, monkeypatch, capsys):
    """`--address auto` with no cluster started: one line naming the address and what to do (was Ray's traceback)."""
    from pathlib import Path

    ray = pytest.importorskip("ray")
    if ray.is_initialized() or Path("/tmp/ray/ray_current_cluster").exists():
        pytest.skip("a Ray cluster is running on this machine: address='auto' would join it")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    from o1_retriever.distributed.cli import main
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, make_documents(3))
    assert main(["encode", str(path), "--vectors", str(tmp_path / "vectors"), "--address", "auto"]) == 2
    err = capsys.readouterr().err
    assert "no Ray cluster answers at address='auto'" in err and "ray start --head" in err
    assert not ray.is_initialized()


def test_a_run_recorded_with_a_relative_model_path_resumes(tmp_path, monkeypatch, tiny_o1_dir):
    """Manifests written before local models were recorded by absolute path hold the path as given ("./model"):
    resuming such a run with the same model was refused as "another run (model differ ...)"."""
    import shutil

    from o1_retriever.distributed.encode import _plan
    from o1_retriever.distributed.shards import MANIFEST
    from o1_retriever.distributed.workers import ModelSpec
    shutil.copytree(tiny_o1_dir, tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    corpus, out = tmp_path / "corpus.jsonl", tmp_path / "vectors"
    write_jsonl(corpus, make_documents(5))
    old = _plan("documents", corpus, out, ModelSpec("./model"), 0, 4096)
    old["model"]["model"] = "./model"  # as the earlier code recorded it
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps(old))
    (out / "part-00000-000000.parquet").write_bytes(b"")
    assert _plan("documents", corpus, out, ModelSpec("model/"), 0, 4096)["model"]["model"] == str(tmp_path / "model")
