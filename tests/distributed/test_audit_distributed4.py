"""Audit of which Ray the work runs on: RAY_ADDRESS naming a dead cluster refused at once, naming the variable, as an
explicit address is; and, with Ray already running in this process, an address naming another cluster refused
(naming both), one naming the running Ray (in any spelling) joining it.

The tests that need no Ray running come first; the module's Ray (the `ray_session` fixture) starts after them."""
from __future__ import annotations

import re
import socket
import time

import pytest

from tests.distributed.corpora import make_documents, write_jsonl
from tests.fixtures import free_port

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, make_documents(4))
    return path


def test_ray_address_of_a_dead_cluster_fails_at_once_naming_the_variable(tmp_path, corpus, monkeypatch, capsys):
    """RAY_ADDRESS=host:port where nothing listens (a cluster since stopped): an explicit address there failed at
    once, but the variable went to ray.init unchecked, which retried for minutes before a traceback naming neither.
    Now the API, `eval --ray`'s session and the command fail in a second, naming RAY_ADDRESS, before the input is
    read; Ray is not left running."""
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process (run this test first or alone)")
    from o1_retriever.distributed import encode_corpus
    from o1_retriever.distributed.cli import main
    from o1_retriever.distributed.runtime import ray_session
    port = free_port()
    out = tmp_path / "vectors"
    started = time.monotonic()
    for value, address, named in [
            (f"127.0.0.1:{port}", None, f"RAY_ADDRESS='127.0.0.1:{port}'"),
            (f"ray://127.0.0.1:{port}", None, f"RAY_ADDRESS='ray://127.0.0.1:{port}'"),
            (f"127.0.0.1:{port}", "auto", f"RAY_ADDRESS='127.0.0.1:{port}' (which address='auto' uses)")]:
        monkeypatch.setenv("RAY_ADDRESS", value)
        with pytest.raises(ValueError, match=rf"no Ray cluster answers at {re.escape(named)} .*unset RAY_ADDRESS"):
            encode_corpus(corpus, out, "unused-model", actors=1, address=address)
        with pytest.raises(ValueError, match=f"no Ray cluster answers at {re.escape(named)}"):
            with ray_session(address):
                pass
    assert main(["encode", str(corpus), "--vectors", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"no Ray cluster answers at RAY_ADDRESS='127.0.0.1:{port}'" in err and "Traceback" not in err
    monkeypatch.setenv("RAY_ADDRESS", "head-node")
    with pytest.raises(ValueError, match=r"RAY_ADDRESS='head-node' is not a Ray address"):
        encode_corpus(corpus, out, "unused-model", actors=1)
    assert time.monotonic() - started < 30
    assert not out.exists() and not ray.is_initialized()


# ---- with the module's Ray ----------------------------------------------------------------------------------------
@pytest.fixture
def other_server():
    """host:port of something listening that is not this process's Ray (as another cluster's head would be)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"127.0.0.1:{server.getsockname()[1]}"


def test_an_address_of_another_cluster_is_refused_while_ray_runs(ray_session, tmp_path, corpus, tiny_o1_dir,
                                                                 other_server, monkeypatch, capsys):
    """With Ray already initialised in the process, an address was ignored without a word: the work ran on the Ray
    already running, not the cluster asked for. Now the API, the command and `eval --ray`'s session refuse it at
    once, naming both, before anything is read or written; the running Ray is left as it was."""
    from o1_retriever.distributed import encode_corpus
    from o1_retriever.distributed.cli import main
    from o1_retriever.distributed.runtime import connect
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    running = ray.get_runtime_context().gcs_address
    out = tmp_path / "vectors"
    both = rf"connected to {running}; address='{other_server}' names another cluster. Call ray.shutdown\(\) first"
    with pytest.raises(ValueError, match=both):
        encode_corpus(corpus, out, str(tiny_o1_dir), actors=1, dtype="fp32", thought_cache=False,
                      address=other_server)
    with pytest.raises(ValueError, match=both):
        connect(other_server)
    assert main(["encode", str(corpus), "--vectors", str(out), "--model", str(tiny_o1_dir),
                 "--address", other_server]) == 2
    err = capsys.readouterr().err
    assert running in err and other_server in err and "Traceback" not in err
    with pytest.raises(ValueError, match=r"address='head-node' is not a Ray address"):
        connect("head-node")
    assert not out.exists() and ray.is_initialized()


def test_an_address_naming_the_running_ray_joins_it(ray_session, tmp_path, corpus, tiny_o1_dir, monkeypatch):
    """The running Ray named by its GCS address, by 127.0.0.1 or localhost and its port, or as 'auto' where
    RAY_ADDRESS names it, is the same cluster: used as it is (not started, not shut down)."""
    from o1_retriever.distributed import encode_corpus
    from o1_retriever.distributed.runtime import connect
    running = ray.get_runtime_context().gcs_address
    port = running.rpartition(":")[2]
    monkeypatch.setenv("RAY_ADDRESS", running)
    for address in (running, f"127.0.0.1:{port}", f"localhost:{port}", "auto", "local", None):
        assert connect(address) is False
    monkeypatch.delenv("RAY_ADDRESS")
    result = encode_corpus(corpus, tmp_path / "vectors", str(tiny_o1_dir), actors=1, dtype="fp32",
                           thought_cache=False, address=f"localhost:{port}")
    assert (result.rows, result.written) == (4, 1)
    assert ray.is_initialized() and ray.get_runtime_context().gcs_address == running
