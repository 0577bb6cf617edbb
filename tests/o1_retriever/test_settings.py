"""One list of inference settings (`o1_retriever.settings`): the CLI flags, EvalConfig, model files, Chroma configs and
the thought-cache key all follow it."""
import dataclasses
import json

import pytest

from o1_retriever import O1Embedder
from o1_retriever.cli import build_parser, main
from o1_retriever.settings import ADDED_LATER, CLI_SETTINGS, NAMES, InferenceSettings, read_model_settings


@pytest.mark.parametrize("verb", ["demo", "index", "search", "serve", "eval"])
def test_every_model_command_has_a_flag_per_setting(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    out = capsys.readouterr().out
    missing = [name for name in CLI_SETTINGS if f"--{name.replace('_', '-')}" not in out]
    assert not missing and "--seed" in out, missing


def test_flags_are_checked_when_parsed_and_reach_the_model(tiny_o1_dir, capsys):
    parser = build_parser()
    for flag, text, message in [("--top-p", "1.5", "top_p must be in (0, 1], got 1.5"),
                                ("--max-new-tokens", "x", "expected int, got 'x'"),
                                ("--prompt-max-length", "0", "prompt_max_length must be > 0, got 0")]:
        with pytest.raises(SystemExit):
            parser.parse_args(["demo", flag, text])
        assert f"argument {flag}: {message}" in capsys.readouterr().err
    from o1_retriever.cli_args import _load
    args = parser.parse_args(["demo", "--model", str(tiny_o1_dir), "--device", "cpu", "--dtype", "fp32",
                              "--top-p", "0.8", "--prompt-max-length", "64", "--document-max-length", "32"])
    emb = _load(args)
    assert (emb.settings.top_p, emb.settings.prompt_max_length, emb.document_max_length) == (0.8, 64, 32)
    assert emb.settings.temperature == InferenceSettings().temperature  # a flag left out keeps the default


def test_thought_cache_keys_depend_on_sampling_only(tiny_embedder):
    """Thoughts cached before the settings were one dataclass keep hitting: the key holds the same five sampling
    settings, and embedding-side settings (aggregation, windows) never change it."""
    assert set(InferenceSettings().generation()) == {"temperature", "top_p", "max_new_tokens", "prompt_max_length",
                                                     "seed"}
    keys = tiny_embedder._keys(["a query"], 2)
    other = dataclasses.replace(tiny_embedder.settings, aggregation="mean_with_query", query_weight=0.4,
                                document_max_length=16)
    assert O1Embedder(tiny_embedder.thinker, tiny_embedder.encoder, name="x", settings=other,
                      thought_cache=False)._keys(["a query"], 2) == keys
    hotter = dataclasses.replace(tiny_embedder.settings, temperature=0.9)
    assert O1Embedder(tiny_embedder.thinker, tiny_embedder.encoder, name="x", settings=hotter,
                      thought_cache=False)._keys(["a query"], 2) != keys


def test_recorded_settings_are_those_of_the_encoder():
    lm, st = InferenceSettings().recorded("lm"), InferenceSettings().recorded("sentence-transformers")
    assert {"query_max_length", "document_max_length"} <= set(lm) and "thought_input" not in lm
    assert "thought_input" in st and "document_max_length" not in st
    assert set(lm) | set(st) == set(NAMES) - set(ADDED_LATER)  # recorded only when set
    assert InferenceSettings(min_new_tokens=4).recorded("lm")["min_new_tokens"] == 4


def test_eval_config_has_every_setting_as_an_override(tmp_path):
    from o1_retriever.evaluation.runner import EvalConfig, _options
    assert set(NAMES) <= {f.name for f in dataclasses.fields(EvalConfig)}
    config = EvalConfig(dataset=str(tmp_path), prompt_max_length=64, thought_input="thought")
    assert _options(config) == {"thought_cache": False, "seed": 0, "prompt_max_length": 64, "thought_input": "thought"}
    with pytest.raises(ValueError, match="thought_input='passage' is not supported"):
        EvalConfig(dataset=str(tmp_path), thought_input="passage")


def test_bad_settings_are_refused_by_name(tmp_path, tiny_o1_dir):
    (tmp_path / "o1_generation.json").write_text(json.dumps({"max_new_tokens": 8, "temperature": -1}))
    with pytest.raises(ValueError, match=r"o1_generation.json: temperature must be >= 0, got -1"):
        read_model_settings(tmp_path)
    (tmp_path / "o1_generation.json").write_text(json.dumps({"aggregation": "mean", "query_weight": 0.5}))
    with pytest.raises(ValueError, match="o1_generation.json: query_weight=0.5 only applies to"):
        read_model_settings(tmp_path)
    with pytest.raises(TypeError, match=r"from_pretrained got unknown settings \['temprature'\]; the settings are"):
        O1Embedder.from_pretrained(str(tiny_o1_dir), temprature=0.5)


def test_a_chroma_config_written_before_still_rebuilds_its_embedder(tiny_o1_dir):
    """The options an O1 collection recorded before the settings were one dataclass (as `load_options` writes them)."""
    from o1_retriever.chroma import O1EmbeddingFunction
    options = {"quantization": None, "fused": True, "dtype": "fp32", "prompt_style": "official", "temperature": 0.7,
               "top_p": 0.8, "max_new_tokens": 4, "prompt_max_length": 256, "seed": 3, "aggregation": "mean_with_query",
               "query_weight": 0.25, "query_max_length": 128, "document_max_length": 64, "thought_cache": False}
    function = O1EmbeddingFunction.build_from_config({"model": str(tiny_o1_dir), "num_thoughts": 2, "batch_size": 8,
                                                      "options": options, "fingerprint": None})
    emb = function.embedder
    assert emb.inference_settings() == {k: v for k, v in options.items() if k in NAMES}
    # recorded the same way, now with the settings added since at their neutral value
    assert O1EmbeddingFunction(emb, num_thoughts=2).get_config()["options"] == options | {"min_new_tokens": 0}


def test_load_options_are_from_pretrained_keywords():
    """The one list that Chroma configs and Ray model specs check options against names what `from_pretrained`
    takes, and the Ray spec takes all of it but the device (each actor has its own)."""
    import inspect

    from o1_retriever import chroma
    from o1_retriever.distributed import workers
    from o1_retriever.settings import LOAD_OPTIONS
    keywords = set(inspect.signature(O1Embedder.from_pretrained).parameters) - {"path_or_id", "settings"}
    assert set(LOAD_OPTIONS) == (keywords - {"vector_cache", "compile"}) | set(NAMES)
    assert chroma.LOAD_OPTIONS is LOAD_OPTIONS and set(workers.LOAD_OPTIONS) == set(LOAD_OPTIONS) - {"device"}


def test_a_setting_added_later_rebuilds_as_it_ran(tiny_o1_dir, tmp_path):
    """A model that ships min_new_tokens, run at 0: its rebuild options say 0, not 'the model's own'."""
    import json
    import shutil
    from o1_retriever import O1Embedder
    model = tmp_path / "model"
    shutil.copytree(tiny_o1_dir, model)
    (model / "o1_generation.json").write_text(json.dumps({"min_new_tokens": 4, "max_new_tokens": 8}))
    ran = O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False, min_new_tokens=0)
    options = ran.load_options()
    assert options["min_new_tokens"] == 0
    rebuilt = O1Embedder.from_pretrained(str(model), device="cpu", **options)
    assert rebuilt.settings == ran.settings
    assert O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False).settings.min_new_tokens == 4
