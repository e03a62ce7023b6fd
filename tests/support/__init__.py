"""Plain helpers for the tests: no fixtures and no tests, so any test module may import from here.

Shared fixtures live in tests/conftest.py (and tests/integration/conftest.py); test modules
never import from one another.
"""
