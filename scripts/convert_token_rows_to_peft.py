"""Convert an O1 adapter's compact token rows from `embedding/token_rows.safetensors` (o1-retriever's own format,
used until 2026-12) to PEFT's trainable tokens: `trainable_token_indices` in adapter_config.json and the rows in
adapter_model.safetensors, so that plain `peft.PeftModel.from_pretrained` loads the whole model.

    python scripts/convert_token_rows_to_peft.py [ADAPTER_DIR]     # default: o1_retriever/default_adapter

The conversion is made on a copy first; the adapter is changed only if the copy loads to exactly the same merged
weights as the original (o1_retriever.checkpoint.load_adapter, fp32) and every LoRA tensor is byte-identical.
Needs the training package (`pip install -e training`) for the writer the exporter uses.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ADAPTER = REPO / "o1_retriever" / "default_adapter"


def _embedding_name(base_name: str) -> str:
    """Module path of the base model's input embedding, from its config alone (built on the meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from o1_retriever.default_model import resolve_base_model
    from o1_retriever_training.export import input_embedding_name
    config = AutoConfig.from_pretrained(resolve_base_model(base_name))
    with torch.device("meta"):
        return input_embedding_name(AutoModelForCausalLM.from_config(config))


def convert(adapter_dir: Path, work: Path) -> Path:
    """Write the converted adapter into `work` (a copy of adapter_dir) and return it."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from o1_retriever.formatting import SPECIAL_TOKENS
    from o1_retriever.checkpoint import ROWS_FILE, write_peft_token_rows
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    rows_file = adapter_dir / "embedding" / ROWS_FILE
    if config.get("trainable_token_indices"):
        raise SystemExit(f"{adapter_dir} already uses PEFT's trainable_token_indices: nothing to convert")
    if not rows_file.is_file():
        raise SystemExit(f"{rows_file} does not exist: nothing to convert (an emb.pth adapter converts with "
                         f"o1_retriever_training.export.write_token_rows)")
    rows = load_file(str(rows_file))
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    unknown = sorted(set(rows) - set(tokenizer.get_vocab()))
    if unknown:
        raise SystemExit(f"{rows_file} has rows for {unknown}, which the adapter's tokenizer lacks")
    # The training order of the O1 tokens first (what an export writes), then any other row the file holds.
    tokens = [t for t in SPECIAL_TOKENS if t in rows] + sorted(set(rows) - set(SPECIAL_TOKENS))
    ids = tokenizer.convert_tokens_to_ids(tokens)
    shutil.copytree(adapter_dir, work)
    write_peft_token_rows(work, _embedding_name(config["base_model_name_or_path"]), ids,
                          torch.stack([rows[t] for t in tokens]))
    (work / "embedding" / ROWS_FILE).unlink()
    return work


def check(original: Path, converted: Path) -> float:
    """Largest |difference| between the two merged models (must be 0.0); raises if a LoRA tensor changed."""
    from safetensors.torch import load_file

    from o1_retriever.checkpoint import load_adapter
    before, after = (load_file(str(d / "adapter_model.safetensors")) for d in (original, converted))
    changed = [k for k in before if k not in after or before[k].numpy().tobytes() != after[k].numpy().tobytes()]
    if changed:
        raise SystemExit(f"LoRA tensors changed by the conversion: {changed[:3]}")
    a, b = (load_adapter(d, torch.float32)[0] for d in (original, converted))
    sa, sb = a.state_dict(), b.state_dict()
    if set(sa) != set(sb):
        raise SystemExit(f"the merged models differ in their tensors: {sorted(set(sa) ^ set(sb))[:3]}")
    if b.get_input_embeddings().weight.data_ptr() != b.get_output_embeddings().weight.data_ptr():
        raise SystemExit("the converted model's LM head is no longer tied to its input embedding")
    return max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("adapter_dir", nargs="?", type=Path, default=DEFAULT_ADAPTER)
    args = parser.parse_args(argv)
    adapter_dir = args.adapter_dir.resolve()
    with tempfile.TemporaryDirectory(dir=adapter_dir.parent, prefix=f".{adapter_dir.name}-") as tmp:
        converted = convert(adapter_dir, Path(tmp) / adapter_dir.name)
        diff = check(adapter_dir, converted)
        if diff != 0.0:
            raise SystemExit(f"the converted adapter loads to other weights (max |diff| {diff}); nothing changed")
        for name in ("adapter_model.safetensors", "adapter_config.json"):  # the weights first: config names them
            os.replace(converted / name, adapter_dir / name)
    rows_file = adapter_dir / "embedding" / "token_rows.safetensors"
    rows_file.unlink()
    if not any(rows_file.parent.iterdir()):
        rows_file.parent.rmdir()
    size = (adapter_dir / "adapter_model.safetensors").stat().st_size
    print(f"{adapter_dir}: token rows now PEFT trainable tokens; merged weights identical (max |diff| {diff}); "
          f"adapter_model.safetensors {size / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
