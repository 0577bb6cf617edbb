"""What the core package's metadata promises (issue 30, point 6): bounds where private APIs are used, and tools that
only some commands need are extras that the engine imports lazily (a missing one: ImportError with the pip command).
The integrations' metadata is checked in tests/integrations/test_integration_packaging.py."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


HARD = _names(PROJECT["dependencies"])
EXTRA_ONLY = _names(r for group in PROJECT["optional-dependencies"].values() for r in group) - HARD - {"o1-retriever"}


def _installed_with(names: set[str]) -> set[str]:
    """`names` and everything they require unconditionally, as installed here."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [canonicalize_name(r.name) for r in map(Requirement, requires)
                 if r.marker is None or r.marker.evaluate({"extra": ""})]
    return seen


def test_chromadb_is_bounded_where_its_embedding_function_registry_is_used():
    [chromadb] = [Requirement(r) for r in PROJECT["dependencies"] if Requirement(r).name == "chromadb"]
    assert any(spec.operator == "<" for spec in chromadb.specifier), str(chromadb)


def test_accelerate_and_psutil_are_extras_not_hard_dependencies():
    # only quantized loading (accelerate) and `o1-retriever bench` (psutil) use them
    assert {"accelerate", "psutil"} <= EXTRA_ONLY
    assert PROJECT["optional-dependencies"]["bench"] == ["psutil"]
    assert any(Requirement(r).name == "accelerate" for r in PROJECT["optional-dependencies"]["quant"])


def test_every_module_imports_without_the_extras_or_names_the_pip_command():
    """A fresh process where the extras' modules cannot be imported (the ones the hard dependencies install anyway
    stay importable, as they would be). Each engine module either imports or raises an ImportError that says what
    to pip install."""
    optional = EXTRA_ONLY - _installed_with(HARD)
    modules = {m for m, dists in metadata.packages_distributions().items()
               if {canonicalize_name(d) for d in dists} & optional}
    modules |= {name.replace("-", "_") for name in optional}  # extras not installed here
    script = f"""
import importlib, json, pkgutil, sys
for name in {sorted(modules)!r}:
    sys.modules[name] = None  # `import name` now raises ImportError, as when it is not installed
import o1_retriever
failed = {{}}
for info in pkgutil.walk_packages(o1_retriever.__path__, "o1_retriever."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # runs a command when imported
    try:
        importlib.import_module(info.name)
    except ImportError as e:
        failed[info.name] = str(e)
print(json.dumps(failed))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    unhelpful = {name: error for name, error in failed.items() if "pip install" not in error}
    assert not unhelpful


TRAINING_RECORD = ("train_log.jsonl", "losses.png", "training_args.json")


def test_the_bundled_adapter_ships_only_what_inference_loads():
    # each stage's arguments, losses and plot are kept beside the benchmarks instead (issue 28, point 5)
    from o1_retriever.default_model import ADAPTER_DIR
    extra = [p.name for p in ADAPTER_DIR.iterdir() if p.is_dir() or p.name in TRAINING_RECORD]
    assert not extra, f"{ADAPTER_DIR} ships training files: {extra}"
    for stage in ("stage1", "stage2", "stage3", "stage6"):
        for name in TRAINING_RECORD:
            assert (ROOT / "benchmarks" / "default_adapter_training" / stage / name).is_file(), (stage, name)
