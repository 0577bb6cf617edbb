"""o1-retriever's own Llama (`o1_retriever/llama/`) against transformers' on the same weights: hidden states,
cached steps, generation and cache keys must agree exactly, and what it cannot load falls back or says why."""
import json
import shutil

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.llama import LlamaForCausalLM, unsupported_reason
from o1_retriever.loading import fingerprint, load_causal_lm
from o1_retriever.sampling import generate
from o1_retriever.thinking import cache_argument, generated_cache

CPU = torch.device("cpu")
TEXTS = ["protein cell gene cancer vaccine virus immune", "a study", "the risk of heart disease in mice"]


def _both(path, dtype):
    return (load_causal_lm(str(path), device=CPU, dtype=dtype, backend="transformers"),
            load_causal_lm(str(path), device=CPU, dtype=dtype, backend="native"))


@pytest.fixture(scope="module", params=[torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def pair(request, tiny_o1_dir):
    return _both(tiny_o1_dir, request.param)


def test_native_is_what_auto_loads_and_has_transformers_parameter_names(pair, tiny_o1_dir):
    hf, native = pair
    assert isinstance(native.model, LlamaForCausalLM)
    assert not isinstance(hf.model, LlamaForCausalLM)
    auto = load_causal_lm(str(tiny_o1_dir), device=CPU, dtype=torch.float32)
    assert not isinstance(auto.model, LlamaForCausalLM)  # load_causal_lm's own default stays transformers
    assert isinstance(load_causal_lm(str(tiny_o1_dir), device=CPU, dtype=torch.float32, backend="auto").model,
                      LlamaForCausalLM)
    assert set(native.model.state_dict()) == set(hf.model.state_dict())
    assert native.model.dtype == hf.model.dtype and native.model.device == hf.model.device
    # Weights counted as transformers counts them; it keeps one more copy of the RoPE frequencies.
    assert 0 <= hf.model.get_memory_footprint() - native.model.get_memory_footprint() <= 1024
    assert native.prompt_style == hf.prompt_style == "official"
    # Same weights, same fingerprint: thought and vector caches are shared between the backends.
    assert fingerprint(native.model, native.tokenizer) == fingerprint(hf.model, hf.tokenizer)


def test_hidden_states_match_transformers_exactly_with_left_padding(pair):
    hf, native = pair
    batch = hf.tokenizer(TEXTS, return_tensors="pt", padding=True)
    assert batch["attention_mask"].eq(0).any()  # really padded
    ours = native.tokenizer(TEXTS, return_tensors="pt", padding=True)
    assert torch.equal(batch["input_ids"], ours["input_ids"])
    with torch.inference_mode():
        want = hf.model.model(**batch).last_hidden_state
        got = native.model.model(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    assert torch.equal(got[real], want[real])
    assert torch.isfinite(got).all()  # padded query rows attend to nothing, yet nothing turns NaN
    with torch.inference_mode():  # the LM itself, called as a user would call transformers' model
        assert torch.equal(native.model(**batch).logits[real], hf.model(**batch).logits[real])
        assert torch.equal(native.model(**batch, logits_to_keep=1).logits, hf.model(**batch, logits_to_keep=1).logits)


def test_generation_and_its_cache_match_transformers(pair):
    hf, native = pair
    tok = hf.tokenizer
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    outs = []
    for lm in (hf, native):
        torch.manual_seed(0)
        with torch.inference_mode():
            outs.append(generate(lm.model, batch["input_ids"], batch["attention_mask"], n=2, temperature=0.7,
                                 top_p=0.9, max_new_tokens=10, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id, return_dict_in_generate=True, use_cache=True))
    want, got = outs
    assert torch.equal(got.sequences, want.sequences)
    want_cache = generated_cache(want)
    assert got.cache.get_seq_length() == want_cache.get_seq_length() == got.sequences.shape[1] - 1
    # A step on top of each cache (what the fused think-and-embed does) also agrees.
    n = got.sequences.shape[0]
    step = torch.full((n, 2), tok.eos_token_id)
    mask = torch.cat([batch["attention_mask"].repeat_interleave(2, 0),
                      torch.ones(n, got.sequences.shape[1] - batch["input_ids"].shape[1] + 1, dtype=torch.long)], 1)
    with torch.inference_mode():
        a = hf.model.model(input_ids=step, attention_mask=mask, use_cache=True,
                           **{cache_argument(hf.model.model): want_cache}).last_hidden_state
        b = native.model.model(input_ids=step, attention_mask=mask, cache=got.cache, use_cache=True).last_hidden_state
    assert torch.equal(a, b)


def test_plain_transformers_style_generate_call(pair):
    """What a user does with `embedder.thinker.model` as an LLM (the LangChain example): chat prompt, greedy,
    sequences back as a tensor; EOS from the model's generation config."""
    hf, native = pair
    chat = [{"role": "user", "content": "what is the risk of heart disease?"}]
    outs = []
    for lm in (hf, native):
        inputs = lm.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)
        outs.append(lm.model.generate(**inputs, max_new_tokens=12, do_sample=False))
    assert isinstance(outs[1], torch.Tensor) and torch.equal(outs[0], outs[1])
    assert native.model.config.eos_token_id == (hf.model.generation_config.eos_token_id,)


def test_generation_stops_when_every_row_wrote_eos(tiny_o1_dir):
    native = load_causal_lm(str(tiny_o1_dir), device=CPU, dtype=torch.float32, backend="native")
    tok = native.tokenizer
    batch = tok(TEXTS[:2], return_tensors="pt", padding=True)

    def eos_from_the_second_step(ids, scores):  # row 0 stops at once, row 1 one step later
        out = scores.clone()
        done = torch.tensor([True, ids.shape[1] > batch["input_ids"].shape[1]])
        out[done, tok.eos_token_id] = 1e9
        return out

    out = native.model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=20,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                logits_processor=[eos_from_the_second_step], return_dict_in_generate=True)
    new = out.sequences[:, batch["input_ids"].shape[1]:]
    assert new.shape[1] == 2
    assert new[0, 0] == tok.eos_token_id and new[0, 1] == tok.pad_token_id and new[1, 1] == tok.eos_token_id
    with pytest.raises(ValueError, match="max_new_tokens"):
        native.model.generate(batch["input_ids"], batch["attention_mask"])
    with pytest.raises(ValueError, match="do_sample=False"):
        native.model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=2, eos_token_id=2,
                              pad_token_id=2, do_sample=True)
    with pytest.raises(TypeError, match="num_beams"):
        native.model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=2, eos_token_id=2,
                              pad_token_id=2, num_beams=4)


def test_embedder_results_are_the_same_on_both_backends(tiny_o1_dir):
    kw = dict(device="cpu", dtype="bf16", thought_cache=False, max_new_tokens=8, temperature=0.7)
    hf = O1Embedder.from_pretrained(str(tiny_o1_dir), backend="transformers", **kw)
    native = O1Embedder.from_pretrained(str(tiny_o1_dir), **kw)
    assert isinstance(native.encoder.model, LlamaForCausalLM) and native.can_fuse
    assert (native.backend, hf.backend) == ("native", "transformers") and "backend='native'" in repr(native)
    np.testing.assert_array_equal(native.encode_document(TEXTS), hf.encode_document(TEXTS))
    np.testing.assert_array_equal(native.encode_query(TEXTS, k=2), hf.encode_query(TEXTS, k=2))  # fused path
    assert native.think(TEXTS, k=2) == hf.think(TEXTS, k=2)


def test_what_native_cannot_load_falls_back_or_is_refused(tiny_o1_dir, tiny_lm_dir, tmp_path):
    # A model without the O1 tokens is chat-prompted and gets new token rows: transformers does that.
    lm = load_causal_lm(str(tiny_lm_dir), device=CPU, dtype=torch.float32, backend="auto")
    assert not isinstance(lm.model, LlamaForCausalLM) and lm.prompt_style == "chat"
    with pytest.raises(ValueError, match="lacks the O1 tokens"):
        load_causal_lm(str(tiny_lm_dir), device=CPU, dtype=torch.float32, backend="native")
    # Scaled RoPE is not implemented: auto takes transformers, native says why.
    scaled = tmp_path / "scaled"
    shutil.copytree(tiny_o1_dir, scaled)
    config = json.loads((scaled / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    (scaled / "config.json").write_text(json.dumps(config))
    assert "rope type 'linear'" in unsupported_reason(scaled)
    with pytest.raises(ValueError, match="rope type"):
        load_causal_lm(str(scaled), device=CPU, dtype=torch.float32, backend="native")
    assert not isinstance(load_causal_lm(str(scaled), device=CPU, dtype=torch.float32, backend="auto").model,
                          LlamaForCausalLM)
    with pytest.raises(ValueError, match="backend"):
        load_causal_lm(str(tiny_o1_dir), device=CPU, dtype=torch.float32, backend="fast")
    with pytest.raises(ValueError, match="does not quantize"):
        load_causal_lm(str(tiny_o1_dir), device=CPU, dtype=torch.float32, backend="native", quantization="4bit")


def test_weights_that_do_not_fit_the_config_are_refused(tiny_o1_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_o1_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["num_hidden_layers"] = 3  # the file has two
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match the config"):
        LlamaForCausalLM.from_pretrained(broken)
    # An untied model whose file lacks the LM head must not load with an empty head.
    from safetensors.torch import load_file, save_file
    headless = tmp_path / "headless"
    shutil.copytree(tiny_o1_dir, headless)
    assert json.loads((headless / "config.json").read_text())["tie_word_embeddings"] is False
    weights = load_file(str(headless / "model.safetensors"))
    del weights["lm_head.weight"]
    save_file(weights, str(headless / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="lm_head.weight"):
        LlamaForCausalLM.from_pretrained(headless)
