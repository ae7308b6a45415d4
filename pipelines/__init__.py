"""Vigil pipelines."""
