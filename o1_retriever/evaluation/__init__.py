"""Evaluation on BEIR-format data: loader, pytrec_eval metrics, BM25 baseline, runner, significance, report, plot."""
from ..bm25 import BM25Config, BM25Searcher
from .data import BeirDataset, load_beir, read_qrels, subsample_corpus, subsample_queries
from .metrics import MetricScores, evaluate_run, per_query_scores
from .plot import plot_k_sweep
from .report import build_meta, print_table, write_json
from .runner import EvalConfig, EvalOutcome, ResultRow, SystemInfo, evaluate_bm25, evaluate_dense, run_evaluation
from .search import corpus_embeddings, exact_search
from .significance import compare_rows, paired_randomization_test

__all__ = ["BM25Config", "BM25Searcher", "BeirDataset", "load_beir", "read_qrels", "subsample_corpus", "subsample_queries",
           "MetricScores", "evaluate_run", "per_query_scores", "plot_k_sweep", "build_meta", "print_table",
           "write_json", "EvalConfig", "EvalOutcome", "ResultRow", "SystemInfo", "evaluate_bm25", "evaluate_dense",
           "run_evaluation", "corpus_embeddings", "exact_search", "compare_rows",
           "paired_randomization_test"]
