"""The `serve` verb. Registered without importing FastAPI, so `o1-retriever --help` works without the extra."""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys

from ..cli_args import MODEL_DEFAULTED, _check_device, _model_args
from ..settings import overrides_of
from ..validation import positive_int_arg
from .client import API_KEY_ENV
from .cors import check_origin, check_origins


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load(args):
    """cli_args._load, plus the thought cache choice (a server is where a shared cache pays most)."""
    from .. import O1Embedder
    _check_device(args.device)
    cache = {"on": True, "off": False}.get(args.thought_cache, args.thought_cache)
    return O1Embedder.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                      quantization=args.quantization, seed=args.seed,
                                      thought_cache=cache, vector_cache=args.vector_cache == "on",
                                      compile=_compile(args), **overrides_of(args, MODEL_DEFAULTED))


def _compile(args) -> bool:
    """auto: compile the decoding where a long-lived server gains most from it (a GPU, launch-bound at small
    batches); a CPU server takes --compile on where its minutes of compiling are worth it."""
    if args.compile != "auto":
        return args.compile == "on"
    from ..device import resolve_device
    return resolve_device(args.device).type == "cuda"


def _port(value: str) -> int:
    port = int(value) if value.strip().isdigit() else -1
    if not 0 <= port <= 65535:  # the OS would wrap 70000 to another port without a word
        raise argparse.ArgumentTypeError(f"a TCP port is 0 to 65535, got {value!r}")
    return port


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"a number of seconds >= 0, got {value!r}")
    return seconds


def _origin(value: str) -> str:
    try:
        return check_origin(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _check_listenable(host: str, port: int) -> None:
    """uvicorn binds only once the model has loaded and warmed up (minutes for the default model): a port already
    taken, or an address this machine does not have, is found now instead."""
    try:  # bound as asyncio's create_server (uvicorn's) binds: every address of `host`, an IPv6 one v6-only
        for family, kind, proto, _, address in set(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                      flags=socket.AI_PASSIVE)):
            try:
                probe = socket.socket(family, kind, proto)
            except OSError:  # a family this machine lacks (IPv6 turned off): skipped there too
                continue
            with probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no clash
                if family == socket.AF_INET6:  # '::' does not clash with another server on 0.0.0.0
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                probe.bind(address)
    except (OSError, OverflowError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise ValueError(f"cannot listen on {host}:{port}: {why} (another server on that port? choose another "
                         "--port, or --host an address of this machine)") from None


def run_serve(args) -> int:
    from .app import Limits, create_app
    from .deps import require
    uvicorn = require("uvicorn")
    # Fail before the model loads, not on the first /metrics; `*_created` series are noise on a dashboard.
    require("prometheus_client").disable_created_metrics()
    key = args.api_key or os.environ.get(API_KEY_ENV) or None
    origins = check_origins(args.cors_allow_origin)  # '*' with others: refused before the model loads
    if not _is_loopback(args.host) and key is None:
        print(f"o1-retriever serve: warning: listening on {args.host} without an API key: anyone who can reach "
              f"this port can use the model (set --api-key or ${API_KEY_ENV})", file=sys.stderr)
    _check_listenable(args.host, args.port)
    emb = _load(args)
    emb.encode_documents("warm up", show_progress_bar=False)  # first-call set-up happens now, not on a client's time
    app = create_app(emb, name=args.name, api_key=key, k=args.k, max_batch=args.max_batch,
                     max_wait_ms=args.max_wait_ms, limits=Limits(args.max_inputs, args.max_chars, args.max_queue,
                                                                 args.queue_wait), cors_origins=origins)
    ids = ", ".join(app.state.model_ids)
    print(f"serving {emb!r} as {ids} on http://{args.host}:{args.port}/v1", file=sys.stderr)
    # uvicorn's SIGTERM/SIGINT handling stops accepting, lets in-flight requests finish, then runs the lifespan
    # shutdown; timeout_graceful_shutdown bounds the wait for a stuck client.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=args.graceful_timeout)
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve one warm model over an OpenAI-compatible HTTP API (needs [serve])")
    _model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    p.add_argument("--api-key", default=None, help=f"require `Authorization: Bearer KEY` on /v1 routes "
                                                   f"(default: ${API_KEY_ENV}, else no key)")
    p.add_argument("--cors-allow-origin", action="append", type=_origin, default=[], metavar="ORIGIN",
                   help="a web page origin (e.g. http://localhost:3000) whose scripts may call the server from a "
                        "browser; repeat for several, '*' for any (default: none, no CORS headers)")
    p.add_argument("--name", default=None, help="served model name; ids are NAME-query and NAME-document "
                                                "(default: the model's name)")
    p.add_argument("--k", type=int, default=3, help="thoughts per query when a request sends no k (0 = no thinking; default 3)")
    p.add_argument("--max-batch", type=positive_int_arg, default=32, help="most texts merged into one engine call (default 32)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long the oldest queued request waits for others to share its batch (default 5)")
    p.add_argument("--max-inputs", type=positive_int_arg, default=2048, help="most texts in one request (else 413; default 2048)")
    p.add_argument("--max-chars", type=positive_int_arg, default=2_000_000,
                   help="most characters of text in one request (else 413; default 2000000)")
    p.add_argument("--max-queue", type=positive_int_arg, default=16_384,
                   help="most texts waiting for the engine; a request past it waits in line for room, then gets a "
                        "429 to retry (default 16384)")
    p.add_argument("--queue-wait", type=_seconds, default=30.0,
                   help="seconds a request that finds the queue full waits in line for room (in arrival order: "
                        "later requests do not take it) before its 429; 0: a 429 at once (default 30)")
    p.add_argument("--graceful-timeout", type=float, default=60.0,
                   help="seconds to let in-flight requests finish after SIGTERM (default 60)")
    p.add_argument("--thought-cache", default="on", metavar="on|off|PATH",
                   help="persistent thought cache: on (thoughts.sqlite in the cache dir; the default), off, or a file")
    p.add_argument("--vector-cache", default="on", choices=["on", "off"],
                   help="keep finished query vectors in memory, so a repeated query costs no forward "
                        "(off: every request thinks, as a load test needs; default on)")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                   help="think with a static KV cache and a compiled forward (same thoughts; compiles once per "
                        "shape at start-up); auto (the default): on for a GPU, off on a CPU")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's and the server's log level (default info)")
    p.set_defaults(func=run_serve)
