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


def test_reindexing_an_indexed_corpus_loads_no_model(tiny_o1_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_o1_dir, model)
    corpus, db = _corpus(tmp_path / "corpus.jsonl"), tmp_path / "db"
    assert _index(model, corpus, db) == 0
    capsys.readouterr()
    aside = _weights_gone(model)
    assert _index(model, corpus, db) == 0  # was: the model loaded before finding nothing new
    out = capsys.readouterr().out
    assert "indexed 0 passages into" in out and "(3 already stored, skipped)" in out
    assert f"nothing new: the model was not loaded (the collection records '{model}'" in out
    # Anything that may need the model still loads it (and here fails, the weights being gone):
    corpus.write_text(corpus.read_text().replace("passage 2", "passage two"))  # a changed text
    assert _index(model, corpus, db) == 2
    _corpus(corpus)
    corpus.write_text(corpus.read_text().replace('"year": 2001', '"year": 2001.0'))  # a value of another type
    assert _index(model, corpus, db) == 2
    _corpus(corpus)
    import chromadb

    from o1_retriever.index import INCOMPLETE_KEY
    collection = chromadb.PersistentClient(path=str(db)).get_collection("o1-retriever")
    collection.modify(metadata={INCOMPLETE_KEY: "a run died"})  # a run that died: the re-run must finish it
    assert _index(model, corpus, db) == 2
    collection.modify(metadata={INCOMPLETE_KEY: False})
    assert _index(model, corpus, db, "--dtype", "bf16") == 2  # loaded another way: the record cannot tell
    capsys.readouterr()
    shutil.move(aside, model / "model.safetensors")
    assert _index(model, _corpus(corpus, n=4), db) == 0  # one new passage: loaded, and only it is embedded
    assert "indexed 1 passages into" in capsys.readouterr().out


def test_reindexing_with_another_model_is_still_refused(tiny_o1_dir, tiny_lm_dir, tmp_path, capsys):
    corpus, db = _corpus(tmp_path / "corpus.jsonl"), tmp_path / "db"
    assert _index(tiny_o1_dir, corpus, db) == 0
    capsys.readouterr()
    assert _index(tiny_lm_dir, corpus, db) == 2
    err = capsys.readouterr().err
    assert "was built with model" in err and "Open it with the same model, or index into a new collection" in err
    assert _index(tiny_o1_dir, corpus, db, "--dtype", "bf16") == 2
    assert "loaded another way" in capsys.readouterr().err


def test_thoughts_show_trimmed_on_one_line_and_an_empty_one_says_so():
    from rich.console import Console

    from o1_retriever.display import print_hits, shown_thought
    from o1_retriever.index import Hit
    assert shown_thought(" Yeast makes\n\ngas.\t") == "Yeast makes gas."
    assert shown_thought(" \n ") == shown_thought("") == "(empty thought)"
    assert shown_thought("a\x15b") == "a b"  # a control character would move the terminal's cursor
    thoughts = ["\n  The dough rises", "", " [bold]not markup[/bold] [/x]"]
    hits = [Hit("d[1]", "Yeast [/x] ferments\nsugar.", 0.5, thoughts=thoughts)]
    console = Console(file=io.StringIO(), width=100)
    print_hits(console, "why [/x] does bread rise", hits)
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
     "argument --collection: collection='my docs' is not a valid Chroma name"),
])
def test_bad_values_are_refused_before_a_model_loads(tmp_path, capsys, argv, message):
    """Each was refused only after loading the model and, for demo, indexing its corpus."""
    corpus = _corpus(tmp_path / "corpus.jsonl")
    argv = [str(tmp_path / "db") if a == "DB" else str(corpus) if a == "CORPUS" else a for a in argv]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--model", str(tmp_path / "no-such-model")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_paths_the_system_refuses_are_one_line_errors(tiny_o1_dir, tmp_path, capsys):
    corpus = _corpus(tmp_path / "corpus.jsonl")
    long_name = str(tmp_path / ("x" * 300 + ".jsonl"))  # the OS refuses the name itself
    assert _index(tiny_o1_dir, long_name, tmp_path / "db") == 2  # was: an OSError traceback
    assert "error: [Errno 36] File name too long" in capsys.readouterr().err
    assert _index(tiny_o1_dir, corpus, "/proc/no-db") == 2  # was: chromadb's InternalError traceback
    err = capsys.readouterr().err
    assert "--db /proc/no-db" in err and "Traceback" not in err


def test_index_off_a_terminal_draws_no_bars(tiny_o1_dir, tmp_path, capsys):
    corpus, db = _corpus(tmp_path / "corpus.jsonl", n=64), tmp_path / "db"
    assert _index(tiny_o1_dir, corpus, db, "--batch-size", "64") == 0
    captured = capsys.readouterr()
    # was: an "Indexing" bar and, per batch, the embedder's own "Embedding" bar, each redrawn with \r
    assert "\r" not in captured.err and "Embedding" not in captured.err and "Indexing:" not in captured.err
    assert "indexing 64 passages into" in captured.err and "indexed 64 passages into" in captured.out


def test_ctrl_c_in_main_is_one_line_and_exit_130(capsys):
    import argparse
    parser = argparse.ArgumentParser(prog="o1-retriever")
    sub = parser.add_subparsers(dest="command")

    def interrupted(args):
        raise KeyboardInterrupt
    sub.add_parser("slow").set_defaults(func=interrupted)
    try:
        assert main(["slow"], parser) == 130
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C left main as a traceback")
    assert capsys.readouterr().err.strip() == "o1-retriever slow: interrupted"


def _stored(db: Path) -> int:
    """Records in a Chroma database another process is writing, read from its SQLite file without opening Chroma."""
    try:
        with closing(sqlite3.connect(f"file:{db / 'chroma.sqlite3'}?mode=ro", uri=True, timeout=1)) as connection:
            return connection.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    except sqlite3.Error:  # not created yet, or locked by a write
        return 0


@pytest.mark.filterwarnings("ignore:.*are not kept")
def test_ctrl_c_during_index_leaves_a_resumable_collection(tiny_o1_dir, tmp_path, capsys):
    """A real process interrupted with SIGINT while it stores batches, then the same command run again."""
    corpus, db = _corpus(tmp_path / "corpus.jsonl", n=120, tags=["a", "b"]), tmp_path / "db"
    argv = ["index", "--model", str(tiny_o1_dir), "--dtype", "fp32", "--corpus", str(corpus), "--db", str(db)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-m", "o1_retriever.cli", *argv, "--batch-size", "1"], cwd=REPO,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any(line.startswith("indexing 120 passages") for line in lines):  # loaded: storing batches now
            line = child.stderr.readline()
            assert line, f"exited before indexing: {''.join(lines)}"
            lines.append(line)
        deadline = time.monotonic() + 60
        while _stored(db) < 2 and time.monotonic() < deadline:  # some batches stored, more to come
            time.sleep(0.1)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    err = "".join(lines) + err
    assert child.returncode == 130, err
    assert "Traceback" not in err and "interrupted: " in err and "run the same command again to resume" in err
    # warnings read as CLI lines, not as a source location and a line of code
    assert "o1-retriever index: warning: " in err and "['tags'] are not kept" in err and "UserWarning" not in err
    stored = int(err.split("interrupted: ", 1)[1].split(" ", 1)[0])
    assert 0 < stored < 120
    import chromadb

    from o1_retriever.index import INCOMPLETE_KEY
    collection = chromadb.PersistentClient(path=str(db)).get_collection("o1-retriever")
    assert collection.metadata.get(INCOMPLETE_KEY) and collection.count() == stored
    assert main([*argv, "--batch-size", "64"]) == 0  # resumed (a batch size of its own: the test's time)
    out = capsys.readouterr().out
    assert f"indexed {120 - stored} passages" in out and f"({stored} already stored, skipped)" in out
    assert not chromadb.PersistentClient(path=str(db)).get_collection("o1-retriever").metadata.get(INCOMPLETE_KEY)


def test_a_corpus_saved_with_a_byte_order_mark_is_read(tiny_o1_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "first"}\n{"_id": "b", "text": "second"}\n', encoding="utf-8-sig")
    # was: "corpus.jsonl:1: not valid JSON (Unexpected UTF-8 BOM (decode using utf-8-sig))"
    assert _index(tiny_o1_dir, corpus, tmp_path / "db") == 0
    assert "indexed 2 passages" in capsys.readouterr().out
    from o1_retriever.corpus import read_corpus
    assert [p.id for p in read_corpus(corpus)] == ["a", "b"]
