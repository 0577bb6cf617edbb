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
