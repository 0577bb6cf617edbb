"""Write a trained model as an O1 checkpoint (`o1_retriever.checkpoint` defines the files), optionally merged.

By default the official O1 Embedder layout: the LoRA adapter plus embedding/emb.pth (and embedding/lm_head.pth
when the head is not tied). With token_rows_only, PEFT's own trainable tokens instead: LoRA training leaves every
other row at the base model's value, so the O1 rows alone go into the adapter file, and the shipped default adapter
stays at ~20 MB instead of ~80 MB. `o1_retriever.O1Embedder.from_pretrained(out)` loads either form and uses the
official prompt style.

An export appears whole or not at all: it is written into a hidden folder inside the output folder (which also holds
a run's checkpoints and log, so the model cannot be one folder renamed into place), then moved in one rename per
entry, adapter_config.json last, after the earlier model's was taken away first. Loaders take a folder for a model
by its adapter_config.json, so a process killed mid-export leaves the earlier model whole (killed while writing) or
no model (killed while moving), never a mix.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import torch

from o1_retriever.atomic import write_text_atomically
from o1_retriever.checkpoint import (ADAPTER_CONFIG, ADAPTER_WEIGHTS, EMB_FILE, EMBEDDING_DIR, LM_HEAD_FILE,
                                     SETTINGS_FILE, drop_embedding_files, embedding_file, load_module,
                                     read_adapter_config, write_peft_token_rows)
from o1_retriever.settings import read_model_settings

from .modeling import O1TrainingModel
from .resume import FINISHED_FILE

STAGING_PREFIX = ".export-"  # the hidden folder an export is written into before it moves into place


def _plain_linear(head: torch.nn.Module) -> torch.nn.Linear:
    w = head.weight.detach()
    out = torch.nn.Linear(w.shape[1], w.shape[0], bias=getattr(head, "bias", None) is not None, dtype=w.dtype)
    out.weight.data.copy_(w)
    if out.bias is not None:
        out.bias.data.copy_(head.bias.detach())
    return out


UNTIED_ROWS_ONLY = "token rows alone cannot rebuild an untied lm_head.pth; export with emb.pth"


def input_embedding_name(model) -> str:
    """Module path of a causal LM's input embedding ("model.embed_tokens" for Llama)."""
    emb = model.get_input_embeddings()
    return next(name for name, module in model.named_modules() if module is emb)


def write_settings(out_dir, settings: dict) -> Path:
    """`settings` into the model's o1_generation.json; keys already there and not in `settings` are kept (e.g. what
    `o1_retriever.evaluation.choose --into` wrote)."""
    path = Path(out_dir) / SETTINGS_FILE
    values = read_model_settings(out_dir) | settings
    return write_text_atomically(path, json.dumps(values) + "\n")


def export_adapter(model: O1TrainingModel, out_dir, merge: bool = False, token_rows_only: bool = False,
                   run: dict | None = None) -> Path:
    """run: the record of the training run this export finishes, written with the model (resume.FINISHED_FILE)."""
    if token_rows_only and not model.tied:
        raise ValueError(f"token_rows_only: {UNTIED_ROWS_ONLY}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_staging(out)
    staging = out / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    try:
        staging.mkdir()
        if (out / SETTINGS_FILE).exists():  # settings chosen for the model (choose --into): the merged copy too
            shutil.copy2(out / SETTINGS_FILE, staging / SETTINGS_FILE)
        _write_adapter(model, staging, token_rows_only)
        if merge:
            merge_adapter(staging, staging / "merged")
        if run is not None:
            (staging / FINISHED_FILE).write_text(json.dumps(run) + "\n")
        _move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _move_into_place(staging: Path, out: Path) -> None:
    """The entries of `staging` into `out`, one rename each. The earlier model's adapter_config.json (and
    finished-run record) go first and the new ones last, so that no moment shows a model made of two exports;
    an earlier export's embedding/ or merged/ that this one has no counterpart for goes too."""
    last = (FINISHED_FILE, ADAPTER_CONFIG)
    # Old folders are renamed aside before they are deleted: a kill part-way through deleting merged/ in place would
    # leave its config.json without weights, which a loader pointed at merged/ takes for a model.
    trash = out / f"{STAGING_PREFIX}old-{uuid.uuid4().hex}"  # the next export clears it if this one is killed
    try:
        for name in (*last, EMBEDDING_DIR, "merged"):
            _discard(out / name, trash)
        entries = sorted(staging.iterdir(), key=lambda p: last.index(p.name) + 1 if p.name in last else 0)
        for entry in entries:
            os.replace(entry, out / entry.name)
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _discard(path: Path, trash: Path) -> None:
    """Remove `path` at once: a file unlinked, a folder renamed into `trash` (deleted there later)."""
    if path.is_dir():
        trash.mkdir(exist_ok=True)
        os.replace(path, trash / path.name)
    else:
        path.unlink(missing_ok=True)


def _write_adapter(model: O1TrainingModel, out: Path, token_rows_only: bool) -> None:
    # The token rows go to emb.pth (official layout) or to PEFT's trainable tokens, never as a whole matrix
    # into the adapter file.
    model.lm.save_pretrained(out, save_embedding_layers=False)
    config = read_adapter_config(out)
    config["base_model_name_or_path"] = model.base_name
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))
    embedding = model.trained_input_embedding().cpu()
    if token_rows_only:  # LoRA training changes only these rows: write them, not the whole matrix
        ids = model.token_ids.tolist()
        write_peft_token_rows(out, input_embedding_name(model.base_model), ids, embedding.weight[ids])
    else:
        (out / EMBEDDING_DIR).mkdir()
        torch.save(embedding, embedding_file(out, EMB_FILE))
        head_file = embedding_file(out, LM_HEAD_FILE)
        if not model.tied:
            torch.save(_plain_linear(model.base_model.get_output_embeddings()).cpu(), head_file)
    model.tokenizer.save_pretrained(out)


def write_token_rows(adapter_dir) -> Path:
    """Convert an existing adapter (e.g. an official checkpoint) from `embedding/emb.pth` to the compact form
    (the O1 token rows alone, as PEFT trainable tokens), after checking against the base model that no other row
    was trained. Returns the adapter weights file that now holds the rows."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from o1_retriever.default_model import resolve_base_model
    from o1_retriever.formatting import SPECIAL_TOKENS

    adapter_dir = Path(adapter_dir)
    emb_file = embedding_file(adapter_dir, EMB_FILE)
    if embedding_file(adapter_dir, LM_HEAD_FILE).exists():
        raise ValueError(f"{adapter_dir} has an untied lm_head.pth: {UNTIED_ROWS_ONLY}")
    trained = load_module(emb_file, torch.nn.Embedding).weight.detach()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    base_name = read_adapter_config(adapter_dir)["base_model_name_or_path"]
    base = AutoModelForCausalLM.from_pretrained(resolve_base_model(base_name), dtype=trained.dtype)
    base_rows = base.get_input_embeddings().weight.detach()
    n = base_rows.shape[0]  # the base may lack the O1 rows altogether
    others = torch.ones(n, dtype=torch.bool)
    others[[i for i in ids if i < n]] = False
    if not torch.equal(trained[:n][others], base_rows[others]):
        raise ValueError(f"{emb_file} changes rows other than the O1 tokens {SPECIAL_TOKENS}: keep emb.pth")
    # Converted in a copy, then moved in: the weights, the config naming their rows, emb.pth dropped last. Rewritten
    # in place, a kill left a cut adapter_model.safetensors (the trained LoRA lost). Each state between the moves
    # loads as the same model (the rows are emb.pth's, checked above), and a second call finishes the conversion.
    _remove_staging(adapter_dir)
    staging = adapter_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    try:
        staging.mkdir()
        for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
            shutil.copy2(adapter_dir / name, staging / name)
        write_peft_token_rows(staging, input_embedding_name(base), ids, trained[ids])
        for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
            os.replace(staging / name, adapter_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    drop_embedding_files(adapter_dir)
    return adapter_dir / ADAPTER_WEIGHTS


def _remove_staging(out: Path) -> None:
    """What an export or a conversion killed before its move left."""
    for leftover in out.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def merge_adapter(adapter_dir, out_dir) -> Path:
    """Fold the LoRA into the base and save a plain HF model dir (the published checkpoint's form)."""
    from o1_retriever.loading import load_causal_lm
    loaded = load_causal_lm(str(adapter_dir), device=torch.device("cpu"), dtype=torch.float32)
    out = Path(out_dir)
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    settings = read_model_settings(adapter_dir)
    if settings:  # the merged model embeds as the adapter does
        write_settings(out, settings)
    return out


def has_merged(out_dir) -> bool:
    merged = Path(out_dir) / "merged"
    return (merged / "config.json").exists() and any(merged.glob("*.safetensors"))


def add_merged(out_dir) -> Path:
    """merged/ for an export written without it (--merge asked when resuming a finished run): merged in a hidden
    folder and renamed in, so a kill leaves no half model (the next export clears the hidden folder)."""
    out = Path(out_dir)
    staging = out / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    trash = out / f"{STAGING_PREFIX}old-{uuid.uuid4().hex}"
    try:
        merge_adapter(out, staging)
        _discard(out / "merged", trash)  # what an older export killed while deleting it left
        os.replace(staging, out / "merged")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)
    return out / "merged"
