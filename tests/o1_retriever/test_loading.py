import os
import warnings

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.formatting import SPECIAL_TOKENS
from tests.o1_retriever.official_layout import write_official_adapter


def test_plain_causal_lm_gets_tokens_and_chat_style(tiny_lm_dir):
    emb = O1Embedder.from_pretrained(str(tiny_lm_dir), device="cpu", dtype="fp32", thought_cache=False)
    vocab = emb.encoder.tokenizer.get_vocab()
    assert all(t in vocab for t in SPECIAL_TOKENS)
    assert emb.thinker.prompt_style == "chat"
    assert emb.encoder.model.get_input_embeddings().weight.shape[0] == len(emb.encoder.tokenizer)


def test_merged_o1_checkpoint_uses_official_style(tiny_embedder):
    assert tiny_embedder.thinker.prompt_style == "official"
    assert tiny_embedder.thinker.prompt("q") == "<query>q</query><thought>"


def test_prompt_style_override_and_bad_values(tiny_o1_dir):
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     prompt_style="chat")
    assert emb.thinker.prompt_style == "chat"
    with pytest.raises(ValueError, match="prompt_style"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), prompt_style="raw")
    with pytest.raises(ValueError, match="quantization"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), quantization="2bit")
    with pytest.raises(ValueError, match="dtype"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), dtype="int3")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        O1Embedder.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(TypeError, match="str or PathLike"):
        O1Embedder.from_pretrained(123)


@pytest.mark.parametrize("save_lm_head", [False, True])
def test_official_adapter_layout_equals_merged_model(tiny_o1_dir, tmp_path, save_lm_head):
    merged, tok = write_official_adapter(tiny_o1_dir, tmp_path / "adapter", save_lm_head)
    merged.save_pretrained(tmp_path / "merged")
    tok.save_pretrained(tmp_path / "merged")
    from_adapter = O1Embedder.from_pretrained(str(tmp_path / "adapter"), device="cpu", dtype="fp32", thought_cache=False)
    from_merged = O1Embedder.from_pretrained(str(tmp_path / "merged"), device="cpu", dtype="fp32", thought_cache=False)
    assert from_adapter.thinker.prompt_style == "official"
    docs = ["protein cell gene", "the river and the ocean"]
    np.testing.assert_allclose(from_adapter.encode_documents(docs), from_merged.encode_documents(docs), atol=1e-5)
    base = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False)
    assert not np.allclose(base.encode_documents(docs), from_adapter.encode_documents(docs), atol=1e-3)


def test_emb_pth_with_a_foreign_object_is_refused(tiny_o1_dir, tmp_path):
    write_official_adapter(tiny_o1_dir, tmp_path / "adapter", False)
    torch.save({"not": "an embedding"}, tmp_path / "adapter" / "embedding" / "emb.pth")
    with pytest.raises(ValueError, match="Embedding"):
        O1Embedder.from_pretrained(str(tmp_path / "adapter"), device="cpu", dtype="fp32", thought_cache=False)


def test_pickled_code_in_emb_pth_is_not_executed(tiny_o1_dir, tmp_path):
    write_official_adapter(tiny_o1_dir, tmp_path / "adapter", False)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save(Evil(), tmp_path / "adapter" / "embedding" / "emb.pth")
    with pytest.raises(Exception) as info, warnings.catch_warnings():
        O1Embedder.from_pretrained(str(tmp_path / "adapter"), device="cpu", dtype="fp32", thought_cache=False)
    assert "weights_only" in str(info.value) or "Unsupported" in str(info.value) or "global" in str(info.value)


def test_shipped_adapter_becomes_the_default_and_is_merged_once(tiny_o1_dir, tmp_path, monkeypatch):
    import o1_retriever.default_model as default_model_module
    write_official_adapter(tiny_o1_dir, tmp_path / "adapter", False)
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(default_model_module, "default_model_path", lambda: tmp_path / "adapter")
    first = O1Embedder.from_pretrained(device="cpu", dtype="fp32", thought_cache=False)
    merged = list((tmp_path / "cache" / "models").glob("merged-*"))
    assert len(merged) == 1 and (merged[0] / "config.json").exists()
    (tmp_path / "adapter" / "README.md").write_text("# model card, edited after the merge\n")
    again = O1Embedder.from_pretrained(device="cpu", dtype="fp32", thought_cache=False)
    assert len(list((tmp_path / "cache" / "models").glob("merged-*"))) == 1  # a card edit is no new model
    assert first.thinker.prompt_style == "official" and first.name == "o1-retriever-default"
    direct = O1Embedder.from_pretrained(str(tmp_path / "adapter"), device="cpu", dtype="fp32", thought_cache=False)
    np.testing.assert_allclose(again.encode_documents(["protein cell"]), direct.encode_documents(["protein cell"]),
                               atol=1e-5)


def test_a_changed_adapter_retires_its_old_merged_copy(tiny_o1_dir, tmp_path, monkeypatch):
    import o1_retriever.default_model as default_model_module
    write_official_adapter(tiny_o1_dir, tmp_path / "adapter", False)
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(default_model_module, "default_model_path", lambda: tmp_path / "adapter")
    models = tmp_path / "cache" / "models"
    O1Embedder.from_pretrained(device="cpu", dtype="fp32", thought_cache=False)
    old = list(models.glob("merged-*"))
    assert len(old) == 1
    # A retrain (or an upgrade of the package) replaces the weights: one merge of the new ones, the old one goes.
    weights = tmp_path / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes())
    os.utime(weights, ns=(1, 1))
    fresh = O1Embedder.from_pretrained(device="cpu", dtype="fp32", thought_cache=False)
    now = list(models.glob("merged-*"))
    assert len(now) == 1 and now != old and (now[0] / "config.json").exists()
    assert not list(models.glob(".merged-*"))  # no temp dir left behind
    assert fresh.encode_documents("protein cell").shape == (fresh.dim,)


def test_an_interrupted_merge_leaves_nothing_a_later_load_would_trust(tiny_o1_dir, tmp_path, monkeypatch):
    import transformers

    import o1_retriever.default_model as default_model_module
    write_official_adapter(tiny_o1_dir, tmp_path / "adapter", False)
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(default_model_module, "default_model_path", lambda: tmp_path / "adapter")
    real_save = transformers.PreTrainedTokenizerBase.save_pretrained

    def killed(self, *args, **kwargs):  # the weights and config.json are written; then the process dies
        raise KeyboardInterrupt
    monkeypatch.setattr(transformers.PreTrainedTokenizerBase, "save_pretrained", killed)
    with pytest.raises(KeyboardInterrupt):
        O1Embedder.from_pretrained(device="cpu", dtype="fp32", thought_cache=False)
    assert not any((tmp_path / "cache" / "models").iterdir())
    monkeypatch.setattr(transformers.PreTrainedTokenizerBase, "save_pretrained", real_save)
    emb = O1Embedder.from_pretrained(device="cpu", dtype="fp32", thought_cache=False)
    assert emb.thinker.prompt_style == "official"


def test_an_encoder_is_refused_as_a_thinker_instead_of_loading_with_a_random_head(tmp_path):
    """transformers loads a BERT checkpoint as BertLMHeadModel with a freshly initialised head: without the check
    `from_pretrained(<MiniLM>)` returned a model that wrote noise. The error points to `composite(encoder=...)`."""
    from transformers import BertConfig, BertModel

    from o1_retriever.default_model import minilm_path
    with pytest.raises(ValueError, match=r"is a sentence-transformers encoder, not a causal language model.*"
                                         r"O1Embedder.composite\(encoder="):
        O1Embedder.from_pretrained(str(minilm_path()))  # the real all-MiniLM-L6-v2 from its PyPI package
    bert = tmp_path / "bert"
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         vocab_size=64)).save_pretrained(bert)
    with pytest.raises(ValueError, match="is a BertModel, not a causal language model"):
        O1Embedder.composite(thinker=str(bert), encoder=str(minilm_path()))


def test_a_hub_id_whose_quantized_copy_is_cached_loads_without_its_full_precision_files(tiny_o1_dir, tmp_path,
                                                                                          monkeypatch):
    """The type check read the hub config first, so a hub id loaded (and quantized) once, whose full-precision files
    were then removed, failed offline although its 4-bit copy sat in the cache."""
    pytest.importorskip("bitsandbytes")
    from o1_retriever.loading import load_causal_lm
    from o1_retriever.quantized import _make, _source_key
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    hub_id = "o1-tests/quantized-once-then-removed"  # in no hub cache: HF_HUB_OFFLINE=1 in the tests
    out = tmp_path / "models" / f"4bit-{_source_key(hub_id)}-bf16-cpu"
    _make(str(tiny_o1_dir), "4bit", "bfloat16", "cpu", str(out))  # the copy the earlier load made
    loaded = load_causal_lm(hub_id, device=torch.device("cpu"), dtype=torch.bfloat16, quantization="4bit")
    assert loaded.prompt_style == "official" and loaded.source == hub_id
