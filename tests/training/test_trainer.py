"""The training loop: log, plot, checkpoints, resume after a crash, early argument errors."""
import json
import shutil

import pytest
import torch

from o1_retriever_training.arguments import DataArguments, ModelArguments, TrainingArguments
from o1_retriever_training.trainer import latest_checkpoint, train

from tests.training.conftest import write_triplets


def _run(base, data, out, **kw):
    model = ModelArguments(base_model=str(base), lora_r=4, lora_alpha=8)
    data_args = DataArguments(train_data=str(data), group_size=kw.pop("group_size", 4))
    kw.setdefault("save_steps", 2)
    return train(model, data_args, TrainingArguments(output_dir=str(out), batch_size=3, learning_rate=1e-3, **kw))


def _log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_resume_after_a_crash_replays_the_uninterrupted_run(tiny_lm_dir, triplets, tmp_path):
    full = tmp_path / "full"
    result = _run(tiny_lm_dir, triplets, full, max_steps=4)
    assert result.steps == 4 and [r["step"] for r in _log(full)] == [1, 2, 3, 4]
    assert (full / "losses.png").stat().st_size > 1000 and (full / "embedding" / "emb.pth").exists()
    assert latest_checkpoint(full).name == "step-2"

    # A crash after step 3: only the step-2 checkpoint and the log up to step 3 survive.
    crashed = tmp_path / "crashed"
    shutil.copytree(full / "checkpoints" / "step-2", crashed / "checkpoints" / "step-2")
    (crashed / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _log(full)[:3]))
    resumed = _run(tiny_lm_dir, triplets, crashed, max_steps=4, resume=True)
    assert resumed.steps == 4
    again = _log(crashed)
    assert [r["step"] for r in again] == [1, 2, 3, 4]  # the stale step-3 line was replaced, not duplicated
    for a, b in zip(_log(full)[2:], again[2:]):
        assert b["loss_emb"] == pytest.approx(a["loss_emb"], rel=1e-4)
        assert b["loss_gen"] == pytest.approx(a["loss_gen"], rel=1e-4)
        assert b["lr"] == pytest.approx(a["lr"])


@pytest.mark.parametrize("crash_after", [4, 6])
def test_resume_in_a_later_epoch_replays_that_epochs_order(tiny_lm_dir, triplets, tmp_path, crash_after):
    """12 records in batches of 3: 4 steps an epoch. A checkpoint at the end of epoch 0 (step 4) or inside epoch 1
    (step 6) must continue with epoch 1's order, not epoch 0's again (accelerate's loader sets its sampler's epoch
    from its own pass counter, which a resumed process starts at 0)."""
    full = tmp_path / "full"
    _run(tiny_lm_dir, triplets, full, max_steps=8, save_steps=crash_after)
    crashed = tmp_path / "crashed"
    shutil.copytree(full / "checkpoints" / f"step-{crash_after}", crashed / "checkpoints" / f"step-{crash_after}")
    resumed = _run(tiny_lm_dir, triplets, crashed, max_steps=8, save_steps=crash_after, resume=True)
    assert resumed.steps == 8
    again = _log(crashed)
    assert [r["step"] for r in again] == list(range(crash_after + 1, 9))
    for a, b in zip(_log(full)[crash_after:], again):
        assert (b["step"], b["epoch"]) == (a["step"], a["epoch"])
        assert b["loss_emb"] == pytest.approx(a["loss_emb"], rel=1e-4)
        assert b["loss_gen"] == pytest.approx(a["loss_gen"], rel=1e-4)


def test_a_checkpoint_of_another_run_is_not_continued(tiny_lm_dir, triplets, tmp_path):
    out = tmp_path / "out"
    _run(tiny_lm_dir, triplets, out, max_steps=3)
    log = (out / "train_log.jsonl").read_text()
    with pytest.raises(ValueError, match=r"other settings \(lora_r: 4 there, 8 now\)"):
        train(ModelArguments(base_model=str(tiny_lm_dir), lora_r=8, lora_alpha=8),
              DataArguments(train_data=str(triplets), group_size=4),
              TrainingArguments(output_dir=str(out), batch_size=3, learning_rate=1e-3, max_steps=3, resume=True))
    # The precision is compared as "auto" resolved here: naming that one is the same run, another one is not.
    from o1_retriever_training.trainer import resolve_mixed_precision
    here = resolve_mixed_precision("auto")
    other = "bf16" if here == "no" else "no"
    with pytest.raises(ValueError, match=rf"mixed_precision: '{here}' there, '{other}' now"):
        _run(tiny_lm_dir, triplets, out, max_steps=3, resume=True, mixed_precision=other)
    other_data = write_triplets(tmp_path / "other.jsonl", seed=1)
    with pytest.raises(ValueError, match="records_sha256"):
        _run(tiny_lm_dir, other_data, out, max_steps=3, resume=True)
    # A fresh run there would truncate that run's log; it is finished, so there is nothing to resume either.
    with pytest.raises(ValueError, match=r"holds the finished model of an earlier run \(trained to step 3 and "
                                         r"exported\): there is nothing to resume; choose another --output-dir"):
        _run(tiny_lm_dir, triplets, out, max_steps=3)
    assert (out / "train_log.jsonl").read_text() == log

    # Moving the data file and naming the base model by another path is still the same run.
    moved = tmp_path / "moved.jsonl"
    moved.write_text(triplets.read_text())
    assert _run(tiny_lm_dir / ".." / tiny_lm_dir.name, moved, out, max_steps=3, resume=True,
                mixed_precision=resolve_mixed_precision("auto")).steps == 3

    # A checkpoint from before checkpoints recorded their settings (and runs their end): a shape mismatch is still a
    # clear error.
    (out / "training_finished.json").unlink()
    state_file = out / "checkpoints" / "step-2" / "state.pt"
    state = torch.load(state_file, weights_only=True)
    del state["settings"]
    torch.save(state, state_file)
    with pytest.raises(ValueError, match="does not fit the model built from these arguments"):
        train(ModelArguments(base_model=str(tiny_lm_dir), lora_r=8, lora_alpha=8),
              DataArguments(train_data=str(triplets), group_size=4),
              TrainingArguments(output_dir=str(out), batch_size=3, max_steps=3, resume=True))


def test_errors_come_before_the_model_loads(tmp_path, triplets):
    with pytest.raises(ValueError, match="group_size=16 needs 15 negatives"):
        _run("/does/not/exist", triplets, tmp_path / "o", group_size=16)
    with pytest.raises(ValueError, match="lambda_emb=2"):
        _run("/does/not/exist", triplets, tmp_path / "o", lambda_emb=2)
    with pytest.raises(ValueError, match="max_examples=-1 must be a positive int or None"):
        train(ModelArguments(base_model="/does/not/exist"), DataArguments(train_data=str(triplets), max_examples=-1),
              TrainingArguments(output_dir=str(tmp_path / "o")))
    with pytest.raises(FileNotFoundError, match="missing.jsonl does not exist"):
        _run("/does/not/exist", tmp_path / "missing.jsonl", tmp_path / "o")


def test_token_rows_only_with_an_untied_head_fails_before_training(tiny_lm_dir, triplets, tmp_path):
    with pytest.raises(ValueError, match="--token-rows-only: token rows alone cannot rebuild an untied lm_head"):
        _run(tiny_lm_dir, triplets, tmp_path / "out", max_steps=2, token_rows_only=True)
    assert not (tmp_path / "out" / "train_log.jsonl").exists()  # no step was run


def test_a_second_precision_in_one_process_trains(tiny_lm_dir, triplets, tmp_path):
    """Another trainer in this process (sentence-transformers' in train-encoder) left accelerate's process-wide
    state at one precision; training at another must still run, as in a notebook."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)  # earlier tests in this process left theirs
    Accelerator(mixed_precision="bf16", cpu=True)
    result = _run(tiny_lm_dir, triplets, tmp_path / "out", max_steps=1, mixed_precision="no")
    assert result.steps == 1 and [r["step"] for r in _log(tmp_path / "out")] == [1]


def test_the_exported_model_keeps_its_chosen_settings_and_the_official_windows(tiny_lm_dir, triplets, tmp_path):
    """Trained on 48-id passages, the model still embeds with the official 512-token windows (a window is an
    inference setting, chosen on dev data: the bundled default's 144-token training window scored below 192 and
    256); settings already chosen into the folder's o1_generation.json stay, in the merged copy too."""
    from o1_retriever import O1Embedder

    out = tmp_path / "out"
    out.mkdir()
    (out / "o1_generation.json").write_text('{"aggregation": "mean_with_query", "document_max_length": 191}')
    train(ModelArguments(base_model=str(tiny_lm_dir), lora_r=4, lora_alpha=8),
          DataArguments(train_data=str(triplets), group_size=4, passage_max_length=48, query_thought_max_length=64),
          TrainingArguments(output_dir=str(out), batch_size=3, max_steps=1, merge=True))
    for folder in (out, out / "merged"):
        settings = O1Embedder.from_pretrained(str(folder), device="cpu", dtype="fp32",
                                              thought_cache=False).inference_settings()
        assert (settings["query_max_length"], settings["document_max_length"]) == (512, 191)
        assert settings["aggregation"] == "mean_with_query"


@pytest.mark.parametrize("base, message", [
    ("/no/such/model", r"base_model='/no/such/model': /no/such/model does not exist"),
    ("./no/model", r"base_model='./no/model': no/model does not exist"),
    ("{data_dir}", r"holds no Hugging Face model \(no config.json\)"),
    ("{data_file}", r"is a file; name a model folder, a .gguf file or a hub id"),
])
def test_a_base_model_that_cannot_be_one_is_named_and_leaves_no_folder(base, message, triplets, tmp_path):
    """transformers reported a missing path as a malformed hub id and a folder without a model as a tokenizer it
    could not convert, and the run had made its output folder by then."""
    base = base.format(data_dir=tmp_path, data_file=triplets)
    with pytest.raises(ValueError, match=message):
        _run(base, triplets, tmp_path / "out", max_steps=1)
    assert not (tmp_path / "out").exists()


def test_a_fresh_run_does_not_overwrite_a_trained_model(tiny_lm_dir, triplets, tmp_path):
    """A run too short to save a checkpoint left only its model; a second run into that folder overwrote it."""
    out = tmp_path / "out"
    _run(tiny_lm_dir, triplets, out, max_steps=1, save_steps=50)
    assert latest_checkpoint(out) is None
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    with pytest.raises(ValueError, match=r"holds the finished model of an earlier run \(trained to step 1"):
        _run(tiny_lm_dir, triplets, out, max_steps=1, save_steps=50, weight_decay=0.1)
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == before


@pytest.mark.slow  # a real training process started and killed: ~20-30 s; `make test` runs it (no -m filter)
def test_a_run_killed_during_its_export_leaves_no_model_and_resume_finishes_it(tiny_lm_dir, triplets, tmp_path,
                                                                               capsys):
    """A real process killed (SIGKILL) while export writes the tokenizer, after the LoRA weights and emb.pth: the
    folder must not pass for a model, and --resume must export it; once finished, --resume does nothing."""
    import os
    import signal
    import subprocess
    import sys

    from o1_retriever import O1Embedder
    from o1_retriever.checkpoint import is_adapter
    from o1_retriever_training.resume import finished_run

    from o1_retriever.cli import main

    out = tmp_path / "out"
    cli = ["train", "--base-model", str(tiny_lm_dir), "--train-data", str(triplets), "--output-dir", str(out),
           "--lora-r", "4", "--lora-alpha", "8", "--group-size", "4", "--batch-size", "3", "--learning-rate", "1e-3",
           "--max-steps", "2", "--save-steps", "1"]
    child = f"""
import os, signal, sys
import transformers
transformers.PreTrainedTokenizerBase.save_pretrained = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
from o1_retriever.cli import main
sys.exit(main({cli!r}))
"""
    done = subprocess.run([sys.executable, "-c", child], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert latest_checkpoint(out).name == "step-1" and [r["step"] for r in _log(out)] == [1, 2]
    assert not is_adapter(out) and finished_run(out) is None  # no half model
    with pytest.raises(ValueError, match="holds no model"):
        O1Embedder.from_pretrained(str(out), device="cpu", dtype="fp32")

    assert _run(tiny_lm_dir, triplets, out, max_steps=2, save_steps=1, resume=True).steps == 2
    assert finished_run(out)["step"] == 2 and not list(out.glob(".export-*"))
    loaded = O1Embedder.from_pretrained(str(out), device="cpu", dtype="fp32")
    assert loaded.encode_documents(["a passage"]).shape[0] == 1

    # Finished: --resume retrains nothing and exports nothing; a fresh run is told the run is finished.
    model_files = {f.name: f.stat().st_mtime_ns for f in out.iterdir() if f.is_file()}
    capsys.readouterr()
    assert main([*cli, "--resume"]) == 0
    assert "holds this run's finished model (2 steps): nothing to resume" in capsys.readouterr().out
    assert {f.name: f.stat().st_mtime_ns for f in out.iterdir() if f.is_file()} == model_files
    with pytest.raises(ValueError, match="finished model of an earlier run.*nothing to resume; choose another"):
        _run(tiny_lm_dir, triplets, out, max_steps=2, save_steps=1)
    with pytest.raises(ValueError, match=r"other settings \(max_steps: 2 there, 3 now\)"):  # not silently a no-op
        _run(tiny_lm_dir, triplets, out, max_steps=3, save_steps=1, resume=True)


def test_resume_of_a_finished_run_adds_the_merged_model_asked_for(tiny_lm_dir, triplets, tmp_path, capsys):
    """--merge may change on resume (resume.FREE_TO_CHANGE): a finished run exported without merged/ gets it (trained
    nothing); the export form cannot change without a new export, and the run says so."""
    from o1_retriever.cli import main
    from o1_retriever.loading import load_causal_lm

    out = tmp_path / "out"
    cli = ["train", "--base-model", str(tiny_lm_dir), "--train-data", str(triplets), "--output-dir", str(out),
           "--lora-r", "4", "--lora-alpha", "8", "--group-size", "4", "--batch-size", "3", "--learning-rate", "1e-3", "--max-steps", "1"]
    assert main(cli) == 0 and not (out / "merged").exists()
    log = (out / "train_log.jsonl").read_text()
    capsys.readouterr()
    assert main([*cli, "--resume", "--merge"]) == 0
    printed = capsys.readouterr().out
    assert "nothing to resume" in printed and f"--merge: wrote the merged model into {out / 'merged'}" in printed
    assert load_causal_lm(str(out / "merged"), device=torch.device("cpu"), dtype=torch.float32).model is not None
    assert (out / "train_log.jsonl").read_text() == log and [p.name for p in out.iterdir() if p.name[0] == "."] == []
    merged = {f.name: f.stat().st_mtime_ns for f in (out / "merged").iterdir()}
    assert _run(tiny_lm_dir, triplets, out, max_steps=1, resume=True, merge=True).notes == []  # there already
    assert {f.name: f.stat().st_mtime_ns for f in (out / "merged").iterdir()} == merged
    notes = _run(tiny_lm_dir, triplets, out, max_steps=1, resume=True, token_rows_only=True).notes
    assert len(notes) == 1 and "exported with embedding/emb.pth" in notes[0] and "not exported again" in notes[0]


def test_a_run_killed_writing_its_plot_leaves_no_cut_png_and_resume_draws_it(tiny_lm_dir, triplets, tmp_path):
    """SIGKILL while losses.png was being written (after the export) left a cut PNG that --resume of the finished
    run reported as its plot, and scripts ship; now no PNG is there until it is whole, and --resume draws it."""
    import os
    import signal
    import subprocess
    import sys

    from PIL import Image

    from o1_retriever.atomic import leftover_temporaries
    from o1_retriever_training.resume import finished_run

    out = tmp_path / "out"
    cli = ["train", "--base-model", str(tiny_lm_dir), "--train-data", str(triplets), "--output-dir", str(out),
           "--lora-r", "4", "--lora-alpha", "8", "--group-size", "4", "--batch-size", "3", "--learning-rate", "1e-3",
           "--max-steps", "1"]
    child = f"""
import builtins, os, signal, sys
real_open = builtins.open
def open_(file, mode="r", *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    if "losses.png" in str(file) and "w" in mode:  # its first bytes written, the rest not
        f.write(b"\\x89PNG")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return f
builtins.open = open_
from o1_retriever.cli import main
sys.exit(main({cli!r}))
"""
    done = subprocess.run([sys.executable, "-c", child], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert finished_run(out)["step"] == 1 and not (out / "losses.png").exists()

    result = _run(tiny_lm_dir, triplets, out, max_steps=1, resume=True)
    assert result.already_finished and result.plot_file == str(out / "losses.png")
    Image.open(out / "losses.png").verify()  # whole
    assert leftover_temporaries(out / "losses.png") == []


def test_a_resume_killed_trimming_the_log_keeps_the_log(tmp_path):
    """A resume trims the log lines of steps it replays; SIGKILL mid-rewrite left the log empty, and the next
    resume logged only the steps after its checkpoint: a log (and losses.png) that looked whole. Now the log is the
    old one until the trimmed one replaces it."""
    import signal

    from tests.fixtures import killed_opening_for_write
    log = tmp_path / "train_log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3)))
    before = log.read_text()
    done = killed_opening_for_write("train_log.jsonl", "from o1_retriever_training.checkpoints import _truncate_log\n"
                                    "_truncate_log(Path(sys.argv[2]), 2)\n", str(log))
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert log.read_text() == before
