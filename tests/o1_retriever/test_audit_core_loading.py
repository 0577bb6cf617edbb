"""Loading a causal LM from a path that is not a model: the error names the path and what a model path holds."""
import shutil

import pytest

from o1_retriever import O1Embedder


def test_a_directory_without_a_model_names_what_it_should_hold(tiny_o1_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"model directory '.*empty' holds no model: expected config.json.*"
                                         r"adapter_config.json"):
        O1Embedder.from_pretrained(str(tmp_path / "empty"), device="cpu", thought_cache=False)
    tokenizer_only = tmp_path / "tokenizer_only"  # was: "You need to have sentencepiece or tiktoken installed"
    tokenizer_only.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_o1_dir / name, tokenizer_only / name)
    with pytest.raises(ValueError, match=r"'.*tokenizer_only' holds no model"):
        O1Embedder.from_pretrained(str(tokenizer_only), device="cpu", thought_cache=False)


def test_a_file_that_is_not_gguf_is_refused_by_name(tiny_o1_dir):
    config = tiny_o1_dir / "config.json"  # was: "Repo id must be in the form 'repo_name' or 'namespace/repo_name'"
    with pytest.raises(ValueError, match=r"model path '.*config.json' is a file, not a model; give the model's "
                                         r"directory, a .gguf file or a hub id"):
        O1Embedder.from_pretrained(str(config), device="cpu", thought_cache=False)
