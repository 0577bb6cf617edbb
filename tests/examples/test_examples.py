"""Every example runs offline on the bundled default model and prints thoughts and hits from its corpus."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["quickstart.py", "chroma_native.py", "llamaindex_rag.py", "langchain_rag.py", "hybrid_search.py"]
# Fewer and shorter thoughts than the examples' defaults, to keep CI quick; the code path is the same.
SMALL = ["--queries", "1", "--k", "1", "--max-new-tokens", "16"]
HIT = re.compile(r"^  hit (\d+): ([* ]) (?:[-\d.]+ )?\[([^\]]+)\]", re.MULTILINE)


@pytest.mark.real_model
@pytest.mark.parametrize("script", EXAMPLES)
def test_example_runs_alone_from_anywhere(script, tmp_path):
    """A copied example is one file: it runs from a folder holding nothing else, offline, on the bundled data."""
    from o1_retriever.corpus import DEMO_CORPUS, demo_queries, read_corpus
    copy = tmp_path / script
    shutil.copy(REPO / "examples" / script, copy)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, str(copy), *SMALL, *(["--persist-dir", str(tmp_path / "db")]
                                                               if script != "quickstart.py" else [])],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "query: " in out
    thoughts = re.findall(r"^  thought \d+: (.*)$", out, re.MULTILINE)
    assert thoughts and all(t.strip() for t in thoughts)
    hits = HIT.findall(out)
    assert hits, out
    allowed, relevant = {p.id for p in read_corpus(DEMO_CORPUS)}, demo_queries()[0].relevant
    for _, mark, passage_id in hits:
        assert passage_id in allowed  # hits come from the bundled corpus ...
        assert (mark == "*") == (passage_id in relevant)  # ... and relevance marks follow its judgements
    assert hits[0][2] in relevant, out  # the first demo query's answer is found first
    if script == "chroma_native.py":
        assert "same model instance = True, same hits = True" in out
    if script == "llamaindex_rag.py":
        sources = json.loads(re.search(r"query engine sources: (\[.*\])", out).group(1).replace("'", '"'))
        assert sources == [pid for rank, _, pid in hits if int(rank) <= len(sources)][:len(sources)]
    if script == "hybrid_search.py":
        assert "dense (cosine):" in out and "hybrid, dense share 0.4" in out
    if script == "langchain_rag.py":
        answer = re.search(r"LCEL chain answer to .*:\n  (.*)", out).group(1)
        assert len(answer.split()) > 4, answer  # a sentence, not a stub such as "The answer is:"


def test_an_example_without_persist_dir_removes_its_temporary_folder(tmp_path):
    code = ("import os, sys; sys.argv = ['example']; from o1_retriever.corpus import demo_arguments; "
            "args = demo_arguments('an example', 'o1_test_'); open(os.path.join(args.persist_dir, 'x'), 'w').close(); "
            "print(args.persist_dir)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    made = Path(done.stdout.strip())
    assert made.parent == tmp_path and not made.exists()  # was: left behind, one folder per run


@pytest.mark.real_model
@pytest.mark.slow  # two runs of the example, each loading the real model: ~30 s on two CPU cores
def test_llamaindex_example_rerun_on_the_same_persist_dir_stores_each_passage_once(tmp_path):
    """examples/README.md runs it with `--persist-dir ./o1_chroma`: a second run used to add all 32 passages again
    (LlamaIndex gives nodes new ids), so every hit came twice."""
    import chromadb
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               TOKENIZERS_PARALLELISM="false")
    argv = [sys.executable, str(REPO / "examples" / "llamaindex_rag.py"), "--queries", "1", "--k", "0",
            "--persist-dir", str(tmp_path / "db")]
    for run in range(2):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    ids = [pid for _, _, pid in HIT.findall(done.stdout)]
    assert len(ids) == 2 and len(set(ids)) == 2, done.stdout
    assert chromadb.PersistentClient(str(tmp_path / "db")).get_collection("demo").count() == 32
