"""``vigil dashboard``: the provisioned Grafana dashboards rendered to a static HTML page with PNG plots."""
