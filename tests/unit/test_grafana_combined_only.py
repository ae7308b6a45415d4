"""What pages is the combined decision only: every generated Grafana query (dashboards, panels,
annotations, alert rules — the files in grafana/provisioning and what the generator renders) and
the stress report's queries that read ``is_anomaly`` keep to ``source = 'combined'``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from stress.report import model_scores_query, predictions_query
from toolkit.grafana.build import DASHBOARDS_DIR, RULES_FILE, render_all

COMBINED = re.compile(r"\"source\"\s*=\s*'combined'")
READS_DECISION = re.compile(r"is_anomaly|SELECT\s+\*", re.IGNORECASE)


def queries(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every ``query`` string in a dashboard or rule file, with where it was found."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}/{node.get('title') or node.get('name') or node.get('refId') or key}"
            if key == "query" and isinstance(value, str):
                yield here, value
            else:
                yield from queries(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from queries(item, f"{where}[{i}]")


def offending(query: str) -> bool:
    """A query that reads the decision (is_anomaly, or every field) of any source but combined."""
    return bool(READS_DECISION.search(query)) and "vigil_predictions" in query and not COMBINED.search(query)


def generated() -> list[tuple[str, str]]:
    found = []
    for path, text in render_all().items():
        doc = yaml.safe_load(text) if path == RULES_FILE else json.loads(text)
        found += [(f"{path.name}{where}", q) for where, q in queries(doc)]
    for path in sorted(DASHBOARDS_DIR.glob("*.json")) + [RULES_FILE]:  # what is provisioned, too
        doc = yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(path.read_text())
        found += [(f"provisioned {path.name}{where}", q) for where, q in queries(doc)]
    return found


def test_the_check_can_fail() -> None:
    assert offending('SELECT mean("is_anomaly") FROM "vigil_predictions" WHERE $timeFilter GROUP BY "host"')
    assert offending('SELECT * FROM "vigil_predictions" WHERE "host" = \'a\'')
    assert not offending('SELECT mean("is_anomaly") FROM "vigil_predictions" WHERE "source" = \'combined\'')
    assert not offending('SELECT mean("score") FROM "vigil_predictions" WHERE $timeFilter')


def test_every_generated_query_reading_is_anomaly_keeps_to_combined() -> None:
    found = generated()
    reading = [(where, q) for where, q in found if "is_anomaly" in q]
    assert (
        len(found) > 20 and len(reading) >= 6
    )  # annotations x2, anomaly-rate panel, alert rule, on disk too
    bad = [(where, q) for where, q in found if offending(q)]
    assert not bad, "queries reading is_anomaly without source = 'combined':\n" + "\n".join(
        f"{w}: {q}" for w, q in bad
    )


@pytest.mark.parametrize("builder", [predictions_query, model_scores_query])
def test_stress_report_queries_judge_the_combined_decision_only(builder) -> None:
    q = builder("web-1", 0, 10**9)
    assert not offending(q), q
    if builder is model_scores_query:
        assert "is_anomaly" not in q and "*" not in q  # the models' own scores, drawn, never judged
