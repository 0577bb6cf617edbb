"""Core CLI verbs: demo, index, search."""
from __future__ import annotations

import glob
import json
import sys
import tempfile
import warnings
from pathlib import Path

from .cli_args import _hybrid_arg, _load, _model_args, collection_name, json_filter, query_text, thoughts_arg
from .display import bars_shown, print_hits
from .validation import check_writable_from, positive_int_arg

DEMO_QUERIES = ["Why does bread rise in the oven?", "How can the body fight off a virus it has seen before?",
                "What makes the planet Mars look red?"]


def run_demo(args) -> int:
    from rich.console import Console
    from rich.markup import escape

    from .corpus import DEMO_CORPUS, read_corpus
    from .index import O1Index
    console = Console()
    emb = _load(args)
    console.print(f"[bold]Model:[/bold] {escape(repr(emb))}")
    passages = read_corpus(DEMO_CORPUS)
    with tempfile.TemporaryDirectory() as tmp:
        index = O1Index(emb, path=tmp, collection="demo")
        index.add([p.id for p in passages], [p.full_text for p in passages])
        console.print(f"Indexed {len(index)} passages into a temporary Chroma collection.")
        for query, hits in zip(args.query or DEMO_QUERIES,
                               index.search(args.query or DEMO_QUERIES, top_k=args.top_k, k=args.k,
                                            hybrid=args.hybrid)):
            print_hits(console, query, hits)
    return 0


def run_index(args) -> int:
    if args.ray:
        from .distributed.cli import run_index_ray
        return run_index_ray(args)
    if getattr(args, "host", None) is not None:
        raise ValueError(f"--host {args.host}: loading into a Chroma server needs --ray; without it, pass --db DIR")
    if args.db is None:
        raise ValueError("--db DIR is required (a Chroma server, --host H, needs --ray)")
    from .corpus import read_corpus
    from .index import O1Index, check_database_path
    from .stored import already_indexed, open_database
    if (Path(args.corpus).expanduser() / "corpus.jsonl").is_file():  # a BEIR folder, as `eval --dataset` takes
        raise ValueError(f"--corpus {args.corpus} is a folder; pass its corpus file: "
                         f"--corpus {Path(args.corpus) / 'corpus.jsonl'} (a folder of corpus JSONL files is for --ray)")
    passages = read_corpus(args.corpus)  # parse everything before loading a model or touching the db
    db = check_database_path(args.db)
    check_writable_from(db, db, "--db")
    built_with = already_indexed(db, args, passages)
    if built_with:  # the same summary line as a run that embeds, and why no model was loaded
        print(f"indexed 0 passages into {args.db} ({len(passages)} already stored, skipped) (collection "
              f"{args.collection!r}, {built_with[0]} total); nothing new: the model was not loaded (the collection "
              f"records {built_with[1]!r}, loaded as --model and --dtype ask)")
        return 0
    embedder = _load(args)
    index = O1Index(embedder, collection=args.collection, client=open_database(db))
    interactive = bars_shown()
    if not interactive:
        print(f"indexing {len(passages)} passages into {args.db} (collection {args.collection!r})...",
              file=sys.stderr, flush=True)
    # Batch by batch, each stored as soon as it is embedded: a run killed at any moment loses at most one batch,
    # and running the same command again skips what is already stored with the same text.
    try:
        embedded, skipped = index.add_resumable([p.id for p in passages], [p.full_text for p in passages],
                                                [p.metadata or None for p in passages], batch_size=args.batch_size,
                                                show_progress_bar=interactive)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(index)} passages are stored in {args.db} (collection {args.collection!r}, marked "
              "incomplete); run the same command again to resume: what is stored is kept and not embedded again",
              file=sys.stderr)
        return 130
    kept = f" ({skipped} already stored, skipped)" if skipped else ""
    print(f"indexed {embedded} passages into {args.db}{kept} (collection {args.collection!r}, {len(index)} total)")
    return 0


def run_search(args) -> int:
    from rich.console import Console

    from .index import O1Index, existing_client
    queries = _batch_queries(args)  # a bad file or flag fails before the database opens or a model loads
    client = existing_client(args.db, args.collection)  # a mistyped --db or --collection fails before a model loads
    index = O1Index(_remote(args) if args.url else _load(args), collection=args.collection, client=client,
                    create=False)
    if args.where is not None and not index._matching(args.where, limit=1):
        # An empty table reads as "nothing relevant"; the filter, not the query, is what found nothing.
        print(_no_match_message(index, args.where), file=sys.stderr)
        if args.json and queries is None:
            print(json.dumps({"query": args.query, "thoughts": [], "hits": []}, ensure_ascii=False))
        return 0
    if queries is not None:
        from .batch_search import search_all
        try:
            search_all(index, queries, top_k=args.top_k, k=args.k, hybrid=args.hybrid, where=args.where,
                       trec=args.trec)
        except KeyboardInterrupt:
            print("\ninterrupted: the lines written hold every query finished so far", file=sys.stderr)
            return 130
        return 0
    hits = index.search(args.query, top_k=args.top_k, k=args.k, hybrid=args.hybrid, where=args.where)
    if args.json:  # for scripts: one JSON object on stdout, no table
        print(json.dumps({"query": args.query, "thoughts": hits[0].thoughts if hits else [],
                          "hits": [{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
                                   for h in hits]}, ensure_ascii=False))
    else:
        print_hits(Console(), args.query, hits)
    return 0


def _batch_queries(args):
    """`--queries FILE`'s (id, text) pairs, or None for one positional query; exactly one of the two is given."""
    if (args.query is None) == (args.queries is None):
        raise ValueError("search takes one query (a positional argument) or --queries FILE, not "
                         + ("both" if args.query is not None else "neither"))
    if args.queries is None:
        if args.trec:
            raise ValueError("--trec writes a run for --queries FILE; for one query use --json or the table")
        return None
    if args.json:
        raise ValueError("--queries always writes JSON lines (one object per query; --trec for a TREC run): "
                         "drop --json")
    from .batch_search import check_trec_ids, read_queries
    queries = read_queries(args.queries)
    if args.trec:
        check_trec_ids(queries)
    return queries


def _no_match_message(index, where: dict, sample: int = 1000) -> str:
    """What a --where that admits no document says, with the metadata keys the collection has (from a sample)."""
    metadatas = index.collection.get(limit=sample, include=["metadatas"])["metadatas"] or []
    keys = sorted({key for meta in metadatas if meta for key in meta})
    found = (f"metadata keys in this collection: {', '.join(keys)}" if keys
             else "this collection stores no metadata")
    return (f"no stored document matches --where {json.dumps(where, ensure_ascii=False)}; {found} "
            "(`index` keeps a corpus line's keys other than _id, text and title as metadata; the title is part of "
            "the text)")


def _remote(args):
    """The served model instead of a local one; the key comes from $O1_RETRIEVER_API_KEY (a flag would show in ps)."""
    from .server.client import RemoteEmbedder
    if args.model is not None or args.quantization is not None:
        raise ValueError("--url: the server's model thinks and embeds; drop --model/--quantization (start the server "
                         "with them instead)")
    return RemoteEmbedder(args.url)


def run_cache(args) -> int:
    from .cache import ThoughtCache
    from .default_model import cache_dir
    path = Path(args.path).expanduser() if args.path else cache_dir() / "thoughts.sqlite"
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):  # info and clear never create one
        print(f"no thought cache at {path}" + (" (an empty file)" if path.exists() else ""))
        return 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # the default file is the package's own: damaged, it is set aside and started anew, as models do
            cache = ThoughtCache(path, owned=not args.path)
        except ValueError as e:  # --path holds something else: the hint names the CLI's way out
            raise ValueError(f"{e} (here: `--path` names another file)") from e
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if cache.disabled:
        raise ValueError(f"thought cache {path} cannot be used: {cache.disabled}")
    set_aside = sorted(path.parent.glob(glob.escape(path.name) + ".corrupt*"))  # damaged files moved out of the way
    if args.action == "clear":
        for old in set_aside:
            old.unlink(missing_ok=True)
        print(f"removed {cache.clear()} cached thought set(s) from {path}"
              + (f" and {len(set_aside)} damaged file(s) set aside beside it" if set_aside else ""))
        return 0
    info = cache.info()
    print(f"path         {info['path']}\nentries      {info['entries']} (at most {info['max_entries']}; "
          f"$O1_RETRIEVER_CACHE_MAX_ENTRIES)\nsize         {info['bytes'] / 1e6:.2f} MB\nstate        {info['state']}")
    if set_aside:
        print(f"set aside    {len(set_aside)} damaged file(s), {sum(p.stat().st_size for p in set_aside) / 1e6:.2f} MB "
              "(cache clear removes them)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="index a small built-in corpus and run three thinking queries")
    _model_args(p)
    p.add_argument("--k", type=thoughts_arg, default=3, help="thoughts per query (0 = no thinking; default: 3)")
    p.add_argument("--top-k", type=positive_int_arg, default=3, help="hits to show per query (default: 3)")
    p.add_argument("--query", type=query_text, action="append",
                   help="your own query (repeatable; default: three built-in ones)")
    _hybrid_arg(p)
    p.set_defaults(func=run_demo)

    p = sub.add_parser("index", help="embed a corpus JSONL (_id, text, title) into a persistent Chroma db")
    _model_args(p)
    p.add_argument("--corpus", required=True, help="JSONL file, one {'_id','text','title'?} per line; the title is "
                   "prepended to the text, any other key is kept as metadata (for search --where)")
    p.add_argument("--db", default=None, help="Chroma persistence directory (with --ray, --host H instead: a Chroma "
                                                    "server)")
    p.add_argument("--collection", type=collection_name, default="o1-retriever",
                   help="collection name (default: o1-retriever)")
    p.add_argument("--batch-size", type=positive_int_arg, default=64, help="documents per write (default: 64)")
    from .distributed.cli import add_ray_arguments
    add_ray_arguments(p)
    p.set_defaults(func=run_index)

    p = sub.add_parser("search", help="think, embed and search an index made by `index`")
    _model_args(p)
    p.add_argument("query", type=query_text, nargs="?", default=None, help="the query text (or --queries FILE)")
    p.add_argument("--queries", default=None, metavar="FILE",
                   help="search every query of a BEIR queries.jsonl ({'_id','text'} per line) or a queries.tsv "
                        "(id<TAB>text); writes one JSON object per query to stdout, or a TREC run with --trec")
    p.add_argument("--trec", action="store_true",
                   help="with --queries: write a TREC run (qid Q0 docid rank score tag), as trec_eval and ranx read")
    p.add_argument("--db", required=True, help="Chroma persistence directory (the one `index --db` wrote)")
    p.add_argument("--collection", default="o1-retriever", help="collection name (default: o1-retriever)")
    p.add_argument("--k", type=thoughts_arg, default=3, help="thoughts per query (0 = no thinking; default: 3)")
    p.add_argument("--top-k", type=positive_int_arg, default=10, help="hits to return (default: 10)")
    p.add_argument("--url", default=None, help="an `o1-retriever serve` server to think and embed with instead of "
                                               "loading the model (key: $O1_RETRIEVER_API_KEY)")
    p.add_argument("--where", type=json_filter, default=None, metavar="JSON",
                   help="Chroma metadata filter, e.g. '{\"year\": {\"$gte\": 2020}}' (the corpus' extra keys)")
    p.add_argument("--json", action="store_true", help="print the thoughts and hits as one JSON object")
    _hybrid_arg(p)
    p.set_defaults(func=run_search)

    p = sub.add_parser("cache", help="show (info) or empty (clear) the persistent thought cache")
    p.add_argument("action", choices=["info", "clear"])
    p.add_argument("--path", default=None, help="cache file (default: thoughts.sqlite under $O1_RETRIEVER_CACHE, "
                                                 "else ~/.cache/o1_retriever)")
    p.set_defaults(func=run_cache)
