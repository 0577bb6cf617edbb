"""The command lines the README, docs/ and the integration READMEs show name real subcommands and flags: a reader who
types one does not meet "unrecognized arguments" (parsers only: no model is loaded)."""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md",
         *sorted((ROOT / "integrations").glob("*/README.md"))]
INDENTED = re.compile(r"^    ((?:o1-retriever|python -m o1_retriever\.distributed) .*?)$(?<!\\)", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`((?:o1-retriever|python -m o1_retriever\.distributed) [^`]+)`")


def parsers() -> dict[str, argparse.ArgumentParser]:
    from o1_retriever.cli import build_parser
    from o1_retriever.distributed.cli import build_parser as build_distributed
    return {"o1-retriever": build_parser(), "python -m o1_retriever.distributed": build_distributed()}


def shell_blocks(text: str) -> list[str]:
    """The bodies of fenced blocks marked bash or sh, or unmarked (a fence opens and closes in turn)."""
    blocks, language, body = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if language is None:
                language, body = line[3:].strip() or "sh", []
            else:
                if language in ("bash", "sh"):
                    blocks.append("\n".join(body))
                language = None
        elif language is not None:
            body.append(line)
    return blocks


def commands(page: Path) -> list[str]:
    text = page.read_text()
    lines = []
    for block in shell_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            lines.append(line.split(" #")[0].strip())
    lines += [c.replace("\n", " ") for c in INLINE.findall(text)]
    lines += [c.replace("\\\n", " ") for c in INDENTED.findall(text)]  # a 4-space indented code block
    return [line for line in lines if line.startswith(("o1-retriever ", "python -m o1_retriever.distributed "))]


def unknown_words(command: str, roots: dict[str, argparse.ArgumentParser]) -> list[str]:
    prog = next(p for p in roots if command.startswith(p + " "))
    parser, unknown = roots[prog], []
    for word in shlex.split(command[len(prog):].replace("[", " ").replace("]", " ").replace("|", " ")):
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subparsers and not word.startswith("-"):
            if word in subparsers[0].choices:
                parser = subparsers[0].choices[word]
            elif word != "...":
                unknown.append(word)
            continue
        flag = word.split("=")[0]
        if flag.startswith("--") and flag not in parser._option_string_actions:
            unknown.append(word)
    return unknown


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_documented_commands_use_real_subcommands_and_flags(page):
    roots = parsers()
    wrong = {c: unknown_words(c, roots) for c in commands(page) if unknown_words(c, roots)}
    assert not wrong, wrong


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_documented_bench_commands_name_their_output(page):
    """A documented `bench` command says where its figures go: one writing into benchmarks/ (as the default once did)
    would overwrite, in a clone, the committed figures the docs cite."""
    silent = [c for c in commands(page) if c.startswith("o1-retriever bench") and "--output" not in c]
    assert not silent, silent
