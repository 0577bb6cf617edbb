"""The standard suites' async tests are bare `async def` (LangChain packages run pytest-asyncio in
auto mode). Mark just those, as pytest-asyncio collects them, leaving strict mode alone elsewhere."""
import inspect
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    if HERE in Path(collector.path).parents and inspect.iscoroutinefunction(obj) and name.startswith("test_"):
        marks = getattr(obj, "pytestmark", [])
        if not any(mark.name == "asyncio" for mark in marks):
            pytest.mark.asyncio(obj)
