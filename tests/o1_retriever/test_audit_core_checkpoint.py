"""An official-layout O1 checkpoint (LoRA adapter + embedding/emb.pth) that is broken or mismatched: each failure
names the file and what is wrong, instead of loading wrong rows silently or failing deep inside a library."""
import json
import shutil

import pytest
import torch

from o1_retriever import O1Embedder
from tests.o1_retriever.official_layout import write_official_adapter


@pytest.fixture(scope="module")
def adapter(tiny_o1_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("official") / "adapter"
    write_official_adapter(tiny_o1_dir, out, save_lm_head=True)
    return out


def _copy(adapter, tmp_path):
    shutil.copytree(adapter, tmp_path / "adapter")
    return tmp_path / "adapter"


def _load(path):
    return O1Embedder.from_pretrained(str(path), device="cpu", dtype="fp32", thought_cache=False)


def _resave_embedding(path, name, rows_delta=0, width=None):
    old = torch.load(path / "embedding" / name, weights_only=False)
    rows, dim = old.weight.shape
    module = torch.nn.Embedding(rows + rows_delta, width or dim) if name == "emb.pth" else \
        torch.nn.Linear(width or dim, rows + rows_delta, bias=False)
    torch.save(module, path / "embedding" / name)


def test_an_emb_pth_short_of_the_o1_rows_is_refused_not_filled_with_the_mean(adapter, tmp_path):
    path = _copy(adapter, tmp_path)
    _resave_embedding(path, "emb.pth", rows_delta=-4)  # was: loaded, the four O1 rows set to the mean of the rest
    with pytest.raises(ValueError, match=r"emb.pth has \d+ rows but the adapter's tokenizer has O1 tokens up to "
                                         r"id \d+: the trained O1 token rows are missing"):
        _load(path)


def test_a_tokenizer_that_gained_a_token_after_emb_pth_loads_with_the_trained_o1_rows(adapter, tmp_path):
    from transformers import AutoTokenizer

    from o1_retriever.formatting import SPECIAL_TOKENS
    path = _copy(adapter, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})  # added after the embedding was saved
    tokenizer.save_pretrained(path)
    trained = torch.load(path / "embedding" / "emb.pth", weights_only=False).weight
    assert trained.shape[0] == len(tokenizer) - 1
    embedder = _load(path)  # was: refused, "has N rows but the adapter's tokenizer has N+1 tokens"
    model, loaded = embedder.thinker.model, embedder.thinker.tokenizer
    assert len(loaded) == len(tokenizer) and model.get_input_embeddings().weight.shape[0] >= len(tokenizer)
    ids = loaded.convert_tokens_to_ids(SPECIAL_TOKENS)
    assert torch.equal(model.get_input_embeddings().weight[ids].float(), trained[ids].float())
    assert embedder.encode_documents(["a document"]).shape[0] == 1


def test_a_token_gained_after_emb_pth_keeps_the_base_row_where_the_padded_base_has_one(tiny_o1_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base, tokenizer = tmp_path / "base", AutoTokenizer.from_pretrained(tiny_o1_dir)
    padded = AutoModelForCausalLM.from_pretrained(tiny_o1_dir)
    padded.resize_token_embeddings(len(tokenizer) + 8)  # a vocabulary padded to a round size (Qwen, Gemma)
    padded.save_pretrained(base)
    tokenizer.save_pretrained(base)
    path = tmp_path / "adapter"
    write_official_adapter(base, path, save_lm_head=False)
    emb = torch.load(path / "embedding" / "emb.pth", weights_only=False)
    torch.save(torch.nn.Embedding.from_pretrained(emb.weight[:len(tokenizer)]), path / "embedding" / "emb.pth")
    tokenizer.add_special_tokens({"pad_token": "<pad>"})  # id len(emb.pth): a row only the base has
    tokenizer.save_pretrained(path)
    model = _load(path).thinker.model
    pad = tokenizer.pad_token_id
    assert torch.equal(model.get_input_embeddings().weight[pad], padded.get_input_embeddings().weight[pad])


@pytest.mark.parametrize("name", ["emb.pth", "lm_head.pth"])
def test_embedding_files_of_another_width_are_refused(adapter, tmp_path, name):
    path = _copy(adapter, tmp_path)
    _resave_embedding(path, name, width=32)  # was: loaded, then a shape error at the first forward
    with pytest.raises(ValueError, match=rf"{name} has 32-d rows but the base model's hidden size is 64"):
        _load(path)


def test_a_truncated_emb_pth_or_lora_file_is_named(adapter, tmp_path):
    path = _copy(adapter, tmp_path)
    emb = path / "embedding" / "emb.pth"
    emb.write_bytes(emb.read_bytes()[:100])  # was: "PytorchStreamReader failed reading zip archive", no file named
    with pytest.raises(ValueError, match=r"emb.pth is not a readable torch.save file \(truncated or corrupt\?\)"):
        _load(path)
    shutil.copy(adapter / "embedding" / "emb.pth", emb)
    weights = path / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # was: "Error while deserializing header", no file named
    with pytest.raises(ValueError, match=r"adapter_model.safetensors is not a readable safetensors file"):
        _load(path)


def test_missing_lora_weights_a_missing_base_and_bad_json_are_named(adapter, tmp_path):
    path = _copy(adapter, tmp_path)
    (path / "adapter_model.safetensors").unlink()  # was: "Repo id must be a string, not <class 'PosixPath'>"
    with pytest.raises(ValueError, match="has adapter_config.json but no adapter_model.safetensors"):
        _load(path)
    shutil.copy(adapter / "adapter_model.safetensors", path)
    config = json.loads((path / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "moved-away")  # was: "Repo id must be in the form ..."
    (path / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"adapter_config.json: base_model_name_or_path '.*moved-away' does not "
                                         r"exist; set it to the base model's directory or hub id"):
        _load(path)
    (path / "adapter_config.json").write_text("{not json")  # was: a bare JSONDecodeError, no file named
    with pytest.raises(ValueError, match=r"adapter_config.json is not valid JSON"):
        _load(path)


def test_the_intact_checkpoint_still_loads(adapter):
    assert _load(adapter).thinker.prompt_style == "official"
