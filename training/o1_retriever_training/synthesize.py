"""Thought synthesis (the paper's exploration-refinement): an LLM expert writes N candidate thoughts
per query, few-shot prompted with other (query, relevant passage) pairs; the retrieval committee
keeps the candidate closest to the query's positive passage. The output JSONL is training data for
`train`: query, pos, neg (mined hard negatives), thought, plus every candidate and member score.

Resumable: the output file is appended one record at a time and records already there are skipped,
so a crash costs at most the queries in flight. Each record names the recipe it was made with (expert, vote,
number of candidates, committee, data and split or pairs file, negative miners), and a resume under another
recipe is refused: one file would otherwise mix two. Doc-to-query mode (unlabeled corpus) first asks the
expert for a query per sampled passage (kept in `<output>.d2q.jsonl`, also resumable). Pairs mode
(`--pairs`) writes thoughts for records made elsewhere (title-to-abstract pairs), keeping their passages.
"""
from __future__ import annotations

import json
import random
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from o1_retriever.atomic import write_text_atomically

from .arguments import SynthesisArguments, check_output_path, expand_user_paths
from .committee import VOTES, Committee
from .experts import ExpertError, check_expert_url, check_sampling
from .data import LabeledPair, labeled_pairs, load_beir, load_triplets, read_jsonl, text_list
from .members import load_member
from .negatives import mine_negatives
# the prompts' names: still importable from here, where they were first defined
from .prompts import (QUERY_SYSTEM, THOUGHT_SYSTEM, clean_query, conversations, query_messages,  # noqa: F401
                      shorten, thought_messages)
from .recipe import check_resume, doc_to_query_recipe, expert_identity, recipe


@dataclass
class SynthesisResult:
    output: str
    written: int
    already_done: int  # records found in the output from an earlier run, not paid for again


def read_done(path: Path, key: str = "query_id") -> dict[str, dict]:
    """Records already in a JSONL output. A torn last line (crash mid-write) is cut off; damage
    anywhere else is an error, since appending after it would hide it."""
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    done = {}
    for n, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):
                warnings.warn(f"{path}:{n}: dropping a partly written last line (interrupted run)", stacklevel=2)
                # all or nothing: a kill mid-rewrite would lose the records before it (paid for)
                write_text_atomically(path, "".join(lines[:-1]))
                break
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}); fix or move the file before resuming") from e
        done[str(record[key])] = record
    return done


def check_synthesis_arguments(args: SynthesisArguments) -> None:
    if not args.data and not args.pairs:
        raise ValueError("data is required: a BEIR directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), "
                         "or pairs: a records JSONL (query, pos, neg)")
    if args.pairs and args.doc_to_query:
        raise ValueError(f"pairs={args.pairs!r} and doc_to_query={args.doc_to_query} both choose the queries; "
                         "give one of them")
    if isinstance(args.num_candidates, bool) or not isinstance(args.num_candidates, int) or args.num_candidates < 2:
        raise ValueError(f"num_candidates={args.num_candidates!r} must be an int >= 2 (the committee chooses among them)")
    if args.vote not in VOTES:
        raise ValueError(f"vote={args.vote!r} is not supported; use one of {list(VOTES)}")
    for name in ("num_shots", "num_negatives", "doc_to_query", "retries"):
        if getattr(args, name) < 0:
            raise ValueError(f"{name}={getattr(args, name)} must be >= 0")
    for name in ("batch_size", "max_new_tokens", "concurrency"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name}={getattr(args, name)} must be >= 1")
    if args.limit is not None and args.limit < 1:  # a negative limit would slice queries off the end
        raise ValueError(f"limit={args.limit} must be None or >= 1")
    check_sampling(args.temperature, args.top_p)  # the experts check too, but only once loaded
    if args.expert_url is not None:
        check_expert_url(args.expert_url)
        if args.expert is not None:  # which one was meant is not ours to guess (the server used to win silently)
            raise ValueError(f"expert={args.expert!r} and expert_url={args.expert_url!r} both name the expert; give "
                             f"one: --expert for a local model, --expert-url for a server")
        if args.quantization is not None:
            raise ValueError(f"quantization={args.quantization!r} loads a local --expert; the server at "
                             f"expert_url={args.expert_url!r} chooses its own")
    if args.quantization is not None and args.expert_url is None:  # before the committee loads, not after
        from o1_retriever.quantized import require_bitsandbytes
        require_bitsandbytes(args.quantization)
    if not args.committee:
        raise ValueError("committee must name at least one member: 'bm25', 'minilm' or a sentence-transformers path")
    check_output_path(args.output, "--output", folder=False)


def make_expert(args: SynthesisArguments):
    from .experts import HFExpert, OpenAIExpert
    if args.expert_url:
        return OpenAIExpert(args.expert_url, args.expert_model, api_key_env=args.api_key_env,
                            concurrency=args.concurrency, retries=args.retries, temperature=args.temperature,
                            top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    return HFExpert(args.expert, quantization=args.quantization, temperature=args.temperature, top_p=args.top_p,
                    max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed)


def _doc_to_query_cache(args) -> Path:
    return Path(args.output + ".d2q.jsonl")


def _doc_to_query_pairs(args, data, expert, progress, have: dict) -> list[LabeledPair]:
    cache = _doc_to_query_cache(args)
    made_with = doc_to_query_recipe(args, expert)
    check_resume(cache, have, made_with)  # the expert as loaded
    ids = random.Random(args.seed).sample(sorted(data.corpus), min(args.doc_to_query, len(data.corpus)))
    todo = [d for d in ids if d not in have]
    if todo:
        with cache.open("a", encoding="utf-8") as f:
            for i, texts in expert.generate_stream([query_messages(data.corpus[d]) for d in todo], 1, progress):
                have[todo[i]] = {"doc_id": todo[i], "query": clean_query(texts[0]), **made_with}
                f.write(json.dumps(have[todo[i]]) + "\n")
                f.flush()
    empty = [d for d in ids if not have[d]["query"]]
    if empty:
        warnings.warn(f"skipped {len(empty)} passages whose generated query was empty: {empty[:5]}", stacklevel=2)
    return [LabeledPair(f"d2q-{d}", have[d]["query"], [d]) for d in ids if have[d]["query"]]


def _read_pairs(path: str) -> list[dict]:
    """Records as read (every field is passed on), validated as training data; each gets a query_id
    (its own, else `line-N`) so that a resumed run can skip it."""
    valid = {r.line for r in load_triplets(path)}  # raises on a bad record; counts those without a positive
    records = []
    for n, obj in read_jsonl(Path(path)):
        if n in valid:
            records.append({**obj, "query_id": str(obj.get("query_id", f"line-{n}")),
                            "pos": text_list(obj, "pos", path, n), "neg": text_list(obj, "neg", path, n)})
    twice = sorted(q for q, n in Counter(r["query_id"] for r in records).items() if n > 1)
    if twice:
        raise ValueError(f"{path}: query_id must be unique (resuming skips by it); repeated: {twice[:5]}")
    return records


def _synthesize_pairs(args: SynthesisArguments, expert, members: dict, progress: bool) -> SynthesisResult:
    records = _read_pairs(args.pairs)
    records = records[: args.limit] if args.limit else records
    out = Path(args.output)
    done = read_done(out)
    check_resume(out, done, recipe(args, expert_identity(args, expert)))  # before any model loads
    corpus = list(load_beir(args.data, None).corpus.values()) if args.data else []
    # BM25 judges against indexed passages, and the IDF should be the corpus's: index the corpus plus
    # the records' own passages (a title pair's positive is its abstract without the title).
    known = set(corpus)
    corpus += list(dict.fromkeys(p for r in records for p in r["pos"] + r["neg"] if p not in known))
    for spec in args.committee:
        if spec not in members:
            members[spec] = load_member(spec, corpus)
    committee = Committee([members[s] for s in args.committee], args.vote)
    expert = expert or make_expert(args)
    made_with = recipe(args, expert_identity(args, expert))
    check_resume(out, done, made_with)
    out.parent.mkdir(parents=True, exist_ok=True)
    todo = [r for r in records if r["query_id"] not in done]
    pool = [(r["query_id"], r["query"], r["pos"][0]) for r in records]
    written = 0
    with out.open("a", encoding="utf-8") as f:
        queries = [(r["query_id"], r["query"]) for r in todo]
        for i, candidates in expert.generate_stream(conversations(args, queries, pool), args.num_candidates, progress):
            r = todo[i]
            decision = committee.decide(_at_least_two(candidates, r["query_id"]), r["pos"][0])
            f.write(json.dumps({**r, **_thought_fields(candidates, decision, made_with)}, ensure_ascii=False) + "\n")
            f.flush()
            written += 1
    return SynthesisResult(str(out), written, len(records) - len(todo))


def _at_least_two(candidates: list[str], query_id: str) -> list[str]:
    if len(candidates) < 2:
        raise ExpertError(f"the expert returned {len(candidates)} candidates for query {query_id}; need >= 2")
    return candidates


def _thought_fields(candidates: list[str], decision, made_with: dict) -> dict:
    return {"thought": candidates[decision.chosen], "candidates": candidates, "chosen": decision.chosen,
            "scores": decision.scores, "votes": decision.votes, **made_with}


def synthesize(args: SynthesisArguments, expert=None, members: dict | None = None,
               progress: bool = True) -> SynthesisResult:
    """Run the whole pipeline; `expert` and `members` ({spec: member}) may be passed in to reuse them."""
    args = expand_user_paths(args, ("data", "pairs", "output"))
    check_synthesis_arguments(args)
    if args.pairs:
        return _synthesize_pairs(args, expert, dict(members or {}), progress)
    data = load_beir(args.data, None if args.doc_to_query else args.split)
    # Qrels that leave no usable pair fail here, not after the expert and the committee have loaded.
    pairs = None if args.doc_to_query else labeled_pairs(data)
    corpus_ids = list(data.corpus)
    corpus = [data.corpus[d] for d in corpus_ids]
    out = Path(args.output)
    done = read_done(out)
    # Before any model loads: the settings the records there were made with, and the generated queries' cache.
    check_resume(out, done, recipe(args, expert_identity(args, expert)))
    d2q_done = read_done(_doc_to_query_cache(args), key="doc_id") if args.doc_to_query else {}
    check_resume(_doc_to_query_cache(args), d2q_done, doc_to_query_recipe(args, expert))
    out.parent.mkdir(parents=True, exist_ok=True)
    members = dict(members or {})
    for spec in [*args.committee, *args.negatives]:
        if spec not in members:
            members[spec] = load_member(spec, corpus)
    committee = Committee([members[s] for s in args.committee], args.vote)
    expert = expert or make_expert(args)
    made_with = recipe(args, expert_identity(args, expert))
    check_resume(out, done, made_with)  # the expert as loaded

    if pairs is None:
        pairs = _doc_to_query_pairs(args, data, expert, progress, d2q_done)
    pairs = pairs[: args.limit] if args.limit else pairs
    pool = [(p.query_id, p.query, data.corpus[p.positive_ids[0]]) for p in pairs]
    todo = [p for p in pairs if p.query_id not in done]
    negatives = mine_negatives([p.query for p in todo], [set(p.positive_ids) for p in todo], corpus_ids, corpus,
                               [members[s] for s in args.negatives], args.num_negatives)
    written = 0
    with out.open("a", encoding="utf-8") as f:
        queries = [(p.query_id, p.query) for p in todo]
        for i, candidates in expert.generate_stream(conversations(args, queries, pool), args.num_candidates, progress):
            p = todo[i]
            decision = committee.decide(_at_least_two(candidates, p.query_id), data.corpus[p.positive_ids[0]])
            record = {"query_id": p.query_id, "query": p.query, "pos_ids": p.positive_ids,
                      "pos": [data.corpus[d] for d in p.positive_ids], "neg_ids": negatives[i],
                      "neg": [data.corpus[d] for d in negatives[i]],
                      **_thought_fields(candidates, decision, made_with)}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()  # one record at a time: a crash loses only queries still in flight
            written += 1
    return SynthesisResult(str(out), written, len(pairs) - len(todo))
