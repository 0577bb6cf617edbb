"""The load-test script end to end on the tiny model: a served subprocess, concurrent clients, the in-process
reference on the same queries, JSON and PNG written. (The figures themselves are benchmarks/serve.md's business.)"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("matplotlib")


@pytest.mark.slow
def test_loadtest_writes_json_and_png(tiny_o1_dir, tmp_path, monkeypatch):
    from o1_retriever.server import loadtest
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    out, png = tmp_path / "serve.json", tmp_path / "serve.png"
    assert loadtest.main(["--model", str(tiny_o1_dir), "--dtype", "fp32", "--max-new-tokens", "4", "--k", "1", "0",
                          "--concurrency", "1", "4", "--requests", "8", "--output", str(out), "--png", str(png)]) == 0
    report = json.loads(out.read_text())
    served = [r for r in report["runs"] if r["mode"] == "server"]
    assert [(r["k"], r["concurrency"]) for r in served] == [(1, 1), (1, 4), (0, 1), (0, 4)]
    assert all(r["errors"] == 0 and r["requests"] == 8 and r["queries_per_s"] > 0 for r in served)
    reference = {r["k"]: r for r in report["runs"] if r["mode"] != "server"}
    assert sorted(reference) == [0, 1] and all(r["requests"] == 8 for r in reference.values())
    assert set(report["target"]) == {"k=1", "k=0"} and report["target"]["k=1"]["concurrency"] == 4
    assert report["machine"]["cpu_count"] >= 1 and report["command"].endswith(str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the server's own account of each row: its merged engine calls cover every request it answered
    assert all(r["engine_calls"] >= 1 and r["engine_seconds"] > 0 and r["mean_batch"] >= 1 for r in served)
    assert all(abs(r["engine_calls"] * r["mean_batch"] - r["requests"]) <= 0.05 * r["engine_calls"] for r in served)
