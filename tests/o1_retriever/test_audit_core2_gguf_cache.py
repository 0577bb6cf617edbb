"""The GGUF conversion cache (`convert_gguf`: a GGUF dequantised once into a plain directory) under faults, with real
child processes converting a real, tiny GGUF file: one killed mid-write, two converting at once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from o1_retriever.default_model import convert_gguf

gguf = pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    """A random two-layer Llama (F32) with the fixtures' byte-level BPE tokenizer, written as llama.cpp does."""
    from tests.fixtures import build_tokenizer
    data = json.loads(build_tokenizer(with_o1_tokens=False).backend_tokenizer.to_str())["model"]
    tokens = [t for t, _ in sorted(data["vocab"].items(), key=lambda item: item[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["merges"]]
    hidden, inter, heads, kv_heads, layers = 64, 128, 4, 2, 2
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(1024)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(inter)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in ("<unk>", "<s>", "</s>") else 1 for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    rng = np.random.default_rng(0)

    def weight(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(len(tokens), hidden))
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    writer.add_tensor("output.weight", weight(len(tokens), hidden))
    kv = kv_heads * hidden // heads
    for i in range(layers):
        shapes = {"attn_q": (hidden, hidden), "attn_k": (kv, hidden), "attn_v": (kv, hidden),
                  "attn_output": (hidden, hidden), "ffn_gate": (inter, hidden), "ffn_up": (inter, hidden),
                  "ffn_down": (hidden, inter)}
        for name, shape in shapes.items():
            writer.add_tensor(f"blk.{i}.{name}.weight", weight(*shape))
        for name in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"blk.{i}.{name}.weight", np.ones(hidden, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# Put first in a child's code: it kills itself (SIGKILL) when it saves the tokenizer, after the weights are written
# into its temporary. A kill at a known point: a parent polling for the temporary could miss the whole write.
KILL_AT_TOKENIZER_SAVE = ("import os, signal, transformers; transformers.PreTrainedTokenizerBase.save_pretrained = "
                          "lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL); ")


def _child(gguf_file: Path, out: Path, env: dict, stderr=subprocess.DEVNULL, kill: bool = False) -> subprocess.Popen:
    code = ((KILL_AT_TOKENIZER_SAVE if kill else "") + "from pathlib import Path; "
            "from o1_retriever.default_model import convert_gguf; "
            f"print(convert_gguf(Path({str(gguf_file)!r}), Path({str(out)!r})))")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)


def _leftovers(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.*.tmp"))


def test_a_conversion_killed_mid_write_leaves_no_temporary_after_the_next(tiny_gguf, tmp_path):
    out = tmp_path / "cache" / "models" / "tiny"
    child = _child(tiny_gguf, out, dict(os.environ), stderr=subprocess.PIPE, kill=True)
    _, err = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, err[-2000:]
    assert [any(t.iterdir()) for t in _leftovers(out)] == [True] and not out.exists()  # what the kill left: a hidden, model-sized temporary

    assert convert_gguf(tiny_gguf, out) == out
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert not _leftovers(out)  # was: one leaked per kill, never removed

    from transformers import AutoModelForCausalLM, AutoTokenizer
    model, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert model.config.hidden_size == 64 and tokenizer.decode(tokenizer("the protein cell")["input_ids"]) \
        == "the protein cell"


def test_two_processes_converting_at_once_convert_once_and_share_the_copy(tiny_gguf, tmp_path):
    out = tmp_path / "cache" / "models" / "tiny"
    runs = [_child(tiny_gguf, out, dict(os.environ), stderr=subprocess.PIPE) for _ in range(2)]
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-800:] for _, err in results]
    assert {printed.strip() for printed, _ in results} == {str(out)}
    # transformers reports each dequantisation on stderr: one process converted, the other reused its copy
    assert sum("de-quantizing" in err for _, err in results) == 1, "both processes dequantised the model"
    assert not _leftovers(out)
