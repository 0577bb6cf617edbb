"""A model loaded from a relative path is recorded by its absolute path: a reader in another folder (a Chroma
collection reopened elsewhere, a rebuilt integration) loads the same model, not whatever that folder holds."""
import os
import shutil
import subprocess
import sys
import textwrap

import chromadb

from o1_retriever import O1Embedder
from o1_retriever.chroma import O1EmbeddingFunction


def test_a_relative_model_path_is_recorded_absolute_and_a_collection_reopens_from_another_folder(tiny_o1_dir, tmp_path,
                                                                                                 monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(tiny_o1_dir, work / "tiny")
    monkeypatch.chdir(work)
    emb = O1Embedder.from_pretrained("tiny", device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=4)
    assert emb.source.path == str((work / "tiny").resolve())
    client = chromadb.PersistentClient(str(work / "db"))
    collection = client.get_or_create_collection("docs", embedding_function=O1EmbeddingFunction(embedder=emb))
    collection.add(ids=["a", "b"], documents=["alpha river", "beta music"])
    del collection, client
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = textwrap.dedent("""
        import chromadb, o1_retriever.chroma
        found = chromadb.PersistentClient("../work/db").get_collection("docs").query(query_texts=["alpha"],
                                                                                      n_results=1)
        print("ids", found["ids"][0])
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "O1_RETRIEVER_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ids ['a']" in run.stdout or "ids ['b']" in run.stdout
