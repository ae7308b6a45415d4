"""Tests of kind: integration (tests/conftest.py)."""
