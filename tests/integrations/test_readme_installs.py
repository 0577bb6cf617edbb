"""What an integration README's (or the main README's) Python blocks import is installed by the pip commands that README gives, on top of
the core (`o1-retriever[all]`, what the main README's `make install` puts in): a reader who copies the install line
and then the blocks meets no ModuleNotFoundError (the LlamaIndex embedding README imported
llama_index.vector_stores.chroma, which its `pip install -e integrations/llama-index-embeddings-o1` did not bring)."""
from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import importlib.util
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
PIP = re.compile(r"pip install ([^\n#)]*)")
READMES = ["integrations/langchain-o1/README.md", "integrations/llama-index-embeddings-o1/README.md",
           "integrations/llama-index-retrievers-o1/README.md", "README.md"]


@functools.cache
def local_projects() -> dict[str, Path]:
    """Distribution name -> folder, for the core and every package of this repository (read from its pyproject,
    not from the installed metadata, which is as old as the last `pip install -e`)."""
    folders = [REPO, REPO / "training", *sorted((REPO / "integrations").iterdir())]
    return {canonicalize_name(tomllib.loads((f / "pyproject.toml").read_text())["project"]["name"]): f
            for f in folders if (f / "pyproject.toml").is_file()}


def requirements(name: str, extras: frozenset[str], local: dict[str, Path]) -> list[Requirement]:
    if name in local:
        project = tomllib.loads((local[name] / "pyproject.toml").read_text())["project"]
        optional = project.get("optional-dependencies", {})
        return [Requirement(r) for r in [*project.get("dependencies", []), *(r for e in extras for r in optional[e])]]
    try:
        declared = md.distribution(name).requires or []
    except md.PackageNotFoundError:
        return []
    wanted = [Requirement(r) for r in declared]
    return [r for r in wanted if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in {"", *extras})]


def closure(targets: list[tuple[str, frozenset[str]]]) -> set[str]:
    """Every distribution the targets install, following dependencies and extras."""
    local, seen, todo = local_projects(), set(), list(targets)
    while todo:
        name, extras = todo.pop()
        name = canonicalize_name(name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        todo += [(r.name, frozenset(r.extras)) for r in requirements(name, extras, local)]
    return {name for name, _ in seen}


def pip_targets(readme: Path) -> list[tuple[str, frozenset[str]]]:
    """What the README's `pip install` commands (in shell blocks or comments) name: local folders become their
    distribution names."""
    names = {folder.resolve(): name for name, folder in local_projects().items()}
    targets = []
    text = re.sub(r"\\\n#?", " ", readme.read_text())  # a command continued on the next line (of a comment too)
    for command in PIP.findall(text):
        for word in command.split():
            word = word.strip("\"'`")
            if not word or word.startswith("-"):
                continue
            spec, _, extras = word.partition("[")
            extras = frozenset(filter(None, extras.rstrip("]").split(",")))
            folder = (REPO / spec).resolve()
            if spec.startswith((".", "integrations", "training")) and folder in names:
                targets.append((names[folder], extras))
            elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec):
                targets.append((spec, extras))
    return targets


@functools.cache
def owners(module: str) -> set[str]:
    """The distributions that install `module`'s file; empty for this repository's own code."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{module} is not installed here: the check needs the test environment"
    origin = Path(spec.origin or next(iter(spec.submodule_search_locations))).resolve()
    if REPO in origin.parents and "site-packages" not in origin.parts:  # the repository's own code (not .venv)
        return set()
    top = module.split(".")[0]
    found = set()
    for name in packages().get(top, []):
        files = md.distribution(name).files or []
        if any(Path(md.distribution(name).locate_file(f)).resolve() == origin for f in files):
            found.add(canonicalize_name(name))
    return found


@functools.cache
def packages() -> dict[str, list[str]]:
    return md.packages_distributions()


def imported_modules(readme: Path) -> set[str]:
    tree = ast.parse("\n".join(BLOCK.findall(readme.read_text())))
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return modules | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


@pytest.mark.parametrize("path", READMES)
def test_readme_install_commands_bring_what_its_blocks_import(path):
    readme = REPO / path
    installed = closure([("o1-retriever", frozenset({"all"})), *pip_targets(readme)])
    missing = {m: sorted(owners(m)) for m in sorted(imported_modules(readme)) if owners(m) and not owners(m) & installed}
    assert not missing, f"{path} imports modules its pip commands do not install: {missing}"


def test_pip_commands_install_this_repositorys_packages_by_path():
    """The integrations and the training package are not on PyPI: a `pip install langchain-o1` in a doc or an
    example's docstring fails for a reader (the examples' "Needs:" lines said so); they install from the clone."""
    names = set(local_projects()) - {"o1-retriever"}
    pages = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").iterdir(),
             *(REPO / "integrations").glob("*/README.md"), REPO / "training" / "README.md"]
    wrong = [(page.relative_to(REPO).as_posix(), word) for page in pages if page.suffix in (".md", ".py")
             for command in PIP.findall(page.read_text()) for word in command.split()
             if canonicalize_name(word.strip("\"'`").partition("[")[0]) in names]
    assert not wrong, wrong


def test_examples_readme_install_brings_what_the_examples_import():
    """examples/README.md's by-hand install (on top of nothing but the core's own dependencies) runs every example."""
    readme = REPO / "examples" / "README.md"
    installed = closure([("o1-retriever", frozenset()), *pip_targets(readme)])
    modules = set()
    for script in (REPO / "examples").glob("*.py"):
        tree = ast.parse(script.read_text())
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    missing = {m: sorted(owners(m)) for m in sorted(modules) if owners(m) and not owners(m) & installed}
    assert not missing, f"the examples import modules examples/README.md's pip commands do not install: {missing}"
