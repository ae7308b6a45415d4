"""``vigil seed``: write labelled synthetic history into InfluxDB, and plot a seeded host.

The generator itself (signals, profiles, anomalies, lines, :func:`~vigil.synthetic.seed_history`)
is core code the pipelines and the stress loads share: :mod:`vigil.synthetic`.
"""
