"""Audit of train's logs and of fine-tuning a composite (train-encoder) as a user would: progress bars stay out of
log files on every path, and bad flags, existing folders, kills and the result's loading behave as documented.
Tiny random models only."""
from __future__ import annotations

import json

import pytest

from o1_retriever.cli import main
from tests.training.test_audit_training4 import _interrupt_when, _start, _train_args

SHARDS_BAR = "Writing model shards"


def test_ctrl_c_in_train_writes_no_transformers_bar_into_the_log(tiny_lm_dir, tmp_path):
    """The interrupted run's log: the interrupt line and no bar (nothing is saved on the way out)."""
    out = tmp_path / "out"
    process = _start(_train_args(tiny_lm_dir, tmp_path, "--max-steps", "100000", "--save-steps", "1", "--merge",
                                 "--output-dir", str(out)), tmp_path)
    rc, err = _interrupt_when(process, lambda: any((out / "checkpoints").glob("step-*/state.pt")))
    assert rc == 130 and "o1-retriever train: interrupted" in err
    assert SHARDS_BAR not in err and "\r" not in err


def test_resume_merge_of_a_finished_run_writes_no_transformers_bar_off_a_terminal(tiny_lm_dir, tmp_path, capsys):
    """`--resume --merge` on a finished run (the way to add the merged model a first run did not write) saved it
    outside the block that hides transformers' bars off a terminal: the log got 'Writing model shards' redraws."""
    out = tmp_path / "out"
    assert main(_train_args(tiny_lm_dir, tmp_path, "--max-steps", "1", "--output-dir", str(out))) == 0
    capsys.readouterr()
    assert main(_train_args(tiny_lm_dir, tmp_path, "--max-steps", "1", "--output-dir", str(out), "--resume",
                            "--merge")) == 0
    captured = capsys.readouterr()
    assert f"--merge: wrote the merged model into {out / 'merged'}" in captured.out
    assert SHARDS_BAR not in captured.err and "\r" not in captured.err, captured.err


def _adapter_composite(tiny_lm_dir, tmp_path, capsys):
    """A composite whose thinker is a LoRA adapter (as the bundled ones are): loading it merges the adapter into the
    cache, a save_pretrained with transformers' bar."""
    from o1_retriever.composite import write_composite
    from o1_retriever.default_model import MINILM_HUB_ID
    source = tmp_path / "source"
    assert main(_train_args(tiny_lm_dir, tmp_path, "--max-steps", "1", "--output-dir", str(source / "thinker"))) == 0
    write_composite(source, "thinker", MINILM_HUB_ID, max_new_tokens=4)
    capsys.readouterr()
    return source


def test_train_encoder_off_a_terminal_writes_no_bar_of_the_thinker_and_no_peft_warning(
        tiny_lm_dir, tmp_path, minilm_member, capsys, monkeypatch):
    """Into a log file train-encoder drew the thinker's merge ('Writing model shards') and, from 64 queries, its
    'Thinking' bar as carriage-return redraws, and warned that transformers deprecates is_gradient_checkpointing
    (PEFT's call, nothing the user can change)."""
    from tests.training.conftest import write_beir
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))  # the adapter is merged on this load
    source = _adapter_composite(tiny_lm_dir, tmp_path, capsys)
    beir = write_beir(tmp_path / "beir", n_queries=64, n_docs=70)
    assert main(["train-encoder", "--model", str(source), "--data", f"{beir}:train", "--thoughts-per-query", "1",
                 "--max-steps", "1", "--batch-size", "4", "--output-dir", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and SHARDS_BAR not in err and "Thinking" not in err, err
    assert "is_gradient_checkpointing" not in err, err


def test_self_select_off_a_terminal_draws_no_bar(tiny_lm_dir, tmp_path, minilm_member, capsys, monkeypatch):
    """Its thinking bar was drawn whatever stderr was (scripts/train_composite_thinker.sh into a log: carriage-return
    redraws), as was the adapter thinker's merge ('Writing model shards') on its first load."""
    from tests.training.conftest import write_beir
    from o1_retriever_training.self_select import SelfSelectArguments, self_select
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    source = _adapter_composite(tiny_lm_dir, tmp_path, capsys)
    result = self_select(SelfSelectArguments(model=str(source), data=f"{write_beir(tmp_path / 'beir')}:train",
                                             output=str(tmp_path / "records.jsonl"), seeds=[0], k=1, num_negatives=1))
    assert result.queries == 12
    err = capsys.readouterr().err
    assert "\r" not in err and SHARDS_BAR not in err and "Thinking" not in err, err


def test_train_encoder_refuses_an_output_dir_holding_a_trained_or_full_model(tiny_lm_dir, tmp_path, capsys):
    """train-encoder into `train`'s finished output (or a full model's folder) wrote its composite beside that model:
    the folder then loaded as the composite, and the model that was there could no longer be loaded by its path."""
    import shutil
    joint, full = tmp_path / "joint", tmp_path / "full"
    assert main(_train_args(tiny_lm_dir, tmp_path, "--max-steps", "1", "--output-dir", str(joint))) == 0
    shutil.copytree(tiny_lm_dir, full)
    model = tmp_path / "composite"
    model.mkdir()
    (model / "o1_composite.json").write_text('{"thinker": "thinker", "encoder": "encoder"}')
    for out, kind in ((joint, "an adapter model (adapter_config.json)"), (full, "a full model (config.json)")):
        before = sorted(p.name for p in out.iterdir())
        capsys.readouterr()
        assert main(["train-encoder", "--model", str(model), "--data", str(tmp_path), "--output-dir", str(out)]) == 2
        assert f"--output-dir {out} holds {kind}" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == before


def test_train_refuses_an_output_dir_holding_a_composite_or_a_full_model(tiny_lm_dir, tiny_o1_dir, tmp_path, capsys):
    """train into a composite's folder (train-encoder's result) or a full model's (the base model's own folder)
    wrote its adapter beside that model: from_pretrained(folder) went on loading the composite, not the run."""
    import shutil

    from o1_retriever.composite import write_composite
    from o1_retriever.default_model import MINILM_HUB_ID
    composite = tmp_path / "composite"
    shutil.copytree(tiny_o1_dir, composite / "thinker")
    write_composite(composite, "thinker", MINILM_HUB_ID)
    for out, kind in ((composite, "a composite model (o1_composite.json)"), (tiny_o1_dir, "a full model (config.json)")):
        before = sorted(p.name for p in out.iterdir())
        for resume in ([], ["--resume"]):
            assert main(_train_args(tiny_lm_dir, tmp_path, "--output-dir", str(out), *resume)) == 2
            assert f"--output-dir {out} holds {kind}" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == before


def test_train_encoder_one_step_changes_the_encoder_and_the_message_names_the_thinker_it_needs(
        tiny_o1_dir, tiny_beir, tmp_path, minilm_member, capsys):
    """The trainer's warmup (10%, rounded up to one step whose learning rate is 0) made `--max-steps 1`, the quick
    check a user runs first, write an adapter of zeros: 'trained the encoder 1 steps', and an unchanged encoder.
    Nothing said that the new model names its thinker and its encoder's base by paths outside it (moving those
    folders breaks the model), and an empty trainer/ folder was left in it."""
    import shutil

    import numpy as np

    from o1_retriever import O1Embedder
    from o1_retriever.composite import write_composite
    from o1_retriever.default_model import minilm_path
    source, out = tmp_path / "source", tmp_path / "out"
    shutil.copytree(tiny_o1_dir, source / "thinker")
    write_composite(source, "thinker", str(minilm_path()), max_new_tokens=4)  # an encoder by path, as a user's own
    assert main(["train-encoder", "--model", str(source), "--data", f"{tiny_beir}:train", "--thoughts-per-query", "1",
                 "--max-steps", "1", "--batch-size", "4", "--learning-rate", "1e-3", "--merge-weight", "1",
                 "--output-dir", str(out)]) == 0
    said = capsys.readouterr().out
    assert "trained the encoder 1 steps" in said
    assert (f"not copied: the model names {source / 'thinker'} and {minilm_path().resolve()} by path; moving or "
            f"deleting those folders breaks this model") in said
    assert not (out / "trainer").exists()
    docs = ["heart blood pressure", "ocean coral reef"]
    before, after = (O1Embedder.from_pretrained(str(m), device="cpu", dtype="fp32", thought_cache=False)
                     .encode_documents(docs) for m in (source, out))
    assert not np.allclose(before, after, atol=1e-4)


def test_ctrl_c_in_train_encoder_says_what_a_rerun_costs(tiny_o1_dir, tiny_beir, tmp_path, minilm_member,
                                                          monkeypatch):
    """Ctrl-C printed only 'interrupted': nothing said that no model was written, that the run has no checkpoint to
    continue, nor that the thoughts are not thought again."""
    import shutil

    from o1_retriever.composite import write_composite
    from o1_retriever.default_model import MINILM_HUB_ID
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))  # the child's thought cache
    source, out = tmp_path / "source", tmp_path / "out"
    shutil.copytree(tiny_o1_dir, source / "thinker")
    write_composite(source, "thinker", MINILM_HUB_ID, max_new_tokens=4)
    process = _start(["train-encoder", "--model", str(source), "--data", f"{tiny_beir}:train", "--thoughts-per-query",
                      "1", "--max-steps", "100000", "--batch-size", "4", "--output-dir", str(out)], tmp_path)
    stdout = process.stderr_file.with_name("stdout")
    rc, err = _interrupt_when(process, lambda: "'loss'" in stdout.read_text())  # training, step by step
    assert rc == 130 and "Traceback" not in err
    assert (f"o1-retriever train-encoder: interrupted; no model was written to {out}: the same command trains again "
            f"from the start (the thoughts already thought are kept in the thought cache)") in err
    assert not (out / "o1_composite.json").exists()


@pytest.mark.parametrize("plot", ["plot_losses", "plot_encoder_losses"])
def test_a_loss_plot_that_cannot_be_saved_closes_its_figure(tmp_path, plot):
    """A PNG that could not be written (its folder is a file) raised before the figure was closed: pyplot kept each
    such figure open, and its memory, for the rest of the process. The figure is now closed either way."""
    plt = pytest.importorskip("matplotlib.pyplot")
    from o1_retriever_training import plotting
    log = tmp_path / "train_log.jsonl"
    log.write_text(json.dumps({"step": 1, "loss_emb": 1.0, "loss_gen": 2.0}) + "\n")
    (tmp_path / "a-file").write_text("")
    before = set(plt.get_fignums())
    source = log if plot == "plot_losses" else [{"step": 1, "loss": 1.0}]
    with pytest.raises(OSError):
        getattr(plotting, plot)(source, tmp_path / "a-file" / "losses.png")
    assert set(plt.get_fignums()) == before
