"""Tests of kind: live (tests/conftest.py)."""
