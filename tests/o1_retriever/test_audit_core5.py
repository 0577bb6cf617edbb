"""Thought-cache keys that tell apart what changes the thoughts (the thinker's precision), and an OpenAI reasoning
model's refusal of the embedder's sampling parameters, against a real loopback HTTP server."""
from __future__ import annotations

import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.openai_thinker import OpenAIThinker, RefusedSamplingWarning
from o1_retriever.remote_thinking import ThinkerAPIError
from o1_retriever.settings import InferenceSettings
from tests.fixtures import build_tiny_llama, build_tokenizer
from tests.o1_retriever.chat_servers import ChatStub, chat_reply

QUERIES = ["protein cell", "river water"]


@pytest.fixture(scope="module")
def bf16_saved_dir(tmp_path_factory):
    """A tiny O1 checkpoint saved in bf16, as most hub checkpoints are: loaded in fp32 its weights are the very same
    numbers, so a fingerprint of the weights alone cannot tell the two precisions apart."""
    path = tmp_path_factory.mktemp("tiny_bf16")
    tok = build_tokenizer(with_o1_tokens=True)
    build_tiny_llama(len(tok), seed=3).to(torch.bfloat16).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _load(path, dtype, cache):
    return O1Embedder.from_pretrained(str(path), device="cpu", dtype=dtype, thought_cache=cache, vector_cache=False,
                                      max_new_tokens=6, temperature=0.7)


def test_thoughts_of_one_precision_are_not_served_to_another(bf16_saved_dir, tmp_path):
    cache = tmp_path / "t.sqlite"
    fp32 = _load(bf16_saved_dir, "fp32", cache)
    fp32.think(QUERIES, k=2)
    assert fp32.cached_fraction(QUERIES, k=2) == 1.0
    bf16 = _load(bf16_saved_dir, "bf16", cache)
    assert bf16.thinker_fingerprint == fp32.thinker_fingerprint  # the same weights...
    assert bf16.cached_fraction(QUERIES, k=2) == 0.0  # ...computing in another precision: other thoughts
    fresh = _load(bf16_saved_dir, "bf16", False).think(QUERIES, k=2)
    assert bf16.think(QUERIES, k=2) == fresh  # sampled in bf16, then kept for bf16
    assert bf16.cached_fraction(QUERIES, k=2) == 1.0 and fp32.cached_fraction(QUERIES, k=2) == 1.0


def test_a_thinker_cast_in_place_does_not_reuse_its_earlier_thoughts(bf16_saved_dir, tmp_path):
    emb = _load(bf16_saved_dir, "fp32", tmp_path / "t.sqlite")
    emb.think(QUERIES, k=2)
    emb.thinker.model.to(torch.bfloat16)  # the fingerprint was taken at construction; the key reads the dtype now
    assert emb.cached_fraction(QUERIES, k=2) == 0.0
    cast = _load(bf16_saved_dir, "fp32", False)
    cast.thinker.model.to(torch.bfloat16)
    assert emb.think(QUERIES, k=2) == cast.think(QUERIES, k=2)  # thought anew, as the cast model thinks


def test_fp32_thoughts_keep_the_key_they_had_before_the_dtype_entered_it(bf16_saved_dir, tmp_path):
    """fp32 adds nothing to the key, so a user's thoughts cached in fp32 by an earlier version are still found."""
    from o1_retriever.cache import cache_key
    emb = _load(bf16_saved_dir, "fp32", tmp_path / "t.sqlite")
    params = emb._key_params()[0]
    assert "dtype" not in params
    template = f"{emb.thinker.prompt_style}:{emb.thinker.prompt('{query}')}"
    assert emb._keys(QUERIES[:1], 2) == [cache_key(emb.thinker_fingerprint, template, QUERIES[0], 2, params)]
    assert _load(bf16_saved_dir, "bf16", False)._key_params()[0]["dtype"] == "bf16"


# ---- an OpenAI reasoning model behind a real loopback server -----------------------------------------------------
def openai_reasoning_model(body):
    """Answers as OpenAI's reasoning models (o-series, gpt-5) do, one refusal at a time. The error bodies are OpenAI's
    own, as users posted them (github.com/gabrii/Cursor-Azure-GPT-5/issues/33 and owndev/Open-WebUI-Functions/issues/98
    for temperature, aandrew-me/tgpt/issues/333 for top_p, getomni-ai/zerox/issues/176 for max_tokens)."""
    def refuse(message, param, code):
        return 400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}, {}

    if "max_tokens" in body:
        return refuse("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                      "'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
    if body.get("temperature", 1) != 1:
        return refuse(f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. Only "
                      "the default (1) value is supported.", "temperature", "unsupported_value")
    if "top_p" in body:
        return refuse("Unsupported parameter: 'top_p' is not supported with this model.", "top_p",
                      "unsupported_parameter")
    query = body["messages"][-1]["content"][-12:]
    return 200, chat_reply(*(f"{query} thought {body.get('seed')}.{i}" for i in range(body.get("n", 1)))), {}


def test_a_reasoning_model_that_refuses_temperature_and_top_p_thinks_at_its_own(tiny_embedder, tmp_path):
    pytest.importorskip("httpx")
    cache = tmp_path / "t.sqlite"

    def embedder(url, **settings):
        return O1Embedder(OpenAIThinker(url, "o4-mini", retries=0, concurrency=1), tiny_embedder.encoder, name="x",
                          thought_cache=cache, max_new_tokens=8, **settings)

    with ChatStub(openai_reasoning_model) as stub:
        emb = embedder(stub.url, temperature=0.7)
        asked_keys = emb._keys(QUERIES, 2)
        with pytest.warns(RefusedSamplingWarning) as got:
            thoughts = emb.think(QUERIES, k=2)
            assert emb.think(["another query"], k=2)[0] != []  # learned once: no more refusals, no more warnings
        assert [str(w.message).split(" refuses ")[1].split()[0] for w in got] == ["temperature=0.7", "top_p=0.9"]
        assert "sampled at the model's own temperature, and the thought cache keys them so" in str(got[0].message)
        assert "Only the default (1) value is supported" in str(got[0].message)  # the server's own words
        assert [sorted(set(b) & {"max_tokens", "max_completion_tokens", "temperature", "top_p"}) for b in stub.bodies] \
            == [["max_tokens", "temperature", "top_p"], ["max_completion_tokens", "temperature", "top_p"],
                ["max_completion_tokens", "top_p"]] + [["max_completion_tokens"]] * 3
        assert [len(set(ts)) for ts in thoughts] == [2, 2]
        # Kept as sampled at the model's own temperature: not under the temperature asked for, and found again by a
        # new process (whose thinker has not learned the refusal yet) and at any temperature, without a request.
        assert emb.cached_fraction(QUERIES, k=2) == 1.0 and emb._keys(QUERIES, 2) != asked_keys
        asked = len(stub.bodies)
        for temperature in (0.7, 0.2):
            other = embedder(stub.url, temperature=temperature)
            assert other.cached_fraction(QUERIES, k=2) == 1.0 and other.think(QUERIES, k=2) == thoughts
        assert len(stub.bodies) == asked
        stub.answer = lambda body: (200, chat_reply(*(f"at {body['temperature']} {i}" for i in range(body["n"]))), {})
        # Once the server has answered with the temperature sent, that temperature keys its thoughts again.
        honouring = embedder(stub.url, temperature=0.7)
        assert honouring.think(["a new query"], k=2) == [["at 0.7 0", "at 0.7 1"]]
        assert honouring.cached_fraction(QUERIES, k=2) == 0.0
        assert honouring.think(QUERIES, k=2) == [["at 0.7 0", "at 0.7 1"]] * 2
    # other 400s are the server's word, as before
    with ChatStub(lambda body: (400, {"error": {"message": "Unsupported value: 'seed' must be below 2**31"}}, {})) \
            as stub:
        with pytest.raises(ThinkerAPIError, match="'seed' must be below"):
            OpenAIThinker(stub.url, "m", retries=0).think(["q"], 1, InferenceSettings(temperature=0.7))
        assert len(stub.bodies) == 1


def test_a_checkpoint_whose_generation_config_shapes_sampling_does_not_reuse_anothers_thoughts(tiny_o1_dir, tmp_path):
    """transformers' generate() applies what a checkpoint's generation_config.json sets beyond what the thinker
    passes (repetition_penalty, no_repeat_ngram_size, bad_words_ids, ...); the weights' fingerprint does not see it."""
    import json
    import shutil
    shaped = tmp_path / "shaped"
    shutil.copytree(tiny_o1_dir, shaped)
    config = json.loads((shaped / "generation_config.json").read_text())
    (shaped / "generation_config.json").write_text(json.dumps(config | {"no_repeat_ngram_size": 1}))
    cache = tmp_path / "t.sqlite"
    plain = _load(tiny_o1_dir, "fp32", cache)
    thoughts = plain.think(QUERIES, k=2)
    other = _load(shaped, "fp32", cache)
    assert other.thinker_fingerprint == plain.thinker_fingerprint  # the same weights...
    assert other.cached_fraction(QUERIES, k=2) == 0.0  # ...sampling under another rule
    fresh = _load(shaped, "fp32", False).think(QUERIES, k=2)
    assert fresh != thoughts and other.think(QUERIES, k=2) == fresh
    assert plain.cached_fraction(QUERIES, k=2) == 1.0  # a model that sets nothing beyond the usual keeps its keys


def test_a_sampling_rule_set_in_place_is_not_answered_from_the_vector_cache(tiny_o1_dir):
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     max_new_tokens=6, temperature=0.7)
    before = emb.encode_queries(QUERIES, k=2, return_thoughts=True)
    emb.thinker.model.generation_config.no_repeat_ngram_size = 1  # the thoughts' key reads it at each call...
    after = emb.encode_queries(QUERIES, k=2, return_thoughts=True)
    assert after.thoughts != before.thoughts  # ...and so does the vector cache's
