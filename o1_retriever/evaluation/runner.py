"""Evaluate retrieval systems on one BEIR split: BM25, the O1 model at several k, a plain
sentence-transformers encoder, and the composite (separate thinker + encoder) model.

Every system is timed on the query side only (thinking + embedding + search, per query); indexing
the corpus is a one-off cost and is cached for dense models.
"""
from __future__ import annotations

import functools
import gc
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..bm25 import BM25Config, BM25Searcher
from ..fusion import fuse_many
from ..settings import overrides_of
from ..speed import count_thought_tokens
# BASELINES and INDEXES: still importable from here, where they were first defined
from .config import BASELINES, INDEXES, TOP_K, EvalConfig, EvalOutcome, ResultRow, SystemInfo  # noqa: F401
from .data import BeirDataset, load_beir, subsample_corpus, subsample_queries
from .metrics import import_pytrec_eval, judged_query_scores, mean_scores
from .search import corpus_embeddings, encoder_identity, exact_search
from .significance import compare_rows


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
    per_query = judged_query_scores(dataset.qrels, run)  # the searches left each query's own document out already
    s = mean_scores(per_query)
    return ResultRow(system, model, k, s.ndcg_at_10, s.recall_at_100, s.mrr_at_10, s.map, s.queries,
                     1000.0 * seconds / max(len(dataset.queries), 1), tokens, index, cached, per_query=per_query)


def _label(path: str) -> str:
    """A readable model name: the dir name, or its parent's when the dir is just 'model'."""
    p = Path(path)
    return p.parent.name if p.name in ("model", "models") and p.parent.name else p.name


def depth(ignore_identical_ids: bool) -> int:
    """Hits to retrieve per query: one more than TOP_K when the query's own document is dropped, as BEIR retrieves,
    so that TOP_K remain (ArguAna's query ranks itself first: Recall@100 would otherwise be over 99 hits)."""
    return TOP_K + 1 if ignore_identical_ids else TOP_K


def without_own(queries, results: list, ignore_identical_ids: bool) -> list:
    """`results` (one list per query id of `queries`) less each query's own document, cut to TOP_K. Dropped before
    any fusion too: the own document, far ahead of the rest, would skew its list's z-scores."""
    if not ignore_identical_ids:
        return results
    return [[(d, s) for d, s in hits if d != q][:TOP_K] for q, hits in zip(queries, results)]


@dataclass
class LexicalRun:
    """BM25's top hits per query and what they cost: the baseline row, and the other half of a hybrid row."""
    results: list
    seconds: float


def bm25_run(dataset: BeirDataset, bm25: BM25Config | None = None, ignore_identical_ids: bool = False) -> LexicalRun:
    searcher = BM25Searcher(dataset.doc_ids(), dataset.doc_texts(), bm25)
    start = time.perf_counter()
    hits = searcher.search(list(dataset.queries.values()), depth(ignore_identical_ids))
    results = without_own(dataset.queries, hits, ignore_identical_ids)
    return LexicalRun(results, time.perf_counter() - start)


def evaluate_bm25(dataset: BeirDataset, config: EvalConfig, lexical: LexicalRun | None = None) -> ResultRow:
    lexical = lexical or bm25_run(dataset, ignore_identical_ids=config.ignore_identical_ids)
    return _row("bm25", None, None, lexical.results, lexical.seconds, dataset, config, "bm25s")


def _thought_tokens(embedder, thoughts: list[list[str]]) -> float:
    if embedder.thinker is None or not thoughts:
        return 0.0
    return count_thought_tokens(embedder.thinker.tokenizer, thoughts) / len(thoughts)


class _DenseIndex:
    """Exact search over cached corpus vectors, or an O1Index (Chroma) built in a temporary dir."""

    def __init__(self, embedder, dataset: BeirDataset, config: EvalConfig):
        self.embedder, self.config, self.own = embedder, config, config.ignore_identical_ids
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

    def search(self, query_ids: list[str], queries: list[str], k: int) -> tuple[list, list[list[str]]]:
        if self.config.index == "exact":
            enc = self.embedder.encode_queries(queries, k=k, batch_size=self.config.batch_size, return_thoughts=True,
                                               show_progress_bar=self.config.progress)
            hits = exact_search(enc.embeddings, self.vectors, self.ids, depth(self.own))
            return without_own(query_ids, hits, self.own), enc.thoughts
        rows = self.store.search(queries, top_k=depth(self.own), k=k, show_progress_bar=self.config.progress)
        hits = [[(h.id, h.score) for h in row] for row in rows]
        return without_own(query_ids, hits, self.own), [row[0].thoughts if row else [] for row in rows]

    def close(self):
        if self.config.index == "chroma":
            del self.store
            self._tmp.cleanup()


def evaluate_dense(embedder, system: str, label: str, ks: list, dataset: BeirDataset, config: EvalConfig,
                   load_seconds: float = 0.0, lexical: LexicalRun | None = None,
                   finished: list | None = None) -> tuple[list[ResultRow], SystemInfo]:
    """One row per k. `ks=[None]` marks a plain encoder (queried without thinking). With `lexical`, each k
    also gets a "<system>+bm25" row: the same dense hits fused with BM25's (timed as both searches + the fusion)."""
    index = _DenseIndex(embedder, dataset, config)
    texts = list(dataset.queries.values())
    rows = []

    def done(row: ResultRow) -> None:  # also into `finished` (run_evaluation's rows): a later k that fails leaves it
        rows.append(row)
        if finished is not None:
            finished.append(row)

    try:
        for k in ks:
            # the share of queries the thought cache already answers: their latency has no thinking in it
            cached = embedder.cached_fraction(texts, k) if k and embedder.thinker is not None else None
            start = time.perf_counter()
            results, thoughts = index.search(list(dataset.queries), texts, 0 if k is None else k)
            seconds = time.perf_counter() - start
            tokens = None if k is None else _thought_tokens(embedder, thoughts)
            done(_row(system, label, k, results, seconds, dataset, config, config.index, tokens, cached))
            if lexical is not None:
                start = time.perf_counter()
                fused = fuse_many(results, lexical.results, config.hybrid, TOP_K)
                seconds += lexical.seconds + time.perf_counter() - start
                done(_row(f"{system}+bm25", label, k, fused, seconds, dataset, config, f"{config.index}+bm25s",
                          tokens, cached))
    except BaseException as e:
        if rows:  # a partial record still names the model its finished rows came from
            e.partial_system = _system_info(embedder, system, label, index, load_seconds)
        raise
    finally:
        index.close()
    return rows, _system_info(embedder, system, label, index, load_seconds)


def _system_info(embedder, system: str, label: str, index: _DenseIndex, load_seconds: float) -> SystemInfo:
    generation = embedder.inference_settings() if embedder.thinker is not None else None
    return SystemInfo(system, label, embedder.fingerprint, encoder_identity(embedder), generation, index.source,
                      round(load_seconds, 2), round(index.index_seconds, 2), embedder.weight_dtypes())


def _options(config: EvalConfig) -> dict:
    return {"thought_cache": config.thought_cache} | overrides_of(config)  # the seed among them


def _plain_encoder(path: str, config: EvalConfig):
    from ..device import resolve_device, resolve_dtype
    from ..embedder import O1Embedder
    from ..encoding import SentenceEncoder
    from ..model_source import ModelSource
    device = resolve_device(config.device)
    # the dtype the composite's encoder runs in too: the two rows then differ in thinking alone
    encoder = SentenceEncoder.load(str(path), device, resolve_dtype(config.dtype, device))
    return O1Embedder(None, encoder, name=f"encoder:{_label(path)}", thought_cache=False,
                      source=ModelSource("encoder", encoder=str(path)))


def run_evaluation(config: EvalConfig, log=print) -> EvalOutcome:
    """Evaluate every requested system; rows in a stable order (bm25, o1, composite, encoder; with hybrid, each
    dense row is followed by its fused twin), each with its per-query scores and its paired tests against the
    baseline rows (significance.py)."""
    from ..embedder import O1Embedder
    import_pytrec_eval()  # a missing scorer would otherwise surface after every model has run
    dataset = load_dataset(config)
    rows, systems = [], []
    lexical = None
    if "bm25" in config.baselines or config.hybrid is not None:
        log("BM25 ...")
        lexical = bm25_run(dataset, ignore_identical_ids=config.ignore_identical_ids)
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
    try:
        for system, label, ks, load in plans:
            log(f"{system}: {label} ...")
            start = time.perf_counter()
            embedder = load()
            info = evaluate_dense(embedder, system, label, ks, dataset, config, time.perf_counter() - start,
                                  lexical if config.hybrid is not None else None, finished=rows)[1]
            systems.append(info)
            del embedder
            gc.collect()  # free one model before the next loads
    except BaseException as e:  # Ctrl-C too: hours of finished rows go with the error, for the caller to keep
        if rows:
            compare_rows(rows, config.seed)
            if hasattr(e, "partial_system"):  # the system whose sweep stopped part way
                systems.append(e.partial_system)
            e.partial_outcome = EvalOutcome(dataset, rows, systems)
        raise
    compare_rows(rows, config.seed)
    return EvalOutcome(dataset, rows, systems)
