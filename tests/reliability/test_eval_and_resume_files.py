"""Issue 27, findings 11 and 12: no pickle from a checkpoint a user points at; eval keeps empty BEIR documents."""
from __future__ import annotations

import json

import pytest
import torch

from o1_retriever.cli import main as cli


class _Payload:
    """Pickles as a call to open(marker, "w"): harmless, but proof that loading ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_training_resume_never_unpickles_code(tmp_path):
    pytest.importorskip("o1_retriever_training")
    from o1_retriever_training.trainer import STATE_FILE, _load_checkpoint
    ckpt, marker = tmp_path / "checkpoints" / "step-2", tmp_path / "pwned"
    ckpt.mkdir(parents=True)
    torch.save({"progress": {"step": 2, "epoch": 0, "batches": 2}, "model": {}, "optimizer": _Payload(marker),
                "scheduler": {}}, ckpt / STATE_FILE)
    with pytest.raises(ValueError, match=r"state\.pt holds more than tensors"):
        _load_checkpoint(ckpt, None, None, None)
    assert not marker.exists()


def _beir(root, empty_ids):
    (root / "qrels").mkdir(parents=True)
    docs = {f"d{i}": ("", "") if f"d{i}" in empty_ids else (f"title {i}", f"protein cell gene study {i}")
            for i in range(8)}
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n"
                                               for i, (t, x) in docs.items()))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"protein study {i}"}) + "\n"
                                                for i in range(3)))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq2\td5\t1\n")
    return root


def test_eval_keeps_empty_documents_with_a_warning(tiny_o1_dir, tmp_path, monkeypatch):
    from o1_retriever.evaluation.data import EMPTY_TEXT, load_beir
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    root = _beir(tmp_path / "toy", {"d5", "d6"})
    with pytest.warns(UserWarning, match=r"2 document\(s\) have neither title nor text.*kept"):
        ds = load_beir(root, "test")
    assert len(ds.corpus) == 8 and ds.doc_texts()[5] == EMPTY_TEXT and ds.qrels["q2"] == {"d5": 1}
    out = tmp_path / "run.json"
    with pytest.warns(UserWarning, match="neither title nor text"):
        assert cli(["eval", "--dataset", str(root), "--split", "test", "--model", str(tiny_o1_dir), "--k", "0",
                    "--baseline", "bm25", "--device", "cpu", "--dtype", "fp32", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["meta"]["dataset"]["documents"] == 8 and len(result["results"]) == 2
