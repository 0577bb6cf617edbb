"""Every example runs offline on the bundled default model and prints thoughts and hits from its corpus."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["quickstart.py", "chroma_native.py", "llamaindex_rag.py", "langchain_rag.py", "hybrid_search.py"]
# A smaller slice than the examples' defaults, to keep CI quick; the code path is the same.
SMALL = ["--docs", "10", "--queries", "1", "--k", "1", "--max-new-tokens", "16"]
HIT = re.compile(r"^  hit (\d+): ([* ]) (?:[-\d.]+ )?\[([^\]]+)\]", re.MULTILINE)


def _slice(shared_data) -> tuple[set, set]:
    """Passage ids the examples may return, and the first query's relevant ids (as the examples pick them)."""
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from _scifact import load_scifact
    finally:
        sys.path.pop(0)
    passages, queries = load_scifact(shared_data, 10, 1)
    return {p["id"] for p in passages}, queries[0]["relevant"]


@pytest.mark.real_model
@pytest.mark.parametrize("script", EXAMPLES)
def test_example_runs_offline_and_prints_thoughts_and_hits(script, shared_data, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               O1_DATA=str(shared_data), TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, str(REPO / "examples" / script), *SMALL,
                           "--thought-cache", str(tmp_path / "thoughts.sqlite"), "--persist-dir", str(tmp_path / "db")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "query: " in out
    thoughts = re.findall(r"^  thought \d+: (.*)$", out, re.MULTILINE)
    assert thoughts and all(t.strip() for t in thoughts)
    hits = HIT.findall(out)
    assert hits, out
    allowed, relevant = _slice(shared_data)
    for _, mark, passage_id in hits:
        assert passage_id in allowed  # hits come from the indexed slice ...
        assert (mark == "*") == (passage_id in relevant)  # ... and relevance marks follow SciFact's qrels
    assert not any(p.name.endswith(".sqlite") for p in REPO.iterdir())  # nothing written into the repo
    if script == "chroma_native.py":
        assert "same model instance = True, same hits = True" in out
    if script == "llamaindex_rag.py":
        sources = json.loads(re.search(r"query engine sources: (\[.*\])", out).group(1).replace("'", '"'))
        assert sources == [pid for rank, _, pid in hits if int(rank) <= len(sources)][:len(sources)]
    if script == "hybrid_search.py":
        assert "dense (cosine):" in out and "hybrid, dense share 0.4" in out
    if script == "langchain_rag.py":
        assert re.search(r"LCEL chain answer to .*:\n  \S", out)
