"""The CLI's shared flags and argparse types: each value is checked at parse time, before a model loads."""
from __future__ import annotations

import argparse
import json

from .settings import CLI_SETTINGS, add_setting_flags, overrides_of
from .validation import MAX_K, check_k


def _model_args(p: argparse.ArgumentParser) -> None:
    from .default_model import BUNDLED_NAMES, DEFAULT_NAME
    p.add_argument("--model", default=None, help=f"a bundled model ({', '.join(BUNDLED_NAMES)}), a model directory, "
                                                  f"hub id or .gguf file (default: {DEFAULT_NAME})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--dtype", type=dtype_arg, default="auto", help="auto, bf16, fp16 or fp32 (default auto: bf16 where fast)")
    p.add_argument("--quantization", choices=["4bit", "8bit"], default=None, help="load the thinker quantized")
    add_setting_flags(p)
    p.add_argument("--seed", type=int, default=0, help="sampling seed, for repeatable thoughts (default: 0)")


# The inference settings with a flag (None: the model dir's own value applies)
MODEL_DEFAULTED = CLI_SETTINGS


def _check_device(device: str | None) -> None:
    """A device this machine lacks, refused before any loading (the server checks before it binds its port)."""
    from .device import resolve_device
    resolve_device(device)


def _load(args):
    from . import O1Embedder
    _check_device(args.device)
    return O1Embedder.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                      quantization=args.quantization, seed=args.seed,
                                      **overrides_of(args, MODEL_DEFAULTED))


def dtype_arg(text: str) -> str:
    """argparse type of `--dtype`: a mistyped name fails at parse time, in the flag's words (not "or a torch.dtype")."""
    if text.lower() in ("auto", "bf16", "fp16", "fp32", "bfloat16", "float16", "float32"):
        return text.lower()
    raise argparse.ArgumentTypeError(f"expected auto, bf16, fp16 or fp32 (auto: bf16 where this machine runs it fast, "
                                     f"else fp32), got {text!r}")


def hybrid_weight(text: str) -> float:
    """argparse type of every `--hybrid W`: the dense share, checked at parse time."""
    from .fusion import check_dense_weight
    try:
        return check_dense_weight(float(text))
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"--hybrid takes the dense share W in [0, 1], got {text!r}") from e


def _hybrid_arg(p: argparse.ArgumentParser) -> None:
    from .fusion import DEFAULT_DENSE_WEIGHT
    p.add_argument("--hybrid", type=hybrid_weight, nargs="?", const=DEFAULT_DENSE_WEIGHT, default=None, metavar="W",
                   help="fuse with BM25 over the stored texts; W is the dense share "
                        f"(default {DEFAULT_DENSE_WEIGHT}; scores are then fused z-scores, not cosines)")


def thoughts_arg(text: str) -> int:
    """argparse type of every `--k`: thoughts per query, checked before a model loads."""
    try:
        return check_k(int(text))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected thoughts per query, an int from 0 (no thinking) to {MAX_K}, "
                                         f"got {text!r}") from None


def query_text(text: str) -> str:
    """argparse type of a query: one with content, refused before a model loads (and the demo indexes)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a query with some text, got {text!r}")
    return text


def collection_name(text: str) -> str:
    """argparse type of `index --collection`: a name O1Index takes, refused before a model loads."""
    from .index import check_collection_name  # O1Index's own rule, checked before the minutes a load may take
    try:
        return check_collection_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def json_filter(text: str) -> dict:
    """argparse type of `--where`: a Chroma metadata filter as a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"--where takes a JSON object such as '{{\"year\": {{\"$gte\": 2020}}}}', "
                                         f"got {text!r} ({e.msg})") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--where takes a JSON object, got {text!r}")
    return value
