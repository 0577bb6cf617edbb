"""What each integration's package metadata promises a user who installs it (issue 30, point 6)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2] / "integrations"
PACKAGES = ["langchain-o1", "llama-index-embeddings-o1", "llama-index-retrievers-o1"]
# distributions whose private APIs the integrations use: each needs an upper bound wherever it is required
PRIVATE_API = {"chromadb", "langchain-chroma", "llama-index-vector-stores-chroma"}


def _project(package: str) -> dict:
    return tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]


def _requirements(project: dict) -> list[Requirement]:
    extras = [r for group in project.get("optional-dependencies", {}).values() for r in group]
    return [Requirement(r) for r in project.get("dependencies", []) + extras]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_integration_ships_the_apache_licence(package):
    text = (ROOT / package / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0" in text
    assert _project(package)["license"] == {"text": "Apache-2.0"}


@pytest.mark.parametrize("package", ["langchain-o1", "llama-index-retrievers-o1"])
def test_hybrid_search_has_an_extra(package):
    # hybrid=True needs bm25s (and PyStemmer): installable as `pip install <package>[hybrid]`
    assert _project(package)["optional-dependencies"]["hybrid"] == ["o1-retriever[hybrid]"]


@pytest.mark.parametrize("package", PACKAGES)
def test_private_apis_are_bounded(package):
    for requirement in _requirements(_project(package)):
        if requirement.name in PRIVATE_API:
            assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), str(requirement)


def test_langchain_tests_is_pinned_exactly():
    [pin] = [r for r in _requirements(_project("langchain-o1")) if r.name == "langchain-tests"]
    assert re.fullmatch(r"==\d+\.\d+\.\d+", str(pin.specifier))
    from importlib.metadata import version
    assert str(pin.specifier) == f"=={version('langchain-tests')}"  # the version the standard suites ran against
