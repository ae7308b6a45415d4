"""Vigil detector."""
