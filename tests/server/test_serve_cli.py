"""`o1-retriever serve` as users start it: a subprocess, a real port, and SIGTERM that lets in-flight work finish."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np


def test_serve_command_answers_then_drains_on_sigterm(tiny_o1_dir, tiny_embedder, tmp_path, api_key, free_port):
    port = free_port()
    env = dict(os.environ, O1_RETRIEVER_CACHE=str(tmp_path), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               O1_RETRIEVER_API_KEY=api_key)
    # --max-wait-ms 3000: a lone request waits 3 s in the queue for company, so SIGTERM surely lands mid-request.
    cmd = [sys.executable, "-m", "o1_retriever.cli", "serve", "--model", str(tiny_o1_dir), "--device", "cpu",
           "--dtype", "fp32", "--max-new-tokens", "8", "--port", str(port), "--name", "tiny", "--max-wait-ms", "3000",
           "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {api_key}"}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "server did not come up"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.post(url + "/v1/embeddings", json={"input": "x"}).status_code == 401  # key from the env var

        result = {}

        def slow_request():
            result["r"] = httpx.post(url + "/v1/embeddings", headers=auth, timeout=60,
                                     json={"input": "protein cell", "model": "tiny-document"})

        client = threading.Thread(target=slow_request)
        client.start()
        deadline = time.monotonic() + 30
        while httpx.get(url + "/health").json()["queue_depth"] == 0:  # the request is queued: in flight
            assert time.monotonic() < deadline and client.is_alive(), "the request never showed in the queue"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        client.join(60)
        assert result["r"].status_code == 200, result["r"].text
        np.testing.assert_allclose(result["r"].json()["data"][0]["embedding"],
                                   tiny_embedder.encode_documents("protein cell"), atol=1e-5)
        # uvicorn re-raises the signal once it has shut down cleanly, so the exit status says "ended by SIGTERM".
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_vector_cache_flag_reaches_the_embedder(tiny_o1_dir, tmp_path, monkeypatch):
    """--vector-cache off: a repeated query thinks again (a load test that repeats its queries measures work)."""
    import argparse

    from o1_retriever.server import cli
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    common = ["serve", "--model", str(tiny_o1_dir), "--device", "cpu", "--dtype", "fp32", "--thought-cache", "off"]
    assert cli._load(parser.parse_args(common)).vector_cache is not None  # on by default
    assert cli._load(parser.parse_args(common + ["--vector-cache", "off"])).vector_cache is None


def test_serve_help_states_the_default_of_every_flag_that_has_one(capsys):
    """--k, --max-batch, --max-wait-ms, --max-inputs, --max-chars and --graceful-timeout left their defaults unsaid,
    and --log-level had no help at all."""
    import argparse

    import pytest

    from o1_retriever.cli import build_parser
    serve = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "serve")[1]
    silent = [action.option_strings[0] for action in serve._actions
              if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS)
              and "default" not in (action.help or "") and not action.option_strings[0].startswith("-h")]
    assert silent == []
    with pytest.raises(SystemExit):
        serve.parse_args(["--help"])
    assert "(else 413; default 2048)" in capsys.readouterr().out
