"""What `o1-retriever eval` is asked to evaluate (`EvalConfig`, checked on creation) and what it hands back: a
table row per system and k (`ResultRow`), what each dense system was (`SystemInfo`), and both with the data
(`EvalOutcome`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..fusion import resolve_hybrid
from ..settings import SettingOverrides, check_overrides, overrides_of
from ..validation import check_choice, check_k, check_positive_int
from .data import BeirDataset
from .metrics import json_keys

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
        self._check_model_paths()
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

    def _check_model_paths(self) -> None:
        """A model named by a path that does not exist fails now, not after BM25 and the systems before it have run
        (an --baseline-encoder typo surfaced after the whole k sweep); a hub id ("org/name") is left to the loader.
        A part named for the composite model when it is off is refused."""
        from ..loading import _looks_like_path  # the loaders' own rule for a path, not a hub id
        used = {"model": self.run_model, "composite_thinker": self.composite, "composite_encoder": self.composite,
                "baseline_encoder": True}
        for name, wanted in used.items():
            value = getattr(self, name)
            if value is not None and not wanted and name != "model":  # --no-model says outright the model is off
                # ignored without a word, the run came back without the composite row it was given parts for
                raise ValueError(f"{name} (--{name.replace('_', '-')}) {value!r} is given but composite is off (add "
                                 "--composite)")
            if wanted and value is not None and _looks_like_path(value) and not Path(value).expanduser().exists():
                raise FileNotFoundError(f"{name} (--{name.replace('_', '-')}) {value!r} does not exist: give an "
                                        "existing directory (or .gguf file), or a hub id")


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
    significance: list[dict] | None = None    # paired tests against the baseline rows (significance.compare_rows)
    # {query id: {"ndcg@10": ..., ...}} for the queries the means are over: the JSON's per-query sidecar, not its row
    per_query: dict[str, dict[str, float]] | None = field(default=None, repr=False)

    def as_dict(self) -> dict:  # the JSON's result row
        return json_keys({f.name: getattr(self, f.name) for f in fields(self) if f.name != "per_query"})


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

