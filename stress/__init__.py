"""Vigil stress."""
