"""RemoteEmbedder's retries, as the openai client's: a server shutting down (503), a proxy with no server behind it
(502/504), a request timeout (408) and a busy server (429, after its Retry-After) are tried again, up to max_retries
times; other errors are not."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from email.utils import formatdate

import httpx
import numpy as np
import pytest

from o1_retriever.server import BackgroundServer, O1ServerError, RemoteEmbedder
from tests.server.fronts import Front


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _health(url: str) -> dict | None:
    try:
        return httpx.get(url + "/health", timeout=1).json()
    except httpx.TransportError:
        return None


def test_a_request_cut_off_by_a_sigterm_is_sent_again_to_the_restarted_server(tiny_o1_dir, tiny_embedder, tmp_path,
                                                                              free_port, metric):
    """`serve` got SIGTERM while a request was queued, and --graceful-timeout ran out: its 503 server_shutting_down
    says "send it again once the server is back", but RemoteEmbedder raised it at once. It now retries it (and the
    refused connections while no server listens) and gets its answer from the server that took the port."""
    port = free_port()
    env = dict(os.environ, O1_RETRIEVER_CACHE=str(tmp_path), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("O1_RETRIEVER_API_KEY", None)
    # --max-wait-ms 5000: a lone request waits in the queue for company, so it is unfinished when the 0.2 s run out.
    cmd = [sys.executable, "-m", "o1_retriever.cli", "serve", "--model", str(tiny_o1_dir), "--device", "cpu",
           "--dtype", "fp32", "--max-new-tokens", "8", "--port", str(port), "--name", "tiny", "--max-wait-ms", "5000",
           "--graceful-timeout", "0.2", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, restarted, answers = f"http://127.0.0.1:{port}", None, {}
    try:
        _wait_for(lambda: proc.poll() is not None or _health(url) is not None, "the server did not come up")
        assert proc.poll() is None, proc.stdout.read()

        def call():
            try:
                # 5 retries: 0.5 + 1 + 2 + 4 + 8 s of backoff cover the restart below on a loaded machine
                answers["vector"] = RemoteEmbedder(url, model="tiny", max_retries=5).encode_documents("protein cell")
            except Exception as e:  # noqa: BLE001 (reported by the assertion below)
                answers["error"] = e

        client = threading.Thread(target=call)
        client.start()
        _wait_for(lambda: (_health(url) or {}).get("queue_depth"), "the request never showed in the queue", 30)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        output = proc.stdout.read()
        assert "Traceback" not in output, output
        restarted = BackgroundServer(tiny_embedder, name="tiny", port=port).start()
        client.join(60)
        assert "error" not in answers, answers.get("error")
        np.testing.assert_allclose(answers["vector"], tiny_embedder.encode_documents("protein cell"), atol=1e-5)
        assert metric(url, "o1_requests_total", {"route": "/v1/embeddings", "status": "200"}) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if restarted is not None:
            restarted.stop()


def test_gateway_errors_and_request_timeouts_are_retried_with_backoff(server, served_embedder):
    """A 502/504 from a proxy whose server was restarting, or a 408, raised at once; the openai client retries them.
    They are now retried, 0.5 s then 1 s apart (less up to a quarter), max_retries times by default 2."""
    url, _ = server
    want = served_embedder.encode_documents("solar energy")
    front = Front(url, [502, 504])
    try:
        np.testing.assert_allclose(RemoteEmbedder(front.url, model="tiny").encode_documents("solar energy"), want,
                                   atol=1e-6)
        assert front.connections == 3
        waits = np.diff(front.times)
        assert 0.37 <= waits[0] < 0.5 + 1 and 0.75 <= waits[1] < 1.0 + 1, waits  # slack: a loaded machine

        front.plan, front.connections, front.times = [408, 503, 502], 0, []
        with pytest.raises(O1ServerError, match=r"HTTP 502.*from the front \(tried 3 times\)") as failed:
            RemoteEmbedder(front.url, model="tiny").encode_documents("solar energy")
        assert failed.value.status == 502 and failed.value.tries == 3 and front.connections == 3

        front.plan, front.connections = [503], 0
        with pytest.raises(O1ServerError, match="HTTP 503") as failed:
            RemoteEmbedder(front.url, model="tiny", max_retries=0).encode_documents("solar energy")
        assert failed.value.tries == 1 and front.connections == 1
    finally:
        front.close()


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413, 422, 500])
def test_other_error_statuses_are_not_retried(server, status):
    url, _ = server
    front = Front(url, [status])
    try:
        with pytest.raises(O1ServerError, match=f"HTTP {status}") as failed:
            RemoteEmbedder(front.url, model="tiny").encode_documents("x")
        assert front.connections == 1 and failed.value.tries == 1
        assert "tried" not in str(failed.value)
    finally:
        front.close()


def test_retry_after_as_a_date_is_honoured_and_capped(server, served_embedder):
    """Retry-After may be an HTTP date (RFC 9110), as proxies and rate limiters send it; only a number of seconds was
    read, so a date fell back to the short backoff. Both forms are honoured now, up to 30 s."""
    from o1_retriever.retrying import MAX_RETRY_AFTER, retry_after as _retry_after
    url, _ = server
    front = Front(url, [(429, lambda: f"retry-after: {formatdate(time.time() + 3, usegmt=True)}\r\n")])
    try:
        np.testing.assert_allclose(RemoteEmbedder(front.url, model="tiny").encode_documents("music"),
                                   served_embedder.encode_documents("music"), atol=1e-6)
        wait = front.times[1] - front.times[0]
        assert 1.0 < wait < 4.5, wait  # whole seconds, from when the 429 was sent: 2 to 3 s
    finally:
        front.close()

    def after(value):
        return _retry_after(httpx.Response(429, headers={"retry-after": value}))
    assert after("2.5") == 2.5 and after("3600") == MAX_RETRY_AFTER
    assert after(formatdate(time.time() - 60, usegmt=True)) == 0.0  # already past: at once
    assert after("soon") is None and after("nan") is None  # unreadable: the backoff


def test_max_retries_is_checked_and_retries_stays_its_older_name():
    assert RemoteEmbedder("http://127.0.0.1:1").max_retries == 2
    assert RemoteEmbedder("http://127.0.0.1:1", retries=0).max_retries == 0
    assert RemoteEmbedder("http://127.0.0.1:1", max_retries=5).max_retries == 5
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"max_retries must be an int >= 0 .*got {bad!r}"):
            RemoteEmbedder("http://127.0.0.1:1", max_retries=bad)
    with pytest.raises(ValueError, match="disagree"):
        RemoteEmbedder("http://127.0.0.1:1", max_retries=5, retries=1)


def test_retries_is_still_readable_and_settable_as_max_retries_older_name():
    """`emb.retries`, the attribute before it took the openai client's name, raised AttributeError."""
    emb = RemoteEmbedder("http://127.0.0.1:1", max_retries=4)
    assert emb.retries == 4
    emb.retries = 0
    assert emb.max_retries == 0
    with pytest.raises(ValueError, match="retries must be an int >= 0"):
        emb.retries = -1
    assert emb.max_retries == 0
