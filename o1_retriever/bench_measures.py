"""What `o1-retriever bench` measures, one function per figure: the matmul peak, queries/s per query mode,
documents/s, and (in fresh processes) load times and the thinker's memory. `bench.py` runs them and writes the results.
No call timed here draws a progress bar: a bar is clock time in the figure, and unreadable in a log (the reference
path, `speed.py`, draws none either).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from .cache import ThoughtCache
from .composite import read_composite
from .corpus import DEMO_CORPUS, read_corpus
from .default_model import bundled_model_path
from .speed import count_thought_tokens, encoder_cost, sync, timed

BENCH_QUERIES = [
    "Why does bread rise in the oven?", "How do vaccines protect against disease?", "What makes Mars red?",
    "What causes ocean tides?", "How does insulin control blood sugar?", "Why do corals bleach?",
    "How do lithium-ion batteries store energy?", "What did the printing press change?",
    "How does public-key encryption work?", "Why do antibiotics stop working?", "What happens during deep sleep?",
    "How do volcanoes erupt?", "What is inflation?", "How do search engines rank pages?",
    "How do neural networks learn?", "Why is caffeine stimulating?",
]


def matmul_tflops(dtype: torch.dtype, n: int = 2048, reps: int = 10, device=torch.device("cpu"),
                  budget_s: float = 2.0, rounds: int = 3) -> float:
    """Matmul TFLOP/s on square products of up to n x n, timed for about budget_s. The size doubles from 256
    only while the next one fits the budget: a dtype the processor emulates (bf16 on a CPU without AMX or
    AVX512-BF16) costs a second, not the minutes of 2048^3 products. The fastest of `rounds` timed rounds is
    kept: on a shared CPU one round can run well below the machine's rate."""
    size = 256
    while True:
        a, b = torch.randn(size, size, dtype=dtype, device=device), torch.randn(size, size, dtype=dtype, device=device)
        a @ b  # warm-up: first-call allocation and kernel selection
        one = min(timed(lambda: a @ b, device)[1] for _ in range(3))  # one slow call must not stop the growth
        if size >= n or 8 * one * reps > budget_s:  # the next size costs 8x
            break
        size *= 2
    for _ in range(2):  # more warm-up at the size timed: AMX tiles and caches settle after a few products
        a @ b
    reps = max(1, min(reps, int(budget_s / rounds / max(one, 1e-9))))
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = max(best, 2 * size ** 3 * reps / (time.perf_counter() - t) / 1e12)
    return best


def bench_queries_text(n: int) -> list[str]:
    """n distinct queries: the built-in ones, then numbered variants (repeats would be thought about only
    once, since the embedder dedups them, and inflate queries/s)."""
    m = len(BENCH_QUERIES)
    return [BENCH_QUERIES[i % m] if i < m else f"{BENCH_QUERIES[i % m]} ({i // m})" for i in range(n)]


def bench_docs_text(n: int) -> list[str]:
    """Exactly n documents: the demo corpus repeated as often as needed."""
    texts = [p.full_text for p in read_corpus(DEMO_CORPUS)]
    return [texts[i % len(texts)] for i in range(n)]


def bench_queries(emb, queries, k, one_by_one_n, batch_size=32):
    """queries/s and thought tokens/s per mode: thought lengths vary by query (an untrained model may
    stop at once or run to max_new_tokens), so tokens/s is the fair comparison across modes."""

    def run(fn, n=len(queries)):
        results, s = timed(fn)
        tokens = count_thought_tokens(emb.thinker.tokenizer, [ts for r in results for ts in r.thoughts])
        return {"queries_per_s": n / s, "thought_tokens_per_s": tokens / s, "seconds": s, "queries": n}

    def batched():
        return [emb.encode_queries(queries, k=k, batch_size=batch_size, return_thoughts=True, show_progress_bar=False)]

    rows = {}
    vector_cache, emb.vector_cache = emb.vector_cache, None
    emb.thought_cache = None
    # Warm-up on a full batch per mode: the first allocation of each KV-cache size is slow, and would land in
    # whichever mode is timed first.
    for fused in (True, False):
        emb.fused = fused
        emb.encode_queries(queries[:batch_size], k=k, batch_size=batch_size, show_progress_bar=False)
    emb.fused = True
    rows["fused"] = run(batched)
    emb.fused = False
    rows["two_pass_batched"] = run(batched)
    sub = queries[:one_by_one_n]
    rows["one_at_a_time"] = run(lambda: [emb.encode_queries([q], k=k, return_thoughts=True, show_progress_bar=False)
                                         for q in sub], len(sub))
    with tempfile.TemporaryDirectory() as tmp:
        emb.thought_cache = ThoughtCache(os.path.join(tmp, "t.sqlite"))
        emb.encode_queries(queries, k=k, batch_size=batch_size, show_progress_bar=False)  # fill
        rows["cache_hit"] = run(batched)
        emb.thought_cache.close()
    emb.thought_cache, emb.fused = None, True
    emb.vector_cache = vector_cache
    if vector_cache is not None:  # a repeat of the same queries: served from finished vectors, no forward at all
        emb.encode_queries(queries, k=k, batch_size=batch_size, show_progress_bar=False)  # fill
        rows["vector_cache_hit"] = run(batched)
    return rows


def bench_documents(emb, docs, peak_tflops, batch_size=32):
    """docs/s and tokens/s, and the share of the matmul peak in the encoder's own dtype that they reach."""
    flops, tokens = encoder_cost(emb, docs, emb.document_max_length)
    emb.encode_documents(docs[: 2 * batch_size], batch_size=batch_size, show_progress_bar=False)  # warm-up
    _, s = timed(lambda: emb.encode_documents(docs, batch_size=batch_size, show_progress_bar=False))
    return {"docs_per_s": len(docs) / s, "tokens_per_s": tokens / s,
            "fraction_of_peak": flops / s / (peak_tflops * 1e12)}


def _thinker_source(model) -> str:
    """What `load_causal_lm` loads for a model's thinker (a composite names it in o1_composite.json)."""
    path = bundled_model_path(model) or model
    spec = read_composite(path)
    return spec.thinker if spec is not None else str(path)


def _child_json(code: str, env: dict | None = None) -> dict:
    """Run `code` in a fresh Python process: the JSON its last line prints."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_psutil() -> None:
    try:
        import psutil  # noqa: F401  (the child measures with it)
    except ImportError as e:
        raise ImportError("the bench's memory rows need psutil: pip install 'o1-retriever[bench]' (or skip them: "
                          "--throughput-only)") from e


# The loading process's own peak (ru_maxrss: KiB on Linux, bytes on macOS; the kernel records it lazily, so never
# below the RSS now), less its RSS before the load; None where the platform keeps no peak (Windows has no `resource`).
# A quantizing child process is not counted: that is the point of quantizing in one.
_PEAK_RSS = """
try:
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == 'darwin' else 1024)
    peak_mb = max(rss_mb, (peak - r0) / 2**20)
except ImportError:
    peak_mb = None
"""


def _thinker_memory(source, quantization) -> dict:
    """Load the thinker in a fresh process and report its footprint, the process's RSS growth (what it keeps) and
    its peak RSS growth while loading (what the machine must have free)."""
    _check_psutil()
    return _child_json(
        "import json,sys,psutil,torch\nfrom o1_retriever.loading import load_causal_lm\n"
        "p=psutil.Process();r0=p.memory_info().rss\n"
        f"lm=load_causal_lm({_thinker_source(source)!r},device=torch.device('cpu'),dtype=torch.bfloat16,"
        f"quantization={quantization!r})\n"
        "rss_mb=(p.memory_info().rss-r0)/2**20\n" + _PEAK_RSS +
        "print(json.dumps({'footprint_mb':lm.model.get_memory_footprint()/2**20,'rss_growth_mb':rss_mb,"
        "'peak_rss_growth_mb':peak_mb}))")


def load_times(source=None) -> dict:
    """Seconds to import and to `from_pretrained` on the CPU (as the bench's meta says: a GPU's would add its own
    start-up) in fresh processes: first with an empty cache dir (GGUF conversion + adapter merge happen then), then
    again on that cache (what every later start costs)."""
    code = ("import time;t=time.perf_counter();import json;from o1_retriever import O1Embedder;"
            "i=time.perf_counter()-t;t=time.perf_counter();"
            f"O1Embedder.from_pretrained({source!r}, device='cpu', thought_cache=False);"
            "print(json.dumps({'import_s':i,'from_pretrained_s':time.perf_counter()-t}))")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "O1_RETRIEVER_CACHE": cache, "HF_HUB_OFFLINE": "1"}
        return {run: _child_json(code, env) for run in ("first_run", "later_runs")}  # the first fills the cache



def load_and_memory_rows(model) -> tuple[dict, dict]:
    """(load_seconds, thinker_memory_mb), each measured in fresh processes. A process that fails (no bitsandbytes
    for 4-bit, or killed for memory) gives an {"error": ...} row: the minutes of throughput timing before it are
    still written."""
    def measured(measure, *args) -> dict:
        try:
            return measure(*args)
        except subprocess.CalledProcessError as e:
            lines = (e.stderr or "").strip().splitlines()
            return {"error": lines[-1] if lines else f"the measuring process exited with {e.returncode} and "
                                                      "printed nothing (killed for memory?)"}

    memory = {"bf16": measured(_thinker_memory, model, None), "4bit": measured(_thinker_memory, model, "4bit")}
    return measured(load_times, model), memory
