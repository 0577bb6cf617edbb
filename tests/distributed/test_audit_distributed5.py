"""The Ray address of a run is probed once: `encode_files` checked it before reading the input, then `connect`
checked it again before ray.init."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from tests.distributed.corpora import make_documents, write_jsonl

pytest.importorskip("ray")
pytest.importorskip("ray.data")

# Ray's own waits for a GCS, cut to a second: ray.init against a listener that is no Ray ends the process in
# seconds instead of a minute of retries.
FAST_GCS_FAILURE = {"RAY_gcs_rpc_server_connect_timeout_s": "1", "RAY_gcs_rpc_server_reconnect_timeout_s": "1",
                    "RAY_gcs_server_request_timeout_seconds": "1", "RAY_py_gcs_connect_timeout_s": "2"}


class ProbeCounter:
    """A loopback TCP listener counting connections that close without sending a byte (a probe, which only
    connects) apart from those that speak (Ray's gRPC)."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.probes = self.spoke = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection):
        with connection:
            connection.settimeout(5)
            try:
                first = connection.recv(1)
            except OSError:
                first = b"?"
            if first:
                self.spoke += 1
            else:
                self.probes += 1

    def close(self):
        self.socket.close()


def test_a_run_probes_its_ray_address_once(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, make_documents(4))
    counter = ProbeCounter()
    script = ("from o1_retriever.distributed import encode_corpus\n"
              f"encode_corpus({str(corpus)!r}, {str(tmp_path / 'vectors')!r}, 'unused-model', actors=1, "
              f"address='127.0.0.1:{counter.port}')\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | FAST_GCS_FAILURE
    try:
        # ray.init then fails (the listener is no Ray): the probes before it are what this test counts
        run = subprocess.run([sys.executable, "-c", script], env=env, cwd=str(tmp_path), capture_output=True,
                             text=True, timeout=120)
    finally:
        counter.close()
    assert run.returncode != 0
    assert "Connecting to existing Ray cluster" in run.stderr, run.stderr[-2000:]  # it got as far as ray.init
    assert counter.probes == 1, (counter.probes, run.stderr[-2000:])
