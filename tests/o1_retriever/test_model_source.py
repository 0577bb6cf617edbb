"""The rebuild spec (`ModelSource`) an embedder carries, and the names collections recorded before it."""
import chromadb
import pytest

from o1_retriever import O1Embedder
from o1_retriever.chroma import O1EmbeddingFunction, model_record
from o1_retriever.default_model import MINILM_HUB_ID, minilm_path
from o1_retriever.model_source import ModelSource, legacy_source


@pytest.fixture(scope="module")
def assembled(tiny_lm_dir):
    """A composite assembled from parts in this process (no directory loads it)."""
    return O1Embedder.composite(thinker=str(tiny_lm_dir), encoder=str(minilm_path()), device="cpu", dtype="fp32",
                                thought_cache=False, max_new_tokens=4)


def test_each_way_of_building_records_its_source(tiny_embedder, tiny_o1_dir, tiny_lm_dir, assembled, tmp_path):
    assert tiny_embedder.source == ModelSource("joint", str(tiny_o1_dir)) and not tiny_embedder.source.from_parts
    assert assembled.source == ModelSource("composite", thinker=str(tiny_lm_dir),
                                           encoder=str(minilm_path()))
    assert assembled.source.from_parts and assembled.name.startswith("composite:")  # the name is a label now
    from o1_retriever.composite import write_composite
    write_composite(tmp_path / "c", thinker=str(tiny_o1_dir), encoder=str(minilm_path()))
    assert ModelSource.of_path(tmp_path / "c") == ModelSource("composite", str(tmp_path / "c"))
    assert ModelSource.of_path(None).path is None and ModelSource.of_path(str(tiny_o1_dir)).kind == "joint"
    with pytest.raises(ValueError, match=r"model kind 'hybrid' is not one of \['joint', 'composite', 'encoder'\]"):
        ModelSource("hybrid")
    with pytest.raises(ValueError, match="a model source is a dict with keys among"):
        ModelSource.from_dict({"kind": "joint", "model": "x"})


def test_names_recorded_before_the_spec_are_read_as_sources(tiny_o1_dir):
    assert legacy_source("composite:/a/thinker+" + MINILM_HUB_ID) == ModelSource(
        "composite", thinker="/a/thinker", encoder=MINILM_HUB_ID)
    assert legacy_source("encoder:minilm") == ModelSource("encoder", encoder="minilm")
    assert legacy_source(str(tiny_o1_dir)) == ModelSource("joint", str(tiny_o1_dir))
    assert legacy_source(None) == ModelSource.of_path(None)
    old = O1EmbeddingFunction.build_from_config({"model": "composite:a+b", "options": {}})
    assert old.source == ModelSource("composite", thinker="a", encoder="b")


def test_a_config_records_the_source_and_an_assembled_model_is_not_rebuilt(assembled, tiny_embedder):
    config = O1EmbeddingFunction(assembled).get_config()
    assert config["model"] is None and config["source"] == assembled.source.as_dict()
    rebuilt = O1EmbeddingFunction.build_from_config(config)
    assert rebuilt.source == assembled.source
    with pytest.raises(ValueError, match="composite model was assembled from parts"):
        O1EmbeddingFunction.build_from_config(config | {"fingerprint": "0" * 16}).embed_query(["a query"])
    joint = O1EmbeddingFunction(tiny_embedder).get_config()
    assert joint["source"] == {"kind": "joint", "path": joint["model"]}


def test_a_collection_stored_with_the_old_prefixed_name_still_opens(assembled, tmp_path, monkeypatch):
    """Written as the library wrote it before the spec (get_config patched to the old form: the name alone says
    "composite:"), then reopened by a fresh client: the old name is read, O1Index searches it, and plain
    query_texts explains that such a model is rebuilt by the caller."""
    from o1_retriever.index import O1Index
    old_config = {"model": assembled.name, "num_thoughts": 1, "batch_size": 32, "options": {},
                  "fingerprint": assembled.fingerprint, "name": assembled.name, "dim": assembled.dim}
    monkeypatch.setattr(O1EmbeddingFunction, "get_config", lambda self: dict(old_config))
    docs = ["Insulin lets cells absorb glucose.", "Volcanoes erupt magma."]
    O1Index(assembled, path=tmp_path / "db", collection="docs", num_thoughts=1).add(["i", "v"], docs)
    monkeypatch.undo()
    stored = chromadb.PersistentClient(path=str(tmp_path / "db")).get_collection("docs")
    assert stored.configuration_json["embedding_function"]["config"]["model"].startswith("composite:")
    assert model_record(stored)["name"] == assembled.name
    assert [h.id for h in O1Index(assembled, path=tmp_path / "db", collection="docs").search(docs[0], top_k=1, k=0)] \
        == ["i"]
    with pytest.raises(ValueError, match="assembled from parts in one process"):
        stored.query(query_texts=["how does insulin work"], n_results=1)


def test_a_ray_worker_rebuilds_from_the_source_and_refuses_an_assembled_model(tiny_embedder, tiny_o1_dir, assembled):
    from o1_retriever.distributed.workers import ModelSpec
    assert ModelSpec.of(tiny_embedder).model == str(tiny_o1_dir)
    for refused in (lambda: ModelSpec.of(assembled), lambda: ModelSpec("composite:a+b")):
        with pytest.raises(ValueError, match="assembled from parts in one process .* cannot be rebuilt on a worker"):
            refused()
