"""Held-out dev split: disjoint from the training records, a loadable BEIR folder, deterministic."""
import json

import pytest

from o1_retriever.evaluation.data import load_beir as load_eval_beir
from o1_retriever_training.holdout import holdout, main


def _records(path, ids):
    path.write_text("".join(json.dumps({"query_id": i, "query": f"text {i}", "pos": ["p"], "neg": []}) + "\n"
                            for i in ids))
    return path


def test_holdout_is_disjoint_loadable_and_seeded(tiny_beir, tmp_path):
    records = _records(tmp_path / "r.jsonl", [f"q{i}" for i in range(12)] + ["nf-1"])  # nf-1: another dataset
    first = holdout(records, tiny_beir, "train", 4, 7, tmp_path / "fit.jsonl", tmp_path / "dev")
    kept = [json.loads(line)["query_id"] for line in (tmp_path / "fit.jsonl").read_text().splitlines()]
    assert len(first.held_out) == 4 and first.kept == 9 == len(kept)
    assert not set(first.held_out) & set(kept) and "nf-1" in kept  # other datasets' records are never held out
    dev = load_eval_beir(tmp_path / "dev", "dev")
    assert sorted(dev.queries) == first.held_out and sorted(dev.qrels) == first.held_out
    assert dev.qrels["q3" if "q3" in first.held_out else first.held_out[0]]  # their judgements came along
    assert (tmp_path / "dev" / "corpus.jsonl").is_symlink() and len(dev.corpus) == 36
    again = holdout(records, tiny_beir, "train", 4, 7, tmp_path / "fit2.jsonl", tmp_path / "dev")
    assert again.held_out == first.held_out
    other = holdout(records, tiny_beir, "train", 4, 8, tmp_path / "fit3.jsonl", tmp_path / "dev3")
    assert other.held_out != first.held_out


def test_holdout_refuses_bad_requests_before_writing(tiny_beir, tmp_path):
    records = _records(tmp_path / "r.jsonl", [f"q{i}" for i in range(3)])
    with pytest.raises(ValueError, match="num_queries=3 must be below the 3"):
        holdout(records, tiny_beir, "train", 3, 0, tmp_path / "fit.jsonl", tmp_path / "dev")
    with pytest.raises(ValueError, match="num_queries must be a positive int"):
        holdout(records, tiny_beir, "train", 0, 0, tmp_path / "fit.jsonl", tmp_path / "dev")
    with pytest.raises(ValueError, match="train_out must differ from records"):
        holdout(records, tiny_beir, "train", 1, 0, records, tmp_path / "dev")
    (tmp_path / "bad.jsonl").write_text('{"query": "no id"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: record has no 'query_id'"):
        holdout(tmp_path / "bad.jsonl", tiny_beir, "train", 1, 0, tmp_path / "fit.jsonl", tmp_path / "dev")
    assert not (tmp_path / "fit.jsonl").exists() and not (tmp_path / "dev").exists()
    assert records.read_text().count("\n") == 3  # the input is untouched


def test_holdout_command_line(tiny_beir, tmp_path, capsys):
    records = _records(tmp_path / "r.jsonl", [f"q{i}" for i in range(12)])
    assert main(["--records", str(records), "--dataset", str(tiny_beir), "--num-queries", "2",
                 "--train-out", str(tmp_path / "fit.jsonl"), "--dev-dir", str(tmp_path / "dev")]) == 0
    assert "held out 2 queries" in capsys.readouterr().out


def test_holdout_never_deletes_a_corpus(tiny_beir, tmp_path, capsys):
    """--dev-dir naming the dataset itself deleted its corpus.jsonl (replaced by a link to itself) and overwrote its
    queries.jsonl with the held-out ones; a dev folder holding a corpus of its own lost it too."""
    records = _records(tmp_path / "r.jsonl", [f"q{i}" for i in range(12)])
    before = {f: (tiny_beir / f).read_bytes() for f in ("corpus.jsonl", "queries.jsonl")}
    argv = ["--records", str(records), "--dataset", str(tiny_beir), "--num-queries", "2",
            "--train-out", str(tmp_path / "fit.jsonl")]
    with pytest.raises(SystemExit) as exit_:
        main(argv + ["--dev-dir", str(tiny_beir / ".." / tiny_beir.name)])
    assert exit_.value.code == 2 and "dev_dir must differ from dataset" in capsys.readouterr().err
    assert {f: (tiny_beir / f).read_bytes() for f in before} == before
    assert not (tiny_beir / "corpus.jsonl").is_symlink() and not (tmp_path / "fit.jsonl").exists()

    own = tmp_path / "own"
    own.mkdir()
    (own / "corpus.jsonl").write_text('{"_id": "x", "text": "mine"}\n')
    with pytest.raises(ValueError, match="holds a corpus.jsonl of its own"):
        holdout(records, tiny_beir, "train", 2, 0, tmp_path / "fit.jsonl", own)
    assert (own / "corpus.jsonl").read_text() == '{"_id": "x", "text": "mine"}\n'


def test_holdout_command_line_errors_are_one_line(tiny_beir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--records", str(tmp_path / "missing.jsonl"), "--dataset", str(tiny_beir),
              "--train-out", str(tmp_path / "fit.jsonl"), "--dev-dir", str(tmp_path / "dev")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "holdout: error: " in err and "missing.jsonl does not exist" in err


def test_holdout_writes_a_tilde_path_where_it_checked_it(tiny_beir, tmp_path, monkeypatch):
    """--train-out=~/fit.jsonl (a '~' the shell leaves after '=') was checked as the home path, then written to
    ./~/fit.jsonl, as --dev-dir=~/dev was; both now go to the home folder they were checked in."""
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    records = _records(tmp_path / "r.jsonl", [f"q{i}" for i in range(6)])
    holdout(records, tiny_beir, "train", 2, 0, "~/fit.jsonl", "~/dev")
    assert (home / "fit.jsonl").is_file() and (home / "dev" / "qrels" / "dev.tsv").is_file()
    assert list(elsewhere.iterdir()) == []


_KILLED_AT = """
import os, pathlib, signal, sys
kill_at, dev = sys.argv[1], os.path.abspath(sys.argv[-1])
real_open, real_rename = pathlib.Path.open, os.rename
def open_(self, mode="r", *args, **kwargs):
    if kill_at in self.name and "w" in mode:  # as the file is opened for writing, before any of it is written
        os.kill(os.getpid(), signal.SIGKILL)
    return real_open(self, mode, *args, **kwargs)
def rename(src, dst, *args, **kwargs):
    real_rename(src, dst, *args, **kwargs)
    if kill_at == "rename" and os.path.abspath(src) == dev:  # the old dev folder moved out, the new not yet in
        os.kill(os.getpid(), signal.SIGKILL)
pathlib.Path.open, os.rename = open_, rename
from o1_retriever_training.holdout import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("kill_at", ["dev.tsv", "fit.jsonl", "rename"])
def test_a_run_killed_mid_write_leaves_no_half_or_mixed_output(tiny_beir, tmp_path, kill_at):
    """SIGKILL mid-write left the dev folder half rewritten: the new held-out queries beside the earlier run's
    qrels, a set that loads as a dev set; or the earlier --train-out beside a new dev folder, so the records trained
    on held the dev queries. Now each output is the earlier whole one, the new whole one, or absent, never a mix,
    and the same command run again writes both (removing the killed run's hidden temporaries)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from o1_retriever.atomic import leftover_temporaries
    records = _records(tmp_path / "r.jsonl", [f"q{i}" for i in range(12)])
    fit, dev = tmp_path / "fit.jsonl", tmp_path / "dev"
    earlier = holdout(records, tiny_beir, "train", 4, 1, fit, dev).held_out
    args = ["--records", str(records), "--dataset", str(tiny_beir), "--num-queries", "4", "--seed", "2",
            "--train-out", str(fit), "--dev-dir", str(dev)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    killed = subprocess.run([sys.executable, "-c", _KILLED_AT, kill_at, *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert not fit.exists()  # the earlier one went first: it held queries the new dev folder may hold
    if kill_at == "rename":
        assert not dev.exists() and len(leftover_temporaries(dev)) == 2  # the earlier folder and the new one
    else:
        now = load_eval_beir(dev, "dev")
        assert sorted(now.queries) == sorted(now.qrels) != []  # whole, not new queries beside earlier qrels
        assert (sorted(now.queries) == earlier) == (kill_at == "dev.tsv")

    assert main(args) == 0
    held = holdout(records, tiny_beir, "train", 4, 2, tmp_path / "again.jsonl", tmp_path / "again").held_out
    dev_set, kept = load_eval_beir(dev, "dev"), [json.loads(line)["query_id"] for line in fit.read_text().splitlines()]
    assert sorted(dev_set.queries) == sorted(dev_set.qrels) == held != earlier
    assert len(kept) == 8 and not set(kept) & set(held)
    assert leftover_temporaries(dev) == [] == leftover_temporaries(fit)


def test_holdout_replaces_only_a_dev_folder_it_wrote(tiny_beir, tmp_path):
    """The dev folder is now replaced whole, so one holding anything else (the run's own files, say) is refused,
    as are records or --train-out inside it; an earlier holdout's folder is replaced."""
    records = _records(tmp_path / "r.jsonl", [f"q{i}" for i in range(12)])
    holdout(records, tiny_beir, "train", 2, 0, tmp_path / "fit.jsonl", tmp_path / "dev")
    assert holdout(records, tiny_beir, "train", 3, 0, tmp_path / "fit.jsonl", tmp_path / "dev").kept == 9
    (tmp_path / "dev" / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(ValueError, match=r"holds qrels/test.tsv, not written by a holdout, which would be deleted"):
        holdout(records, tiny_beir, "train", 2, 0, tmp_path / "fit.jsonl", tmp_path / "dev")
    with pytest.raises(ValueError, match=r"train_out \(.*fit.jsonl\) must be outside dev_dir"):
        holdout(records, tiny_beir, "train", 2, 0, tmp_path / "new" / "fit.jsonl", tmp_path / "new")
    with pytest.raises(ValueError, match=r"records \(.*r.jsonl\) must be outside dev_dir"):
        holdout(records, tiny_beir, "train", 2, 0, tmp_path.parent / f"{tmp_path.name}_fit.jsonl", tmp_path)
    assert (tmp_path / "dev" / "qrels" / "test.tsv").exists() and records.read_text().count("\n") == 12


def test_a_dev_folder_that_fails_to_write_puts_the_earlier_train_out_back(tiny_beir, tmp_path, monkeypatch):
    """A full disk cannot be made here: the dev folder's queries file fails to write by fault injection. The failed
    call must lose nothing: the earlier --train-out and dev folder stay as they were, and no temporary is left."""
    import pathlib
    records = _records(tmp_path / "r.jsonl", [f"q{i}" for i in range(12)])
    fit, dev = tmp_path / "fit.jsonl", tmp_path / "dev"
    holdout(records, tiny_beir, "train", 2, 0, fit, dev)
    before_fit, before_queries = fit.read_text(), (dev / "queries.jsonl").read_text()
    real_write = pathlib.Path.write_text

    def disk_full(self, *args, **kwargs):
        if self.name == "queries.jsonl":
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        holdout(records, tiny_beir, "train", 3, 5, fit, dev)
    monkeypatch.undo()
    assert fit.read_text() == before_fit and (dev / "queries.jsonl").read_text() == before_queries
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
