"""Ray Data end to end on a local Ray (2 CPUs, one session for the module): encoding equals one process, Parquet
round-trips, a killed actor loses and duplicates nothing, a re-run writes only what is missing, the Chroma load
(PersistentClient and a real `chroma run` server) ends with one record per id, queries think, eval embeds."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import chroma_server
from tests.distributed.corpora import embedded_text, make_documents, write_jsonl

pytest.importorskip("ray")
pytest.importorskip("ray.data")


SHARDS, SHARD_SIZE = 60, 5  # 300 documents: many small shards, so an actor can be killed while most are to do


@pytest.fixture(scope="module")
def encoded(ray_session, tmp_path_factory, corpus_file, tiny_o1_dir, model_options):
    """The corpus encoded once by 2 actors, one of them killed (SIGKILL of its worker process) once the first shard
    is written; shared by the tests that read the output. Returns (folder, result, what was killed when)."""
    import psutil

    from o1_retriever.distributed import encode_corpus
    out = tmp_path_factory.mktemp("vectors") / "corpus.o1-vectors"
    outcome = {}

    def run():
        try:
            outcome["result"] = encode_corpus(corpus_file, out, str(tiny_o1_dir), actors=2, shard_size=SHARD_SIZE,
                                              **model_options)
        except BaseException as error:  # re-raised below, in the test's thread
            outcome["error"] = error

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 300
    while not list(out.glob("part-*.parquet")) and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    actors = [p for p in psutil.process_iter(["cmdline"]) if "ShardWriter" in " ".join(p.info["cmdline"] or [])]
    killed = {"alive": runner.is_alive(), "pid": actors[0].pid if actors else None,
              "written_before": len(list(out.glob("part-*.parquet")))}
    if actors:
        os.kill(actors[0].pid, signal.SIGKILL)
    runner.join(timeout=300)
    if "error" in outcome:
        raise outcome["error"]
    return out, outcome["result"], killed


def _by_id(ids, vectors) -> tuple[list[str], np.ndarray]:
    order = np.argsort(ids)
    return [ids[i] for i in order], np.asarray(vectors)[order]


def test_two_actors_match_one_process_and_parquet_round_trips(encoded, documents, tiny_embedder):
    """Despite the actor killed mid-run (next test), the vectors are those of one process, and the files hold them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from o1_retriever.distributed import read_vectors
    from o1_retriever.distributed.shards import text_hash
    out, result, _ = encoded
    assert (result.shards, result.written, result.rows, result.dim) == (SHARDS, SHARDS, 300, tiny_embedder.dim)
    assert result.fingerprint == tiny_embedder.fingerprint
    expected = tiny_embedder.encode_documents([embedded_text(d) for d in documents])
    want_ids, want = _by_id([d["_id"] for d in documents], expected)
    got = read_vectors(out)
    got_ids, vectors = _by_id(got["ids"], got["vectors"])
    assert got_ids == want_ids  # every document once
    np.testing.assert_allclose(vectors, want, rtol=0, atol=1e-5)
    # round trip: the files themselves, read with plain pyarrow, hold the same rows, types and hashes
    tables = [pq.read_table(p) for p in sorted(out.glob("part-*.parquet"))]
    assert len(tables) == SHARDS and {t.num_rows for t in tables} == {SHARD_SIZE}
    assert tables[0].schema.field("vector").type == pa.list_(pa.float32(), tiny_embedder.dim)
    table = pa.concat_tables(tables)
    assert table["id"].to_pylist() == got["ids"]
    np.testing.assert_array_equal(np.stack(table["vector"].to_numpy(zero_copy_only=False)), got["vectors"])
    texts = {d["_id"]: embedded_text(d) for d in documents}
    assert table["text_hash"].to_pylist() == [text_hash(texts[i]) for i in got["ids"]]
    manifest = json.loads((out / "o1_vectors.json").read_text())
    assert manifest["complete"] and manifest["rows"] == 300 and manifest["dtype"] == "fp32"


def test_a_killed_actor_loses_and_duplicates_nothing(encoded, documents):
    """The fixture's run lost an actor (SIGKILL) mid-run: Ray restarted it and retried its shard; every shard is
    there once, with each document exactly once (the vectors are checked against one process above)."""
    import psutil

    from o1_retriever.distributed import read_vectors
    out, result, killed = encoded
    assert killed["alive"] and killed["pid"], "the run ended before an actor could be killed"
    assert killed["written_before"] < SHARDS  # the kill came mid-run
    assert not psutil.pid_exists(killed["pid"]) or psutil.Process(killed["pid"]).status() == psutil.STATUS_ZOMBIE
    assert (result.shards, result.rows) == (SHARDS, 300)
    assert sorted(out.glob("part-*.parquet")) == sorted(out / f"part-00000-{i:06d}.parquet" for i in range(SHARDS))
    ids = read_vectors(out)["ids"]
    assert len(ids) == len(set(ids)) == 300 and set(ids) == {d["_id"] for d in documents}


def test_load_into_persistent_chroma_one_record_per_id_and_resumes(encoded, documents, tmp_path, tiny_embedder):
    import chromadb

    import o1_retriever.chroma  # noqa: F401  (registers the O1 function, as any process reading the collection)
    from o1_retriever.distributed import load_into_chroma, read_vectors
    from o1_retriever.index import O1Index
    out, _, _ = encoded
    db = tmp_path / "db"
    loaded = load_into_chroma(out, path=db, collection="docs")  # the model is loaded from what the shards record
    assert (loaded.stored, loaded.skipped, loaded.count) == (300, 0, 300)
    client = chromadb.PersistentClient(path=str(db))
    collection = client.get_collection("docs")  # plain Chroma opens it with the O1 function it records
    stored = collection.get(include=["documents", "metadatas", "embeddings"])
    assert sorted(stored["ids"]) == sorted(d["_id"] for d in documents)
    rows = {d["_id"]: d for d in documents}
    vectors = dict(zip(*(lambda v: (v["ids"], v["vectors"]))(read_vectors(out))))
    for i, text, meta, vector in zip(stored["ids"], stored["documents"], stored["metadatas"], stored["embeddings"]):
        assert text == embedded_text(rows[i])
        assert (meta or {}) == {k: v for k, v in rows[i].items() if k not in ("_id", "text", "title")}
        np.testing.assert_allclose(vector, vectors[i], atol=1e-6)
    assert collection.query(query_texts=["protein cell gene"], n_results=3)["ids"][0]  # thinks, then searches
    index = O1Index(tiny_embedder, path=db, collection="docs", create=False)
    assert not index.incomplete and len(index.search("insulin diabetes", top_k=5, k=0)) == 5
    # Resume: records already there are skipped; ones lost (here: deleted) are stored again, once.
    collection.delete(ids=[d["_id"] for d in documents[:40]])
    again = load_into_chroma(out, path=db, collection="docs", embedder=tiny_embedder)
    assert (again.stored, again.skipped, again.count) == (40, 260, 300)


def test_a_run_finishing_while_a_load_writes_leaves_the_load_s_mark(encoded, tmp_path, tiny_embedder, monkeypatch):
    """`load_into_chroma` and an `add_resumable` run at once in one process: the run that finishes first must not
    clear the mark of the load still writing (the load's mark once read as a run that had died)."""
    from o1_retriever.distributed import load_into_chroma
    from o1_retriever.index import O1Index
    out, _, _ = encoded
    db, seen = tmp_path / "db", []
    replace = O1Index._replace

    def replace_then_run_another_writer(index, *args, **kwargs):
        replace(index, *args, **kwargs)
        if not seen:  # once, in the middle of the load (the other writer's own write comes here too)
            seen.append("started")
            other = O1Index(tiny_embedder, path=db, collection="docs", create=False)
            other.add_resumable(["extra"], ["a passage another writer adds"])
            seen.append(other.incomplete)

    monkeypatch.setattr(O1Index, "_replace", replace_then_run_another_writer)
    loaded = load_into_chroma(out, path=db, collection="docs", embedder=tiny_embedder, batch_size=100)
    assert seen == ["started", True], "the load was still writing, and its collection read as complete"
    assert loaded.count == 301 and not O1Index(tiny_embedder, path=db, collection="docs", create=False).incomplete


def test_load_into_a_chroma_server(encoded, documents, tmp_path, tiny_embedder):
    """A real Chroma server (`chroma run`) on loopback, written through HttpClient."""
    import chromadb

    from o1_retriever.distributed import load_into_chroma
    with chroma_server(tmp_path / "server") as address:
        out, _, _ = encoded
        loaded = load_into_chroma(out, **address, collection="served", embedder=tiny_embedder)
        assert (loaded.stored, loaded.count) == (300, 300)
        collection = chromadb.HttpClient(**address).get_collection("served")
        assert sorted(collection.get(include=[])["ids"]) == sorted(d["_id"] for d in documents)


def test_queries_think_on_actors_with_a_thought_cache_per_worker(ray_session, tmp_path, tiny_o1_dir, tiny_embedder):
    from o1_retriever.cache import ThoughtCache
    from o1_retriever.distributed import encode_query_file, read_vectors
    queries = [{"_id": f"q{i}", "text": d["text"]} for i, d in enumerate(make_documents(24, seed=5))]
    path = tmp_path / "queries.jsonl"
    write_jsonl(path, queries)
    cache = tmp_path / "worker_thoughts.sqlite"
    result = encode_query_file(path, tmp_path / "qvectors", str(tiny_o1_dir), k=2, actors=1, shard_size=8,
                               dtype="fp32", thought_cache=str(cache), max_new_tokens=8)
    assert (result.shards, result.rows) == (3, 24)
    got = read_vectors(tmp_path / "qvectors")
    want = tiny_embedder.encode_queries([q["text"] for q in queries], k=2, return_thoughts=True)
    order = [got["ids"].index(q["_id"]) for q in queries]
    assert [got["thoughts"][i] for i in order] == want.thoughts  # same seed: the same thoughts as one process
    np.testing.assert_allclose(got["vectors"][order], want.embeddings, rtol=0, atol=1e-5)
    assert ThoughtCache(cache).info()["entries"] == 24


def test_eval_corpus_embeddings_on_ray_equal_and_share_the_cache(ray_session, tmp_path, documents, tiny_embedder):
    from o1_retriever.distributed import ray_corpus_embeddings
    from o1_retriever.evaluation.search import corpus_embeddings
    ids, texts = [d["_id"] for d in documents], [embedded_text(d) for d in documents]
    vectors, cached = ray_corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path, actors=1)
    assert not cached
    np.testing.assert_allclose(vectors, tiny_embedder.encode_documents(texts), rtol=0, atol=1e-5)
    again, cached = corpus_embeddings(tiny_embedder, ids, texts, root=tmp_path)  # the run without Ray reuses it
    assert cached and np.array_equal(again, vectors)


def test_cli_index_from_parquet_and_a_rerun_does_only_what_is_missing(ray_session, tmp_path, documents, tiny_o1_dir,
                                                                      tiny_embedder, capsys):
    """`index` on a folder of Parquet files; run again it writes nothing; after an interrupted run (shards missing,
    one cut short, a temporary file left, records lost from the store) it writes only what is missing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from o1_retriever.distributed import read_vectors
    from o1_retriever.distributed.cli import main
    from o1_retriever.index import O1Index
    folder = tmp_path / "corpus"
    folder.mkdir()
    for n, part in enumerate((documents[:120], documents[120:])):  # 3 + 4 shards of <= 50; small row groups
        rows = [{"id": d["_id"], "text": d["text"], "title": d.get("title") or ""} for d in part]
        pq.write_table(pa.Table.from_pylist(rows), folder / f"part-{n}.parquet", row_group_size=32)
    db, vectors = tmp_path / "db", tmp_path / "corpus.o1-vectors"  # the vectors' default place: beside the corpus
    argv = ["index", "--corpus", str(folder), "--db", str(db), "--model", str(tiny_o1_dir), "--dtype", "fp32",
            "--actors", "1", "--shard-size", "50", "--collection", "cli"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "encoded 300 documents into 7 shard(s)" in printed and "300 total" in printed
    index = O1Index(tiny_embedder, path=db, collection="cli", create=False)
    assert len(index) == 300
    hit = index.search(embedded_text(documents[0]), top_k=1, k=0)[0]  # a document finds itself
    assert hit.id == documents[0]["_id"]
    first = read_vectors(vectors)

    assert main(argv) == 0  # nothing missing: nothing encoded (no actor started), nothing stored
    printed = capsys.readouterr().out
    assert "(0 written by this run, 7 already there)" in printed and "(300 already stored, skipped)" in printed

    shards = sorted(vectors.glob("part-*.parquet"))
    for gone in shards[1:3]:
        gone.unlink()
    data = shards[4].read_bytes()
    shards[4].write_bytes(data[: len(data) // 2])
    (vectors / f".{shards[5].name}.deadbeef.tmp").write_bytes(b"half a shard")
    kept = {p.name: p.stat().st_mtime_ns for p in (shards[0], shards[3], shards[5], shards[6])}
    index.collection.delete(ids=[d["_id"] for d in documents[:40]])
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "(3 written by this run, 4 already there)" in printed
    assert "indexed 40 passages" in printed and "(260 already stored, skipped)" in printed and "300 total" in printed
    assert {p.name: p.stat().st_mtime_ns for p in vectors.glob("part-*.parquet") if p.name in kept} == kept
    assert not list(vectors.glob(".*.tmp"))
    again = read_vectors(vectors)
    assert again["ids"] == first["ids"]
    np.testing.assert_array_equal(again["vectors"], first["vectors"])


def test_a_model_the_workers_cannot_load_is_a_clear_error(ray_session, tmp_path, tiny_o1_dir):
    """The actors load the model, not the driver: a folder that holds no model fails with the loader's message, not a
    hang or a traceback. The failed run wrote no shard, so the same folder takes the corrected command (it was
    refused as another run's). A missing path or a bad dtype is refused before Ray (test_audit_distributed7)."""
    from o1_retriever.distributed import encode_corpus
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, make_documents(8))
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ValueError, match=r"the actors could not load the model \(ValueError: model directory .*"
                                         r"not-a-model' holds no model"):
        encode_corpus(corpus, tmp_path / "vectors", str(tmp_path / "not-a-model"), actors=1, shard_size=100)
    result = encode_corpus(corpus, tmp_path / "vectors", str(tiny_o1_dir), actors=1, shard_size=4, dtype="fp32",
                           thought_cache=False)
    assert (result.rows, result.shards, result.written) == (8, 2, 2)
    manifest = json.loads((tmp_path / "vectors" / "o1_vectors.json").read_text())
    assert manifest["shard_size"] == 4 and manifest["model"]["options"]["dtype"] == "fp32" and manifest["complete"]


def test_refusals_before_any_work(ray_session, encoded, tmp_path, tiny_o1_dir, model_options):
    from o1_retriever.distributed import encode_corpus, load_into_chroma
    from o1_retriever.distributed.runtime import actor_resources
    out, _, _ = encoded
    corpus = json.loads((out / "o1_vectors.json").read_text())["source"]
    with pytest.raises(ValueError, match="shard_size differ"):
        encode_corpus(corpus, out, str(tiny_o1_dir), shard_size=30, **model_options)
    # where the workers keep their thoughts is no part of the vectors: the folder is reused, nothing is written
    assert encode_corpus(corpus, out, str(tiny_o1_dir), shard_size=SHARD_SIZE, dtype="fp32",
                         thought_cache=str(tmp_path / "elsewhere.sqlite")).written == 0
    with pytest.raises(ValueError, match="model differ"):
        encode_corpus(corpus, out, str(tiny_o1_dir), shard_size=SHARD_SIZE, dtype="bf16", thought_cache=False)
    changed = tmp_path / "corpus.jsonl"
    changed.write_bytes(Path(corpus).read_bytes() + b'{"_id": "new", "text": "one more"}\n')
    with pytest.raises(ValueError, match="inputs differ: 1 file"):
        encode_corpus(changed, out, str(tiny_o1_dir), shard_size=SHARD_SIZE, **model_options)
    with pytest.raises(ValueError, match="actors=3 CPU actors need a CPU each; this Ray cluster has 2"):
        actor_resources(3)
    with pytest.raises(ValueError, match="no GPU"):
        actor_resources(1, use_gpus=True)
    with pytest.raises(ValueError, match="exactly one of path"):
        load_into_chroma(out, path=tmp_path / "db", host="127.0.0.1")
    with pytest.raises(TypeError, match="unknown model option"):
        encode_corpus(corpus, tmp_path / "v", str(tiny_o1_dir), device="cuda")


def test_a_small_run_prints_nothing_of_ray_datas_progress(ray_session, tmp_path, tiny_o1_dir):
    """Below the threshold nothing draws a bar; Ray Data's own progress, which it logs every few seconds where stdout
    is not a terminal, stays off too (the dataset must be created while it is off)."""
    import logging

    from o1_retriever.distributed import encode_corpus
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, make_documents(12))
    logged = []  # what Ray Data's console handler would print
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("ray.data").addHandler(handler)
    try:
        result = encode_corpus(path, tmp_path / "vectors", str(tiny_o1_dir), actors=1, shard_size=6, dtype="fp32",
                               thought_cache=False)
    finally:
        logging.getLogger("ray.data").removeHandler(handler)
    assert (result.rows, result.written) == (12, 2)
    assert logged  # Ray Data logs its run (start, plan): the handler sees it
    progress = [m[:60] for m in logged if "Running Dataset" in m or "Total Progress" in m or "Progress bars" in m]
    assert progress == []


def test_a_relative_model_path_names_the_same_model_everywhere(ray_session, tmp_path, tiny_o1_dir, monkeypatch):
    """`--model ./tiny` from one directory: the workers (started elsewhere) load it, a re-run naming it another way
    resumes instead of being refused as another model, and `load` from another directory finds it."""
    from o1_retriever.distributed import encode_corpus, load_into_chroma
    corpus, out = tmp_path / "corpus.jsonl", tmp_path / "vectors"
    write_jsonl(corpus, make_documents(8))
    monkeypatch.chdir(tiny_o1_dir.parent)
    first = encode_corpus(corpus, out, f"./{tiny_o1_dir.name}", actors=1, shard_size=4, dtype="fp32",
                          thought_cache=False)
    assert first.written == 2
    assert json.loads((out / "o1_vectors.json").read_text())["model"]["model"] == str(tiny_o1_dir.resolve())
    monkeypatch.chdir(tmp_path)
    again = encode_corpus(corpus, out, f"{tiny_o1_dir}/", actors=1, shard_size=4, dtype="fp32", thought_cache=False)
    assert (again.written, again.fingerprint) == (0, first.fingerprint)
    assert load_into_chroma(out, path=tmp_path / "db", collection="docs").count == 8


def test_index_ray_passes_every_setting_flag_to_the_actors_and_the_collection(ray_session, tmp_path, tiny_o1_dir):
    """`o1-retriever index --ray` with setting flags: the collection records them, as `o1-retriever index` without
    Ray does, so searches think with them (--min-new-tokens, --prompt-max-length and --thought-input were
    dropped)."""
    import chromadb

    from o1_retriever.cli import main
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, make_documents(6))
    flags = ["--min-new-tokens", "2", "--prompt-max-length", "64", "--document-max-length", "48"]
    common = ["index", "--corpus", str(corpus), "--model", str(tiny_o1_dir), "--dtype", "fp32", *flags]
    assert main([*common, "--db", str(tmp_path / "plain")]) == 0
    assert main([*common, "--db", str(tmp_path / "ray"), "--ray", "--actors", "1",
                 "--vectors", str(tmp_path / "vectors")]) == 0

    def recorded(db):
        config = chromadb.PersistentClient(path=str(db)).get_collection("o1-retriever").configuration_json
        return config["embedding_function"]["config"]["options"]

    options = recorded(tmp_path / "ray")
    assert {name: options.get(name) for name in ("min_new_tokens", "prompt_max_length", "document_max_length")} == \
        {"min_new_tokens": 2, "prompt_max_length": 64, "document_max_length": 48}
    assert options == recorded(tmp_path / "plain")


def test_no_more_actors_than_shards_to_write(ray_session, tmp_path, tiny_o1_dir):
    """Each actor loads the model: a run (or a resume) with one shard to write starts one actor, with the CPUs."""
    from o1_retriever.distributed import encode_corpus
    from o1_retriever.distributed.runtime import actor_resources
    assert (actor_resources(None).actors, actor_resources(2, work=5).actors) == (2, 2)
    assert actor_resources(None, work=1) == actor_resources(2, work=1) == actor_resources(1)
    assert actor_resources(1).num_cpus == 2.0
    with pytest.raises(ValueError, match="actors=3 CPU actors need a CPU each; this Ray cluster has 2"):
        actor_resources(3, work=1)
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, make_documents(3))
    result = encode_corpus(corpus, tmp_path / "vectors", str(tiny_o1_dir), actors=2, dtype="fp32",
                           thought_cache=False)
    assert (result.rows, result.shards, result.written, result.actors) == (3, 1, 1, 1)


@pytest.mark.slow  # two real `encode` commands, each starting an actor
def test_a_killed_encode_command_resumes_without_losing_or_repeating_rows(ray_session, tmp_path, tiny_o1_dir):
    """The driver itself killed (SIGKILL of the `encode` command, joined to a running Ray as on a cluster) mid-run:
    the same command again keeps every complete shard, writes only the others, and ends with each row once."""
    import pyarrow.parquet as pq

    from o1_retriever.distributed import read_vectors
    documents = make_documents(120, seed=3)
    corpus, out = tmp_path / "corpus.jsonl", tmp_path / "vectors"
    write_jsonl(corpus, documents)
    address = ray_session.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "o1_retriever.distributed", "encode", str(corpus), "--vectors", str(out),
               "--model", str(tiny_o1_dir), "--dtype", "fp32", "--shard-size", "4", "--actors", "1",
               "--address", address]
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not list(out.glob("part-*.parquet")) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first.kill()
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-2000:]
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert 0 < len(kept) < 30
    assert {pq.read_metadata(out / name).num_rows for name in kept} == {4}  # a shard's name holds a whole file
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "encoded 120 documents into 30 shard(s)" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet") if p.name in kept} == kept
    assert not list(out.glob(".*.tmp"))
    ids = read_vectors(out)["ids"]
    assert len(ids) == len(set(ids)) == 120 and set(ids) == {d["_id"] for d in documents}
