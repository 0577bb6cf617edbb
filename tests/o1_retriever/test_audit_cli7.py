"""A newcomer's mistakes on the command line: each error comes from the command that was typed and says what was
probably meant (parsers only: no model loads)."""
from __future__ import annotations

import pytest

from o1_retriever.cli import main


def error_of(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, meant", [
    (["search", "--db", "db", "tides", "--topk", "3"], "--topk: did you mean --top-k?"),
    (["search", "--db", "db", "tides", "--hybird"], "--hybird: did you mean --hybrid?"),
    (["demo", "--num-thoughts", "2"], "--num-thoughts: did you mean --k?"),  # the integrations' word
])
def test_a_mistyped_flag_names_the_flag_meant(argv, meant, capsys):
    err = error_of(argv, capsys)
    assert meant in err
    # the command's own usage and name, not the top level's "usage: o1-retriever [-h] COMMAND ..."
    assert f"usage: o1-retriever {argv[0]}" in err and f"o1-retriever {argv[0]}: error:" in err


def test_a_flag_with_nothing_close_is_refused_without_a_guess(capsys):
    err = error_of(["serve", "--workers", "4"], capsys)
    assert "unrecognized arguments: --workers 4" in err and "did you mean" not in err
    assert "o1-retriever serve --help" in err


def test_an_unquoted_query_of_several_words_is_shown_quoted(capsys):
    err = error_of(["search", "--db", "db", "how", "do", "tides", "work"], capsys)
    assert 'a query of several words goes in quotes: "how do tides work"' in err


def test_version(capsys):
    from o1_retriever import __version__
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"o1-retriever {__version__}"


def test_index_given_a_beir_folder_names_its_corpus_file(tmp_path, capsys):
    """`eval --dataset` takes the folder, `index --corpus` its file: the error says which file to pass."""
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "Tides follow the Moon."}\n')
    assert main(["index", "--corpus", str(tmp_path), "--db", str(tmp_path / "db")]) == 2
    assert f"--corpus {tmp_path / 'corpus.jsonl'}" in capsys.readouterr().err
    assert not (tmp_path / "db").exists()  # refused before a model loads or the database is made


@pytest.mark.parametrize("verb", ["demo", "index", "search", "serve"])
def test_model_help_names_the_bundled_models(verb, capsys):
    """The README's model names (o1-retriever-minilm, o1-retriever-joint) are what --model takes: --help says so."""
    from o1_retriever.default_model import BUNDLED_NAMES
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    out = "".join(capsys.readouterr().out.split())  # argparse wraps lines at a name's hyphens
    assert all(name in out for name in BUNDLED_NAMES), out


@pytest.mark.parametrize("verb", ["demo", "index", "search", "serve"])
def test_a_mistyped_dtype_is_refused_at_parse_time_in_the_flags_words(verb, capsys):
    err = error_of([verb, "--dtype", "bf61"], capsys)  # no --corpus / --db needed: refused before those are checked
    assert "argument --dtype: expected auto, bf16, fp16 or fp32" in err and "'bf61'" in err
    assert "torch.dtype" not in err


def test_eval_and_the_ray_commands_refuse_a_mistyped_dtype_at_parse_time(capsys):
    """eval's and `python -m o1_retriever.distributed`'s --dtype took any string: a typo was found after parsing
    (eval) or after the input was read (the Ray commands), in other words than the flag's."""
    from o1_retriever.distributed.cli import build_parser
    err = error_of(["eval", "--dataset", "d", "--dtype", "bf61"], capsys)
    assert "argument --dtype: expected auto, bf16, fp16 or fp32" in err
    for verb in ("encode", "think"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([verb, "--dtype", "bf61"])
        assert "argument --dtype: expected auto, bf16, fp16 or fp32" in capsys.readouterr().err
