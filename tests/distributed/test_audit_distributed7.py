"""Audit of the Ray path as a cluster user meets it: a model option or model path every actor would fail to load
with is refused on the driver before the input is read, Ray starts or the output folder is made.

The tests that need no Ray running come first; the module's Ray (the `ray_session` fixture) starts after them."""
from __future__ import annotations

import time

import pytest

from tests.distributed.corpora import make_documents, write_jsonl

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, make_documents(6))
    return path


@pytest.mark.parametrize("model, options, message", [
    ("tiny", {"dtype": "fp33"}, r"dtype='fp33' is not supported; use one of \['auto', 'bf16'"),
    ("tiny", {"dtype": "fp32", "encoder_dtype": "half"}, r"encoder_dtype='half' is not supported; use one of"),
    ("tiny", {"max_new_tokens": 0}, r"max_new_tokens must be > 0, got 0"),
    ("tiny", {"temperature": -1.0}, r"temperature"),
    ("tiny", {"quantization": "3bit"}, r"quantization.*'3bit'.*4bit"),
    ("tiny", {"prompt_style": "chatty"}, r"prompt_style.*'chatty'.*official"),
    ("missing", {}, r"model path '.*nowhere' does not exist; give a local directory"),
    ("./nowhere", {}, r"model path './nowhere' does not exist; give a local directory"),
])
def test_what_no_actor_could_load_is_refused_before_ray_starts(tmp_path, corpus, tiny_o1_dir, monkeypatch, model,
                                                                options, message):
    """A mistyped dtype or setting, or a model path that does not exist, went to every actor: a local Ray started, the
    output folder and its manifest were made and each actor failed to load the model, tens of seconds later (the
    Python API took max_new_tokens=0 or quantization='3bit' as far as that too). The driver now makes the checks
    `from_pretrained` makes before loading, naming the value and what is allowed."""
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process (run this test first or alone)")
    from o1_retriever.distributed import encode_corpus, encode_query_file, encode_texts
    from o1_retriever.distributed.workers import ModelSpec
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    name = {"tiny": str(tiny_o1_dir), "missing": str(tmp_path / "nowhere")}.get(model, model)
    out = tmp_path / "vectors"
    started = time.monotonic()
    with pytest.raises((ValueError, TypeError), match=message):
        encode_corpus(corpus, out, name, actors=1, **options)
    with pytest.raises((ValueError, TypeError), match=message):
        encode_query_file(corpus, out, name, k=1, actors=1, **options)
    with pytest.raises((ValueError, TypeError), match=message):
        encode_texts(ModelSpec(name, options), ["a text"], actors=1)
    assert time.monotonic() - started < 10
    assert not out.exists() and not ray.is_initialized()


def test_the_command_refuses_a_bad_dtype_before_any_work(tmp_path, corpus, tiny_o1_dir, monkeypatch, capsys):
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process (run this test first or alone)")
    from o1_retriever.distributed.cli import main
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "vectors"
    with pytest.raises(SystemExit) as exit_info:  # refused while the arguments are parsed
        main(["encode", str(corpus), "--vectors", str(out), "--model", str(tiny_o1_dir), "--dtype", "bf61"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "argument --dtype: expected auto, bf16, fp16 or fp32" in err
    assert "'bf61'" in err and "Traceback" not in err
    assert not out.exists() and not ray.is_initialized()


def test_more_actors_than_the_local_ray_holds_are_refused_before_any_work(tmp_path, corpus, tiny_o1_dir, monkeypatch):
    """actors=64 on a machine of a few CPUs: the whole input was read, the output folder and its manifest made and a
    local Ray started before 'actors=64 CPU actors need a CPU each'. The local Ray a run would start is counted
    first (as Ray counts it); so are GPU actors asked for where there is no GPU."""
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process (run this test first or alone)")
    from ray._private.utils import get_num_cpus

    from o1_retriever.distributed import encode_corpus, encode_texts
    from o1_retriever.distributed.workers import ModelSpec
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out, too_many = tmp_path / "vectors", get_num_cpus() + 1
    started = time.monotonic()
    message = rf"actors={too_many} CPU actors need a CPU each; this Ray cluster has {too_many - 1}\. Use at most"
    with pytest.raises(ValueError, match=message):
        encode_corpus(corpus, out, str(tiny_o1_dir), actors=too_many)
    with pytest.raises(ValueError, match=message):
        encode_texts(ModelSpec(str(tiny_o1_dir)), ["a text"], actors=too_many)
    from o1_retriever.cli import build_parser
    from o1_retriever.evaluation.cli import config_from_args
    with pytest.raises(ValueError, match=message):  # eval --ray: before the eval loads a model or a dataset
        config_from_args(build_parser().parse_args(["eval", "--dataset", "d", "--ray", "--actors", str(too_many)]))
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ValueError, match="GPU actors were asked for, but this Ray cluster has no GPU"):
            encode_corpus(corpus, out, str(tiny_o1_dir), use_gpus=True)
    assert time.monotonic() - started < 10
    assert not out.exists() and not ray.is_initialized()


@pytest.mark.parametrize("command", ["load --vectors {out}", "index --corpus {corpus}"])
@pytest.mark.parametrize("port", ["99999", "0", "-1", "eighty"])
def test_a_port_no_server_can_have_is_refused_naming_the_range(tmp_path, corpus, capsys, command, port):
    """--port 99999 or -1 failed as 'could not connect to a Chroma server at localhost:99999', as if none ran there."""
    from o1_retriever.distributed.cli import main
    argv = command.format(out=tmp_path / "vectors", corpus=corpus).split() + ["--host", "localhost", f"--port={port}"]
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    assert f"argument --port: a TCP port is 1 to 65535, got '{port}'" in capsys.readouterr().err


def test_a_corpus_saved_with_a_byte_order_mark_reads_as_o1_retriever_index_reads_it(tmp_path):
    """A JSONL file saved by a Windows editor starts with a UTF-8 byte-order mark: `o1-retriever index` (read_corpus)
    reads it, the Ray path refused it ('corpus.jsonl:1: not valid JSON (Unexpected UTF-8 BOM...)'), in any file of
    a folder. Its shards now hold what read_corpus reads, the first row's offset past the mark."""
    from o1_retriever.corpus import read_corpus
    from o1_retriever.distributed.shards import plan_shards, read_shard
    from tests.distributed.corpora import embedded_text
    rows = make_documents(7, seed=8)
    (tmp_path / "corpus").mkdir()
    for name, part in (("a.jsonl", rows[:4]), ("b.jsonl", rows[4:])):
        write_jsonl(tmp_path / "corpus" / name, part)
        path = tmp_path / "corpus" / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    inputs, shards = plan_shards(tmp_path / "corpus", 2, "documents")
    assert [i["rows"] for i in inputs] == [4, 3] and len(shards) == 4
    records = [r for shard in shards for r in read_shard(shard, "documents")]
    want = read_corpus(tmp_path / "corpus" / "a.jsonl") + read_corpus(tmp_path / "corpus" / "b.jsonl")
    assert [(r.id, r.text, r.metadata or {}) for r in records] == [(p.id, p.full_text, p.metadata) for p in want]
    assert [r.text for r in records] == [embedded_text(row) for row in rows]


def test_bench_refuses_an_actor_count_the_local_ray_cannot_hold_before_the_baseline(tmp_path, tiny_o1_dir,
                                                                                      monkeypatch):
    """`bench --actors 1 99` on a few CPUs ran the one-process baseline and the 1-actor run (minutes) before
    'actors=99 CPU actors need a CPU each'."""
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process (run this test first or alone)")
    from ray._private.utils import get_num_cpus

    from o1_retriever.distributed.bench import benchmark
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    too_many = get_num_cpus() + 1
    started = time.monotonic()
    with pytest.raises(ValueError, match=rf"actors={too_many} CPU actors need a CPU each"):
        benchmark(None, 5, [1, too_many], model=str(tiny_o1_dir), dtype="fp32", workdir=str(tmp_path))
    assert time.monotonic() - started < 10 and not ray.is_initialized()


def test_o1_retriever_index_ray_refuses_a_port_out_of_range(corpus, capsys):
    from o1_retriever.cli import main
    with pytest.raises(SystemExit) as exit:
        main(["index", "--ray", "--corpus", str(corpus), "--host", "localhost", "--port", "70000"])
    assert exit.value.code == 2
    assert "argument --port: a TCP port is 1 to 65535, got '70000'" in capsys.readouterr().err


# ---- with the module's Ray ----------------------------------------------------------------------------------------
def test_more_actors_than_the_running_ray_holds_are_refused_before_the_input_is_read(ray_session, tmp_path,
                                                                                      tiny_o1_dir):
    """With Ray running (2 CPUs), actors=3 was refused only after the input was read and the folder made."""
    from o1_retriever.distributed import encode_corpus
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "fine"}\nnot json\n')  # reading it would fail on line 2
    with pytest.raises(ValueError, match=r"actors=3 CPU actors need a CPU each; this Ray cluster has 2"):
        encode_corpus(bad, tmp_path / "vectors", str(tiny_o1_dir), actors=3)
    assert not (tmp_path / "vectors").exists() and ray.is_initialized()


def test_load_refuses_a_moved_or_changed_corpus_before_touching_the_store(ray_session, tmp_path, tiny_o1_dir):
    """The load reads each document's text from the corpus file the shards were made from. That file moved: the
    model loaded, the store was made and marked incomplete, then '[Errno 2] No such file or directory'. Grown since:
    the shards before the change were stored, then the load stopped. Both are now refused first, naming the file."""
    from o1_retriever.distributed import encode_corpus, load_into_chroma
    corpus, out, db = tmp_path / "corpus.jsonl", tmp_path / "vectors", tmp_path / "db"
    write_jsonl(corpus, make_documents(6, seed=7))
    encode_corpus(corpus, out, str(tiny_o1_dir), actors=1, shard_size=3, dtype="fp32", thought_cache=False)
    corpus.rename(tmp_path / "moved.jsonl")
    with pytest.raises(FileNotFoundError, match=rf"'{corpus}', a corpus file these vectors were encoded from, is not "
                                                r"there.*put it back, or encode the corpus again"):
        load_into_chroma(out, path=db)
    assert not db.exists()
    (tmp_path / "moved.jsonl").rename(corpus)
    with open(corpus, "a") as f:
        f.write('{"_id": "late", "text": "added after the encode"}\n')
    with pytest.raises(ValueError, match=rf"'{corpus}' changed since it was encoded \(\d+ bytes then, \d+ now\)"):
        load_into_chroma(out, path=db)
    assert not db.exists()
