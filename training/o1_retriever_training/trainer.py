"""The training loop, on `accelerate` (DDP / DeepSpeed / FSDP via `accelerate launch`; one process
otherwise). bf16 autocast where the hardware is fast at it, gradient accumulation, a tqdm bar with
both losses (a line per logged step off a terminal), a JSONL log, checkpoints every N steps with `resume`,
and a PNG of the losses at the end.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from o1_retriever.atomic import write_text_atomically
from o1_retriever.device import cpu_has_fast_bf16
from o1_retriever.display import bars_shown

from .arguments import (DataArguments, ModelArguments, TrainingArguments, check_model_arguments,
                        check_training_arguments, expand_user_paths)
from .bars import transformers_bars
# STATE_FILE and _trainable_state: still importable from here, where they were first defined
from .checkpoints import (STATE_FILE, _load_checkpoint, _read_checkpoint, _save_checkpoint,  # noqa: F401
                          _trainable_state, _truncate_log, _update_finished_export, latest_checkpoint)
from .data import load_triplets
from .dataset import TrainCollator, TrainDataset
from .export import UNTIED_ROWS_ONLY, export_adapter
from .modeling import build, check_base_model, check_quantization
from .warm_start import effective_model_arguments
from .plotting import plot_losses
from .resume import FINISHED_FILE, check_no_earlier_run, check_same_run, finished_run, run_settings


@dataclass
class TrainResult:
    output_dir: str
    steps: int
    log_file: str
    plot_file: str | None
    last: dict
    already_finished: bool = False  # --resume found this run finished and trained nothing
    notes: list[str] = field(default_factory=list)  # what such a --resume did or could not do to its export


class EpochShuffle(Sampler):
    """A fixed permutation per (seed, epoch): a resumed run replays the same order."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def resolve_mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "no"


def _release_single_process_state(precision: str) -> None:
    """accelerate keeps one process-wide state: after another trainer in this process (sentence-transformers' in
    `train-encoder`, a notebook's earlier run) set another precision, `Accelerator(mixed_precision=...)` refuses.
    Outside a distributed launch there is nothing to keep, so the stale state is dropped (accelerate's own tests do
    the same); under `accelerate launch` it is the launcher's and stays."""
    from accelerate.state import AcceleratorState, PartialState
    if not AcceleratorState._shared_state or PartialState().num_processes > 1:
        return
    if str(AcceleratorState().mixed_precision) != precision:
        AcceleratorState._reset_state(reset_partial_state=True)


def _seed_micro_batch(seed: int, index: int, rank: int) -> None:
    """Dropout randomness as a function of (seed, micro-batch, process): a resumed run draws the
    same masks as an uninterrupted one, whatever else consumed random numbers meanwhile."""
    torch.manual_seed((seed * 1_000_003 + index * 1009 + rank) % (2 ** 63))


def _finished_result(out: Path, finished: dict, notes: list[str]) -> TrainResult:
    log_file, plot = out / "train_log.jsonl", out / "losses.png"
    lines = log_file.read_text().splitlines() if log_file.exists() else []
    return TrainResult(str(out), finished.get("step", 0), str(log_file), str(plot) if plot.exists() else None,
                       json.loads(lines[-1]) if lines else {}, already_finished=True, notes=notes)


def train(model_args: ModelArguments, data_args: DataArguments, train_args: TrainingArguments,
          progress_bar: bool | None = None) -> TrainResult:
    """progress_bar: a tqdm bar (True), or a plain line per logged step on stderr (False); None: a bar only where stderr
    is a terminal, since a bar redrawn with carriage returns is one unreadable line in a log file."""
    show_bar = bars_shown() if progress_bar is None else progress_bar
    with transformers_bars(show_bar):  # the base's conversion, a --merge save (a finished run's --resume included)
        return _train(model_args, data_args, train_args, show_bar)


def _train(model_args: ModelArguments, data_args: DataArguments, train_args: TrainingArguments,
           show_bar: bool) -> TrainResult:
    from accelerate import Accelerator
    from transformers import get_linear_schedule_with_warmup

    data_args = expand_user_paths(data_args, ("train_data",))
    train_args = expand_user_paths(train_args, ("output_dir",))
    check_training_arguments(train_args, data_args)
    check_model_arguments(model_args)
    model_args = effective_model_arguments(model_args)
    if not data_args.train_data:
        raise ValueError("train_data is required: a JSONL file of {query, pos, neg, thought} records")
    records = load_triplets(data_args.train_data, data_args.max_examples)
    out = Path(train_args.output_dir)
    ckpt, ckpt_state = latest_checkpoint(out), None
    finished = finished_run(out)
    if not train_args.resume:
        check_no_earlier_run(out, ckpt, finished)
    elif finished is None and ckpt is not None:  # before the model loads: another run's checkpoint fails in seconds
        ckpt_state = _read_checkpoint(ckpt)
    dataset = TrainDataset(records, data_args.group_size, data_args.empty_thought_ratio, train_args.seed,
                           source=data_args.train_data)
    check_base_model(model_args.base_model)
    check_quantization(model_args.quantization)
    precision = resolve_mixed_precision(train_args.mixed_precision)
    _release_single_process_state(precision)
    accelerator = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available(),
                              gradient_accumulation_steps=train_args.gradient_accumulation_steps)
    # the precision "auto" resolved to here: a resume on a machine where it resolves otherwise is another run
    settings = run_settings(model_args, data_args, train_args, records, accelerator.num_processes) | {
        "mixed_precision": precision}
    if ckpt_state is not None:
        check_same_run(ckpt, ckpt_state.get("settings"), settings)
    if finished is not None:  # resume: this run already ended, exported; training again would redo its last steps
        check_same_run(out / FINISHED_FILE, finished.get("settings"), settings)
        notes = _update_finished_export(out, train_args) if accelerator.is_main_process else []
        if accelerator.is_main_process and not (out / "losses.png").exists():  # killed between export and plot
            plot_losses(out / "train_log.jsonl", out / "losses.png")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return _finished_result(out, finished, notes)
    torch.manual_seed(train_args.seed)
    model = build(model_args, temperature=train_args.temperature, lambda_emb=train_args.lambda_emb,
                  mixed_precision=precision, cross_device_negatives=train_args.cross_device_negatives,
                  device_map={"": str(accelerator.device)})
    out.mkdir(parents=True, exist_ok=True)  # after the model loaded: a base that fails to load leaves no folder
    if train_args.token_rows_only and not model.tied:  # fail now, not at export after the whole run
        raise ValueError(f"--token-rows-only: {UNTIED_ROWS_ONLY}")
    collator = TrainCollator(model.tokenizer, data_args.query_max_length, data_args.passage_max_length,
                             data_args.query_thought_max_length)
    sampler = EpochShuffle(len(dataset), train_args.seed)
    loader = DataLoader(dataset, batch_size=train_args.batch_size, sampler=sampler, collate_fn=collator)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=train_args.learning_rate, weight_decay=train_args.weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    per_epoch = math.ceil(len(loader) / train_args.gradient_accumulation_steps)
    total = train_args.max_steps or per_epoch * train_args.num_epochs
    epochs = math.ceil(total / per_epoch)
    # accelerate steps a prepared scheduler once per process per optimizer step.
    n = accelerator.num_processes
    scheduler = accelerator.prepare(get_linear_schedule_with_warmup(
        optimizer, int(train_args.warmup_ratio * total) * n, total * n))

    log_file = out / "train_log.jsonl"
    progress = {"step": 0, "epoch": 0, "batches": 0}
    if train_args.resume and ckpt is None:
        accelerator.print(f"--resume: no checkpoint in {out / 'checkpoints'}, starting from scratch")
    elif ckpt_state is not None:
        progress = _load_checkpoint(ckpt, accelerator.unwrap_model(model), optimizer, scheduler, ckpt_state)
        del ckpt_state  # the optimiser holds its own copy now
        accelerator.print(f"resumed from {ckpt} (step {progress['step']})")
    if accelerator.is_main_process:
        _truncate_log(log_file, progress["step"])
        write_text_atomically(out / "training_args.json", json.dumps(
            {"model": asdict(model_args), "data": asdict(data_args), "train": asdict(train_args),
             "mixed_precision": precision, "processes": n}, indent=2))

    report_lines = accelerator.is_local_main_process and not show_bar
    if report_lines:
        print(f"training {total} steps into {out} (log: {log_file})"
              + (f", from step {progress['step']}" if progress["step"] else ""), file=sys.stderr, flush=True)
    bar = tqdm(total=total, initial=progress["step"], desc="Training",
               disable=not (accelerator.is_local_main_process and show_bar))
    sums, last = torch.zeros(4, device=accelerator.device), {}
    micro = 0
    model.train()
    for epoch in range(progress["epoch"], epochs):
        dataset.set_epoch(epoch)
        skip = progress["batches"] if epoch == progress["epoch"] else 0
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        # The sampler's epoch is set through the loader: accelerate's loader re-sets it from its own pass counter on
        # every pass, and a resumed process (or skip_first_batches' new loader) starts that counter at 0.
        batches.set_epoch(epoch)
        done_in_epoch = skip
        for batch in batches:
            accum = train_args.gradient_accumulation_steps
            _seed_micro_batch(train_args.seed, progress["step"] * accum + micro, accelerator.process_index)
            with accelerator.accumulate(model):
                output = model(**batch)
                accelerator.backward(output.loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, train_args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            done_in_epoch += 1
            sums += torch.stack([output.loss.detach(), output.loss_emb, output.loss_gen, output.accuracy]).float()
            micro += 1
            if not accelerator.sync_gradients:
                continue
            step = progress["step"] = progress["step"] + 1
            progress.update(epoch=epoch, batches=done_in_epoch)
            means = accelerator.reduce(sums / micro, reduction="mean").tolist()
            sums.zero_()
            micro = 0
            last = {"step": step, "epoch": epoch, "loss": means[0], "loss_emb": means[1], "loss_gen": means[2],
                    "accuracy": means[3], "lr": scheduler.get_last_lr()[0]}
            bar.update(1)
            bar.set_postfix(loss_emb=f"{means[1]:.3f}", loss_gen=f"{means[2]:.3f}")
            logged = step % train_args.logging_steps == 0 or step == total
            if accelerator.is_main_process and logged:
                with log_file.open("a") as f:
                    f.write(json.dumps(last) + "\n")
            if report_lines and logged:
                print(f"step {step}/{total}: loss_emb {means[1]:.4f}, loss_gen {means[2]:.4f}, "
                      f"accuracy {means[3]:.3f}, lr {last['lr']:.3g}", file=sys.stderr, flush=True)
            if step % train_args.save_steps == 0 and step < total:
                _save_checkpoint(accelerator, model, optimizer, scheduler, out, dict(progress), settings)
            if step >= total:
                break
        else:
            progress.update(epoch=epoch + 1, batches=0)
            continue
        break
    bar.close()
    accelerator.wait_for_everyone()
    plot = None
    if accelerator.is_main_process:
        export_adapter(accelerator.unwrap_model(model), out, merge=train_args.merge,
                       token_rows_only=train_args.token_rows_only, run={"step": progress["step"], "settings": settings})
        plot = plot_losses(log_file, out / "losses.png")
    accelerator.end_training()
    return TrainResult(str(out), progress["step"], str(log_file), plot and str(plot), last)
