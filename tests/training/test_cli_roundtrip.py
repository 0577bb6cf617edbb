"""The whole pipeline from the command line on tiny real models, in seconds:
synthesize (tiny random LM as expert; committee BM25 + MiniLM) -> train -> from_pretrained -> encode."""
import json

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.cli import main


@pytest.fixture(scope="module")
def beir(tmp_path_factory):
    from tests.training.conftest import write_beir
    return write_beir(tmp_path_factory.mktemp("beir"))


@pytest.fixture(scope="module")
def synthesized(beir, tiny_lm_dir, tmp_path_factory, minilm_member):
    tiny_beir = beir
    out = tmp_path_factory.mktemp("synth") / "thoughts.jsonl"
    rc = main(["synthesize", "--data", str(tiny_beir), "--output", str(out), "--expert", str(tiny_lm_dir),
               "--max-new-tokens", "10", "--num-candidates", "3", "--num-shots", "2", "--batch-size", "5",
               "--committee", "bm25", "minilm", "--negatives", "bm25", "minilm", "--num-negatives", "3"])
    assert rc == 0
    return out


def test_synthesize_records_thoughts_scores_and_negatives(synthesized, capsys):
    records = [json.loads(line) for line in synthesized.read_text().splitlines()]
    assert [r["query_id"] for r in records] == [f"q{i}" for i in range(12)]
    for r in records:
        assert len(r["candidates"]) == 3 and r["thought"] == r["candidates"][r["chosen"]]
        assert set(r["scores"]) == {"bm25", "minilm"} and all(len(v) == 3 for v in r["scores"].values())
        assert len(r["neg_ids"]) == 3 and not set(r["neg_ids"]) & set(r["pos_ids"])
        assert r["pos_ids"] == ["d" + r["query_id"][1:]]
    # Mined negatives are hard: most share the query's topic (doc i has topic i % 6).
    same_topic = sum(int(n[1:]) % 6 == int(r["query_id"][1:]) % 6 for r in records for n in r["neg_ids"])
    assert same_topic > len(records) * 3 // 2


def test_synthesize_resumes_without_redoing_work(synthesized, beir, tiny_lm_dir, tmp_path, capsys):
    tiny_beir, lines = beir, synthesized.read_text().splitlines(keepends=True)
    synthesized = tmp_path / "copy.jsonl"
    synthesized.write_text("".join(lines[:-1]) + lines[-1][:25])  # a crash tore the last line
    args = ["synthesize", "--data", str(tiny_beir), "--output", str(synthesized), "--expert", str(tiny_lm_dir),
            "--max-new-tokens", "10", "--num-candidates", "3", "--committee", "bm25", "minilm",
            "--negatives", "bm25", "minilm", "--num-negatives", "3"]
    capsys.readouterr()
    with pytest.warns(UserWarning, match="partly written last line"):
        assert main(args) == 0
    assert "wrote 1 records to" in capsys.readouterr().out
    assert main(args) == 0
    assert "wrote 0 records" in capsys.readouterr().out
    assert len(synthesized.read_text().splitlines()) == 12


def test_round_trip_train_then_load_and_encode(synthesized, tiny_lm_dir, tmp_path):
    model_dir = tmp_path / "model"
    rc = main(["train", "--base-model", str(tiny_lm_dir), "--train-data", str(synthesized), "--group-size", "4",
               "--batch-size", "4", "--lora-r", "4", "--lora-alpha", "8", "--max-steps", "3",
               "--output-dir", str(model_dir), "--merge"])
    assert rc == 0
    config = json.loads((model_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_lm_dir.resolve())
    with torch.serialization.safe_globals([torch.nn.Embedding]):
        emb = torch.load(model_dir / "embedding" / "emb.pth", weights_only=True)
    assert isinstance(emb, torch.nn.Embedding)
    assert (model_dir / "embedding" / "lm_head.pth").exists()  # the tiny model's head is untied
    assert len(json.loads((model_dir / "train_log.jsonl").read_text().splitlines()[-1])) > 0

    embedder = O1Embedder.from_pretrained(str(model_dir), device="cpu", dtype="fp32", thought_cache=False,
                                          max_new_tokens=6)
    assert embedder.thinker.prompt_style == "official"
    assert emb.weight.shape[0] == len(embedder.encoder.tokenizer)
    emb_id = embedder.encoder.tokenizer.convert_tokens_to_ids("<emb>")
    loaded_row = embedder.encoder.model.get_input_embeddings().weight[emb_id]
    assert torch.allclose(loaded_row, emb.weight[emb_id].float())  # the trained row is what gets used
    q = embedder.encode_queries(["insulin glucose diabetes", "coral reef ocean"], k=2)
    d = embedder.encode_documents(["insulin and glucose in diabetes", "the coral reef and the sea"])
    assert q.shape == d.shape == (2, 64) and np.isfinite(q).all()
    assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-4)

    merged = O1Embedder.from_pretrained(str(model_dir / "merged"), device="cpu", dtype="fp32", thought_cache=False)
    assert merged.thinker.prompt_style == "official"
    assert np.allclose(merged.encode_documents(["the coral reef and the sea"]), d[1], atol=1e-4)
