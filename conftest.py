"""The repository's test fixtures live in plugins so that tests/ and each integration package's own tests
(integrations/<dist>/tests) share them: see tests/fixtures.py."""
pytest_plugins = ["tests.fixtures"]
