"""Vigil's tooling: what runs, seeds, provisions, collects and shows the platform.

The local stack manager (``vigil up/down/status``), the metrics collector, the seeder CLI,
the Grafana provisioning generator and dashboard renderer, the Airflow REST client, the
one-command demo and the ``vigil`` command itself. It sits above the product parts
(``detector``, ``pipelines``, ``stress``) and the core (``vigil``), and nothing imports it
(docs/architecture.md).
"""
