"""Audit of the training package as a user follows training/README.md: every bad argument is refused by name before
any model loads, interrupted runs say how to continue, progress bars stay out of logs, and the documented commands
work as written. Tiny random models only."""
from __future__ import annotations

import pytest

from o1_retriever.cli import main
from tests.training.conftest import write_triplets


@pytest.mark.parametrize("flags, message", [
    (["--lora-r", "0"], "lora_r=0 must be a positive int"),
    (["--lora-alpha", "-1"], "lora_alpha=-1 must be > 0"),
    (["--lora-dropout", "1.5"], "lora_dropout=1.5 must be in [0, 1)"),
    (["--lora-target-modules"], "lora_target_modules=[] names no module"),
    (["--logging-steps", "0"], "logging_steps=0 must be a positive int"),
    (["--max-grad-norm", "-1"], "max_grad_norm=-1.0 must be a finite number > 0"),
    (["--weight-decay", "-1"], "weight_decay=-1.0 must be a finite number >= 0"),
    (["--learning-rate", "nan"], "learning_rate=nan must be a finite number > 0"),
    (["--temperature", "inf"], "temperature=inf must be a finite number > 0"),
])
def test_train_refuses_bad_numbers_by_name_before_the_model_loads(flags, message, tiny_lm_dir, tmp_path, capsys):
    """These reached peft or torch after the model loaded (an error naming no flag), crashed after the first step
    (logging_steps 0), or trained wrong without a word (a negative clipping norm flips every gradient)."""
    out = tmp_path / "out"
    rc = main(["train", "--base-model", str(tiny_lm_dir), "--train-data", str(write_triplets(tmp_path / "t.jsonl")),
               "--group-size", "2", "--batch-size", "2", "--lora-r", "2", "--lora-alpha", "4", "--max-steps", "1",
               "--output-dir", str(out), *flags])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # refused before the model loaded, which makes the folder
