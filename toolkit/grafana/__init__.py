"""Grafana, without Grafana: build the provisioning files from :mod:`vigil.schema`, expand
Grafana's InfluxQL macros the way Grafana does, and evaluate the unified-alerting rules.

Grafana has no package that runs on the machines Vigil is developed on, so the
provisioned dashboards and alert rules are checked (and rendered by ``vigil dashboard``)
by running their queries, macro-expanded exactly as Grafana would, against the real
InfluxDB.
"""
