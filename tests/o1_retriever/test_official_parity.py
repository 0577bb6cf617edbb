"""Official checkpoints embed by the official rules (docs/guide.md, "Parity with the official code").

Expected vectors are computed here with transformers alone, from the rules as the guide writes them: tokenize
with truncation to N tokens, append `<emb>`, take the last hidden state at `<emb>`, L2-normalise; a query is
`<query>q</query><thought>t</s>` per thought and, with aggregation "mean", the mean of its normalised thought
vectors. Thoughts are fixed (the generator is replaced on the instance, so the comparison is about embedding only).
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.default_model import ADAPTER_DIR
from o1_retriever.settings import InferenceSettings, read_model_settings, resolve
from tests.o1_retriever.official_layout import write_official_adapter

WORDS = "protein cell gene cancer vaccine virus immune insulin diabetes blood heart brain study".split()
THOUGHTS = [" the gene raises risk of disease", " insulin treatment reduced blood results"]


def _long_text(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def _by_hand(model, tok, text: str, n: int) -> np.ndarray:
    ids = tok(text, truncation=True, max_length=n)["input_ids"] + [tok.convert_tokens_to_ids("<emb>")]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1]
    return torch.nn.functional.normalize(hidden[0, -1].float(), dim=-1).numpy()


@pytest.fixture(params=["merged", "lora+emb.pth+lm_head.pth"])
def checkpoint(request, tiny_o1_dir, tmp_path):
    """(checkpoint dir, the reference model built with transformers/peft directly, its tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_o1_dir)
    if request.param == "merged":
        return tiny_o1_dir, AutoModelForCausalLM.from_pretrained(tiny_o1_dir).eval(), tok
    return tmp_path, write_official_adapter(tiny_o1_dir, tmp_path, save_lm_head=True, seed=5)[0], tok


def test_long_document_and_query_vectors_follow_the_official_rules(checkpoint):
    path, reference, tok = checkpoint
    emb = O1Embedder.from_pretrained(str(path), device="cpu", dtype="fp32", thought_cache=False, fused=False)
    assert (emb.query_max_length, emb.document_max_length) == (512, 512)  # no o1_generation.json: official
    # The generator is replaced on this instance: fixed thoughts isolate the embedding rules under test.
    emb.thinker.think = lambda queries, k, *a, **kw: [THOUGHTS[:k] for _ in queries]

    document = _long_text(900, seed=1)
    assert len(tok(document)["input_ids"]) > 600  # the window cuts it
    with pytest.warns(UserWarning, match="longer than 512 tokens"):
        ours = emb.encode_documents([document])[0]
    np.testing.assert_allclose(ours, _by_hand(reference, tok, document, 512), atol=1e-5)
    assert len(emb.encoder.tokenize([document], 512)[0]) == 513  # 512 text tokens, then <emb>

    query = _long_text(700, seed=2)
    got = emb.encode_queries([query], k=2)[0]
    want = np.mean([_by_hand(reference, tok, f"<query>{query}</query><thought>{t}</s>", 512) for t in THOUGHTS],
                   axis=0)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_short_window_keeps_exactly_n_tokens_before_emb(tiny_embedder):
    from o1_retriever.encoding import LMEncoder
    encoder = LMEncoder(tiny_embedder.encoder.model, tiny_embedder.encoder.tokenizer)  # its own one-time warning
    text = _long_text(200, seed=3)
    with pytest.warns(UserWarning, match="longer than 7 tokens and were truncated"):
        ids = encoder.tokenize([text], 7)[0]
    assert ids[:-1] == encoder.tokenizer(text)["input_ids"][:7] and len(ids) == 8
    assert ids[-1] == encoder.emb_id
    assert encoder.tokenize(["cell"], 7)[0] == encoder.tokenizer("cell")["input_ids"] + [encoder.emb_id]


def test_checkpoint_without_settings_gets_official_windows_and_bundled_joint_keeps_its_own():
    official = InferenceSettings()
    assert (official.query_max_length, official.document_max_length) == (512, 512)
    joint = resolve(read_model_settings(ADAPTER_DIR), {})
    # 255 + <emb> and 191 + <emb>: the token counts the joint model was tuned and evaluated with
    assert (joint.query_max_length, joint.document_max_length) == (255, 191)
    assert resolve(read_model_settings(ADAPTER_DIR), {"document_max_length": 512}).document_max_length == 512
