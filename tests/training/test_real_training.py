"""Both losses fall on the real SmolLM2-135M-Instruct with a few dozen SciFact train pairs.

Thoughts here are the first sentences of each positive passage, a stand-in for an expert's output
(running the synthesis expert on CPU would not fit the test budget); negatives are mined by BM25."""
import json

import pytest

from o1_retriever_training.arguments import DataArguments, ModelArguments, TrainingArguments
from o1_retriever_training.data import labeled_pairs, load_beir
from o1_retriever_training.members import BM25Member
from o1_retriever_training.negatives import mine_negatives
from o1_retriever_training.trainer import train


@pytest.mark.real_model
@pytest.mark.slow
def test_both_losses_fall_on_smollm2(shared_data, tmp_path):
    from o1_retriever.default_model import smollm2_base_dir
    base = smollm2_base_dir()
    data = load_beir(shared_data / "scifact", "train")
    pairs = labeled_pairs(data)[:16]
    ids = list(data.corpus)
    corpus = [data.corpus[i] for i in ids]
    negs = mine_negatives([p.query for p in pairs], [set(p.positive_ids) for p in pairs], ids, corpus,
                          [BM25Member(corpus)], num_negatives=3)
    path = tmp_path / "train.jsonl"
    with path.open("w") as f:
        for p, n in zip(pairs, negs):
            pos = data.corpus[p.positive_ids[0]]
            f.write(json.dumps({"query": p.query, "pos": pos, "neg": [data.corpus[d] for d in n],
                                "thought": " ".join(pos.split()[:30])}) + "\n")
    out = tmp_path / "out"
    train(ModelArguments(base_model=str(base), lora_r=8, lora_alpha=16),
          DataArguments(train_data=str(path), group_size=4, passage_max_length=64, query_thought_max_length=64,
                        empty_thought_ratio=0.0),
          # λ=0.5 and a high lr so that both losses move visibly within 8 steps
          TrainingArguments(output_dir=str(out), batch_size=8, num_epochs=4, learning_rate=1e-3, lambda_emb=0.5,
                            warmup_ratio=0.0, save_steps=1000))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 8
    first, last = log[:2], log[-2:]  # first and last epoch: the same 16 pairs each
    assert sum(r["loss_emb"] for r in last) < sum(r["loss_emb"] for r in first)
    assert sum(r["loss_gen"] for r in last) < sum(r["loss_gen"] for r in first)
    assert (out / "losses.png").exists() and (out / "embedding" / "emb.pth").exists()
