"""docs/serve.md's curl line and Python blocks run as written against a real server (a tiny model served under the
bundled default's name, on a free port in place of 8000): a reader copying them meets no wrong route, model id,
keyword or attribute."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "serve.md"
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(DOC.read_text()) if lang == language]


@pytest.fixture(scope="module")
def server(tiny_embedder):
    pytest.importorskip("uvicorn")
    from o1_retriever.server import BackgroundServer
    with BackgroundServer(tiny_embedder, name="o1-retriever-default") as running:
        yield running


def test_python_blocks_run_as_written(server, tiny_embedder):
    pytest.importorskip("openai")
    python = blocks("python")
    assert len(python) == 2, "docs/serve.md: expected the openai client block and the RemoteEmbedder block"
    names: dict = {}
    for body in python:
        exec(compile(body.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}"), str(DOC), "exec"), names)
    dim = tiny_embedder.dim
    assert len(names["q"].data[0].embedding) == len(names["d"].data[0].embedding) == dim
    assert names["vectors"].shape == (1, dim)
    assert len(names["thoughts"]) == 2 and all(isinstance(t, str) for t in names["thoughts"])


def test_curl_line_runs_as_written(server):
    if shutil.which("curl") is None:
        pytest.skip("no curl here")
    bash = blocks("bash")[0]
    curl = bash[bash.index("curl "):].replace("\\\n", " ").replace("localhost:8000", f"127.0.0.1:{server.port}")
    done = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '"object":"list"' in done.stdout and '"embedding"' in done.stdout, done.stdout
