"""Evaluate retrieval systems on one BEIR split: BM25, the O1 model at several k, a plain
sentence-transformers encoder, and the composite (separate thinker + encoder) model.

Every system is timed on the query side only (thinking + embedding + search, per query); indexing
the corpus is a one-off cost and is cached for dense models.
"""
from __future__ import annotations

import functools
import gc
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..fusion import fuse_many, resolve_hybrid
from ..settings import SettingOverrides, check_overrides, overrides_of
from ..speed import count_thought_tokens
from ..validation import check_choice, check_k, check_positive_int
from ..bm25 import BM25Config, BM25Searcher
from .data import BeirDataset, load_beir, subsample_corpus, subsample_queries
from .metrics import evaluate_run, import_pytrec_eval, json_keys
from .search import corpus_embeddings, encoder_identity, exact_search

TOP_K = 100  # documents retrieved per query: enough for Recall@100
BASELINES = ("bm25",)
INDEXES = ("exact", "chroma")


@dataclass(kw_only=True)
class EvalConfig(SettingOverrides):
    """What to evaluate, and how (the fields of `o1-retriever eval`'s flags). It also has every inference setting
    (`SettingOverrides`: temperature, top_p, aggregation, token windows, ...), None keeping the model's own."""
    dataset: str                          # BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv
    split: str = "test"
    model: str | None = None              # O1 model dir, hub id or .gguf; None: the bundled default
    run_model: bool = True                # off: baselines and composite only
    k: list[int] = field(default_factory=lambda: [0, 3])  # thoughts per query, swept
    baselines: list[str] = field(default_factory=list)  # lexical baselines: "bm25"
    hybrid: float | None = None           # the dense share when each dense row is also fused with BM25
    baseline_encoder: str | None = None   # a sentence-transformers dir, queried without thinking
    composite: bool = False               # also evaluate O1Embedder.composite
    composite_thinker: str | None = None  # None: SmolLM2-135M-Instruct
    composite_encoder: str | None = None  # None: all-MiniLM-L6-v2
    max_docs: int | None = None           # subsample the corpus, keeping every judged document
    max_queries: int | None = None        # a seeded sample of the judged queries
    index: str = "exact"                  # "exact" (matrix product) or "chroma" (O1Index)
    batch_size: int = 32
    seed: int = 0                         # sampling seed and subsample seed
    ignore_identical_ids: bool = False    # drop a hit whose id equals the query id
    thought_cache: bool = False           # reuse cached thoughts: faster reruns, but latency then excludes thinking
    embedding_cache: bool = True          # cache corpus vectors on disk
    device: str | None = None             # None: cuda if present, else cpu
    dtype: str = "auto"
    ray: dict | None = None               # embed the corpus on Ray actors: {"address", "actors", "use_gpus"}
    progress: bool | None = None          # bars: None for long inputs, False none (the CLI off a terminal)

    def __post_init__(self):
        # Paths as strings: the config is recorded in the results JSON, which cannot hold a Path
        for name in ("dataset", "model", "baseline_encoder", "composite_thinker", "composite_encoder"):
            value = getattr(self, name)
            if name == "dataset" or value is not None:
                if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
                    raise TypeError(f"{name} must be a path (str or os.PathLike), got {value!r}")
                setattr(self, name, os.fspath(value))
        if not isinstance(self.split, str) or not self.split.strip():
            raise TypeError(f"split must be a qrels split name such as 'test', got {self.split!r}")
        if not isinstance(self.k, (list, tuple)) or not self.k:
            raise ValueError(f"k must be a non-empty list of ints >= 0, got {self.k!r}")
        self.k = [check_k(k) for k in self.k]
        if len(set(self.k)) != len(self.k):
            raise ValueError(f"k values must be distinct, got {self.k}")
        if not isinstance(self.baselines, (list, tuple)):  # a bare "bm25" would be read letter by letter
            raise TypeError(f"baselines must be a list such as ['bm25'], got {self.baselines!r}")
        for b in self.baselines:
            check_choice(b, "baseline", BASELINES)
        check_choice(self.index, "index", INDEXES)
        self.hybrid = resolve_hybrid(self.hybrid)  # True: the default share; False: off
        if self.hybrid is not None:
            if not (self.run_model or self.baseline_encoder or self.composite):
                raise ValueError("hybrid fuses dense rows with BM25: enable the model, a baseline encoder or composite")
        check_positive_int(self.batch_size, "batch_size")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise TypeError(f"progress must be None (bars for long inputs), True or False, got {self.progress!r}")
        check_overrides(overrides_of(self), "EvalConfig")
        for name in ("max_docs", "max_queries"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        if not (self.run_model or self.baselines or self.baseline_encoder or self.composite):
            raise ValueError("nothing to evaluate: enable the model, a baseline, a baseline encoder or composite")
        if self.run_model or self.composite or self.baseline_encoder:
            # a device or dtype this machine cannot use fails now, not after loading the data and running BM25; kept
            # as names, since the config is recorded in the results JSON
            from ..device import dtype_name, resolve_device, resolve_dtype
            device = resolve_device(self.device)
            if self.device is not None:
                self.device = str(device)
            if self.dtype is None:
                self.dtype = "auto"
            elif not isinstance(self.dtype, str):
                self.dtype = dtype_name(resolve_dtype(self.dtype, device))
            resolve_dtype(self.dtype, device)


@dataclass
class ResultRow:
    system: str                 # "bm25" | "o1" | "encoder" | "composite", or one of those three + "+bm25" (fused)
    model: str | None
    k: int | None
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    map: float
    queries: int
    ms_per_query: float
    thinking_tokens_per_query: float | None = None
    index: str | None = None
    thoughts_from_cache: float | None = None  # share of queries whose thoughts were cached: latency excludes them

    def as_dict(self) -> dict:  # the JSON's result row
        return json_keys(asdict(self))


@dataclass
class SystemInfo:
    """What a dense system was: recorded in the JSON meta for reproducibility."""
    system: str
    model: str
    fingerprint: str
    encoder: str
    generation: dict | None
    corpus_embeddings: str  # "cache" | "computed" | "chroma"
    load_seconds: float
    index_seconds: float
    dtypes: dict = field(default_factory=dict)  # {"thinker": "bf16", "encoder": "fp32"}: what "auto" resolved to


@dataclass
class EvalOutcome:
    dataset: BeirDataset
    rows: list[ResultRow]
    systems: list[SystemInfo]


def load_dataset(config: EvalConfig) -> BeirDataset:
    dataset = load_beir(config.dataset, config.split)
    if config.max_docs is not None:
        dataset = subsample_corpus(dataset, config.max_docs, config.seed)
    if config.max_queries is not None:  # after the corpus: it (and its cached vectors) ignore the query sample
        dataset = subsample_queries(dataset, config.max_queries, config.seed)
    # Metrics average over queries with a relevant document: found now, not after every model has run.
    if not any(r > 0 for rels in dataset.qrels.values() for r in rels.values()):
        sample = " in the --max-queries sample" if dataset.query_subsample else ""
        raise ValueError(f"{Path(dataset.path) / 'qrels' / (dataset.split + '.tsv')}: no judged query{sample} has a "
                         "relevant document (score > 0): nothing to evaluate")
    return dataset


def _row(system, model, k, results, seconds, dataset: BeirDataset, config: EvalConfig, index: str,
         tokens=None, cached=None) -> ResultRow:
    """Score one system's hits (one list per query, in `dataset.queries` order) into a table row."""
    run = {q: dict(hits) for q, hits in zip(dataset.queries, results)}
    s = evaluate_run(dataset.qrels, run, config.ignore_identical_ids)
    return ResultRow(system, model, k, s.ndcg_at_10, s.recall_at_100, s.mrr_at_10, s.map, s.queries,
                     1000.0 * seconds / max(len(dataset.queries), 1), tokens, index, cached)


def _label(path: str) -> str:
    """A readable model name: the dir name, or its parent's when the dir is just 'model'."""
    p = Path(path)
    return p.parent.name if p.name in ("model", "models") and p.parent.name else p.name


@dataclass
class LexicalRun:
    """BM25's top hits per query and what they cost: the baseline row, and the other half of a hybrid row."""
    results: list
    seconds: float


def bm25_run(dataset: BeirDataset, bm25: BM25Config | None = None) -> LexicalRun:
    searcher = BM25Searcher(dataset.doc_ids(), dataset.doc_texts(), bm25)
    start = time.perf_counter()
    results = searcher.search(list(dataset.queries.values()), TOP_K)
    return LexicalRun(results, time.perf_counter() - start)


def evaluate_bm25(dataset: BeirDataset, config: EvalConfig, lexical: LexicalRun | None = None) -> ResultRow:
    lexical = lexical or bm25_run(dataset)
    return _row("bm25", None, None, lexical.results, lexical.seconds, dataset, config, "bm25s")


def _thought_tokens(embedder, thoughts: list[list[str]]) -> float:
    if embedder.thinker is None or not thoughts:
        return 0.0
    return count_thought_tokens(embedder.thinker.tokenizer, thoughts) / len(thoughts)


class _DenseIndex:
    """Exact search over cached corpus vectors, or an O1Index (Chroma) built in a temporary dir."""

    def __init__(self, embedder, dataset: BeirDataset, config: EvalConfig):
        self.embedder, self.config = embedder, config
        self.ids, texts = dataset.doc_ids(), dataset.doc_texts()
        start = time.perf_counter()
        if config.index == "exact":
            embed = corpus_embeddings
            options = {"show_progress_bar": config.progress}
            if config.ray is not None:  # the same cache and result, the corpus spread over Ray actors
                from ..distributed import ray_corpus_embeddings
                embed, options = functools.partial(ray_corpus_embeddings, **config.ray), {}
            self.vectors, cached = embed(embedder, self.ids, texts, config.batch_size,
                                         use_cache=config.embedding_cache, **options)
            self.source = "cache" if cached else "computed"
        else:
            from ..index import O1Index
            self._tmp = tempfile.TemporaryDirectory(prefix="o1-eval-chroma-")
            self.store = O1Index(embedder, path=self._tmp.name, collection="eval")
            self.store.add(self.ids, texts, batch_size=max(64, config.batch_size),
                           show_progress_bar=len(texts) >= 256 if config.progress is None else config.progress)
            self.source = "chroma"
        self.index_seconds = time.perf_counter() - start

    def search(self, queries: list[str], k: int) -> tuple[list, list[list[str]]]:
        if self.config.index == "exact":
            enc = self.embedder.encode_queries(queries, k=k, batch_size=self.config.batch_size, return_thoughts=True,
                                               show_progress_bar=self.config.progress)
            return exact_search(enc.embeddings, self.vectors, self.ids, TOP_K), enc.thoughts
        hits = self.store.search(queries, top_k=TOP_K, k=k, show_progress_bar=self.config.progress)
        return [[(h.id, h.score) for h in row] for row in hits], [row[0].thoughts if row else [] for row in hits]

    def close(self):
        if self.config.index == "chroma":
            del self.store
            self._tmp.cleanup()


def evaluate_dense(embedder, system: str, label: str, ks: list, dataset: BeirDataset, config: EvalConfig,
                   load_seconds: float = 0.0, lexical: LexicalRun | None = None) -> tuple[list[ResultRow], SystemInfo]:
    """One row per k. `ks=[None]` marks a plain encoder (queried without thinking). With `lexical`, each k
    also gets a "<system>+bm25" row: the same dense hits fused with BM25's (timed as both searches + the fusion)."""
    index = _DenseIndex(embedder, dataset, config)
    texts = list(dataset.queries.values())
    rows = []
    try:
        for k in ks:
            # the share of queries the thought cache already answers: their latency has no thinking in it
            cached = embedder.cached_fraction(texts, k) if k and embedder.thinker is not None else None
            start = time.perf_counter()
            results, thoughts = index.search(texts, 0 if k is None else k)
            seconds = time.perf_counter() - start
            tokens = None if k is None else _thought_tokens(embedder, thoughts)
            rows.append(_row(system, label, k, results, seconds, dataset, config, config.index, tokens, cached))
            if lexical is not None:
                start = time.perf_counter()
                fused = fuse_many(results, lexical.results, config.hybrid, TOP_K)
                seconds += lexical.seconds + time.perf_counter() - start
                rows.append(_row(f"{system}+bm25", label, k, fused, seconds, dataset, config,
                                 f"{config.index}+bm25s", tokens, cached))
    finally:
        index.close()
    generation = embedder.inference_settings() if embedder.thinker is not None else None
    info = SystemInfo(system, label, embedder.fingerprint, encoder_identity(embedder), generation, index.source,
                      round(load_seconds, 2), round(index.index_seconds, 2), embedder.weight_dtypes())
    return rows, info


def _options(config: EvalConfig) -> dict:
    return {"thought_cache": config.thought_cache} | overrides_of(config)  # the seed among them


def _plain_encoder(path: str, config: EvalConfig):
    from ..device import resolve_device
    from ..embedder import O1Embedder
    from ..encoding import SentenceEncoder
    from ..model_source import ModelSource
    encoder = SentenceEncoder.load(str(path), resolve_device(config.device))
    return O1Embedder(None, encoder, name=f"encoder:{_label(path)}", thought_cache=False,
                      source=ModelSource("encoder", encoder=str(path)))


def run_evaluation(config: EvalConfig, log=print) -> EvalOutcome:
    """Evaluate every requested system; rows in a stable order (bm25, o1, composite, encoder; with hybrid, each
    dense row is followed by its fused twin)."""
    from ..embedder import O1Embedder
    import_pytrec_eval()  # a missing scorer would otherwise surface after every model has run
    dataset = load_dataset(config)
    rows, systems = [], []
    lexical = None
    if "bm25" in config.baselines or config.hybrid is not None:
        log("BM25 ...")
        lexical = bm25_run(dataset)
    if "bm25" in config.baselines:
        rows.append(evaluate_bm25(dataset, config, lexical))
    plans = []
    if config.run_model:
        plans.append(("o1", config.model or "o1-retriever-default", list(config.k), lambda: O1Embedder.from_pretrained(
            config.model, device=config.device, dtype=config.dtype, **_options(config))))
    if config.composite:
        label = f"{_label(config.composite_thinker) if config.composite_thinker else 'SmolLM2-135M-Instruct'}+" \
                f"{_label(config.composite_encoder) if config.composite_encoder else 'all-MiniLM-L6-v2'}"
        plans.append(("composite", label, list(config.k), lambda: O1Embedder.composite(
            config.composite_thinker, config.composite_encoder, device=config.device, dtype=config.dtype,
            **_options(config))))
    if config.baseline_encoder:
        plans.append(("encoder", _label(config.baseline_encoder), [None],
                      lambda: _plain_encoder(config.baseline_encoder, config)))
    for system, label, ks, load in plans:
        log(f"{system}: {label} ...")
        start = time.perf_counter()
        embedder = load()
        new_rows, info = evaluate_dense(embedder, system, label, ks, dataset, config, time.perf_counter() - start,
                                        lexical if config.hybrid is not None else None)
        rows += new_rows
        systems.append(info)
        del embedder
        gc.collect()  # free one model before the next loads
    return EvalOutcome(dataset, rows, systems)
