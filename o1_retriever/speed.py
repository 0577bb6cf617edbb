"""Thinking speed, ours against the official code's way, timed in one process on the same queries.

The reference path is written the way the official inference does it, with plain transformers: batches of 16
prompts through `generate(do_sample=True, num_return_sequences=k)`, the outputs decoded, then a second forward
over every `query + thought` for its vector (the `<emb>` state for a joint model, the sentence-transformers
encoder for a composite). Ours is `O1Embedder.encode_queries`. Both read the same prompts with the same
sampling settings, so the ratio is the engine's doing, not the workload's.

The compute bound is the time the useful work would take at the matmul peak: 2 FLOPs per parameter per token,
over the prompt tokens (body only), the thought tokens (body and LM head) and the tokens the encoder reads.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .aggregation import aggregate
from .encoding import LMEncoder, padded_positions
from .formatting import EMB

REFERENCE_BATCH = 16  # prompts per `generate` call in the official inference


@dataclass
class PathTiming:
    """One path over one workload."""
    seconds: float
    ms_per_query: float
    thought_tokens: int  # the thoughts re-tokenized from their text, both paths counted alike
    bound_seconds: float
    fraction_of_bound: float  # bound_seconds / seconds: 1.0 would be running at the matmul peak


def _body_params(model) -> int:
    return sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()


def sync(device: torch.device) -> None:
    if device.type == "cuda":  # kernels run asynchronously: wait before reading the clock
        torch.cuda.synchronize(device)


def count_thought_tokens(tokenizer, thoughts: list[list[str]]) -> int:
    """Tokens in the thoughts, re-tokenized from their text, so every path is counted alike."""
    flat = [t for ts in thoughts for t in ts if t]
    return sum(len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]) if flat else 0


def encoder_cost(emb, texts: list[str], max_length: int) -> tuple[int, int]:
    """(FLOPs of the matmuls that embed `texts`, tokens they become) for any kind of encoder; an ensemble's are
    its members' summed, each counted in its own tokenizer and window. The embedding table is a lookup, not a
    matmul, so its parameters cost nothing here."""
    if isinstance(emb.encoder, LMEncoder):
        tokens = sum(len(x) for x in emb.encoder.tokenize(texts, max_length))
        return 2 * _body_params(emb.encoder.model) * tokens, tokens
    flops = tokens = 0
    for st in (m.model for m in getattr(emb.encoder, "members", [emb.encoder])):  # sentence-transformers models
        n = sum(len(x) for x in st.tokenizer(texts, truncation=True, max_length=st.max_seq_length)["input_ids"])
        flops, tokens = flops + 2 * _body_params(st[0].auto_model) * n, tokens + n
    return flops, tokens


def compute_bound_seconds(emb, queries: list[str], thoughts: list[list[str]], peak_tflops: float) -> float:
    """Seconds the useful matmuls of one encode_queries call take at `peak_tflops`."""
    thinker = emb.thinker
    tok = thinker.tokenizer
    k = len(thoughts[0]) if thoughts else 0
    prompt_tokens = k * sum(len(tok(thinker.prompt(q), add_special_tokens=False)["input_ids"]) for q in queries)
    body = _body_params(thinker.model)
    head = thinker.model.config.vocab_size * thinker.model.config.hidden_size  # run on thought tokens only
    flops = 2 * body * prompt_tokens + 2 * (body + head) * count_thought_tokens(tok, thoughts)
    texts = emb._query_texts([q for q, ts in zip(queries, thoughts) for _ in ts], [t for ts in thoughts for t in ts])
    flops += encoder_cost(emb, texts, emb.query_max_length)[0]
    return flops / (peak_tflops * 1e12)


@torch.inference_mode()
def reference_think(emb, queries: list[str], k: int) -> list[list[str]]:
    """The official code's generation: transformers' own sampler, `num_return_sequences`, 16 prompts a call."""
    thinker, s = emb.thinker, emb.settings
    tok = thinker.tokenizer
    out = []
    for start in range(0, len(queries), REFERENCE_BATCH):
        chunk = queries[start:start + REFERENCE_BATCH]
        batch = tok([thinker.prompt(q) for q in chunk], return_tensors="pt", padding=True, truncation=True,
                    max_length=s.prompt_max_length, add_special_tokens=thinker.prompt_style == "official")
        batch = batch.to(thinker.device)
        seqs = thinker.model.generate(**batch, max_new_tokens=s.max_new_tokens, min_new_tokens=s.min_new_tokens or None,
                                      do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=None,
                                      num_return_sequences=k, pad_token_id=tok.pad_token_id,
                                      eos_token_id=tok.eos_token_id)
        new = seqs[:, batch["input_ids"].shape[1]:].tolist()
        texts = [tok.decode(row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row,
                            skip_special_tokens=True) for row in new]
        out += [texts[i * k:(i + 1) * k] for i in range(len(chunk))]
    return out


@torch.inference_mode()
def reference_embed(emb, queries: list[str], thoughts: list[list[str]], batch_size: int) -> np.ndarray:
    """The second forward: every `query + thought` re-read from its text, longest first, then averaged."""
    k = len(thoughts[0])
    flat_q = [q for q in queries for _ in range(k)]
    texts = emb._query_texts(flat_q, [t for ts in thoughts for t in ts])
    if isinstance(emb.encoder, LMEncoder):
        tok, model = emb.encoder.tokenizer, emb.encoder.model
        backbone = getattr(model, model.base_model_prefix, model)
        emb_id = tok.convert_tokens_to_ids(EMB)
        ids = [x + [emb_id] for x in tok(texts, truncation=True, max_length=emb.query_max_length)["input_ids"]]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        vecs = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(ids), batch_size):
            idx = order[start:start + batch_size]
            padded = tok.pad({"input_ids": [ids[i] for i in idx]}, padding=True, return_tensors="pt")
            padded = padded.to(emb.encoder.device)
            positions = padded_positions(padded["attention_mask"])  # as the engine numbers them
            last = backbone(**padded, position_ids=positions).last_hidden_state[:, -1].float()  # last slot: <emb>
            vecs[idx] = torch.nn.functional.normalize(last, dim=-1).cpu().numpy()
    else:  # sentence-transformers encoders embed text anyway: the second forward is the same call
        vecs = emb.encoder.encode(texts, batch_size=batch_size)
    bare = None
    if emb.aggregation == "mean_with_query":  # the bare query's vector, as encode_queries reads it
        bare = emb.encoder.encode(emb._query_texts(queries, [""] * len(queries)), emb.query_max_length, batch_size)
    return aggregate(vecs.reshape(len(queries), k, -1), emb.aggregation, bare, emb.query_weight)


def timed(fn, device: torch.device = torch.device("cpu")):
    """(fn(), seconds), with the device's queued work finished on both sides of the clock."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def _timing(emb, queries, thoughts, seconds, peak_tflops) -> PathTiming:
    bound = compute_bound_seconds(emb, queries, thoughts, peak_tflops)
    return PathTiming(seconds, 1000 * seconds / len(queries), count_thought_tokens(emb.thinker.tokenizer, thoughts),
                      bound, bound / seconds)


def compare_paths(emb, queries: list[str], k: int, batch_size: int, peak_tflops: float, repeats: int = 1,
                  compiled: bool = False) -> dict:
    """Both paths on the same queries, each after a warm-up batch, taken in turns `repeats` times (the fastest
    of each kept: on a shared machine a turn can run slow). Ours runs without its thought and vector caches;
    `compiled` adds ours with compiled decoding (its compile time reported apart)."""
    if emb.thinker is None:
        raise ValueError("compare_paths needs a model that thinks (this one has no thinker)")
    device = emb.thinker.device
    saved = emb.thought_cache, emb.vector_cache, emb.thinker.compiled
    emb.thought_cache = emb.vector_cache = None
    emb.thinker.compiled = False
    runs: dict[str, list] = {"reference": [], "ours": [], "ours_compiled": []}
    modes = (False, True) if compiled else (False,)
    try:
        warm = queries[:min(len(queries), 4)]
        reference_embed(emb, warm, reference_think(emb, warm, k), batch_size)
        emb.encode_queries(warm, k=k, batch_size=batch_size, show_progress_bar=False)
        compile_s = None
        if compiled:
            emb.thinker.compiled = True
            _, compile_s = timed(lambda: emb.encode_queries(queries, k=k, batch_size=batch_size,
                                                             show_progress_bar=False), device)
            emb.thinker.compiled = False
        for _ in range(repeats):
            thoughts, think_s = timed(lambda: reference_think(emb, queries, k), device)
            _, embed_s = timed(lambda: reference_embed(emb, queries, thoughts, batch_size), device)
            runs["reference"].append((think_s + embed_s, thoughts))
            for mode in modes:
                emb.thinker.compiled = mode
                # no bar: the reference path draws none, and a bar is clock time
                out, s = timed(lambda: emb.encode_queries(queries, k=k, batch_size=batch_size, return_thoughts=True,
                                                           show_progress_bar=False), device)
                runs["ours_compiled" if mode else "ours"].append((s, out.thoughts))
    finally:
        emb.thought_cache, emb.vector_cache, emb.thinker.compiled = saved
    best = {name: min(r, key=lambda x: x[0]) for name, r in runs.items() if r}
    timings = {name: _timing(emb, queries, thoughts, s, peak_tflops) for name, (s, thoughts) in best.items()}
    row = {"k": k, "batch_size": batch_size, "queries": len(queries), "repeats": repeats,
           **{name: asdict(t) for name, t in timings.items()},
           "speedup": timings["reference"].seconds / timings["ours"].seconds,
           "ms_per_thought_token": {name: 1000 * t.seconds / max(1, t.thought_tokens) for name, t in timings.items()}}
    if compiled:
        row["speedup_compiled"] = timings["reference"].seconds / timings["ours_compiled"].seconds
        row["first_compiled_call_s"] = compile_s
    return row


def plot_paths(rows: list[dict], path: str, title: str) -> None:
    """ms/query of both paths per (k, batch) workload, the speedup written over each pair."""
    from .evaluation.plot import _pyplot
    plt = _pyplot()
    labels = [f"k={r['k']}\nbatch {r['batch_size']}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.8 * len(rows) + 2, 4))
    ref = [r["reference"]["ms_per_query"] for r in rows]
    ours = [r["ours"]["ms_per_query"] for r in rows]
    compiled = "ours_compiled" in rows[0]
    width = 0.8 / (3 if compiled else 2)
    ax.bar(x - width / 2 * (1 + compiled), ref, width, label="reference path (generate + second forward)")
    ax.bar(x + width / 2 * (1 - compiled), ours, width, label="o1-retriever encode_queries")
    if compiled:
        ax.bar(x + width, [r["ours_compiled"]["ms_per_query"] for r in rows], width, label="... compiled decoding")
    for i, r in enumerate(rows):
        ax.text(x[i], max(ref[i], ours[i]) * 1.02, f"{r['speedup']:.2f}x", ha="center")
    ax.set_xticks(x, labels)
    ax.set_ylabel("ms per query (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
