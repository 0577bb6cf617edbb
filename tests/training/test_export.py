"""Export of a tied-head model: no lm_head.pth, and the loaded model uses the trained rows on both
the input and the (tied) output side, exactly as during training. The compact form (token rows only, as PEFT's
trainable tokens) loads to the very same model, through o1-retriever and through plain PEFT alike."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from o1_retriever import O1Embedder
from o1_retriever.checkpoint import TOKEN_ROWS_SUFFIX, load_adapter
from o1_retriever_training.arguments import ModelArguments
from o1_retriever_training.export import export_adapter, write_token_rows
from o1_retriever_training.modeling import build
from o1_retriever_training.warm_start import effective_model_arguments


@pytest.fixture(scope="module")
def tied_model(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.fixtures import build_tokenizer
    tok = build_tokenizer(with_o1_tokens=False)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    base = tmp_path_factory.mktemp("tied") / "base"
    LlamaForCausalLM(config).save_pretrained(base)
    tok.save_pretrained(base)
    model = build(ModelArguments(base_model=str(base), lora_r=2, lora_alpha=4, gradient_checkpointing=False))
    with torch.no_grad():
        model.token_delta += torch.randn_like(model.token_delta)
        for name, p in model.lm.named_parameters():
            if "lora_B" in name:  # a LoRA that does something, so "same model" means something
                p += 0.05 * torch.randn_like(p)
    return base, model


def _load(path):
    return O1Embedder.from_pretrained(str(path), device="cpu", dtype="fp32", thought_cache=False)


def test_tied_model_round_trip(tied_model, tmp_path):
    base, model = tied_model
    assert model.tied
    hidden = torch.randn(3, 32)
    plain = model.base_model.get_output_embeddings()(hidden)
    trained_logits = model._gen_logits(hidden)
    ids = model.token_ids
    assert torch.allclose(trained_logits[:, ids], plain[:, ids] + hidden @ model.token_delta.T, atol=1e-5)

    out = export_adapter(model, tmp_path / "adapter")
    assert not (out / "embedding" / "lm_head.pth").exists()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base.resolve())
    lm = _load(out).encoder.model
    expected = model.trained_input_embedding().weight
    assert torch.allclose(lm.get_input_embeddings().weight, expected)
    assert torch.allclose(lm.get_output_embeddings().weight[ids], expected[ids])  # the tied head sees them too


def _merged(path) -> dict:
    return load_adapter(path, torch.float32)[0].state_dict()


def _assert_peft_form(out, model) -> None:
    """The rows are PEFT trainable tokens of the input embedding, for exactly the O1 token ids; nothing else."""
    from safetensors.torch import load_file
    config = json.loads((out / "adapter_config.json").read_text())
    ids = model.token_ids.tolist()
    assert config["trainable_token_indices"] == {"model.embed_tokens": ids}
    assert not (out / "embedding").exists()  # no emb.pth, no token_rows.safetensors
    rows = [v for k, v in load_file(str(out / "adapter_model.safetensors")).items() if k.endswith(TOKEN_ROWS_SUFFIX)]
    assert len(rows) == 1 and torch.equal(rows[0], model.trained_input_embedding().weight[ids])


def test_token_rows_only_loads_the_same_model(tied_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from o1_retriever.formatting import add_special_tokens
    base, model = tied_model
    full = export_adapter(model, tmp_path / "full")
    compact = export_adapter(model, tmp_path / "compact", token_rows_only=True)
    _assert_peft_form(compact, model)
    lora_size = (full / "adapter_model.safetensors").stat().st_size
    rows_size = (compact / "adapter_model.safetensors").stat().st_size - lora_size
    assert 0 < rows_size < 4096 < (full / "embedding" / "emb.pth").stat().st_size
    a, b = _load(full), _load(compact)
    assert torch.equal(a.encoder.model.get_input_embeddings().weight, b.encoder.model.get_input_embeddings().weight)
    texts = ["insulin and glucose", "coral reef ocean"]
    assert np.allclose(a.encode_documents(texts), b.encode_documents(texts), atol=1e-6)
    assert np.allclose(a.encode_queries(texts, k=0), b.encode_queries(texts, k=0), atol=1e-6)
    # Plain PEFT on the base resized for the O1 tokens builds the model the emb.pth export loads to.
    resized = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    add_special_tokens(resized, AutoTokenizer.from_pretrained(compact))
    plain = PeftModel.from_pretrained(resized, compact).merge_and_unload()
    want = _merged(full)
    assert set(plain.state_dict()) == set(want)
    assert all(torch.allclose(plain.state_dict()[k], want[k], atol=1e-6) for k in want)
    assert plain.get_output_embeddings().weight.data_ptr() == plain.get_input_embeddings().weight.data_ptr()


def test_write_token_rows_converts_emb_pth_to_the_peft_form(tied_model, tmp_path):
    _, model = tied_model
    out = export_adapter(model, tmp_path / "adapter")
    before = _merged(out)
    assert write_token_rows(out) == out / "adapter_model.safetensors"
    _assert_peft_form(out, model)
    after = _merged(out)
    assert all(torch.equal(before[k], after[k]) for k in before)


_KILLED_CONVERTING = """
import os, signal, sys
import safetensors.torch
kill_at, real_save, real_replace = sys.argv[1], safetensors.torch.save_file, os.replace
def save_file(tensors, filename, *args, **kwargs):
    if kill_at == "save":  # the first bytes written, the rest not
        with open(filename, "wb") as f:
            f.write(b"\\x08\\x00")
            f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(tensors, filename, *args, **kwargs)
def replace(src, dst, *args, **kwargs):
    real_replace(src, dst, *args, **kwargs)
    if kill_at == "moved" and str(dst).endswith("adapter_model.safetensors"):  # its config not yet moved in
        os.kill(os.getpid(), signal.SIGKILL)
safetensors.torch.save_file, os.replace = save_file, replace
from o1_retriever_training.export import write_token_rows
write_token_rows(sys.argv[2])
"""


@pytest.mark.parametrize("kill_at", ["save", "moved"])
def test_a_conversion_killed_mid_write_keeps_the_model(tied_model, tmp_path, kill_at):
    """write_token_rows rewrote adapter_model.safetensors in place: SIGKILL mid-write left it cut, the trained LoRA
    lost. Now the adapter loads as the same model after a kill, and a second call finishes the conversion."""
    import os
    import signal
    import subprocess
    import sys

    _, model = tied_model
    out = export_adapter(model, tmp_path / "adapter")
    before = _merged(out)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", _KILLED_CONVERTING, kill_at, str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    killed = _merged(out)
    assert all(torch.equal(before[k], killed[k]) for k in before)
    write_token_rows(out)
    _assert_peft_form(out, model)
    after = _merged(out)
    assert all(torch.equal(before[k], after[k]) for k in before) and not list(out.glob(".export-*"))


def test_token_rows_refused_when_other_rows_were_trained(tied_model, tmp_path):
    _, model = tied_model
    out = export_adapter(model, tmp_path / "adapter")
    emb_file = out / "embedding" / "emb.pth"
    with torch.serialization.safe_globals([torch.nn.Embedding]):
        emb = torch.load(emb_file, weights_only=True)
    with torch.no_grad():
        emb.weight[5] += 1.0  # a row of an ordinary token
    torch.save(emb, emb_file)
    with pytest.raises(ValueError, match="changes rows other than the O1 tokens"):
        write_token_rows(out)
    assert emb_file.exists()  # nothing removed by the failed call


def test_token_rows_refused_for_an_untied_head(tiny_lm_dir, tmp_path):
    model = build(ModelArguments(base_model=str(tiny_lm_dir), lora_r=2, lora_alpha=4, gradient_checkpointing=False))
    out = export_adapter(model, tmp_path / "adapter")
    with pytest.raises(ValueError, match="untied lm_head.pth"):
        write_token_rows(out)
    assert (out / "embedding" / "emb.pth").exists()


def _to_legacy_token_rows(out, model) -> None:
    """Rewrite a compact export as adapters exported before PEFT's trainable tokens were used: the rows by token
    name in embedding/token_rows.safetensors, the adapter file and config plain LoRA."""
    from safetensors.torch import load_file, save_file
    config = json.loads((out / "adapter_config.json").read_text())
    config["trainable_token_indices"] = None
    (out / "adapter_config.json").write_text(json.dumps(config))
    tensors = load_file(str(out / "adapter_model.safetensors"))
    (rows,) = [tensors.pop(k) for k in list(tensors) if k.endswith(TOKEN_ROWS_SUFFIX)]
    save_file(tensors, str(out / "adapter_model.safetensors"))
    (out / "embedding").mkdir()
    tokens = model.tokenizer.convert_ids_to_tokens(model.token_ids.tolist())
    save_file(dict(zip(tokens, rows)), str(out / "embedding" / "token_rows.safetensors"))


@pytest.mark.parametrize("form", ["peft", "emb.pth", "legacy token_rows"])
def test_init_adapter_continues_from_an_exported_model(tied_model, tmp_path, form):
    """Warm start: a model built from an exported adapter has its LoRA weights and token rows, in each
    token-row form, and the LoRA shape comes from the adapter, not from the (different) arguments."""
    from peft import get_peft_model_state_dict
    base, model = tied_model
    out = export_adapter(model, tmp_path / "adapter", token_rows_only=form != "emb.pth")
    if form == "legacy token_rows":
        _to_legacy_token_rows(out, model)
        assert torch.equal(_merged(out)["model.embed_tokens.weight"], model.trained_input_embedding().weight)
    warm = build(ModelArguments(init_adapter=str(out), lora_r=8, lora_alpha=8, gradient_checkpointing=False))
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 2
    used = effective_model_arguments(ModelArguments(init_adapter=str(out), lora_r=8, lora_alpha=8))
    assert (used.lora_r, used.lora_alpha) == (2, 4)  # what training_args.json records
    want, got = (get_peft_model_state_dict(m.lm, save_embedding_layers=False) for m in (model, warm))
    lora = [k for k in want if "lora_" in k]
    assert lora and all(torch.equal(want[k], got[k]) for k in lora)
    assert torch.allclose(warm.trained_input_embedding().weight, model.trained_input_embedding().weight, atol=1e-6)
    assert warm.base_name == model.base_name  # the adapter's base was used: no --base-model given
    ids = torch.tensor([[5, 6, 7, int(model.token_ids[-1])]])
    mask = torch.ones_like(ids)
    model.eval(), warm.eval()
    assert torch.allclose(warm._last_hidden(ids, mask), model._last_hidden(ids, mask), atol=1e-5)
    fresh = build(ModelArguments(base_model=str(base), lora_r=2, lora_alpha=4, gradient_checkpointing=False))
    fresh.eval()
    assert not torch.allclose(fresh._last_hidden(ids, mask), model._last_hidden(ids, mask), atol=1e-3)


def test_init_adapter_refuses_what_it_cannot_continue(tied_model, tmp_path):
    base, model = tied_model
    with pytest.raises(ValueError, match="adapter_config.json does not exist"):
        build(ModelArguments(init_adapter=str(tmp_path / "nowhere")))
    out = export_adapter(model, tmp_path / "adapter", token_rows_only=True)
    other = tmp_path / "other_base"  # a model folder (config.json) that is not the adapter's base
    other.mkdir()
    (other / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="was trained on"):
        build(ModelArguments(init_adapter=str(out), base_model=str(other), gradient_checkpointing=False))
    config = json.loads((out / "adapter_config.json").read_text())
    config["trainable_token_indices"] = {"model.embed_tokens": model.token_ids.tolist()[:3]}
    (out / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="has 4 rows for 3 trainable_token_indices"):
        build(ModelArguments(init_adapter=str(out), gradient_checkpointing=False))
    (out / "adapter_model.safetensors").unlink()
    with pytest.raises(ValueError, match="adapter_model.safetensors does not exist"):
        build(ModelArguments(init_adapter=str(out), gradient_checkpointing=False))


def test_training_reads_the_checkpoint_layout_through_public_names_and_imports_no_circle():
    """The layout lives in o1_retriever.checkpoint; the training package uses no private o1_retriever name, and
    its modules' imports (top-level and in functions) form no circle."""
    import ast
    from pathlib import Path

    import o1_retriever_training
    package = Path(o1_retriever_training.__file__).parent
    graph, private = {}, []
    for file in package.glob("*.py"):
        deps = graph.setdefault(file.stem, set())
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                deps.add(node.module)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("o1_retriever."):
                private += [f"{file.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []

    def reaches(start, target, seen=()):
        return any(d == target or (d not in seen and reaches(d, target, seen + (d,))) for d in graph.get(start, ()))
    assert [m for m in graph if reaches(m, m)] == []


def _files(folder):
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_an_export_that_fails_part_way_leaves_the_earlier_model_whole_or_none(tied_model, tmp_path, monkeypatch):
    """An export into a folder holding a model fails (in this process; test_trainer kills a real one) while writing
    the tokenizer, then while moving its files into place: the earlier model stays byte for byte, or no model is
    left; never a mix of the two."""
    import os

    from transformers import PreTrainedTokenizerBase

    from o1_retriever.checkpoint import is_adapter
    from o1_retriever_training.resume import finished_run
    _, model = tied_model
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "o1_generation.json").write_text('{"query_max_length": 40}')  # chosen settings stay
    out = export_adapter(model, tmp_path / "adapter", run={"step": 1})
    earlier = _files(out)
    assert finished_run(out) == {"step": 1}
    # The model trained on, so that a second export differs from the first (undone for the other tests).
    monkeypatch.setattr(model.token_delta, "data", model.token_delta.data + 1.0)
    save, replace = PreTrainedTokenizerBase.save_pretrained, os.replace

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", fail)
    with pytest.raises(OSError, match="disk full"):
        export_adapter(model, out, run={"step": 2})
    assert _files(out) == earlier and [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", save)

    moves = []

    def fail_after_two(src, dst):
        moves.append(dst)
        if len(moves) > 2:
            raise OSError("killed mid-move")
        replace(src, dst)
    monkeypatch.setattr(os, "replace", fail_after_two)
    with pytest.raises(OSError, match="killed mid-move"):
        export_adapter(model, out, run={"step": 2})
    monkeypatch.setattr(os, "replace", replace)
    assert not is_adapter(out) and finished_run(out) is None  # no model rather than half of the new one
    with pytest.raises(ValueError, match="holds no model"):
        _load(out)
    export_adapter(model, out, run={"step": 2})
    assert finished_run(out) == {"step": 2} and _files(out) != earlier
    lm = _load(out).encoder.model
    assert torch.allclose(lm.get_input_embeddings().weight, model.trained_input_embedding().weight)


def test_an_export_killed_while_deleting_the_earlier_merged_model_leaves_no_half_of_it(tied_model, tmp_path,
                                                                                      monkeypatch):
    """The earlier merged/ is deleted part-way (its weights gone, its config.json not yet) when the process dies: no
    merged/ may be left that has a config.json without weights, which a loader pointed at merged/ would misread."""
    import shutil

    _, model = tied_model
    out = export_adapter(model, tmp_path / "adapter", merge=True, run={"step": 1})
    assert list((out / "merged").glob("*.safetensors"))
    rmtree = shutil.rmtree

    def killed_part_way(path, *args, **kwargs):
        weights = list(Path(path).rglob("*.safetensors"))
        if list(Path(path).rglob("config.json")) and weights:  # a model folder: its weights go first, then death
            for f in weights:
                f.unlink()
            raise OSError("killed mid-delete")
        rmtree(path, *args, **kwargs)
    monkeypatch.setattr(shutil, "rmtree", killed_part_way)
    with pytest.raises(OSError, match="killed mid-delete"):
        export_adapter(model, out, merge=True, run={"step": 2})
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    merged = out / "merged"
    assert not (merged / "config.json").exists() or list(merged.glob("*.safetensors"))
    # The next export clears what the killed one left aside.
    export_adapter(model, out, merge=True, run={"step": 2})
    assert list(merged.glob("*.safetensors")) and [p.name for p in out.iterdir() if p.name.startswith(".")] == []
