"""What a training run leaves to resume from: step checkpoints of the trainable weights, optimiser and scheduler
(loaded tensors-only), the log lines a resume replays, and the export a `--resume` of a finished run may update."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from o1_retriever.atomic import atomic_path, write_text_atomically

from .arguments import TrainingArguments
from .export import UNTIED_ROWS_ONLY, add_merged, has_merged

STATE_FILE = "state.pt"


def _trainable_state(model) -> dict:
    return {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}


def latest_checkpoint(output_dir) -> Path | None:
    ckpts = sorted((Path(output_dir) / "checkpoints").glob("step-*/" + STATE_FILE),
                   key=lambda p: int(p.parent.name.split("-")[1]))
    return ckpts[-1].parent if ckpts else None


def _save_checkpoint(accelerator, model, optimizer, scheduler, out: Path, progress: dict, settings: dict,
                     keep: int = 2):
    if not accelerator.is_main_process:
        return
    ckpt = out / "checkpoints" / f"step-{progress['step']}"
    ckpt.mkdir(parents=True, exist_ok=True)
    with atomic_path(ckpt / STATE_FILE) as tmp:  # a crash mid-save keeps the previous checkpoint
        torch.save({"progress": progress, "settings": settings,
                    "model": _trainable_state(accelerator.unwrap_model(model)),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp)
    for old in sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[:-keep]:
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


def _read_checkpoint(ckpt: Path) -> dict:
    # weights_only: tensors, numbers, strings and containers only. A checkpoint directory is a path a user points
    # --resume at, and a full unpickler would run whatever code a crafted state.pt carries.
    try:
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{ckpt / STATE_FILE} holds more than tensors and plain values, so it is not loaded "
                         f"(it may have been tampered with; delete it to start over): {str(e).splitlines()[0]}") from None
    return state


def _load_checkpoint(ckpt: Path, model, optimizer, scheduler, state: dict | None = None) -> dict:
    state = _read_checkpoint(ckpt) if state is None else state
    try:
        missing = model.load_state_dict(state["model"], strict=False)
    except RuntimeError as e:  # shapes differ: a checkpoint of another run, from before checkpoints named theirs
        raise ValueError(f"checkpoint {ckpt} does not fit the model built from these arguments (another run's?): "
                         f"{str(e).splitlines()[-1].strip()}") from None
    if missing.unexpected_keys:
        raise ValueError(f"checkpoint {ckpt} does not match the model: unexpected {missing.unexpected_keys[:3]}")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return state["progress"]


def _truncate_log(log_file: Path, step: int) -> None:
    """After a resume, drop log lines from steps that will be replayed. All or nothing: a kill mid-rewrite that left
    the log empty would have the next resume log only the steps after its checkpoint, a log (and losses.png) that
    looks whole."""
    if log_file.exists():
        keep = [ln for ln, row in _log_rows(log_file) if row["step"] <= step]
        write_text_atomically(log_file, "".join(ln + "\n" for ln in keep))


def _log_rows(log_file: Path) -> list[tuple[str, dict]]:
    """(line, row) of each log line. A last line that is not JSON was cut short by the crash a resume follows (a full
    disk): it is dropped, since its step is replayed; one before it means the log is not this package's."""
    lines = [ln for ln in log_file.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    rows = []
    for n, line in enumerate(lines, 1):
        try:
            rows.append((line, json.loads(line)))
        except json.JSONDecodeError:
            if n < len(lines):
                raise ValueError(f"{log_file}: line {n} is not a JSON log line: {line[:80]!r}; move the file away "
                                 f"to resume without it") from None
    return rows



def _update_finished_export(out: Path, train_args: TrainingArguments) -> list[str]:
    """The export settings a resume may change (resume.FREE_TO_CHANGE), applied to a finished run's model."""
    from o1_retriever.checkpoint import LM_HEAD_FILE, embedding_file, read_adapter_config
    notes = []
    if train_args.merge and not has_merged(out):
        add_merged(out)
        notes.append(f"--merge: wrote the merged model into {out / 'merged'}")
    compact = bool(read_adapter_config(out).get("trainable_token_indices"))
    if train_args.token_rows_only != compact:
        forms = ("embedding/emb.pth", "the token rows alone as PEFT trainable tokens (--token-rows-only)")
        if compact:
            how = "train again into another --output-dir for the other form"
        elif embedding_file(out, LM_HEAD_FILE).exists():
            how = UNTIED_ROWS_ONLY
        else:
            how = f"o1_retriever_training.export.write_token_rows({str(out)!r}) converts it"
        notes.append(f"{out} holds the model exported with {forms[compact]}, not {forms[not compact]} as asked: a "
                     f"finished run is not exported again; {how}")
    return notes
