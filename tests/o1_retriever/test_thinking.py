"""The thinker reads each prompt once for its k samples, and samples exactly what generate gives k copies."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from o1_retriever.sampling import generate, row_seeds

QUERIES = ["protein folding in cells", "solar energy", "why do rivers flood every spring in the north"]


@pytest.fixture()
def thinker(tiny_o1_dir):
    from o1_retriever import O1Embedder
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     vector_cache=False, max_new_tokens=8, seed=3)
    return emb.thinker, emb.settings


def test_prompt_read_once_for_k_samples(thinker):
    thinker, settings = thinker
    seen = []
    hook = thinker.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        generation = thinker.generation(QUERIES, 3, settings)
    finally:
        hook.remove()
    prompt_len = generation.prompt_ids.shape[1]
    assert seen[0] == (len(QUERIES), prompt_len - 1)  # the prompts, once each, but their last token
    assert all(rows == 3 * len(QUERIES) and length == 1 for rows, length in seen[1:])  # then one token per step
    assert generation.new_tokens.shape[0] == 3 * len(QUERIES)


@pytest.mark.parametrize("k", [2, 3])
def test_shared_prompt_samples_what_k_copies_sample(thinker, k):
    thinker, settings = thinker
    settings = dataclasses.replace(settings, temperature=1.0, top_p=0.95)  # a flat model: many distinct tokens
    shared = thinker.generation(QUERIES, k, settings).new_tokens
    tok = thinker.tokenizer
    batch = tok([thinker.prompt(q) for q in QUERIES], return_tensors="pt", padding=True)
    with torch.inference_mode():
        copies = generate(thinker.model, batch["input_ids"], batch["attention_mask"], n=k,
                          temperature=settings.temperature, top_p=settings.top_p,
                          seeds=row_seeds(settings.seed, QUERIES, k), max_new_tokens=settings.max_new_tokens,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, share_prompt=False)
    copies = copies[:, batch["input_ids"].shape[1]:]
    assert torch.equal(shared, copies)
    assert len({tuple(r) for r in shared.tolist()}) > len(QUERIES)  # the k samples of a query differ


def test_min_new_tokens_keeps_a_thought_from_ending_early(thinker):
    thinker, settings = thinker
    settings = dataclasses.replace(settings, temperature=1.0, top_p=0.95)
    # Make the token row 0 samples second the end of a thought: without a minimum, that thought ends after one token.
    second = int(thinker.generation(QUERIES, 2, settings).new_tokens[0, 1])
    thinker.tokenizer.eos_token = thinker.tokenizer.convert_ids_to_tokens(second)
    eos = thinker.tokenizer.eos_token_id
    assert eos == second
    assert int(thinker.generation(QUERIES, 2, settings).new_tokens[0, 1]) == eos
    longer = thinker.generation(QUERIES, 2, dataclasses.replace(settings, min_new_tokens=4)).new_tokens
    assert not (longer[:, :4] == eos).any()  # no row ends before its fourth token
    assert longer.shape[1] >= 4


def test_min_new_tokens_is_checked_and_keys_the_cache_only_when_set(thinker):
    _, settings = thinker
    assert "min_new_tokens" not in settings.generation()  # thoughts cached before the setting keep their keys
    assert dataclasses.replace(settings, min_new_tokens=4).generation()["min_new_tokens"] == 4
    for bad, says in [(-1, "min_new_tokens must be an int >= 0"), (9, "min_new_tokens=9 is above max_new_tokens=8")]:
        with pytest.raises(ValueError, match=says):
            dataclasses.replace(settings, min_new_tokens=bad)

