"""The joint think+embed model: one forward pass over `<query>q</query><thought>t{eos}<emb>` gives
both the contrastive loss (from the `<emb>` state) and the generation loss (on the thought + EOS).

`build()` makes a trainable model from a base causal LM (LoRA via peft, optional QLoRA base);
inference loads the exported result with `o1_retriever.O1Embedder.from_pretrained`.
"""
from __future__ import annotations

import hashlib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from o1_retriever.default_model import (SMOLLM2_HUB_ID, cache_dir, convert_gguf, resolve_base_model,
                                        smollm2_base_dir, smollm2_base_location)
from o1_retriever.formatting import SPECIAL_TOKENS, add_special_tokens
from o1_retriever.quiet import import_bitsandbytes, peft_loading

from .arguments import ModelArguments
from .dataset import IGNORE
from .warm_start import effective_model_arguments, resolve_init_adapter, warm_start


@dataclass
class O1Output:
    loss: torch.Tensor
    loss_emb: torch.Tensor
    loss_gen: torch.Tensor
    accuracy: torch.Tensor  # share of queries whose positive scores highest (a cheap sanity signal)


def gather_with_grad(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate `t` from every process (the group accelerate set up); gradients flow through the
    local slice only, which is all that backward on this process needs. Returns (all, offset)."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t, 0
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.detach().contiguous())
    rank = dist.get_rank()
    parts[rank] = t
    return torch.cat(parts), rank * t.shape[0]


class O1TrainingModel(torch.nn.Module):
    def __init__(self, lm, tokenizer, *, temperature: float = 0.02, lambda_emb: float = 0.8,
                 train_token_rows: bool = True, cross_device_negatives: bool = True, base_name: str = ""):
        super().__init__()
        self.lm, self.tokenizer = lm, tokenizer
        self.temperature, self.lambda_emb = temperature, lambda_emb
        self.cross_device_negatives, self.base_name = cross_device_negatives, base_name
        base = self.base_model
        self.tied = bool(getattr(base.config, "tie_word_embeddings", False))
        ids = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS)
        self.register_buffer("token_ids", torch.tensor(ids), persistent=False)
        emb = base.get_input_embeddings()
        # Trained token rows live in a small delta (4 x hidden) instead of unfreezing the whole
        # vocabulary matrix: same effect, a few KB of optimizer state even for a 150k vocabulary.
        self.token_delta = torch.nn.Parameter(torch.zeros(len(ids), emb.weight.shape[1]),
                                              requires_grad=train_token_rows)
        slot = torch.full((emb.weight.shape[0],), -1, dtype=torch.long)
        slot[self.token_ids] = torch.arange(len(ids))
        self.register_buffer("slot", slot, persistent=False)
        emb.register_forward_hook(self._add_delta)

    # Looked up, not stored: a second registration of the same modules would duplicate state_dict keys.
    @property
    def base_model(self):
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    @property
    def backbone(self):
        return getattr(self.base_model, self.base_model.base_model_prefix)

    def _add_delta(self, module, inputs, output):
        s = self.slot[inputs[0]]
        delta = self.token_delta[s.clamp(min=0)] * (s >= 0).unsqueeze(-1)
        return output + delta.to(output.dtype)

    def _last_hidden(self, ids, mask) -> torch.Tensor:
        return self.backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state

    def _gen_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.base_model.get_output_embeddings()(hidden)
        if self.tied:  # a tied head shares the trained rows: keep training and export consistent
            extra = hidden @ self.token_delta.to(hidden.dtype).T
            logits = logits.index_add(-1, self.token_ids, extra)
        return logits.float()

    def forward(self, query_input_ids, query_attention_mask, query_labels,
                passage_input_ids, passage_attention_mask) -> O1Output:
        hq = self._last_hidden(query_input_ids, query_attention_mask)
        hp = self._last_hidden(passage_input_ids, passage_attention_mask)
        q = F.normalize(hq[:, -1].float(), dim=-1)
        p = F.normalize(hp[:, -1].float(), dim=-1)
        group = p.shape[0] // q.shape[0]
        if self.cross_device_negatives:
            p, offset = gather_with_grad(p)
        else:
            offset = 0
        scores = q @ p.T / self.temperature
        target = offset + torch.arange(q.shape[0], device=q.device) * group
        loss_emb = F.cross_entropy(scores, target)
        # L_gen: position j-1 predicts token j; only thought tokens + EOS carry labels.
        labels = query_labels[:, 1:]
        keep = labels != IGNORE
        if keep.any():
            loss_gen = F.cross_entropy(self._gen_logits(hq[:, :-1][keep]), labels[keep])
        else:  # every thought was dropped: the graph still needs a (zero) term for DDP
            loss_gen = hq.sum() * 0.0
        loss = self.lambda_emb * loss_emb + (1 - self.lambda_emb) * loss_gen
        accuracy = (scores.argmax(-1) == target).float().mean()
        return O1Output(loss, loss_emb.detach(), loss_gen.detach(), accuracy.detach())

    def trained_input_embedding(self) -> torch.nn.Embedding:
        """The full input embedding with the trained token rows folded in (what emb.pth stores)."""
        w = self.base_model.get_input_embeddings().weight.detach().clone()
        w[self.token_ids] += self.token_delta.detach().to(w.dtype)
        out = torch.nn.Embedding(w.shape[0], w.shape[1], dtype=w.dtype)
        out.weight.data.copy_(w)
        return out


def check_quantization(quantization: str | None) -> None:
    """QLoRA's dependency, checked before a base model loads, naming the package (the `[qlora]` extra installs from a
    checkout). Imported quietly wherever installed: peft's LoRA layers would import it loudly (`o1_retriever.quiet`)."""
    try:
        import_bitsandbytes()
    except ImportError as e:
        if quantization == "4bit":
            raise ImportError("--quantization 4bit (QLoRA) needs bitsandbytes: pip install 'bitsandbytes>=0.45'") from e


def check_base_model(base_model: str | None) -> None:
    """A local base model that cannot be one fails by name before anything loads (transformers reports a missing
    path as a malformed hub id, and a folder without a model as a tokenizer it cannot convert)."""
    if base_model is None:
        return
    path = Path(base_model).expanduser()
    where = f"base_model={base_model!r}"
    if path.is_dir() and not (path / "config.json").is_file():
        raise ValueError(f"{where}: {path} holds no Hugging Face model (no config.json); name a model folder, a "
                         f".gguf file or a hub id")
    if path.is_file() and path.suffix != ".gguf":
        raise ValueError(f"{where} is a file; name a model folder, a .gguf file or a hub id")
    # what cannot be a hub id ('name' or 'org/name') is a path
    if not path.exists() and (path.is_absolute() or base_model.startswith((".", "~")) or base_model.count("/") > 1
                              or path.suffix == ".gguf"):
        raise ValueError(f"{where}: {path} does not exist")


def gguf_conversion_dir(gguf_file: Path) -> Path:
    """Where a GGUF base is converted to: keyed by the file as well as its name (the folder o1_retriever.merging's
    plain_copy converts it to), since a file of one's own named like the bundled model may be another quantization,
    and the bare name is the bundled model's own conversion."""
    key = hashlib.sha256(f"{gguf_file.resolve()}:{gguf_file.stat().st_size}".encode()).hexdigest()[:16]
    return cache_dir() / "models" / f"{gguf_file.stem}-{key}"


def resolve_base(base_model: str | None) -> tuple[str, str]:
    """(directory or id to load, name to record in adapter_config.json)."""
    if base_model is None:
        return str(smollm2_base_dir()), SMOLLM2_HUB_ID
    path = Path(base_model).expanduser()
    if path.suffix == ".gguf":
        return str(convert_gguf(path, gguf_conversion_dir(path))), str(path.resolve())
    if path.exists():
        resolved = path.resolve()
        # compared with where the conversion lives, not converted for the comparison (~40 s on a new machine)
        if resolved == smollm2_base_location().resolve():
            return str(resolved), SMOLLM2_HUB_ID  # portable: loaders map the id to the offline copy
        return str(resolved), str(resolved)
    # The hub ids of the offline bases (SmolLM2, Gemma 3 270M) train on the copies that loaders map those ids to,
    # not on the hub's weights (or a failed download offline); without Gemma's package this names the pip command.
    return resolve_base_model(base_model), base_model


def _enable_checkpointing(model) -> None:
    """transformers 5 renamed gradient checkpointing to activation checkpointing (the old name warns every run)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


@contextmanager
def _quiet_checkpointing_deprecation():
    """PEFT still calls and reads transformers' deprecated gradient-checkpointing names: FutureWarnings on every run
    that the user can do nothing about."""
    with peft_loading(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)
        yield


def build(model_args: ModelArguments, *, temperature: float = 0.02, lambda_emb: float = 0.8,
          mixed_precision: str = "no", cross_device_negatives: bool = True, device_map=None) -> O1TrainingModel:
    """Base LM + O1 tokens + LoRA (+ NF4 base for QLoRA), ready for the training loop."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_base_model(model_args.base_model)  # before resolve_base, which would start converting a GGUF
    init = resolve_init_adapter(model_args.init_adapter) if model_args.init_adapter else None
    model_args = effective_model_arguments(model_args, init[1] if init else None)
    base_model = model_args.base_model
    if init and base_model is None:
        base_model = resolve_base_model(init[1].get("base_model_name_or_path") or "") or None
    source, base_name = resolve_base(base_model)
    if init and init[1].get("base_model_name_or_path") not in (None, "", base_name):
        raise ValueError(f"init_adapter={model_args.init_adapter!r} was trained on "
                         f"{init[1]['base_model_name_or_path']!r}, not on base_model={model_args.base_model!r}")
    # Frozen weights may sit in bf16 when we compute in bf16 anyway; adapters stay fp32 (peft).
    dtype = torch.bfloat16 if mixed_precision == "bf16" else torch.float32
    kwargs = {"dtype": dtype}
    if model_args.quantization == "4bit":
        check_quantization(model_args.quantization)
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if mixed_precision == "bf16" else torch.float32)
        kwargs["device_map"] = device_map or {"": "cpu"}
    elif model_args.quantization is not None:
        raise ValueError(f"quantization={model_args.quantization!r} is not supported for training; use '4bit' or None")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as e:
        raise ValueError(f"could not load base model {model_args.base_model!r}: {e}") from e
    add_special_tokens(model, tokenizer)
    model.config.use_cache = False
    config = LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                        target_modules=list(model_args.lora_target_modules), task_type="CAUSAL_LM")
    with _quiet_checkpointing_deprecation():
        if model_args.quantization == "4bit":
            model = prepare_model_for_kbit_training(model,
                                                    use_gradient_checkpointing=model_args.gradient_checkpointing)
        if model_args.gradient_checkpointing:
            _enable_checkpointing(model)
        lm = get_peft_model(model, config)
    o1 = O1TrainingModel(lm, tokenizer, temperature=temperature, lambda_emb=lambda_emb,
                         train_token_rows=model_args.train_token_rows,
                         cross_device_negatives=cross_device_negatives, base_name=base_name)
    if init:
        warm_start(o1, init[0])
    return o1
