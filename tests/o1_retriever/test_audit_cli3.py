"""The CLI as a new user meets it: a re-run `index` with nothing new, thoughts and passages on screen, refusals before
a model loads, plain output off a terminal, and Ctrl-C during `index`."""
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from o1_retriever.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))


def _corpus(path: Path, n: int = 3, **extra) -> Path:
    path.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"passage {i} about topic {i % 7}", "year": 2000 + i,
                                        **extra}) + "\n" for i in range(n)))
    return path


def _index(model, corpus, db, *more):
    return main(["index", "--model", str(model), "--dtype", "fp32", "--corpus", str(corpus), "--db", str(db), *more])


def _weights_gone(model: Path) -> Path:
    """Moves the model's weights aside: loading it now fails, so a run that succeeds loaded no model."""
    aside = model.parent / "weights-aside"
    shutil.move(model / "model.safetensors", aside)
    return aside


def test_thoughts_show_trimmed_on_one_line_and_an_empty_one_says_so():
    from rich.console import Console

    from o1_retriever.commands import _print_hits, shown_thought
    from o1_retriever.index import Hit
    assert shown_thought(" Yeast makes\n\ngas.\t") == "Yeast makes gas."
    assert shown_thought(" \n ") == shown_thought("") == "(empty thought)"
    assert shown_thought("a\x15b") == "a b"  # a control character would move the terminal's cursor
    thoughts = ["\n  The dough rises", "", " [bold]not markup[/bold] [/x]"]
    hits = [Hit("d[1]", "Yeast [/x] ferments\nsugar.", 0.5, thoughts=thoughts)]
    console = Console(file=io.StringIO(), width=100)
    _print_hits(console, "why [/x] does bread rise", hits)
    out = console.file.getvalue()
    assert "Query: why [/x] does bread rise" in out
    assert "thought 1: The dough rises\n" in out and "thought 2: (empty thought)\n" in out
    assert "thought 3: [bold]not markup[/bold] [/x]\n" in out
    assert "d[1]" in out and "Yeast [/x] ferments sugar." in out
    assert hits[0].thoughts == thoughts  # display only: what was embedded is unchanged


def test_search_shows_passages_that_look_like_markup(tiny_o1_dir, tmp_path, capsys):
    corpus, db = tmp_path / "corpus.jsonl", tmp_path / "db"
    corpus.write_text(json.dumps({"_id": "a", "text": "see [/x] and [bold]this[/bold]"}) + "\n")
    assert _index(tiny_o1_dir, corpus, db) == 0
    assert main(["search", "--model", str(tiny_o1_dir), "--dtype", "fp32", "--max-new-tokens", "4", "--k", "1",
                 "see", "--db", str(db)]) == 0  # was: rich's MarkupError traceback ("closing tag '[/x]'...")
    assert "see [/x] and [bold]this[/bold]" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["search", "q", "--db", "DB", "--k", "-1"], "argument --k: expected thoughts per query, an int from 0"),
    (["search", "q", "--db", "DB", "--top-k", "0"], "argument --top-k: expected a positive int, got 0"),
    (["search", " ", "--db", "DB"], "argument query: expected a query with some text, got ' '"),
    (["demo", "--top-k", "0"], "argument --top-k: expected a positive int, got 0"),
    (["demo", "--query", ""], "argument --query: expected a query with some text, got ''"),
    (["index", "--corpus", "CORPUS", "--db", "DB", "--collection", "my docs"],
     "argument --collection: 'my docs' is not a valid Chroma collection name"),
])
def test_bad_values_are_refused_before_a_model_loads(tmp_path, capsys, argv, message):
    """Each was refused only after loading the model (28 s for the default) and, for demo, indexing its corpus."""
    corpus = _corpus(tmp_path / "corpus.jsonl")
    argv = [str(tmp_path / "db") if a == "DB" else str(corpus) if a == "CORPUS" else a for a in argv]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--model", str(tmp_path / "no-such-model")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def _stored(db: Path) -> int:
    """Records in a Chroma database another process is writing, read from its SQLite file without opening Chroma."""
    try:
        with closing(sqlite3.connect(f"file:{db / 'chroma.sqlite3'}?mode=ro", uri=True, timeout=1)) as connection:
            return connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    except sqlite3.Error:  # not created yet, or locked by a write
        return 0