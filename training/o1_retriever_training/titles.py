"""Title-to-abstract pairs: doc-to-query training data for free, from a corpus's own titles.

Each sampled document's title becomes a query, its text without the title the positive passage. Hard
negatives are the passages BM25 ranks highest for the title (other documents, also written without their
titles: a title in the negatives alone would be a shortcut the model could learn instead of the topic). No
judgement, no query and no LLM is involved, so any corpus can be used, the evaluation corpus included (as
doc-to-query methods do); documents without a title are skipped. Records carry no thought and train the
bare-query path (k=0, and the query's own share under `mean_with_query`):

    python -m o1_retriever_training.titles --data ../shared/data/scifact --num-docs 1000 \
        --output runs/x/titles_scifact.jsonl
    cat runs/x/train_fit.jsonl runs/x/titles_scifact.jsonl > runs/x/train_mix.jsonl

Corpora that keep the title inside the text name the word that ends it: NFCorpus's texts read
"<title> abstract <body>", so `--inline-title abstract` splits them there (only untitled documents, and only
where the word comes within the first `MAX_INLINE_TITLE_WORDS` words).

A later training stage can take fresh titles, none of those an earlier stage saw: `--exclude
runs/x/titles_scifact.jsonl` skips every document that is a positive there.

The same pairs make a held-out evaluation set on any corpus, labelled or not: `--dev-dir DIR` also writes them
as a BEIR folder (split `dev`) whose queries are the titles and whose corpus is the untitled texts of the
positives, their hard negatives and random other documents up to `--dev-corpus-size`. Exclude every stage's
pairs when drawing it, and exclude its JSONL (`--output`) from every later stage:

    python -m o1_retriever_training.titles --data ../shared/data/scifact --num-docs 300 --seed 7 \
        --exclude runs/x/train_fit.jsonl runs/x/titles_scifact.jsonl --output runs/x/dev_titles.jsonl \
        --dev-dir runs/x/title_dev_scifact
    o1-retriever eval --dataset runs/x/title_dev_scifact --split dev --k 0,3
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from o1_retriever.atomic import atomic_path, write_text_atomically
from o1_retriever.corpus import read_jsonl
from o1_retriever.evaluation.data import document_text, read_beir_jsonl

from .arguments import check_output_path
from .atomic_outputs import remove_leftovers
from .members import BM25Member
from .negatives import mine_negatives


MAX_INLINE_TITLE_WORDS = 40  # farther in, the marker word is part of the abstract, not the end of a title


def split_inline_title(text: str, marker: str) -> tuple[str, str]:
    """(title, body) of a text that starts with its title and `marker`; ("", text) when it does not."""
    words, marker = text.split(), marker.lower()
    cut = next((i for i, w in enumerate(words[:MAX_INLINE_TITLE_WORDS]) if w.lower() == marker), None)
    if cut is None:
        return "", " ".join(words)
    return " ".join(words[:cut]), " ".join(words[cut + 1:])


def excluded_documents(paths) -> set[str]:
    """The positives' document ids of the title records in the JSONL files `paths` (earlier stages' pairs)."""
    ids = set()
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"exclude file {path} does not exist (a JSONL of earlier title pairs)")
        for number, record in read_jsonl(path):  # blank lines skipped, bad JSON named by file:line
            if not isinstance(record.get("pos_ids"), list):
                raise ValueError(f"{path}:{number}: not a training record with 'pos_ids' (written by this module)")
            ids.update(str(d) for d in record["pos_ids"])
    return ids


def _titles_and_bodies(data, inline_title: str | None):
    """The corpus rows of the BEIR folder `data`, and each document's title and text without it."""
    rows = list(read_beir_jsonl(Path(data) / "corpus.jsonl", "document", ("_id",)))
    titles = {r["_id"]: " ".join(str(r.get("title") or "").split()) for r in rows}
    bodies = {r["_id"]: " ".join(str(r.get("text") or "").split()) for r in rows}
    if inline_title:
        for d in titles:
            if not titles[d]:
                titles[d], bodies[d] = split_inline_title(bodies[d], inline_title)
    return rows, titles, bodies


def title_pairs(data, num_docs: int, num_negatives: int = 7, seed: int = 0, min_title_words: int = 3,
                exclude=(), inline_title: str | None = None) -> list[dict]:
    """Up to `num_docs` records {query_id, query, pos_ids, pos, neg_ids, neg, thought: None} from the BEIR
    folder `data`, documents sampled with `seed`, none whose id is in `exclude` (ids, e.g. from
    `excluded_documents`). Excluded documents can still be negatives: only their titles stay unseen.
    `inline_title`: the word that ends a title kept inside the text of untitled documents (see the module doc)."""
    for name, value, low in (("num_docs", num_docs, 1), ("num_negatives", num_negatives, 0),
                             ("min_title_words", min_title_words, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if isinstance(exclude, str):
        raise TypeError(f"exclude must be a collection of document ids, got the string {exclude!r}")
    exclude = set(exclude)
    if inline_title is not None and (not isinstance(inline_title, str) or len(inline_title.split()) != 1):
        raise ValueError(f"inline_title must be one word (e.g. 'abstract'), got {inline_title!r}")
    rows, titles, bodies = _titles_and_bodies(data, inline_title)
    full = {r["_id"]: document_text(r) for r in rows}  # what synthesis and evaluation index, for BM25's statistics
    titled = [d for d in titles if len(titles[d].split()) >= min_title_words and bodies[d]]
    if not titled:
        raise ValueError(f"{data}/corpus.jsonl has no document with a title of >= {min_title_words} words and a "
                         f"text: title pairs need titles (--inline-title WORD where the text starts with one; "
                         f"`synthesize --doc-to-query` for untitled corpora)")
    usable = sorted(d for d in titled if d not in exclude)
    if not usable:
        raise ValueError(f"all {len(titled)} titled documents of {data} are excluded: no fresh title is left")
    chosen = random.Random(seed).sample(usable, min(num_docs, len(usable)))
    corpus_ids = [d for d in full if full[d]]
    corpus = [full[d] for d in corpus_ids]
    negatives = mine_negatives([titles[d] for d in chosen], [{d} for d in chosen], corpus_ids, corpus,
                               [BM25Member(corpus)], num_negatives)
    records = []
    for d, negs in zip(chosen, negatives):
        negs = [n for n in negs if bodies[n]]  # a title-only document would be an empty passage without its title
        records.append({"query_id": f"title-{d}", "query": titles[d], "pos_ids": [d], "pos": [bodies[d]],
                        "neg_ids": negs, "neg": [bodies[n] for n in negs], "thought": None, "source": "title"})
    return records


def _check_dev_target(dev_dir, corpus_size) -> Path:
    """Refuse a bad corpus size or a non-empty `dev_dir` (nothing there is overwritten); the folder as a Path."""
    if isinstance(corpus_size, bool) or not isinstance(corpus_size, int) or corpus_size < 1:
        raise ValueError(f"corpus_size must be an int >= 1, got {corpus_size!r}")
    dev_dir = check_output_path(dev_dir, "--dev-dir", folder=True)
    if dev_dir.exists() and any(dev_dir.iterdir()):
        raise ValueError(f"dev_dir {dev_dir} is not empty: choose a new folder (an existing dev set is kept)")
    return dev_dir


def write_title_dev(records: list[dict], data, dev_dir, corpus_size: int = 1500, seed: int = 0,
                    inline_title: str | None = None) -> int:
    """Write title pairs `records` (from `title_pairs` on `data`) as the BEIR folder `dev_dir`, split `dev`:
    queries are the titles, each judged relevant (1) to its own document; the corpus holds the untitled texts
    of the positives, then of their negatives, then of random other documents (`seed`) up to `corpus_size`.
    A smaller corpus than the full one keeps a new model's evaluation in minutes on a CPU; the negatives keep
    it hard. Returns the number of documents written. Refuses a non-empty `dev_dir` (nothing is overwritten)."""
    dev_dir = _check_dev_target(dev_dir, corpus_size)
    docs, bodies = _dev_documents(records, data, corpus_size, seed, inline_title)
    _write_dev_folder(records, docs, bodies, dev_dir)
    return len(docs)


def _dev_documents(records, data, corpus_size, seed, inline_title) -> tuple[list[str], dict[str, str]]:
    """The dev corpus's document ids (positives, negatives, random fill) and every document's untitled text."""
    if not records:
        raise ValueError("records is empty: a dev set needs at least one title pair")
    _, _, bodies = _titles_and_bodies(data, inline_title)
    needed = list(dict.fromkeys([d for r in records for d in r["pos_ids"]] +
                                [d for r in records for d in r["neg_ids"]]))
    missing = [d for d in needed if not bodies.get(d)]
    if missing:
        raise ValueError(f"{len(missing)} documents of the records (e.g. {missing[0]!r}) have no text in {data}: "
                         f"the records were not drawn from this corpus (or with another --inline-title)")
    if corpus_size < len(needed):
        raise ValueError(f"corpus_size {corpus_size} is below the {len(needed)} positives and negatives of the "
                         f"records: raise it or draw fewer pairs")
    taken = set(needed)
    others = sorted(d for d in bodies if bodies[d] and d not in taken)
    return needed + random.Random(seed).sample(others, min(corpus_size - len(needed), len(others))), bodies


def _write_dev_folder(records, docs, bodies, dev_dir: Path) -> None:
    """Written in a hidden sibling renamed into place: a run killed mid-write leaves no half dev set that looks
    whole, nor a folder the re-run refuses as not empty."""
    remove_leftovers(dev_dir)  # a corpus-sized copy per kill
    with atomic_path(dev_dir) as folder:  # the rename replaces an empty `dev_dir`
        (folder / "qrels").mkdir(parents=True)
        with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps({"_id": d, "title": "", "text": bodies[d]}, ensure_ascii=False) + "\n"
                         for d in docs)
        with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps({"_id": r["query_id"], "text": r["query"]}, ensure_ascii=False) + "\n"
                         for r in records)
        with (folder / "qrels" / "dev.tsv").open("w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            f.writelines(f"{r['query_id']}\t{d}\t1\n" for r in records for d in r["pos_ids"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m o1_retriever_training.titles", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="BEIR folder whose corpus.jsonl has titles")
    p.add_argument("--num-docs", type=int, default=1000, help="documents to sample (default: 1000)")
    p.add_argument("--num-negatives", type=int, default=7, help="BM25 hard negatives per record (default: 7)")
    p.add_argument("--min-title-words", type=int, default=3, help="skip shorter titles (default: 3)")
    p.add_argument("--inline-title", metavar="WORD",
                   help="untitled documents whose text reads '<title> WORD <body>' (NFCorpus: abstract)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--exclude", nargs="+", default=[], metavar="JSONL",
                   help="earlier title pairs whose documents are not sampled again (a later training stage)")
    p.add_argument("--output", required=True, help="JSONL to write (training records for `o1-retriever train`)")
    p.add_argument("--dev-dir", metavar="DIR",
                   help="also write the pairs as a held-out BEIR folder (split 'dev') for `o1-retriever eval`")
    p.add_argument("--dev-corpus-size", type=int, default=1500,
                   help="documents in the --dev-dir corpus: positives, negatives, then random ones (default: 1500)")
    args = p.parse_args(argv)
    try:
        return _write(args)
    except (ValueError, OSError) as e:  # OSError: paths the system refuses
        p.exit(2, f"{p.prog}: error: {e}\n")


def _check_replaceable(output: Path, exclude) -> None:
    """--output is rewritten whole: refuse where that would lose records made elsewhere (synthesized thoughts paid
    for) or the earlier stage's pairs this draw excludes."""
    if any(Path(e).resolve() == output.resolve() for e in exclude):
        raise ValueError(f"--output {output} is also in --exclude: writing the new pairs there would replace the "
                         f"earlier ones; name a new file")
    if output.is_file() and output.stat().st_size:
        first = next(read_jsonl(output), (1, {}))
        if first[1].get("source") != "title":
            raise ValueError(f"--output {output} holds records other than title pairs (line {first[0]} has no "
                             f"\"source\": \"title\"), which writing would replace; name a new file")


def _write(args) -> int:
    out = check_output_path(args.output, "--output", folder=False)
    _check_replaceable(out, args.exclude)
    # before the draw (BM25 over the corpus), not after it
    dev_dir = _check_dev_target(args.dev_dir, args.dev_corpus_size) if args.dev_dir else None
    records = title_pairs(args.data, args.num_docs, args.num_negatives, args.seed, args.min_title_words,
                          excluded_documents(args.exclude), args.inline_title)
    if dev_dir:  # its refusals before anything is written
        docs, bodies = _dev_documents(records, args.data, args.dev_corpus_size, args.seed, args.inline_title)
    # The pairs first: a kill between the two writes leaves title pairs the re-run replaces and no dev folder,
    # not a finished dev folder the re-run would refuse as not empty.
    write_text_atomically(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    print(f"wrote {len(records)} title pairs to {out}")
    if dev_dir:
        _write_dev_folder(records, docs, bodies, dev_dir)
        print(f"wrote a dev set of {len(records)} titles over {len(docs)} untitled documents to {dev_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
