"""This package's tests use the repository's shared fixtures (tiny models, a SciFact slice). They are plugins,
registered here so that `pytest` run from this directory finds them as `make test` from the root does."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the `tests` plugins live in the repository, not in this package

pytest_plugins = ["tests.fixtures", "tests.integrations.fixtures"]
