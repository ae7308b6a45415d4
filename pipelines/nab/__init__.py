"""Vigil on the Numenta Anomaly Benchmark: data loading, scorer, runner, report, CLI."""
