"""The joint model on a tiny random Llama: both losses from one forward pass, masks, token rows."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from o1_retriever_training.arguments import (DataArguments, ModelArguments, TrainingArguments,
                                             check_training_arguments)
from o1_retriever_training.data import TrainRecord
from o1_retriever_training.dataset import IGNORE, TrainCollator, TrainDataset
from o1_retriever_training.modeling import build

RECORDS = [TrainRecord("insulin diabetes risk", ["insulin raises glucose in diabetes patients"],
                       ["coral reef ocean", "brain memory cortex"], "diabetes is about insulin", 1),
           TrainRecord("virus vaccine", ["a vaccine trains immune antibody response"],
                       ["tumor chemotherapy", "heart blood pressure"], "", 2),
           TrainRecord("ocean tides", ["the sea tide and coral reef"], ["insulin glucose", "virus"],
                       "tides move the ocean water", 3)]


def _model(path, **kw):
    args = ModelArguments(base_model=str(path), lora_r=4, lora_alpha=8, lora_dropout=0.0,
                          gradient_checkpointing=kw.pop("gradient_checkpointing", False), **kw)
    return build(args, temperature=0.05, lambda_emb=0.7)


def _batch(model):
    ds = TrainDataset(RECORDS, group_size=3, empty_thought_ratio=0.0)
    return TrainCollator(model.tokenizer)([ds[i] for i in range(len(ds))])


@pytest.fixture(scope="module")
def model(tiny_lm_dir):
    return _model(tiny_lm_dir)


def test_one_forward_gives_both_losses_and_their_weighted_sum(model):
    model.eval()
    batch = _batch(model)
    out = model(**batch)
    assert out.loss.item() == pytest.approx(0.7 * out.loss_emb.item() + 0.3 * out.loss_gen.item(), rel=1e-5)
    with torch.no_grad():
        # L_gen by hand from the full LM's logits, on thought + EOS positions only.
        logits = model.lm(input_ids=batch["query_input_ids"], attention_mask=batch["query_attention_mask"]).logits
        labels = batch["query_labels"]
        expected_gen = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                       labels[:, 1:].reshape(-1), ignore_index=IGNORE)
        # InfoNCE by hand: <emb> states, positives at 0, 3, 6 among all 9 passages (in-batch negatives).
        hq = model.backbone(input_ids=batch["query_input_ids"], attention_mask=batch["query_attention_mask"]).last_hidden_state[:, -1]
        hp = model.backbone(input_ids=batch["passage_input_ids"], attention_mask=batch["passage_attention_mask"]).last_hidden_state[:, -1]
        scores = F.normalize(hq, dim=-1) @ F.normalize(hp, dim=-1).T / 0.05
        expected_emb = F.cross_entropy(scores, torch.tensor([0, 3, 6]))
    assert out.loss_gen.item() == pytest.approx(expected_gen.item(), rel=1e-4)
    assert out.loss_emb.item() == pytest.approx(expected_emb.item(), rel=1e-4)
    # Record 2 has an empty thought: it contributes no generation labels.
    assert (labels[1] == IGNORE).all() and (labels[0] != IGNORE).sum() > 1


def test_generation_loss_ignores_the_query_tokens(model):
    model.eval()
    batch = _batch(model)
    base = model(**batch).loss_gen
    labels = batch["query_labels"].clone()
    first = (labels[0] != IGNORE).nonzero()[0].item()
    labels[0, :first] = IGNORE  # already ignored: unchanged
    assert model(**{**batch, "query_labels": labels}).loss_gen.item() == pytest.approx(base.item())
    labels[0, first] = IGNORE  # drop the first thought token: L_gen changes
    assert model(**{**batch, "query_labels": labels}).loss_gen.item() != pytest.approx(base.item())


def test_token_rows_get_gradients_only_when_enabled(tiny_lm_dir):
    trained = _model(tiny_lm_dir, gradient_checkpointing=True)
    trained.train()
    trained(**_batch(trained)).loss.backward()
    grad = trained.token_delta.grad
    assert grad is not None and (grad.abs().sum(-1) > 0).all()  # all four O1 tokens are in the inputs
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in trained.named_parameters() if "lora_" in n)
    frozen = _model(tiny_lm_dir, train_token_rows=False)
    assert not frozen.token_delta.requires_grad
    assert frozen.token_delta.shape == (4, 64)


def test_trained_rows_reach_the_exported_embedding(model):
    with torch.no_grad():
        model.token_delta[3] += 1.0
    emb = model.trained_input_embedding()
    base = model.base_model.get_input_embeddings().weight
    ids = model.token_ids.tolist()
    assert torch.allclose(emb.weight[ids[3]], base[ids[3]] + 1.0)
    assert torch.equal(emb.weight[: ids[0]], base[: ids[0]])
    with torch.no_grad():
        model.token_delta.zero_()


@pytest.mark.parametrize("lam,tau,match", [(1.5, 0.02, "lambda_emb=1.5 must be in"), (-0.1, 0.02, "lambda_emb=-0.1"),
                                           (0.8, 0.0, "temperature=0.0 must be > 0"), (0.8, -1, "temperature=-1")])
def test_bad_hyperparameters_are_rejected(lam, tau, match):
    with pytest.raises(ValueError, match=match):
        check_training_arguments(TrainingArguments(lambda_emb=lam, temperature=tau), DataArguments())


def test_lambda_one_is_pure_contrastive(tiny_lm_dir):
    m = build(ModelArguments(base_model=str(tiny_lm_dir), lora_r=4, lora_alpha=8, gradient_checkpointing=False),
              lambda_emb=1.0)
    m.eval()
    out = m(**_batch(m))
    assert out.loss.item() == pytest.approx(out.loss_emb.item())


def test_a_gguf_of_ones_own_named_like_the_bundled_model_is_not_the_bundled_conversion(tmp_path, monkeypatch):
    """The bundled SmolLM2 (Q4_1) converts to <cache>/models/SmolLM2-135M-Instruct; a user's own
    SmolLM2-135M-Instruct.gguf (another quantization) must convert on its own, to the folder the quantized loader
    (o1_retriever.merging.plain_copy) converts it to, not reuse the bundled copy. Conversions stand in as folders
    holding a config.json, which is what the cache takes for a finished conversion."""
    from o1_retriever_training.modeling import resolve_base
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    models = tmp_path / "cache" / "models"
    bundled = models / "SmolLM2-135M-Instruct"
    own = tmp_path / "me" / "SmolLM2-135M-Instruct.gguf"
    own.parent.mkdir()
    own.write_bytes(b"GGUF another quantization")
    import hashlib
    key = hashlib.sha256(f"{own.resolve()}:{own.stat().st_size}".encode()).hexdigest()[:16]  # as plain_copy keys it
    for done in (bundled, models / f"SmolLM2-135M-Instruct-{key}"):
        done.mkdir(parents=True)
        (done / "config.json").write_text("{}")
    assert resolve_base(str(own)) == (str(models / f"SmolLM2-135M-Instruct-{key}"), str(own.resolve()))


def test_a_missing_gguf_base_is_named_before_anything_converts(tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ValueError, match=rf"base_model='{missing}': {missing} does not exist"):
        build(ModelArguments(base_model=str(missing)))
    assert not list((tmp_path / "cache").rglob("*missing*"))  # no conversion lock or temporary started


def test_a_local_base_model_does_not_convert_the_bundled_one_to_compare(tmp_path, monkeypatch, tiny_lm_dir):
    """resolve_base compared a local --base-model with the bundled SmolLM2's conversion by making it: about 40 s of
    GGUF conversion on a new machine (an empty cache) before training another model."""
    from o1_retriever_training.modeling import resolve_base
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    assert resolve_base(str(tiny_lm_dir)) == (str(Path(tiny_lm_dir).resolve()),) * 2
    assert not (tmp_path / "cache" / "models").exists()
    bundled = tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct"  # once converted, it is still recognised
    bundled.mkdir(parents=True)
    assert resolve_base(str(bundled))[1] == "HuggingFaceTB/SmolLM2-135M-Instruct"
