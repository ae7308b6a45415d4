"""Synthetic hosts in the Telegraf schema, with the label windows of the anomalies planted in them.

Pure generation (:func:`generate_host`), shared by the pipelines' synthetic training history and
the stress fleet load; writing it into InfluxDB is the seeder's job (``toolkit.seed``).
"""

from vigil.synthetic.history import HostHistory, generate_host, host_names

__all__ = ["HostHistory", "generate_host", "host_names"]
