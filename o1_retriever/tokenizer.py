"""The part of transformers' fast-tokenizer API that inference uses, straight over the `tokenizers` library.

Why: `import transformers` alone takes ~0.7 s here (it scans its whole package to build the lazy import table),
a third of a warm load of the default model. transformers' fast tokenizer is itself a thin layer over the same
`tokenizers.Tokenizer`, so ids, truncation and decoding come from the very same code; this class only reads the
special tokens from `tokenizer_config.json` and pads. `apply_chat_template` hands over to transformers' tokenizer
for the same directory, built on first use (templates are untrusted code that transformers renders in a hardened
sandbox: not worth a second implementation).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")


class Encoding(dict):
    """`input_ids` and `attention_mask`, as lists or (return_tensors="pt") tensors; `.to(device)` moves them."""

    def to(self, device) -> "Encoding":
        return Encoding({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.items()})


def _content(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


# Classes whose behaviour is all in tokenizer.json (others, e.g. Llama's, rebuild it from config flags).
PLAIN_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast", "GPT2Tokenizer", "GPT2TokenizerFast")


def unsupported_reason(path: Path) -> str | None:
    """Why this directory's tokenizer needs transformers (None when this class gives the same ids and text)."""
    if not (path / "tokenizer.json").is_file():
        return "no tokenizer.json"
    file = path / "tokenizer_config.json"
    config = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    if config.get("tokenizer_class", "TokenizersBackend") not in PLAIN_CLASSES:
        return f"tokenizer_class {config['tokenizer_class']!r} (transformers adjusts it beyond tokenizer.json)"
    flags = [k for k in ("add_bos_token", "add_eos_token", "clean_up_tokenization_spaces") if config.get(k)]
    if flags:
        return f"tokenizer_config.json sets {flags}"
    return None


class Tokenizer:
    padding_side = "left"
    truncation_side = "right"

    def __init__(self, backend, special: dict[str, str | None], source: str = "", chat_template: str | None = None):
        self.backend, self.name_or_path, self.chat_template = backend, source, chat_template
        self._transformers = None
        for name in SPECIAL_NAMES:
            setattr(self, name, special.get(name))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "Tokenizer":
        from tokenizers import Tokenizer as Backend
        path = Path(path)
        if not (path / "tokenizer.json").is_file():
            raise ValueError(f"{path} has no tokenizer.json")
        special: dict[str, str | None] = {}
        template = None
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the config wins, as in transformers
            file = path / name
            if file.is_file():
                config = json.loads(file.read_text(encoding="utf-8"))
                special |= {k: _content(config[k]) for k in SPECIAL_NAMES if config.get(k) is not None}
                template = config.get("chat_template", template)
        if (path / "chat_template.jinja").is_file():
            template = (path / "chat_template.jinja").read_text(encoding="utf-8")
        backend = Backend.from_file(str(path / "tokenizer.json"))
        backend.no_truncation()
        backend.no_padding()
        return cls(backend, special, str(path), template if isinstance(template, str) else None)

    # ---- vocabulary ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab(with_added_tokens=True)

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self.backend.token_to_id(tokens)
        return [self.backend.token_to_id(t) for t in tokens]

    def _id(self, token):
        return None if token is None else self.backend.token_to_id(token)

    bos_token_id = property(lambda self: self._id(self.bos_token))
    eos_token_id = property(lambda self: self._id(self.eos_token))
    unk_token_id = property(lambda self: self._id(self.unk_token))
    pad_token_id = property(lambda self: self._id(self.pad_token))

    # ---- encode / decode -------------------------------------------------------------------------
    def __call__(self, texts, add_special_tokens: bool = True, truncation: bool = False, max_length: int | None = None,
                 padding: bool | str = False, return_tensors: str | None = None) -> Encoding:
        single = isinstance(texts, str)
        if single:
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}")
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors={return_tensors!r} is not supported; use None or 'pt'")
        if truncation and max_length is not None:
            self.backend.enable_truncation(max_length, direction=self.truncation_side)
        try:
            ids = [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)]
        finally:
            self.backend.no_truncation()
        masks = [[1] * len(x) for x in ids]
        if padding or return_tensors == "pt":
            width = max(map(len, ids), default=0)
            if return_tensors == "pt" and not padding and any(len(x) != width for x in ids):
                raise ValueError("texts of different lengths need padding=True for return_tensors='pt'")
            pad = [[self.pad_token_id] * (width - len(x)) for x in ids]
            zeros = [[0] * (width - len(x)) for x in ids]
            if self.padding_side == "left":
                ids, masks = [p + x for p, x in zip(pad, ids)], [z + m for z, m in zip(zeros, masks)]
            else:
                ids, masks = [x + p for p, x in zip(pad, ids)], [m + z for z, m in zip(zeros, masks)]
        if return_tensors == "pt":
            return Encoding(input_ids=torch.tensor(ids, dtype=torch.long),
                            attention_mask=torch.tensor(masks, dtype=torch.long))
        if single:
            return Encoding(input_ids=ids[0], attention_mask=masks[0])
        return Encoding(input_ids=ids, attention_mask=masks)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def batch_decode(self, rows, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(r, skip_special_tokens=skip_special_tokens) for r in rows]

    def apply_chat_template(self, conversation, **kwargs):
        """transformers' `apply_chat_template`, run by its tokenizer for this directory (same files, same
        special tokens and padding as this one)."""
        if not self.chat_template:
            raise ValueError(f"{self.name_or_path} has no chat template")
        if self._transformers is None:
            from transformers import AutoTokenizer
            self._transformers = AutoTokenizer.from_pretrained(self.name_or_path)
        hf = self._transformers
        for name in SPECIAL_NAMES:
            setattr(hf, name, getattr(self, name))
        hf.padding_side, hf.truncation_side = self.padding_side, self.truncation_side
        return hf.apply_chat_template(conversation, **kwargs)
