"""`o1-retriever` command line. Core verbs live here; other modules and distributions add theirs.

A plug-in is any module with `register(subparsers)` that adds one sub-parser and sets
`func=callable(args) -> int|None` on it. Built-in plug-ins are listed in BUILTIN_COMMANDS; other
distributions (o1-retriever-training) declare an entry point in the `o1_retriever.commands` group.
"""
from __future__ import annotations

import argparse
import difflib
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
    from . import __version__
    parser = argparse.ArgumentParser(prog="o1-retriever", description="A retriever that thinks before it embeds.",
                                     epilog="`o1-retriever COMMAND --help` lists a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _plugins():
        register(sub)
    return parser


# Words a newcomer brings from the integrations (num_thoughts) for what the CLI calls --k
MEANT = {"--num-thoughts": "--k", "--num_thoughts": "--k", "--thoughts": "--k"}


def _refuse_unknown(parser: argparse.ArgumentParser, args, extra: list[str]) -> None:
    """argparse's "unrecognized arguments", from the command's own parser (its usage, not the top level's) and
    with what was probably meant: the closest flag, or quotes around a text of several words."""
    verbs = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})
    command = verbs.get(getattr(args, "command", None) or "", parser)
    flags, hints = list(command._option_string_actions), []
    for flag in (w.split("=")[0] for w in extra if w.startswith("--")):
        close = [MEANT[flag]] if MEANT.get(flag) in flags else difflib.get_close_matches(flag, flags, n=1, cutoff=0.7)
        if close:
            hints.append(f"{flag}: did you mean {close[0]}?")
    if not extra[0].startswith("-"):  # e.g. search how do tides work: argparse took "how" as the query
        words = [w for w in extra if not w.startswith("-")]
        query = getattr(args, "query", None)
        query = query[-1] if isinstance(query, list) else query
        hints.append(f"a query of several words goes in quotes: \"{' '.join([query, *words])}\"" if isinstance(query, str)
                     else "a value of several words goes in quotes")
    command.error(f"unrecognized arguments: {' '.join(extra)}"
                  + "".join(f"; {h}" for h in hints) + f" (see `{command.prog} --help`)")


def main(argv=None, parser: argparse.ArgumentParser | None = None) -> int:
    parser = parser or build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _refuse_unknown(parser, args, extra)
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
    except KeyboardInterrupt as e:  # Ctrl-C: a line, not a traceback; 128 + the signal, as shells report it
        terminated = type(e).__name__ == "Terminated"  # eval's SIGTERM, raised so its finished rows are kept
        print(f"\n{where}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":
    sys.exit(main())
