"""`train-encoder`: a composite's encoder fine-tuned on its thinker's thoughts, written as a LoRA adapter.

Real sentence-transformers trainer over the real all-MiniLM-L6-v2 (PyPI package) on a tiny BEIR folder;
the thinker is the tiny random O1 Llama, so thinking is instant."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from o1_retriever import O1Embedder
from o1_retriever.composite import read_composite, write_composite
from o1_retriever.default_model import MINILM_HUB_ID
from o1_retriever_training.encoder import EncoderArguments, check_encoder_arguments, train_encoder


@pytest.fixture
def composite(tmp_path, tiny_o1_dir, minilm_member):
    shutil.copytree(tiny_o1_dir, tmp_path / "source" / "thinker")
    write_composite(tmp_path / "source", "thinker", MINILM_HUB_ID, max_new_tokens=6, aggregation="mean_with_query",
                    query_weight=0.5)
    return tmp_path / "source"


def _args(composite, tiny_beir, out, **kw):
    base = dict(model=str(composite), data=[f"{tiny_beir}:train"], output_dir=str(out), thoughts_per_query=1,
                max_steps=2, batch_size=4, learning_rate=5e-4, seed=0)
    return EncoderArguments(**(base | kw))


def test_train_encoder_writes_a_loadable_composite_with_an_adapter_encoder(composite, tiny_beir, tmp_path):
    exclude = tmp_path / "dev"
    (exclude).mkdir()
    (exclude / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": "held out"}) + "\n")
    result = train_encoder(_args(composite, tiny_beir, tmp_path / "out", exclude_dir=[str(exclude)],
                                 merge_weight=0.5), log=lambda *_: None)
    assert result.steps == 2 and result.plot_file.exists()
    assert result.anchors >= 11  # 11 queries kept (q0 held out), one thought each, some bare queries on top
    adapter = json.loads((tmp_path / "out" / "encoder" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == MINILM_HUB_ID  # portable: the hub id, resolved offline on load
    assert adapter["lora_alpha"] == pytest.approx(32 * 0.5)   # merge_weight scales the update
    spec = read_composite(tmp_path / "out")
    assert spec.settings["query_weight"] == 0.5 and spec.thinker == str((composite / "thinker").resolve())

    before = O1Embedder.from_pretrained(str(composite), device="cpu", dtype="fp32", thought_cache=False)
    after = O1Embedder.from_pretrained(str(tmp_path / "out"), device="cpu", dtype="fp32", thought_cache=False)
    assert after.thinker_fingerprint == before.thinker_fingerprint  # the same thinker
    assert after.encoder_fingerprint != before.encoder_fingerprint
    docs = ["protein folding chaperones", "galaxy star orbit"]
    a, b = before.encode_documents(docs), after.encode_documents(docs)
    assert not np.allclose(a, b, atol=1e-4)          # the trained update is in use
    assert np.all((a * b).sum(1) > 0.9)             # a nudge, not a new model (lr 5e-4, 2 steps, half weight)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("field, value, message", [
    ("merge_weight", 0.0, "merge_weight"), ("merge_weight", 1.5, "merge_weight"),
    ("bare_query_ratio", -0.1, "bare_query_ratio"), ("thoughts_per_query", 0, "thoughts_per_query"),
    ("num_negatives", -1, "num_negatives"), ("data", [], "--data"),
])
def test_bad_arguments_are_refused_before_any_model_loads(field, value, message, tmp_path):
    args = EncoderArguments(model="unused", data=["x"], output_dir=str(tmp_path))
    setattr(args, field, value)
    with pytest.raises(ValueError, match=message):
        check_encoder_arguments(args)


def test_a_non_composite_model_is_refused(tiny_o1_dir, tiny_beir, tmp_path):
    with pytest.raises(ValueError, match="not a composite model directory"):
        train_encoder(EncoderArguments(model=str(tiny_o1_dir), data=[str(tiny_beir)], output_dir=str(tmp_path)))


def test_an_ensemble_encoder_is_refused_before_training(composite, tiny_beir, tmp_path):
    spec = json.loads((composite / "o1_composite.json").read_text())
    write_composite(composite, "thinker", [MINILM_HUB_ID, MINILM_HUB_ID],
                    **{k: v for k, v in spec.items() if k not in ("thinker", "encoder")})
    with pytest.raises(ValueError, match="ensemble of 2 models"):
        train_encoder(_args(composite, tiny_beir, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_the_default_model_is_one_train_encoder_can_train():
    """The bundled default's encoder is an ensemble, which train-encoder refuses: a default that always failed."""
    from o1_retriever.default_model import bundled_model_path
    default = EncoderArguments().model
    spec = read_composite(bundled_model_path(default) or default)
    assert spec is not None and not isinstance(spec.encoder, tuple)


@pytest.mark.parametrize("field, value, message", [
    ("max_steps", -5, r"max_steps=-5 must be -1 \(num_epochs decides\) or >= 1"),
    ("max_steps", 0, "max_steps=0 must be"),
    ("max_queries", 0, "max_queries=0 must be None or >= 1"),
    ("max_queries", -1, "max_queries=-1 must be"),
])
def test_bad_step_and_query_counts_are_refused(field, value, message, tiny_beir, tmp_path):
    args = EncoderArguments(model="unused", data=[str(tiny_beir)], output_dir=str(tmp_path))
    setattr(args, field, value)
    with pytest.raises(ValueError, match=message):
        check_encoder_arguments(args)


@pytest.mark.parametrize("spec, message", [
    ("{beir}:dev", r"no qrels for split 'dev'.*splits available: \['train'\]"),
    ("{root}/nope", r"BEIR folder .*nope does not exist"),
])
def test_bad_data_is_refused_before_the_thinker_loads(spec, message, tiny_beir, tmp_path):
    args = EncoderArguments(model="unused", data=[spec.format(beir=tiny_beir, root=tmp_path)], output_dir=str(tmp_path))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        check_encoder_arguments(args)  # no model is named: the data is checked first


def test_the_bundled_thinker_is_recorded_by_name(tmp_path):
    """A trained model names the bundled thinker, not its path in this install (a new venv moves it)."""
    from o1_retriever.default_model import JOINT_NAME, MINILM_COMPOSITE_DIR, joint_model_path
    from o1_retriever_training.encoder import portable_thinker
    assert portable_thinker(read_composite(MINILM_COMPOSITE_DIR).thinker) == JOINT_NAME
    assert portable_thinker(str(tmp_path)) == str(tmp_path)  # any other thinker as given
    write_composite(tmp_path / "model", JOINT_NAME, MINILM_HUB_ID)
    assert read_composite(tmp_path / "model").thinker == str(joint_model_path())
