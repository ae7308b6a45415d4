"""Helpers the tests import: server fixtures, seeded data, Airflow and browser set-up."""
