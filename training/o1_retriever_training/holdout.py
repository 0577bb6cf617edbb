"""Hold out some labelled training queries as a dev split.

Inference settings (sampling temperature, aggregation) must be chosen on queries the model never trained
on, and never on test. This takes a seeded sample of a dataset's training queries out of the synthesized
records and writes them as a small BEIR folder (the corpus is linked, not copied) for `o1-retriever eval`:

    python -m o1_retriever_training.holdout --records runs/x/train.jsonl --dataset ../shared/data/scifact \
        --split train --num-queries 100 --seed 1234 --train-out runs/x/train_fit.jsonl --dev-dir runs/x/scifact_dev
    o1-retriever eval --dataset runs/x/scifact_dev --split dev --model runs/x/model --k 0,3
"""
from __future__ import annotations

import argparse
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from o1_retriever.atomic import write_text_atomically
from o1_retriever.corpus import read_jsonl
from o1_retriever.evaluation.data import qrels_path, read_beir_jsonl, read_qrels

from .arguments import check_output_path
from .atomic_outputs import remove_leftovers, replaced_folder, set_aside


@dataclass
class Holdout:
    held_out: list[str]   # query ids moved to the dev split
    kept: int             # records written to train_out


def holdout(records, dataset, split: str, num_queries: int, seed: int, train_out, dev_dir) -> Holdout:
    """Move `num_queries` of `dataset`'s `split` queries found in `records` (JSONL with `query_id`) into a
    BEIR folder `dev_dir` (qrels/dev.tsv); write the remaining records to `train_out`."""
    # "~" expanded as check_output_path reads it: the shell leaves --train-out=~/fit.jsonl as written
    records, dataset, train_out, dev_dir = (Path(p).expanduser() for p in (records, dataset, train_out, dev_dir))
    if isinstance(num_queries, bool) or not isinstance(num_queries, int) or num_queries <= 0:
        raise ValueError(f"num_queries must be a positive int, got {num_queries!r}")
    if train_out.resolve() == records.resolve():
        raise ValueError(f"train_out must differ from records ({records}): the input would be overwritten")
    # The dev folder's corpus.jsonl is replaced by a link: a real corpus there (the dataset's own, when dev_dir is the
    # dataset) would be deleted, and the dataset's queries.jsonl overwritten with the held-out ones.
    if dev_dir.resolve() == dataset.resolve():
        raise ValueError(f"dev_dir must differ from dataset ({dataset}): its corpus and queries would be overwritten")
    # Both outputs writable before either is written: a dev folder that fails after train_out was written would
    # leave the held-out queries in neither.
    check_output_path(train_out, "--train-out", folder=False)
    check_output_path(dev_dir, "--dev-dir", folder=True)
    for name, path in (("train_out", train_out), ("records", records)):
        if path.resolve().is_relative_to(dev_dir.resolve()):
            raise ValueError(f"{name} ({path}) must be outside dev_dir ({dev_dir}): the dev folder is replaced whole")
    _check_replaceable(dev_dir, dataset)
    qrels = read_qrels(qrels_path(dataset, split))
    rows = [obj for _, obj in read_jsonl(records)]
    missing = [n for n, obj in enumerate(rows, 1) if "query_id" not in obj]
    if missing:
        raise ValueError(f"{records}:{missing[0]}: record has no 'query_id' (written by `o1-retriever synthesize`)")
    candidates = sorted({str(obj["query_id"]) for obj in rows} & set(qrels))
    if num_queries >= len(candidates):
        raise ValueError(f"num_queries={num_queries} must be below the {len(candidates)} records' queries judged "
                         f"in {dataset}/qrels/{split}.tsv")
    held = sorted(random.Random(seed).sample(candidates, num_queries))
    chosen = set(held)
    kept = [obj for obj in rows if str(obj["query_id"]) not in chosen]
    queries = [q for q in read_beir_jsonl(dataset / "queries.jsonl", "query", ("_id", "text")) if q["_id"] in chosen]
    lines = [f"{q}\t{d}\t{g}\n" for q in held for d, g in qrels[q].items()]
    # Each output appears whole or not at all, and no kill leaves an old one beside a new one (held-out queries in
    # the records trained on): the old train_out goes aside first and the new one comes last, after the dev folder.
    # A dev folder that fails to write (a full disk) puts the old train_out back: a failed call loses nothing.
    aside = set_aside(train_out)
    try:
        with replaced_folder(dev_dir) as folder:
            (folder / "qrels").mkdir()
            (folder / "corpus.jsonl").symlink_to((dataset / "corpus.jsonl").resolve())
            (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
            (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(lines),
                                                      encoding="utf-8")
    except BaseException:
        if aside is not None:
            os.replace(aside, train_out)
        raise
    write_text_atomically(train_out, "".join(json.dumps(obj) + "\n" for obj in kept))
    if aside is not None:
        remove_leftovers(train_out)
    return Holdout(held, len(kept))


def _check_replaceable(dev_dir: Path, dataset: Path) -> None:
    """The dev folder is replaced whole: refuse one holding anything an earlier holdout did not write there."""
    corpus = dev_dir / "corpus.jsonl"
    if corpus.exists() and not corpus.is_symlink():
        raise ValueError(f"dev_dir={str(dev_dir)!r} holds a corpus.jsonl of its own, which would be replaced by a "
                         f"link to {dataset / 'corpus.jsonl'}; name a new folder")
    if not dev_dir.is_dir():
        return
    others = [p.name for p in dev_dir.iterdir() if p.name not in ("corpus.jsonl", "queries.jsonl", "qrels")]
    qrels = dev_dir / "qrels"
    if qrels.is_dir():
        others += [f"qrels/{p.name}" for p in qrels.iterdir() if p.name != "dev.tsv"]
    elif qrels.exists():
        others.append("qrels (a file)")
    others.sort()
    if others:
        raise ValueError(f"dev_dir={str(dev_dir)!r} holds {', '.join(others[:3])}, not written by a holdout, which "
                         f"would be deleted (the dev folder is replaced whole); name a new folder")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m o1_retriever_training.holdout", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", required=True, help="synthesized JSONL records (with query_id)")
    p.add_argument("--dataset", required=True, help="BEIR folder the held-out queries come from")
    p.add_argument("--split", default="train", help="qrels split of those queries (default: train)")
    p.add_argument("--num-queries", type=int, default=100, help="queries to hold out (default: 100)")
    p.add_argument("--seed", type=int, default=1234, help="sampling seed (default: 1234)")
    p.add_argument("--train-out", required=True, help="where the remaining records go")
    p.add_argument("--dev-dir", required=True, help="BEIR folder written for the held-out queries (split 'dev')")
    args = p.parse_args(argv)
    try:
        result = holdout(args.records, args.dataset, args.split, args.num_queries, args.seed, args.train_out,
                         args.dev_dir)
    except (ValueError, OSError) as e:  # OSError: paths the system refuses
        p.exit(2, f"{p.prog}: error: {e}\n")
    print(f"held out {len(result.held_out)} queries -> {args.dev_dir}; {result.kept} records -> {args.train_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
