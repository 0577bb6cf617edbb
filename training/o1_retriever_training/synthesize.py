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
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .arguments import SynthesisArguments, check_output_path
from .committee import VOTES, Committee
from .data import LabeledPair, labeled_pairs, load_beir, load_triplets, read_jsonl, text_list
from .members import load_member
from .negatives import mine_negatives

THOUGHT_SYSTEM = ("You are an expert in information retrieval. Given a search query, write a short passage "
                  "(two to four sentences) with the knowledge that a relevant document would contain. "
                  "Write only the passage.")
QUERY_SYSTEM = "Write one short search query that the passage answers. Reply with the query only."


@dataclass
class SynthesisResult:
    output: str
    written: int
    already_done: int  # records found in the output from an earlier run, not paid for again


def shorten(text: str, words: int = 60) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def thought_messages(query: str, shots: list[tuple[str, str]]) -> list[dict]:
    """Few-shot chat: each shot is a (query -> relevant passage) exchange, then the real query."""
    messages = [{"role": "system", "content": THOUGHT_SYSTEM}]
    for q, passage in shots:
        messages += [{"role": "user", "content": f"Query: {q}"}, {"role": "assistant", "content": shorten(passage)}]
    return messages + [{"role": "user", "content": f"Query: {query}"}]


def query_messages(passage: str) -> list[dict]:
    return [{"role": "system", "content": QUERY_SYSTEM}, {"role": "user", "content": f"Passage: {shorten(passage, 120)}"}]


def clean_query(text: str) -> str:
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    return re.sub(r"^(search\s+)?query\s*:\s*", "", line.strip(), flags=re.I).strip(" \"'")


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
                path.write_text("".join(lines[:-1]), encoding="utf-8")
                break
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}); fix or move the file before resuming") from e
        done[str(record[key])] = record
    return done


def _path_key(value):
    """A local path in its resolved form (the same folder named relatively or absolutely is one), else as is."""
    if isinstance(value, str) and value and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def _bundled_expert_dir() -> Path:
    """Where this install keeps the bundled expert's converted copy (default_model.smollm2_base_dir), named without
    converting it."""
    from o1_retriever.default_model import cache_dir
    return cache_dir() / "models" / "SmolLM2-135M-Instruct"


def _expert_key(name):
    """The expert of this run: the bundled one only when none is given or the path is this install's copy of it; a
    folder of one's own with the same name may hold other weights."""
    from .experts import BUNDLED_EXPERT
    key = _path_key(name)
    if name is None or key == BUNDLED_EXPERT or key == str(_bundled_expert_dir().resolve()):
        return BUNDLED_EXPERT
    return key


def _stored_expert_key(name):
    """The expert a stored record names. Records from before the label named the bundled expert by its converted
    copy, which on another install lies under that install's cache (<cache>/o1_retriever/models/...)."""
    from .experts import BUNDLED_EXPERT
    if isinstance(name, str) and Path(name).parts[-3:] == ("o1_retriever", "models", "SmolLM2-135M-Instruct"):
        return BUNDLED_EXPERT
    return _expert_key(name)


def _member_name(spec: str) -> str:
    """The name a committee member scores under (members.load_member)."""
    return spec if spec in ("bm25", "minilm") else Path(spec).name


def expert_identity(args: SynthesisArguments, expert=None) -> dict:
    """How records name the expert: the model given (the bundled one by a label) or the server's URL and model
    name. From the arguments before it loads, or from `expert` itself."""
    if expert is not None:
        model = getattr(expert, "model", None)  # a server's model name; a local expert's is its network
        return {"expert": _expert_key(getattr(expert, "name", "")),
                **({"expert_model": model} if isinstance(model, str) else {})}
    if args.expert_url:
        return {"expert": args.expert_url, "expert_model": args.expert_model}
    return {"expert": _expert_key(None if args.expert is None else str(args.expert))}


def recipe(args: SynthesisArguments, expert_fields: dict) -> dict:
    """The settings every record stores and a resume must share."""
    fields = {**expert_fields, "vote": args.vote, "num_candidates": args.num_candidates,
              "committee": [_path_key(spec) for spec in args.committee], "data": _path_key(args.data)}
    # Where the queries come from: a qrels split, else (None) the expert (doc-to-query) or a pairs file.
    fields["split"] = None if args.pairs or args.doc_to_query else args.split
    fields["pairs"] = _path_key(args.pairs)
    # Mined negatives (a pairs file brings its own).
    fields["negatives"] = None if args.pairs else [_path_key(spec) for spec in args.negatives]
    fields["num_negatives"] = None if args.pairs else args.num_negatives
    return fields


def _comparable(setting: str, value, stored: bool = False):
    if setting == "expert":
        return _stored_expert_key(value) if stored else _expert_key(value)
    if setting in ("committee", "negatives") and value is not None:  # the members' order changes nothing
        return sorted(_path_key(spec) for spec in value)
    return _path_key(value) if setting in ("data", "pairs") else value


def check_resume(path: Path, done: dict[str, dict], now: dict) -> None:
    """Refuse to append records made under `now` to a file whose records were made otherwise. A setting that
    older records did not store is taken from what they hold (candidates, scores) or else not compared."""
    checked = set()  # (setting, value there): each distinct value is compared once, not once per record
    for key, record in done.items():
        for setting, value in now.items():
            if setting in record:
                then = record[setting]
            elif setting == "num_candidates" and "candidates" in record:
                then = len(record["candidates"])
            elif setting == "committee" and "scores" in record:  # older records: the members' names
                then, value = sorted(record["scores"]), sorted(_member_name(spec) for spec in value)
            else:
                continue
            seen = (setting, json.dumps(then, sort_keys=True))
            if seen in checked:
                continue
            checked.add(seen)
            if _comparable(setting, then, stored=True) != _comparable(setting, value):
                raise ValueError(
                    f"{path} holds records made with {setting}={then!r} (e.g. {key}), but this run has "
                    f"{setting}={value!r}; resuming would mix two recipes in one file. Write to another --output, "
                    f"or delete {path} to start over (or rerun with the settings it was made with)")


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


def _doc_to_query_recipe(args, expert=None) -> dict:
    return {**expert_identity(args, expert), "data": _path_key(args.data)}


def _doc_to_query_pairs(args, data, expert, progress, have: dict) -> list[LabeledPair]:
    cache = _doc_to_query_cache(args)
    made_with = _doc_to_query_recipe(args, expert)
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
        for i, candidates in expert.generate_stream(_conversations(args, queries, pool), args.num_candidates, progress):
            r = todo[i]
            decision = committee.decide(_at_least_two(candidates, r["query_id"]), r["pos"][0])
            f.write(json.dumps({**r, **_thought_fields(candidates, decision, made_with)}, ensure_ascii=False) + "\n")
            f.flush()
            written += 1
    return SynthesisResult(str(out), written, len(records) - len(todo))


def _conversations(args, queries: list[tuple[str, str]], pool: list) -> list[list[dict]]:
    """One few-shot chat per (query id, query); shots are other queries' (query, positive) pairs, seeded per query."""
    out = []
    for qid, query in queries:
        shots = []
        if args.num_shots:  # the pool minus this query is a copy per query: skip it when no shot is asked for
            others = [(q, passage) for other, q, passage in pool if other != qid]
            shots = random.Random(f"{args.seed}/{qid}").sample(others, min(args.num_shots, len(others)))
        out.append(thought_messages(query, shots))
    return out


def _at_least_two(candidates: list[str], query_id: str) -> list[str]:
    if len(candidates) < 2:
        raise RuntimeError(f"the expert returned {len(candidates)} candidates for query {query_id}; need >= 2")
    return candidates


def _thought_fields(candidates: list[str], decision, made_with: dict) -> dict:
    return {"thought": candidates[decision.chosen], "candidates": candidates, "chosen": decision.chosen,
            "scores": decision.scores, "votes": decision.votes, **made_with}


def synthesize(args: SynthesisArguments, expert=None, members: dict | None = None,
               progress: bool = True) -> SynthesisResult:
    """Run the whole pipeline; `expert` and `members` ({spec: member}) may be passed in to reuse them."""
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
    check_resume(_doc_to_query_cache(args), d2q_done, _doc_to_query_recipe(args, expert))
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
        for i, candidates in expert.generate_stream(_conversations(args, queries, pool), args.num_candidates, progress):
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
