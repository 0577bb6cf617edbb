"""Audit of the training package as a user fine-tuning on their own data: records with mistakes are refused naming the
file, line and field; window settings that would train nothing are refused before the model loads; a huge record
costs what its window costs; a run killed mid-training and resumed ends where an uninterrupted one does. Tiny random
models only."""
from __future__ import annotations

import json

import pytest

from o1_retriever.cli import main
from tests.training.conftest import write_triplets

TINY = ["--group-size", "2", "--batch-size", "2", "--lora-r", "2", "--lora-alpha", "4", "--max-steps", "1"]


def _train_cli(base, data, out, *flags):
    return ["train", "--base-model", str(base), "--train-data", str(data), "--output-dir", str(out), *TINY, *flags]


def test_too_few_negatives_names_the_file_line_and_field(tmp_path, capsys):
    """The error named a line but not the file ("first: line 5 has 0"), nor the field to fill: a user with a typo'd
    key ("negs") saw every record short without a hint why."""
    data = write_triplets(tmp_path / "mine.jsonl")
    lines = data.read_text().splitlines()
    record = json.loads(lines[4])
    record["negs"] = record.pop("neg")
    lines[4] = json.dumps(record)
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(_train_cli("/does/not/exist", data, out)) == 2
    err = capsys.readouterr().err
    assert f"(field 'neg'), but 1 of 12 records have fewer (first: {data}:5 has 0)" in err
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--passage-max-length", "1"], "passage_max_length=1 must be >= 2 (it counts <emb>)"),
    (["--query-max-length", "256"], "query_thought_max_length=256 leaves no room for a thought after a query of "
                                    "query_max_length=256 tokens"),
    (["--query-max-length", "32", "--query-thought-max-length", "38"], "make it larger than 38"),
])
def test_windows_that_train_nothing_are_refused_before_the_model_loads(flags, message, tiny_lm_dir, tmp_path, capsys):
    """A passage window of 1 embedded `<emb>` alone (every passage the same vector), and a query window as large as
    the query+thought one cut every thought to nothing (L_gen 0: the model never learns to think); both trained to
    the end without a word."""
    out = tmp_path / "out"
    assert main(_train_cli(tiny_lm_dir, write_triplets(tmp_path / "t.jsonl"), out, *flags)) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_huge_record_is_tokenized_only_as_far_as_its_windows():
    """A 2-million-character passage or thought was tokenized whole at every step it was drawn (seconds each, with
    SmolLM2's tokenizer); only the window's tokens are used, so a prefix holding them is tokenized, with the same ids."""
    from o1_retriever_training.dataset import TrainCollator
    from tests.fixtures import build_tokenizer

    tok = build_tokenizer(with_o1_tokens=True)
    collator = TrainCollator(tok, query_max_length=8, passage_max_length=16, query_thought_max_length=40)
    huge = "protein binding in the cell " * 80_000
    expected = collator([{"query": huge[:300], "thought": huge[:2000], "passages": [huge[:2000], "short one"]}])
    seen = []
    call = type(tok).__call__

    def spy(self, text, *args, **kwargs):
        seen.append(max(map(len, [text] if isinstance(text, str) else text)))
        return call(self, text, *args, **kwargs)
    type(tok).__call__ = spy
    try:
        batch = collator([{"query": huge, "thought": huge, "passages": [huge, "short one"]}])
    finally:
        type(tok).__call__ = call
    assert max(seen) < 50_000
    for key in expected:
        assert batch[key].tolist() == expected[key].tolist(), key


def test_training_args_json_is_written_all_or_nothing(tiny_lm_dir, tmp_path, monkeypatch):
    """training_args.json (what the refusal of another run's --resume tells the user to read) was written in place:
    a kill mid-write left half a JSON file."""
    from o1_retriever_training.arguments import DataArguments, ModelArguments, TrainingArguments
    from o1_retriever_training.trainer import train

    import o1_retriever.atomic as atomic
    written = []
    real = atomic.atomic_path

    def recording(path, *args, **kwargs):
        written.append(str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(atomic, "atomic_path", recording)  # a spy: the real writer still writes
    out = tmp_path / "out"
    train(ModelArguments(base_model=str(tiny_lm_dir), lora_r=2, lora_alpha=4),
          DataArguments(train_data=str(write_triplets(tmp_path / "t.jsonl")), group_size=2),
          TrainingArguments(output_dir=str(out), batch_size=4, max_steps=1), progress_bar=False)
    assert str(out / "training_args.json") in written
    assert json.loads((out / "training_args.json").read_text())["data"]["group_size"] == 2


def _qrels_naming_missing_passages(beir, every_other: bool):
    qrels = beir / "qrels" / "train.tsv"
    lines = qrels.read_text().splitlines()
    qrels.write_text("\n".join([lines[0]] + [line.replace("\td", "\tmissing-d") if i % 2 or not every_other else line
                                             for i, line in enumerate(lines[1:])]) + "\n")
    return beir


def test_train_encoder_data_whose_qrels_name_no_passage_fails_naming_the_folder_before_the_thinker_loads(
        tiny_beir, tmp_path):
    """Qrels naming passages the corpus lacks were dropped without a word; when all were, the run loaded the thinker
    first and then said only "no training pairs in [...]". The command also imported sentence-transformers' losses and
    training arguments from paths it deprecates (and is to remove). A process of its own: those warn on first import."""
    import os
    import subprocess
    import sys

    model = tmp_path / "composite"
    model.mkdir()  # hub ids that cannot load offline: only an error before the thinker loads is about the data
    (model / "o1_composite.json").write_text('{"thinker": "nobody/no-such-thinker", "encoder": "nobody/no-such-enc"}')
    beir = _qrels_naming_missing_passages(tiny_beir, every_other=False)
    cli = ["train-encoder", "--model", str(model), "--data", str(beir), "--output-dir", str(tmp_path / "out")]
    done = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-c",
                           f"import sys; from o1_retriever.cli import main; sys.exit(main({cli!r}))"],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"skipped 12 positives of --data {beir} whose passage id is not in the corpus: q0->missing-d0" in done.stderr
    assert f"--data {str(beir)!r}: no usable (query, positive passage) pairs" in done.stderr
    assert "no-such-thinker" not in done.stderr
    assert "Importing from 'sentence_transformers." not in done.stderr


def test_train_encoder_data_skips_passages_the_corpus_lacks_with_a_warning_naming_the_folder(tiny_beir):
    import random

    from o1_retriever_training.encoder_data import read_folder

    beir = _qrels_naming_missing_passages(tiny_beir, every_other=True)
    with pytest.warns(UserWarning, match=f"skipped 6 positives of --data {beir}:train whose passage id is not in "
                                         f"the corpus: q1->missing-d1"):
        pairs = read_folder(f"{beir}:train", excluded={"q0"}, max_queries=None, rng=random.Random(0))
    assert pairs.texts and len(pairs.texts) == 5 and all(p <= set(pairs.docs) for p in pairs.positives)


@pytest.mark.slow  # a training process of its own (bitsandbytes warns on its first import only): ~20-60 s
def test_a_run_without_quantization_prints_no_bitsandbytes_kernel_warnings(tiny_lm_dir, tmp_path):
    """With bitsandbytes installed (the [qlora] extra), every run printed "Failed to load CPU gemm_4bit_forward from
    kernels-community ... pip install kernels" and a hub trust-check line, offline, about a kernel it never uses."""
    import os
    import subprocess
    import sys

    pytest.importorskip("bitsandbytes")
    cli = _train_cli(tiny_lm_dir, write_triplets(tmp_path / "t.jsonl"), tmp_path / "out")
    done = subprocess.run([sys.executable, "-c", f"import sys; from o1_retriever.cli import main; sys.exit(main({cli!r}))"],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kernels-community" not in done.stderr and "gemm_4bit" not in done.stderr
    assert "trained 1 steps" in done.stdout


def test_resume_drops_a_log_line_cut_short_by_the_crash(tmp_path):
    """A run that died writing its log (a full disk) left a cut last line; --resume then stopped with a bare
    "Expecting ',' delimiter" naming no file, and could not go on without editing the log by hand."""
    from o1_retriever_training.checkpoints import _truncate_log

    log = tmp_path / "train_log.jsonl"
    rows = [{"step": s, "loss": 1.0} for s in (1, 2, 3)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + json.dumps({"step": 4, "loss": 1.0})[:9])
    _truncate_log(log, 2)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]
    log.write_text("not json\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(ValueError, match="train_log.jsonl: line 1 is not a JSON log line: 'not json'"):
        _truncate_log(log, 2)
    assert log.read_text().startswith("not json")


@pytest.mark.slow  # a training process of its own, killed: ~30-60 s
def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_result(tiny_lm_dir, tmp_path):
    """SIGKILL inside optimizer step 4 of 5 (gradient accumulation 3 over 4 batches an epoch, so steps end at epoch
    ends too): --resume from the step-2 checkpoint logs each step once and ends with the uninterrupted run's weights."""
    import os
    import signal
    import subprocess
    import sys

    from safetensors.torch import load_file

    data = write_triplets(tmp_path / "t.jsonl")
    flags = ["--lora-r", "4", "--lora-alpha", "8", "--group-size", "4", "--batch-size", "3",
             "--gradient-accumulation-steps", "3", "--learning-rate", "1e-3", "--max-steps", "5", "--save-steps", "2",
             "--mixed-precision", "no"]

    def cli(out):
        return ["train", "--base-model", str(tiny_lm_dir), "--train-data", str(data), "--output-dir", str(out), *flags]
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert main(cli(full)) == 0
    child = f"""
import os, signal, sys, torch
calls, step = [0], torch.optim.AdamW.step
def kill_on_4th(self, *a, **k):
    calls[0] += 1
    if calls[0] == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, *a, **k)
torch.optim.AdamW.step = kill_on_4th
from o1_retriever.cli import main
sys.exit(main({cli(killed)!r}))
"""
    done = subprocess.run([sys.executable, "-c", child], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["step-2"]
    assert not (killed / "adapter_config.json").exists()
    assert main([*cli(killed), "--resume"]) == 0
    logged = [json.loads(line) for line in (killed / "train_log.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (full / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5]
    assert [r["epoch"] for r in logged] == [r["epoch"] for r in expected]
    for a, b in zip(expected, logged):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4) and b["lr"] == pytest.approx(a["lr"])
    ours, theirs = load_file(killed / "adapter_model.safetensors"), load_file(full / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all((ours[k] - theirs[k]).abs().max() < 1e-5 for k in ours)


def test_train_help_says_what_resume_save_steps_and_token_rows_only_do(capsys):
    """--resume said only "Resume from the latest checkpoint" (it also starts from scratch where there is none and
    does nothing for a finished run), --save-steps not that only two checkpoints stay, and --token-rows-only not that
    an untied LM head refuses it."""
    import re
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "with that run's settings (from scratch where it saved none yet; nothing to do where it finished)" in text
    assert "Checkpoint every N optimizer steps (the latest two are kept)" in text
    assert "Models with a tied LM head only" in text


def test_a_fresh_run_into_a_folder_of_other_files_is_refused_before_the_model_loads(tiny_lm_dir, tmp_path, capsys):
    """`--output-dir .` in a project trained and then exported by name into it: PEFT's model card replaced the
    project's README.md (and an embedding/ or merged/ folder there would have been deleted)."""
    project = tmp_path / "project"
    (project / "embedding").mkdir(parents=True)
    (project / "README.md").write_text("my project\n")
    (project / "o1_generation.json").write_text('{"temperature": 0.7}')  # settings chosen for the model may wait there
    assert main(_train_cli(tiny_lm_dir, write_triplets(tmp_path / "t.jsonl"), project)) == 2
    assert ("holds files that are not a training run's (README.md, embedding): the model's files would replace any of "
            "the same name") in capsys.readouterr().err
    assert (project / "README.md").read_text() == "my project\n" and (project / "embedding").is_dir()
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "embedding", "o1_generation.json"]

    (project / "README.md").unlink()
    (project / "embedding").rmdir()  # only the settings file left: the run trains there, and keeps it
    assert main(_train_cli(tiny_lm_dir, tmp_path / "t.jsonl", project)) == 0
    assert (project / "adapter_config.json").exists() and (project / "o1_generation.json").exists()


@pytest.mark.parametrize("steps", [1, 3])
def test_a_short_runs_loss_plot_draws_its_points(tmp_path, monkeypatch, steps):
    """A one-step run (the quick check before a long one) drew an empty plot: a line through one point draws nothing.
    The figure is read as it is saved (a spy: the real save still writes the PNG)."""
    from matplotlib.figure import Figure

    from o1_retriever_training.plotting import plot_encoder_losses, plot_losses

    drawn = []
    save = Figure.savefig

    def spy(self, *args, **kwargs):
        drawn.extend((len(line.get_xdata()), line.get_marker()) for ax in self.axes for line in ax.lines)
        return save(self, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", spy)
    log = tmp_path / "train_log.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss_emb": 2.0 / s, "loss_gen": 5.0}) + "\n"
                           for s in range(1, steps + 1)))
    assert plot_losses(log, tmp_path / "losses.png").stat().st_size > 1000
    plot_encoder_losses([{"step": s, "loss": 1.0 / s} for s in range(1, steps + 1)], tmp_path / "encoder.png")
    assert len(drawn) == 3 and all(n == steps and marker not in (None, "None", "", " ") for n, marker in drawn)
