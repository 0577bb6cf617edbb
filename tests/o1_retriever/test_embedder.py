import dataclasses
import functools

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder, QueryEncoding

DOCS = ["protein cell gene expression", "the river and the ocean water", "a", "music history of the city war",
        "solar energy plant " * 20]


def test_single_str_gives_1d_and_lists_give_2d(tiny_embedder):
    v = tiny_embedder.encode_documents("protein cell")
    assert v.shape == (tiny_embedder.dim,)
    m = tiny_embedder.encode_documents(DOCS)
    assert m.shape == (len(DOCS), tiny_embedder.dim) and m.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    q = tiny_embedder.encode_queries("protein cell", k=2)
    assert q.shape == (tiny_embedder.dim,)


def test_length_sorted_batches_restore_input_order(tiny_embedder):
    together = tiny_embedder.encode_documents(DOCS, batch_size=2)
    alone = np.stack([tiny_embedder.encode_documents(d) for d in DOCS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert not np.allclose(together[0], together[1], atol=1e-3)


def test_a_documents_vector_does_not_depend_on_its_batch_neighbours(tiny_embedder):
    """Left padding must not move a text's positions: alone or batched beside a longer text, the same vector."""
    short, long = "a cell", "why is the sky blue when the sun is low over the sea in the evening"
    alone = tiny_embedder.encode_documents([short], batch_size=1)
    beside = tiny_embedder.encode_documents([long, short], batch_size=2)[1]
    np.testing.assert_allclose(beside, alone[0], atol=1e-6)


def test_k0_embeds_the_bare_query_in_the_official_format(tiny_embedder):
    q = tiny_embedder.encode_queries("protein cell", k=0)
    enc = tiny_embedder.encoder
    manual = enc.encode([f"<query>protein cell</query><thought>{enc.tokenizer.eos_token}"], 256)[0]
    np.testing.assert_allclose(q, manual, atol=1e-5)
    assert tiny_embedder.think("protein cell", k=0) == []


def test_return_thoughts_and_aggregations(tiny_embedder):
    r = tiny_embedder.encode_queries(["protein cell", "river ocean"], k=3, return_thoughts=True)
    assert isinstance(r, QueryEncoding) and r.embeddings.shape == (2, tiny_embedder.dim)
    assert len(r.thoughts) == 2 and all(len(t) == 3 for t in r.thoughts)
    # official mean is not re-normalised; normalized_mean is the same direction with unit norm
    norm_mean = tiny_embedder.encode_queries(["protein cell", "river ocean"], k=3, aggregation="normalized_mean")
    np.testing.assert_allclose(norm_mean, r.embeddings / np.linalg.norm(r.embeddings, axis=1, keepdims=True), atol=1e-5)
    assert (np.linalg.norm(r.embeddings, axis=1) <= 1 + 1e-5).all()
    with_q = tiny_embedder.encode_queries(["protein cell"], k=3, aggregation="mean_with_query")
    bare = tiny_embedder.encode_queries(["protein cell"], k=0)
    plain = tiny_embedder.encode_queries(["protein cell"], k=3)  # same batch, so the same sampled thoughts
    expected = (plain[0] * 3 + bare[0]) / 4
    np.testing.assert_allclose(with_q[0], expected / np.linalg.norm(expected), atol=1e-4)
    single = tiny_embedder.encode_queries("protein cell", k=2, return_thoughts=True)
    assert single.embeddings.ndim == 1 and len(single.thoughts) == 2 and isinstance(single.thoughts[0], str)


def test_query_weight_mixes_bare_query_and_thoughts(tiny_embedder):
    queries = ["protein cell", "river ocean"]
    plain = tiny_embedder.encode_queries(queries, k=3)  # same batch, so the same sampled thoughts
    bare = tiny_embedder.encode_queries(queries, k=0)
    for w in (0.0, 0.25, 0.7, 1.0):
        got = tiny_embedder.encode_queries(queries, k=3, aggregation="mean_with_query", query_weight=w)
        expected = w * bare + (1 - w) * plain
        np.testing.assert_allclose(got, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-4)
    # None is the equal share, 1/(k+1): the same as weighting by hand
    equal = tiny_embedder.encode_queries(queries, k=3, aggregation="mean_with_query")
    np.testing.assert_allclose(equal, tiny_embedder.encode_queries(queries, k=3, aggregation="mean_with_query",
                                                                   query_weight=0.25), atol=1e-5)
    with pytest.raises(ValueError, match=r"query_weight must be in \[0, 1\].*got 1.5"):
        tiny_embedder.encode_queries(queries, k=3, aggregation="mean_with_query", query_weight=1.5)
    with pytest.raises(TypeError, match="query_weight must be a number"):
        tiny_embedder.encode_queries(queries, k=3, aggregation="mean_with_query", query_weight="0.5")
    with pytest.raises(ValueError, match="query_weight=0.5 only applies to aggregation='mean_with_query'"):
        tiny_embedder.encode_queries(queries, k=3, query_weight=0.5)  # the embedder's own aggregation is mean


def test_embedder_query_weight_is_its_default_and_overridable(tiny_o1_dir):
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     aggregation="mean_with_query", query_weight=0.8)
    assert emb.query_weight == 0.8
    qs = ["protein cell", "river ocean"]
    np.testing.assert_allclose(emb.encode_queries(qs, k=2),
                               emb.encode_queries(qs, k=2, query_weight=0.8), atol=1e-5)
    assert not np.allclose(emb.encode_queries(qs, k=2), emb.encode_queries(qs, k=2, query_weight=0.0), atol=1e-3)
    # another aggregation for one call leaves the embedder's weight out of it
    mean = emb.encode_queries(qs, k=2, aggregation="mean")
    assert mean.shape == (2, emb.dim)
    with pytest.raises(ValueError, match="only applies to aggregation='mean_with_query', got aggregation='mean'"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                   query_weight=0.8)


def test_seed_makes_thoughts_repeatable(tiny_o1_dir):
    a = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                   max_new_tokens=8, temperature=1.0, seed=7)
    first = a.think(["protein cell", "river"], k=3)
    assert a.think(["protein cell", "river"], k=3) == first
    a.settings = dataclasses.replace(a.settings, seed=8)
    assert a.think(["protein cell", "river"], k=3) != first


@pytest.mark.parametrize("bad, exc, match", [
    (None, TypeError, "None"), (5, TypeError, "int"), ([1, 2], TypeError, r"queries\[0\]"),
    ([""], ValueError, "empty"), (["  "], ValueError, "whitespace"), ([None], TypeError, "NoneType"),
    (b"bytes", TypeError, "bytes")])
def test_bad_queries(tiny_embedder, bad, exc, match):
    with pytest.raises(exc, match=match):
        tiny_embedder.encode_queries(bad, k=1)


def test_bad_arguments(tiny_embedder):
    with pytest.raises(ValueError, match="k must be >= 0"):
        tiny_embedder.encode_queries("q", k=-1)
    with pytest.raises(TypeError, match="k must be an int"):
        tiny_embedder.encode_queries("q", k=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        tiny_embedder.encode_documents(["d"], batch_size=0)
    with pytest.raises(ValueError, match="aggregation"):
        tiny_embedder.encode_queries("q", k=1, aggregation="max")
    with pytest.raises(TypeError, match="documents"):
        tiny_embedder.encode_documents({"a": 1})


@pytest.mark.parametrize("backend", ["auto", "native", "transformers"])
def test_the_removed_backend_option_is_refused_by_name(tiny_o1_dir, backend):
    with pytest.raises(TypeError, match=f"backend={backend!r}: the backend option was removed; transformers runs"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", backend=backend)


def test_overlong_text_is_truncated_with_one_warning(tiny_o1_dir):
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     document_max_length=16)
    long = "protein cell gene " * 40
    with pytest.warns(UserWarning, match="truncated") as record:
        a = emb.encode_documents([long, long + "river"])
        emb.encode_documents([long])
    assert sum("truncated" in str(w.message) for w in record) == 1
    np.testing.assert_allclose(a[0], a[1], atol=1e-5)  # only the first 15 tokens count


def _eos_friendly(tiny_o1_dir, tmp_path):
    """A tiny model whose EOS logit is competitive, so some thoughts end early and others run out."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_o1_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_o1_dir)
    with torch.no_grad():  # near-uniform logits, then a generation-time bias makes EOS a ~1-in-8 event
        model.lm_head.weight.mul_(0.05)
    model.generation_config.sequence_bias = [[[tok.eos_token_id], 4.5]]
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return O1Embedder.from_pretrained(str(tmp_path), device="cpu", dtype="fp32", thought_cache=False,
                                      max_new_tokens=10, temperature=1.0)


def test_fused_vector_equals_a_fresh_pass_over_the_same_tokens(tiny_o1_dir, tmp_path):
    emb = _eos_friendly(tiny_o1_dir, tmp_path)
    th, cfg, tok = emb.thinker, emb.settings, emb.thinker.tokenizer
    queries = ["protein cell gene", "a", "river ocean water and solar energy of the city", "the war"]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        generation = th.generation(queries, 3, cfg)
    new = generation.new_tokens
    eos, emb_id = tok.eos_token_id, tok.convert_tokens_to_ids("<emb>")
    finished = (new == eos).any(1)
    assert finished.any() and not finished.all(), "need both early-stopped and length-capped thoughts"
    fused, used = emb.encoder.encode_generated(generation)
    for i in range(new.shape[0]):
        prompt = generation.prompt_ids[i][generation.prompt_mask[i].bool()].tolist()
        gen = new[i].tolist()
        gen = gen[: gen.index(eos)] if eos in gen else gen
        assert used[i] == prompt + gen + [eos, emb_id]
        ids = torch.tensor([used[i]])
        with torch.no_grad():
            ref = emb.encoder.backbone(input_ids=ids).last_hidden_state[0, -1]
        assert torch.nn.functional.cosine_similarity(fused[i], ref, dim=0) > 0.9999


def test_fused_path_is_used_and_agrees_with_two_pass_on_thoughts(tiny_o1_dir, tmp_path):
    emb = _eos_friendly(tiny_o1_dir, tmp_path)
    assert emb.can_fuse
    qs = ["protein cell gene", "river ocean"]
    fused = emb.encode_queries(qs, k=2, return_thoughts=True)
    emb.fused = False
    two_pass = emb.encode_queries(qs, k=2, return_thoughts=True)
    assert fused.thoughts == two_pass.thoughts  # same seed, same sampling
    # random models write byte fragments that do not re-tokenize to the same ids; those queries are
    # re-encoded, the rest are fused: either way the vectors match the two-pass ones
    cos = (fused.embeddings * two_pass.embeddings).sum(1) / (
        np.linalg.norm(fused.embeddings, axis=1) * np.linalg.norm(two_pass.embeddings, axis=1))
    assert (cos > 0.999).all()


def test_composite_mode_with_a_sentence_transformer(tiny_lm_dir):
    from o1_retriever.default_model import minilm_path
    emb = O1Embedder.composite(thinker=str(tiny_lm_dir), encoder=str(minilm_path()), device="cpu", dtype="fp32",
                               thought_cache=False, max_new_tokens=6)
    assert emb.dim == 384 and emb.thinker.prompt_style == "chat" and not emb.can_fuse
    assert emb.backend == "sentence-transformers"
    docs = emb.encode_documents(["Insulin lets cells absorb glucose.", "Volcanoes erupt magma."])
    r = emb.encode_queries("how does insulin work", k=2, return_thoughts=True)
    assert len(r.thoughts) == 2 and r.embeddings.shape == (384,)
    bare = emb.encode_queries("how does insulin work", k=0)
    assert (docs @ bare).argmax() == 0  # MiniLM itself ranks the insulin passage first


def test_model_dir_generation_defaults_apply_unless_overridden(tiny_o1_dir, tmp_path):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(tiny_o1_dir, model)
    (model / "o1_generation.json").write_text('{"max_new_tokens": 5, "temperature": 0.7, "aggregation": "mean_with_query"}')
    emb = O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False)
    assert emb.settings.max_new_tokens == 5 and emb.settings.temperature == 0.7
    assert emb.aggregation == "mean_with_query"
    emb = O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False, max_new_tokens=9,
                                     aggregation="mean")
    assert emb.settings.max_new_tokens == 9 and emb.settings.temperature == 0.7 and emb.aggregation == "mean"
    # a model's query_weight comes with its aggregation: choosing another aggregation drops it
    (model / "o1_generation.json").write_text('{"aggregation": "mean_with_query", "query_weight": 0.6}')
    emb = O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False)
    assert (emb.aggregation, emb.query_weight) == ("mean_with_query", 0.6)
    emb = O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False, aggregation="mean")
    assert (emb.aggregation, emb.query_weight) == ("mean", None)
    emb = O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False, query_weight=0.9)
    assert (emb.aggregation, emb.query_weight) == ("mean_with_query", 0.9)
    # a model may ship the token windows it was trained for; an argument still wins
    (model / "o1_generation.json").write_text('{"document_max_length": 64, "query_max_length": 96}')
    emb = O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False)
    assert (emb.document_max_length, emb.query_max_length) == (64, 96)
    emb = O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False, document_max_length=32)
    assert (emb.document_max_length, emb.query_max_length) == (32, 96)
    assert emb.inference_settings()["document_max_length"] == 32  # what eval JSONs and Chroma configs record
    (model / "o1_generation.json").write_text('{"document_max_length": 0}')
    with pytest.raises(ValueError, match="document_max_length must be > 0"):
        O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False)
    (model / "o1_generation.json").write_text('{"aggregation": "mean_with_query", "query_weight": 2}')
    with pytest.raises(ValueError, match=r"query_weight must be in \[0, 1\]"):
        O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False)
    (model / "o1_generation.json").write_text('{"aggregation": "median"}')
    with pytest.raises(ValueError, match="aggregation"):
        O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False)
    (model / "o1_generation.json").write_text('{"max_tokens": 5}')
    with pytest.raises(ValueError, match="o1_generation.json must be a JSON object with keys among"):
        O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False)


def test_sampled_thoughts_repeat_across_processes(tiny_o1_dir):
    """Same seed, same queries -> same thoughts in a new process (string hashing differs per process)."""
    import json
    import os
    import subprocess
    import sys
    script = ("import json, sys; from o1_retriever import O1Embedder; "
              "e = O1Embedder.from_pretrained(sys.argv[1], device='cpu', dtype='fp32', thought_cache=False, "
              "temperature=1.0, max_new_tokens=6); "
              "print(json.dumps(e.think(['q one aa', 'q two bb', 'q six cc', 'q ten dd', 'longer query'], k=1, "
              "batch_size=2)))")
    runs = []
    for hash_seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, HF_HUB_OFFLINE="1")
        out = subprocess.run([sys.executable, "-c", script, str(tiny_o1_dir)], env=env, capture_output=True,
                             text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "two-pass"])
def test_out_of_gpu_memory_halves_the_batch_and_loses_nothing(tiny_o1_dir, monkeypatch, fused):
    """A CUDA out-of-memory error cannot happen on this CPU, so the model raises torch's own OutOfMemoryError
    for more than 2 sequences in one call (the one simulated part): thinking and embedding halve the batch,
    retry the chunk, and return every query's thoughts and vectors in order."""
    emb = O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                     vector_cache=False, max_new_tokens=4, temperature=0.7)  # every call runs
    emb.fused = fused
    queries = ["protein cell", "river", "the risk of heart disease", "a study", "solar energy"]
    want = emb.encode_queries(queries, k=1, batch_size=1, return_thoughts=True)  # batches of 1 never fail
    backbone = emb.encoder.backbone
    real_forward, widths = backbone.forward, []

    @functools.wraps(real_forward)  # keeps the signature the fused step inspects
    def forward(*args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        widths.append(len(ids))
        if len(ids) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(backbone, "forward", forward)
    got = emb.encode_queries(queries, k=1, batch_size=8, return_thoughts=True)
    assert max(widths) == 5 and widths.count(5) >= 1  # the first try was the whole batch
    assert len(got.thoughts) == 5 and all(len(t) == 1 for t in got.thoughts)
    assert got.embeddings.shape == want.embeddings.shape and np.isfinite(got.embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(got.embeddings, axis=1), 1, atol=1e-5)
    docs = emb.encode_documents(queries, batch_size=8)
    np.testing.assert_allclose(docs, emb.encode_documents(queries, batch_size=1), atol=1e-5)

    def forward_broken(*args, **kwargs):
        raise RuntimeError("shapes do not match")  # any other error is not retried

    monkeypatch.setattr(backbone, "forward", forward_broken)
    with pytest.raises(RuntimeError, match="shapes do not match"):
        emb.encode_queries(queries, k=1, batch_size=8)
