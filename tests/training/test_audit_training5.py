"""Audit of train's logs and of fine-tuning a composite (train-encoder) as a user would: progress bars stay out of
log files on every path, and bad flags, existing folders, kills and the result's loading behave as documented.
Tiny random models only."""
from __future__ import annotations

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
