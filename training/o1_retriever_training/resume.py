"""Which run a checkpoint belongs to. `--resume` replays one interrupted run exactly, so a checkpoint written under
other settings (another base model, LoRA shape, data, batch size, schedule) must not be continued as if it were
this run's: its weights might load and the result would silently be neither run. A fresh run into a directory that
holds checkpoints is refused too: it would truncate that run's log, and its older checkpoints would stay behind for
a later `--resume` to pick up. A finished run (its model exported after the last step) has nothing left to continue:
a fresh run there is refused as finished, and `--resume` there does nothing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from o1_retriever.checkpoint import ADAPTER_CONFIG
from o1_retriever.validation import read_json_object

# Written with the exported model, just before its adapter_config.json: {"step": steps trained, "settings": ...}.
FINISHED_FILE = "training_finished.json"

# Where and how often to save and log, the export form and activation recomputation change nothing a checkpoint
# holds, so they may differ between a crash and its resume. train_data's path may too: the records are compared.
FREE_TO_CHANGE = frozenset({"output_dir", "resume", "save_steps", "logging_steps", "merge", "token_rows_only",
                            "gradient_checkpointing", "train_data"})
PATH_SETTINGS = ("base_model", "init_adapter")


def _records_digest(records) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.query, r.pos, r.neg, r.thought]).encode())
    return h.hexdigest()


def run_settings(model_args, data_args, train_args, records, processes: int) -> dict:
    """The settings a checkpoint's trajectory depends on, as plain values (checkpoints load weights_only)."""
    settings = {**asdict(model_args), **asdict(data_args), **asdict(train_args)}
    settings = {k: v for k, v in settings.items() if k not in FREE_TO_CHANGE}
    for key in PATH_SETTINGS:  # the same directory named relatively or absolutely is the same model
        value = settings.get(key)
        if value and value != "default" and Path(value).expanduser().exists():
            settings[key] = str(Path(value).expanduser().resolve())
    return {**settings, "records": len(records), "records_sha256": _records_digest(records), "processes": processes}


def check_same_run(ckpt: Path, saved: dict | None, now: dict) -> None:
    if saved is None:  # written before checkpoints recorded their settings: nothing to compare
        return
    diff = [f"{k}: {saved.get(k)!r} there, {now.get(k)!r} now" for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)]
    if diff:
        raise ValueError(f"--resume: {ckpt} was written by a run with other settings ({'; '.join(diff[:6])}); "
                         f"resume with that run's settings (its training_args.json), or train into another "
                         f"--output-dir")


def finished_run(output_dir) -> dict | None:
    """The record of the run whose whole model `output_dir` holds, None while there is none (never exported, an
    export killed part-way, or a model exported before runs recorded their end)."""
    if not (Path(output_dir) / ADAPTER_CONFIG).exists():
        return None
    return read_json_object(Path(output_dir) / FINISHED_FILE, "the record of a finished training run",
                            "; delete it and pass --resume to export that run's model again")


def check_no_earlier_run(output_dir: Path, latest: Path | None, finished: dict | None = None) -> None:
    if finished is not None:
        raise ValueError(f"output_dir={str(output_dir)!r} holds the finished model of an earlier run "
                         f"(trained to step {finished.get('step')} and exported): there is nothing to resume; "
                         f"choose another --output-dir, or delete that folder to train there again")
    if latest is not None:
        raise ValueError(f"output_dir={str(output_dir)!r} holds checkpoints of an earlier run (latest: {latest.name}); "
                         f"pass --resume to continue it, or choose another --output-dir (or delete "
                         f"{output_dir / 'checkpoints'} to start over there)")
    # A run short enough to save no checkpoint still leaves its model: a fresh run would overwrite it unasked.
    if (output_dir / ADAPTER_CONFIG).exists():
        raise ValueError(f"output_dir={str(output_dir)!r} holds a model an earlier run trained ({ADAPTER_CONFIG}); "
                         f"choose another --output-dir, or delete that folder to train there again")
    check_no_foreign_files(output_dir)


# What a folder may hold before a run's first export besides a run's own files: the settings chosen for the model.
KEPT_FILES = frozenset({"o1_generation.json"})
RUN_MARK = "training_args.json"  # written by every run before its first step: the folder is a run's


def check_no_foreign_files(output_dir: Path) -> None:
    """A folder that is not a run's and holds files of its own (`--output-dir .` in a project) is refused: the export
    moves its files in by name, replacing a README.md or tokenizer files there and deleting an embedding/ or
    merged/ folder."""
    if not output_dir.is_dir() or (output_dir / RUN_MARK).exists():
        return
    foreign = sorted(p.name for p in output_dir.iterdir() if p.name not in KEPT_FILES and not p.name.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ValueError(f"output_dir={str(output_dir)!r} holds files that are not a training run's ({shown}): the "
                         f"model's files would replace any of the same name (README.md, tokenizer files, embedding/, "
                         f"merged/); choose a new or empty --output-dir")
