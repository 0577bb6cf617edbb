"""o1-retriever's own tokenizer (`o1_retriever/tokenizer.py`) against transformers' on the same files."""
import json
import shutil

import pytest
import torch
from transformers import AutoTokenizer

from o1_retriever.tokenizer import Tokenizer, unsupported_reason

TEXTS = ["protein cell gene cancer", "a", "<query>the risk of heart disease</query><thought>mice", "  spaced  out ",
         "üñíçødé and émojis 🧬", ""]


@pytest.fixture(scope="module")
def pair(tiny_o1_dir):
    return AutoTokenizer.from_pretrained(tiny_o1_dir), Tokenizer.from_pretrained(tiny_o1_dir)


def test_vocabulary_and_special_tokens_match(pair):
    hf, ours = pair
    assert len(ours) == len(hf) and ours.get_vocab() == hf.get_vocab()
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        assert getattr(ours, name) == getattr(hf, name), name
        assert getattr(ours, f"{name}_id") == getattr(hf, f"{name}_id"), name
    assert ours.convert_tokens_to_ids(["<emb>", "<query>"]) == hf.convert_tokens_to_ids(["<emb>", "<query>"])


@pytest.mark.parametrize("special", [True, False])
def test_ids_padding_and_truncation_match(pair, special):
    hf, ours = pair
    hf.padding_side = ours.padding_side = "left"
    assert ours(TEXTS, add_special_tokens=special)["input_ids"] == hf(TEXTS, add_special_tokens=special)["input_ids"]
    want = hf(TEXTS, return_tensors="pt", padding=True, truncation=True, max_length=5, add_special_tokens=special)
    got = ours(TEXTS, return_tensors="pt", padding=True, truncation=True, max_length=5, add_special_tokens=special)
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert torch.equal(got["attention_mask"], want["attention_mask"])
    # Truncation applies to that call only.
    assert max(map(len, ours(TEXTS)["input_ids"])) > 5
    hf.padding_side = ours.padding_side = "right"
    try:
        assert ours(TEXTS, padding=True)["input_ids"] == hf(TEXTS, padding=True)["input_ids"]
    finally:
        hf.padding_side = ours.padding_side = "left"
    assert ours("one text")["input_ids"] == hf("one text")["input_ids"]


def test_decoding_matches(pair):
    hf, ours = pair
    for ids in hf(TEXTS)["input_ids"]:
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)
    assert ours.decode(torch.tensor(hf("a study")["input_ids"])) == "a study"


def test_bad_input_is_refused(pair):
    _, ours = pair
    with pytest.raises(TypeError, match="list of str"):
        ours([1, 2])
    with pytest.raises(ValueError, match="return_tensors"):
        ours(["a"], return_tensors="np")
    with pytest.raises(ValueError, match="padding=True"):
        ours(["a", "a study of mice"], return_tensors="pt")


def test_chat_template_renders_as_transformers_does(pair):
    hf, ours = pair
    assert ours.chat_template == hf.chat_template
    chat = [{"role": "user", "content": "why do tides <emb> happen?"}]
    for kwargs in ({"tokenize": False, "add_generation_prompt": True}, {"add_generation_prompt": True},
                   {"return_dict": True, "return_tensors": "pt", "add_generation_prompt": True}):
        got, want = ours.apply_chat_template(chat, **kwargs), hf.apply_chat_template(chat, **kwargs)
        assert type(got) is type(want) and _plain(got) == _plain(want)


def _plain(value):
    """A rendered string, or a BatchEncoding's ids as lists (tensors included)."""
    if isinstance(value, str):
        return value
    return {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in value.items()}


def test_configs_that_transformers_rewrites_are_left_to_it(tiny_o1_dir, tmp_path):
    assert unsupported_reason(tiny_o1_dir) is None
    for key, value, message in [("tokenizer_class", "LlamaTokenizer", "tokenizer_class"),
                                ("add_bos_token", True, "add_bos_token")]:
        path = tmp_path / key
        shutil.copytree(tiny_o1_dir, path)
        config = json.loads((path / "tokenizer_config.json").read_text())
        config[key] = value
        (path / "tokenizer_config.json").write_text(json.dumps(config))
        assert message in unsupported_reason(path)
    (tmp_path / "empty").mkdir()
    assert unsupported_reason(tmp_path / "empty") == "no tokenizer.json"


@pytest.mark.real_model
def test_real_tokenizer_matches_on_real_passages(shared_data):
    from o1_retriever.corpus import read_corpus
    from o1_retriever.default_model import joint_model_path
    from o1_retriever.loading import merged_adapter_dir
    path = merged_adapter_dir(joint_model_path(), torch.bfloat16)
    hf, ours = AutoTokenizer.from_pretrained(path), Tokenizer.from_pretrained(path)
    texts = [p.full_text for p in read_corpus(shared_data / "scifact" / "corpus.jsonl")[:300]]
    assert ours(texts)["input_ids"] == hf(texts)["input_ids"]
    for ids in hf(texts[:50])["input_ids"]:
        assert ours.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True)
