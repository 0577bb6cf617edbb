"""Retrieval metrics through pytrec_eval (trec_eval's own code), averaged over judged queries.

A judged query that retrieved nothing scores 0 on every metric (pytrec_eval would silently skip it,
which inflates the mean). MRR@10 is trec_eval's reciprocal rank on the run cut to its top 10.
Ids may be ints or strings on either side (both are compared as strings, as BEIR's files hold them).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

Run = dict[str, dict[str, float]]    # query id -> {doc id: score}
Qrels = dict[str, dict[str, int]]    # query id -> {doc id: relevance}
# our metric names (in the order of MetricScores' fields) -> trec_eval's measures
TREC_MEASURES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "mrr@10": "recip_rank", "map": "map"}
JSON_KEYS = {"ndcg_at_10": "ndcg@10", "recall_at_100": "recall@100", "mrr_at_10": "mrr@10"}  # field -> JSON key


def json_keys(fields: dict) -> dict:
    """A dataclass's fields as the JSON names them: "ndcg@10" for `ndcg_at_10`, and so on."""
    return {JSON_KEYS.get(name, name): value for name, value in fields.items()}


@dataclass
class MetricScores:
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    map: float
    queries: int  # judged queries averaged over

    def as_dict(self) -> dict:
        return json_keys(asdict(self))


def top_n(run: Run, n: int) -> Run:
    """Each query's n best documents (ties broken by doc id, descending, as trec_eval does)."""
    return {q: dict(sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:n]) for q, docs in run.items()}


def drop_identical_ids(run: Run) -> Run:
    """Remove a retrieved document whose id equals the query id (BEIR's rule for ArguAna / Quora)."""
    return {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}


def import_pytrec_eval():
    """The scorer, or an ImportError saying how to install it (an evaluation checks this before any model runs)."""
    try:
        import pytrec_eval
    except ImportError as e:
        raise ImportError("metrics need pytrec_eval: pip install pytrec-eval-terrier "
                          "(or pip install 'o1-retriever[eval]')") from e
    return pytrec_eval


def _string_keyed(table: dict, what: str, value) -> dict:
    """{str(query id): {str(doc id): value(v, query, doc)}}: pytrec_eval takes string ids only, and an int id on one
    side would otherwise never match the same id as a string on the other (every metric silently 0)."""
    out: dict[str, dict] = {}
    for q, docs in table.items():
        if not isinstance(docs, dict):
            raise TypeError(f"{what}[{q!r}] must be a dict {{doc id: value}}, got {type(docs).__name__}")
        if str(q) in out:
            raise ValueError(f"{what} holds query id {q!r} twice (as {str(q)!r} and as {q!r})")
        row = out[str(q)] = {}
        for d, v in docs.items():
            if str(d) in row:
                raise ValueError(f"{what}[{q!r}] holds doc id {d!r} twice (as {str(d)!r} and as {d!r})")
            row[str(d)] = value(v, q, d)
    return out


def _relevance(r, q, d) -> int:
    try:
        value = float(r)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(r, bool) or not value.is_integer():
        raise ValueError(f"qrels[{q!r}][{d!r}]: relevance must be an integer, got {r!r}")
    return int(value)


def _score(s, q, d) -> float:
    try:
        value = float(s)
    except (TypeError, ValueError):
        raise TypeError(f"run[{q!r}][{d!r}]: score must be a number, got {s!r}") from None
    if math.isnan(value):  # pytrec_eval would rank it somewhere arbitrary, and the metrics would look fine
        raise ValueError(f"run[{q!r}][{d!r}]: score is NaN (a model that produced NaN vectors?)")
    return value


def normalise_qrels(qrels: Qrels) -> Qrels:
    if not isinstance(qrels, dict) or not qrels:
        raise ValueError("qrels must be a non-empty dict {query id: {doc id: relevance}}")
    return _string_keyed(qrels, "qrels", _relevance)


def per_query_scores(qrels: Qrels, run: Run, ignore_identical_ids: bool = False) -> dict[str, dict[str, float]]:
    """{query id: {"ndcg@10", "recall@100", "mrr@10", "map"}} for every judged query (ids as strings)."""
    qrels = normalise_qrels(qrels)
    if not isinstance(run, dict):
        raise TypeError(f"run must be a dict {{query id: {{doc id: score}}}}, got {type(run).__name__}")
    run = _string_keyed(run, "run", _score)
    pytrec_eval = import_pytrec_eval()
    if ignore_identical_ids:
        run = drop_identical_ids(run)
    run = {q: docs for q, docs in run.items() if q in qrels and docs}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map"}).evaluate(run)
    cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top_n(run, 10))
    scores = {}
    for q in qrels:  # a query that retrieved nothing is absent from pytrec_eval's results: 0 on every metric
        found = full.get(q, {}) | cut.get(q, {})
        scores[q] = {key: found.get(measure, 0.0) for key, measure in TREC_MEASURES.items()}
    return scores


def judged_query_scores(qrels: Qrels, run: Run, ignore_identical_ids: bool = False) -> dict[str, dict[str, float]]:
    """`per_query_scores` for the queries a mean counts: those with at least one relevant judgement (relevance > 0).
    BEIR's mean would count a query judged only 0 as 0 on every metric (its test splits hold no such query)."""
    judged = {q: rels for q, rels in normalise_qrels(qrels).items() if any(r > 0 for r in rels.values())}
    if not judged:
        raise ValueError("qrels hold no relevant judgement (relevance > 0); nothing to evaluate")
    return per_query_scores(judged, run, ignore_identical_ids)


def mean_scores(per_query: dict[str, dict[str, float]]) -> MetricScores:
    """The means of `judged_query_scores`' values: a table row's figures."""
    n = len(per_query)
    return MetricScores(*(sum(s[key] for s in per_query.values()) / n for key in TREC_MEASURES), n)


def evaluate_run(qrels: Qrels, run: Run, ignore_identical_ids: bool = False) -> MetricScores:
    """Mean nDCG@10, Recall@100, MRR@10 and MAP over the judged queries with a relevant document (see
    `judged_query_scores`). MAP is over the run given (eval: the top 100)."""
    return mean_scores(judged_query_scores(qrels, run, ignore_identical_ids))
