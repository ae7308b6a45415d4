"""Tests of kind: unit (tests/conftest.py)."""
