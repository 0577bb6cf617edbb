"""An output path that cannot be written is refused by name before any model loads, by all three training commands
(a file given as --output-dir, or a folder given as --output, failed with a traceback: synthesize at once, train when
it made its folder, train-encoder only at its export, after thinking and training)."""
import pytest

from o1_retriever.cli import main


def _commands(tmp_path, triplets, tiny_beir, output_dir: str, output: str) -> dict:
    return {
        "train": ["train", "--base-model", "/does/not/exist", "--train-data", str(triplets), "--group-size", "4",
                  "--output-dir", output_dir],
        "synthesize": ["synthesize", "--data", str(tiny_beir), "--expert", "/does/not/exist", "--output", output],
        "train-encoder": ["train-encoder", "--model", "/does/not/exist", "--data", str(tiny_beir),
                          "--output-dir", output_dir],
    }


@pytest.mark.parametrize("command", ["train", "synthesize", "train-encoder"])
def test_unwritable_outputs_are_refused_before_any_model_loads(command, tmp_path, triplets, tiny_beir, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine\n")
    cases = [  # (--output-dir, --output, the error)
        (a_file, tiny_beir, "is a file; name a folder" if command != "synthesize" else "is a folder: name a file"),
        (a_file / "sub", a_file / "sub" / "t.jsonl", f"{a_file} is a file, not a folder"),
    ]
    for output_dir, output, error in cases:
        assert main(_commands(tmp_path, triplets, tiny_beir, str(output_dir), str(output))[command]) == 2
        err = capsys.readouterr().err
        assert f"o1-retriever {command}: error: --output" in err and error in err, err
        assert "Traceback" not in err
    assert a_file.read_text() == "mine\n"



def test_an_output_file_is_checked_as_eval_checks_its_output(tmp_path):
    """One check for output files across the commands (o1_retriever.evaluation.report.check_output)."""
    from o1_retriever.evaluation.report import check_output
    from o1_retriever_training.arguments import check_output_path
    a_file = tmp_path / "a_file"
    a_file.write_text("mine\n")
    for path in (tmp_path, a_file / "sub" / "t.jsonl"):
        with pytest.raises(ValueError) as theirs:
            check_output(path, "--output")
        with pytest.raises(ValueError) as ours:
            check_output_path(path, "--output", folder=False)
        assert str(ours.value) == str(theirs.value)
    assert check_output_path(tmp_path / "new" / "t.jsonl", "--output", folder=False) == tmp_path / "new" / "t.jsonl"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME in tmp_path, and the working folder beside it: a `~` left unexpanded would make a `./~` folder there.
    The model cache stays where it was (it follows HOME): an empty one would convert the bundled base again."""
    from o1_retriever.default_model import cache_dir
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(cache_dir()))
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    return home


# The shell expands `~` in `--output ~/x` but not in `--output=~/x`: the command gets the `~` and must expand it itself.
@pytest.mark.parametrize("tilde", [("output",), ("data", "output")])
def test_synthesize_writes_a_tilde_output_under_home(tilde, home, tiny_beir, tiny_lm_dir):
    beir = home / "beir"
    tiny_beir.rename(beir)
    data = "~/beir" if "data" in tilde else str(beir)
    output = "~/out/thoughts.jsonl" if "output" in tilde else str(home / "out" / "thoughts.jsonl")
    assert main(["synthesize", f"--data={data}", f"--output={output}", "--expert", str(tiny_lm_dir), "--limit", "2",
                 "--max-new-tokens", "4", "--num-candidates", "2", "--committee", "bm25", "--negatives", "bm25",
                 "--num-negatives", "2"]) == 0
    assert len((home / "out" / "thoughts.jsonl").read_text().splitlines()) == 2
    assert not (home.parent / "cwd" / "~").exists()


@pytest.mark.parametrize("tilde", [("output_dir",), ("train_data", "output_dir")])
def test_train_writes_a_tilde_output_dir_under_home(tilde, home, triplets, tiny_lm_dir):
    triplets.rename(home / "train.jsonl")
    train_data = "~/train.jsonl" if "train_data" in tilde else str(home / "train.jsonl")
    assert main(["train", "--base-model", str(tiny_lm_dir), f"--train-data={train_data}", "--output-dir=~/model",
                 "--group-size", "4", "--batch-size", "4", "--lora-r", "4", "--lora-alpha", "8",
                 "--max-steps", "1"]) == 0
    assert (home / "model" / "adapter_config.json").exists()
    assert not (home.parent / "cwd" / "~").exists()
