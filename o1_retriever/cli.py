"""`o1-retriever` command line. Core verbs live here; other modules and distributions add theirs.

A plug-in is any module with `register(subparsers)` that adds one sub-parser and sets
`func=callable(args) -> int|None` on it. Built-in plug-ins are listed in BUILTIN_COMMANDS; other
distributions (o1-retriever-training) declare an entry point in the `o1_retriever.commands` group.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from importlib.metadata import entry_points

from .quiet import quiet_weight_loading

BUILTIN_COMMANDS = ["o1_retriever.commands", "o1_retriever.evaluation.cli", "o1_retriever.bench",
                    "o1_retriever.server.cli"]


def _plugins():
    for name in BUILTIN_COMMANDS:
        try:
            yield importlib.import_module(name).register
        except ModuleNotFoundError as e:
            if e.name != name:  # a real missing dependency inside the module: surface it
                raise
    for ep in entry_points(group="o1_retriever.commands"):
        yield ep.load()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o1-retriever", description="A retriever that thinks before it embeds.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _plugins():
        register(sub)
    return parser


def main(argv=None, parser: argparse.ArgumentParser | None = None) -> int:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    where = f"{parser.prog} {args.command}"
    shown = warnings.formatwarning  # a warning reads as a CLI line, not as a source location and a line of code
    warnings.formatwarning = lambda message, category, *_, **__: f"{where}: warning: {message}\n"
    try:
        with quiet_weight_loading():
            return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError, ImportError) as e:  # OSError: paths the system refuses
        print(f"{where}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: a line, not a traceback; 128 + SIGINT, as shells report it
        print(f"\n{where}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":
    sys.exit(main())
