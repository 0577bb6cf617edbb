"""Command line for the Ray path: options other commands add (`add_ray_arguments`), the `index --ray` run, and
`python -m o1_retriever.distributed encode|think|load|index`. Nothing here imports Ray until a command runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_args import dtype_arg
from ..settings import add_setting_flags, overrides_of
from ..validation import check_choice, positive_int_arg
from .encode import DEFAULT_SHARD_SIZE

COMMANDS = ("index", "eval")


def port_arg(value: str) -> int:
    """argparse type of a Chroma server's port: 1 to 65535 (past it, the client fails with only 'could not connect')."""
    port = int(value) if value.strip().isdigit() else -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"a TCP port is 1 to 65535, got {value!r}")
    return port


def _actor_arguments(p, shards: bool = True) -> None:
    """The actors' options; `shards`: also those of a run that writes vector shards."""
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster to join, e.g. ray://head:10001 or auto (default: a local Ray)")
    p.add_argument("--actors", type=positive_int_arg, default=None, metavar="N",
                   help="actors, each loading the model once (default: one per GPU, else 2)")
    p.add_argument("--cpu-actors", action="store_true", help="run the actors on CPUs even where the cluster has GPUs")
    if shards:
        p.add_argument("--embed-batch-size", type=positive_int_arg, default=32, metavar="N",
                       help="texts per forward pass in each actor (default 32)")
        p.add_argument("--shard-size", type=positive_int_arg, default=DEFAULT_SHARD_SIZE, metavar="N",
                       help=f"rows per shard, the unit of work and of resume (default {DEFAULT_SHARD_SIZE})")


def add_ray_arguments(parser: argparse.ArgumentParser, command: str = "index", ray_flag: bool = True) -> None:
    """The options of the Ray path, for the `index` or `eval` sub-parser (cheap: Ray is not imported).
    `ray_flag=False` leaves out `--ray` itself, for a command that always runs on Ray."""
    check_choice(command, "command", COMMANDS)
    group = parser.add_argument_group("Ray (pip install \"o1-retriever[ray]\")",
                                      "these options apply with --ray" if ray_flag else None)
    if ray_flag:
        group.add_argument("--ray", action="store_true", help="embed the corpus on Ray Data actors (a local Ray is "
                                                               "started when no --address is given)")
    _actor_arguments(group, shards=command == "index")  # eval's own --batch-size serves its actors
    if command == "index":
        group.add_argument("--vectors", default=None, metavar="DIR",
                           help="folder for the Parquet vector shards (default: <corpus>.o1-vectors beside the "
                                "corpus); a re-run skips shards already there")
        if "--host" not in parser._option_string_actions:  # the module's own `index` has the store's options
            group.add_argument("--host", default=None, metavar="H", help="a Chroma server to load into instead of --db")
            group.add_argument("--port", type=port_arg, default=8000, help="the Chroma server's port (default 8000)")


def spec_from_args(args):
    """The model every actor loads, from the usual model options (those the parser has): every inference setting
    flag, as the collection records them and searches think with them."""
    from .workers import ModelSpec
    options = {name: getattr(args, name) for name in ("dtype", "quantization") if getattr(args, name, None) is not None}
    options.update(overrides_of(args))
    cache = getattr(args, "thought_cache", None)
    if isinstance(cache, str):
        options["thought_cache"] = False if cache == "off" else cache
    return ModelSpec(getattr(args, "model", None), options)


def default_vectors_dir(corpus) -> Path:
    corpus = Path(corpus).expanduser().resolve()
    return corpus.with_name(corpus.name + ".o1-vectors")


def _store_target(args) -> dict:
    db, host = getattr(args, "db", None), getattr(args, "host", None)
    if (db is None) == (host is None):
        raise ValueError("pass exactly one of --db DIR (a Chroma directory) or --host H (a Chroma server)")
    return {"path": db} if db is not None else {"host": host, "port": getattr(args, "port", 8000)}


def _use_gpus(args) -> bool | None:
    return False if args.cpu_actors else None


def _encode(args, kind: str, source, vectors):
    """`encode_files` with the command's options (it shuts down a Ray it started; one already running is left)."""
    from .encode import encode_files
    return encode_files(kind, source, vectors, spec_from_args(args), k=getattr(args, "k", 0), actors=args.actors,
                        batch_size=args.embed_batch_size, shard_size=args.shard_size, address=args.address,
                        use_gpus=_use_gpus(args))


def run_index_ray(args) -> int:
    """`o1-retriever index --ray`: encode the corpus on Ray actors into Parquet shards, then load them into Chroma
    (`--db` or `--host`). Both steps resume: a re-run encodes only missing shards and stores only missing records."""
    from ..index import _client, check_database_path
    from .load import load_into_chroma
    # Whatever would fail the load fails before the encode, not after it: the options (--batch-size is checked by
    # its parser), a --db that is a file, a Chroma server that does not answer. A --db is created only by the load.
    target = _store_target(args)
    if getattr(args, "device", None) is not None:
        raise ValueError(f"--device {args.device} does not apply with --ray: each actor runs on the GPU Ray gives "
                         "it, else on the CPU (--cpu-actors keeps them on CPUs)")
    db = target.get("path")
    if db is not None:
        check_database_path(db)
    client = None if db is not None else _client(None, target["host"], target["port"], create=True)
    vectors = Path(args.vectors).expanduser() if args.vectors else default_vectors_dir(args.corpus)
    result = _encode(args, "documents", args.corpus, vectors)
    print(f"encoded {result.rows} documents into {result.shards} shard(s) in {vectors} "
          f"({result.written} written by this run, {result.shards - result.written} already there)")
    collection = getattr(args, "collection", "o1-retriever")
    loaded = load_into_chroma(vectors, collection=collection, batch_size=getattr(args, "batch_size", 1000),
                              path=db, client=client)
    where = target.get("path") or f"{target['host']}:{target['port']}"
    kept = f" ({loaded.skipped} already stored, skipped)" if loaded.skipped else ""
    print(f"indexed {loaded.stored} passages into {where}{kept} (collection {collection!r}, {loaded.count} total)")
    return 0


def eval_options(args) -> dict:
    """What `evaluation` passes to `ray_corpus_embeddings` for `eval --ray` (empty without --ray)."""
    if not getattr(args, "ray", False):
        return {}
    if getattr(args, "index", "exact") != "exact":
        raise ValueError(f"--ray embeds the corpus for --index exact; --index {args.index} embeds it in the store "
                         "itself (index a collection with `o1-retriever index --ray` instead)")
    from .runtime import check_actors_fit
    check_actors_fit(args.actors, _use_gpus(args), args.address)  # before the eval loads a model or a dataset
    return {"address": args.address, "actors": args.actors, "use_gpus": _use_gpus(args)}


# ---- python -m o1_retriever.distributed ---------------------------------------------------------------------------
def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model dir, hub id or .gguf (default: the bundled model)")
    p.add_argument("--dtype", type=dtype_arg, default=None,
                   help="auto, bf16, fp16 or fp32 (default auto: bf16 on GPUs)")
    p.add_argument("--quantization", choices=["4bit", "8bit"], default=None, help="load the thinker quantized")
    add_setting_flags(p)
    p.add_argument("--seed", type=int, default=None, help="sampling seed")


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="Chroma persistence directory")
    p.add_argument("--host", default=None, help="a Chroma server instead of --db")
    p.add_argument("--port", type=port_arg, default=8000, help="the Chroma server's port")
    p.add_argument("--collection", default="o1-retriever", help="collection name")
    p.add_argument("--batch-size", type=positive_int_arg, default=1000, help="records per Chroma write")


def _run_encode(args, kind: str) -> int:
    result = _encode(args, kind, args.input, args.vectors)
    print(f"encoded {result.rows} {kind} into {result.shards} shard(s) in {result.output} ({result.written} written "
          f"by this run, {result.shards - result.written} already there; {result.seconds:.1f} s)")
    return 0


def _run_load(args) -> int:
    from .load import load_into_chroma
    loaded = load_into_chroma(args.vectors, collection=args.collection, batch_size=args.batch_size,
                              **_store_target(args))
    print(f"stored {loaded.stored} records ({loaded.skipped} already stored, skipped); collection "
          f"{args.collection!r} holds {loaded.count}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m o1_retriever.distributed",
                                     description="o1-retriever on Ray Data: encode, think and index at scale.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("encode", help="embed a corpus (JSONL or Parquet, file or folder) into Parquet vector shards")
    p.add_argument("input", help="corpus: rows with _id (or id), text, title?")
    p.add_argument("--vectors", required=True, metavar="DIR", help="output folder of shards (a re-run resumes)")
    _model_arguments(p)
    _actor_arguments(p)
    p.set_defaults(func=lambda args: _run_encode(args, "documents"))

    p = sub.add_parser("think", help="think and embed many queries into Parquet shards (vectors and thoughts)")
    p.add_argument("input", help="queries: rows with _id (or id) and text")
    p.add_argument("--vectors", required=True, metavar="DIR", help="output folder of shards (a re-run resumes)")
    p.add_argument("--k", type=int, default=3, help="thoughts per query (0 = no thinking)")
    p.add_argument("--thought-cache", default=None, metavar="PATH|off",
                   help="each worker's thought cache file (default: the worker's own default cache)")
    _model_arguments(p)
    _actor_arguments(p)
    p.set_defaults(func=lambda args: _run_encode(args, "queries"))

    p = sub.add_parser("load", help="load encoded document shards into Chroma (--db or --host); resumable")
    p.add_argument("--vectors", required=True, metavar="DIR", help="the folder `encode` wrote")
    _store_arguments(p)
    p.set_defaults(func=_run_load)

    p = sub.add_parser("index", help="encode on Ray, then load into Chroma: `o1-retriever index --ray`")
    p.add_argument("--corpus", required=True, help="JSONL or Parquet file, or a folder of them")
    _model_arguments(p)
    _store_arguments(p)
    add_ray_arguments(p, "index", ray_flag=False)
    p.set_defaults(func=run_index_ray)

    from .bench import add_bench_parser
    add_bench_parser(sub)
    return parser


def main(argv=None) -> int:
    from ..cli import main as run_cli  # the same dispatch and error reporting as `o1-retriever`
    return run_cli(argv, build_parser())
