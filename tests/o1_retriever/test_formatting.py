from o1_retriever.formatting import (SPECIAL_TOKENS, add_special_tokens, chat_thinking_prompt,
                                     query_embedding_text, thinking_prompt)


def test_official_strings_match_the_reference_format():
    assert thinking_prompt("why?") == "<query>why?</query><thought>"
    assert query_embedding_text("why?", "because", "</s>") == "<query>why?</query><thought>because</s>"
    assert query_embedding_text("why?", "", "</s>") == "<query>why?</query><thought></s>"


def test_add_special_tokens_resizes_and_sets_left_padding(tiny_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    before = len(tok)
    assert add_special_tokens(model, tok) is True
    assert len(tok) == before + 4
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert tok.padding_side == "left" and tok.pad_token is not None
    # each token is a single id, never split
    for t in SPECIAL_TOKENS:
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1
    assert add_special_tokens(model, tok) is False  # idempotent


def test_chat_prompt_uses_the_template_and_the_query(tiny_lm_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    prompt = chat_thinking_prompt(tok, "how do tides work")
    assert "how do tides work" in prompt and prompt.endswith("<|assistant|>")
    tok.chat_template = None
    assert chat_thinking_prompt(tok, "q").endswith("Passage:")


def test_new_tokens_in_a_padded_vocabulary_start_at_the_mean_row():
    """Qwen and Gemma ship more embedding rows than tokens; the O1 tokens land on those spare rows, which no
    resize touches: they must start at the mean row too, not at whatever untrained values the spare rows hold."""
    import torch

    from tests.fixtures import build_tiny_llama, build_tokenizer
    tok = build_tokenizer(with_o1_tokens=False)
    known = len(tok)
    model = build_tiny_llama(known + 64)  # 64 spare rows, random here
    assert add_special_tokens(model, tok) is True
    assert model.get_input_embeddings().weight.shape[0] == known + 64  # no resize was needed
    ids = tok.convert_tokens_to_ids(SPECIAL_TOKENS)
    for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
        mean = layer.weight[:known].mean(0)
        for i in ids:
            torch.testing.assert_close(layer.weight[i], mean)
    spare = model.get_input_embeddings().weight[max(ids) + 1]
    assert not torch.allclose(spare, model.get_input_embeddings().weight[:known].mean(0))  # other spare rows untouched
