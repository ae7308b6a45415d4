"""The decision the detector serves, on seeded history in a real InfluxDB, with a champion:

* **recovery** — a 10-minute CPU + disk burst alarms while it lasts, and the alarm stops within
  2 intervals once the metrics are back in their normal band (the one-minute windows and the
  champion's view must not keep it alive), without muting the burst itself;
* **seasonality** — a 20-minute backup at 02:00 every night alarms on its first night at most and
  is quiet from the second on, while the same burst at 14:00 on day 5 alarms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.detector_support import fit_model
from support.seeded_jobs import DAY, Load, serve, write_host

from toolkit.seed import seed_history
from vigil.features import BASE_METRIC_NAMES, FeaturePipeline
from vigil.influx import InfluxClient
from vigil.model import LoadedModel

MONDAY = pd.Timestamp("2026-03-02T00:00:00Z")
T0 = int(MONDAY.value // 10**9)
STEP = pd.Timedelta(seconds=10)


@pytest.fixture(scope="module")
def champion(settings) -> LoadedModel:
    """An IsolationForest trained on six hours of four *other* seeded hosts."""
    client = InfluxClient(settings.influx)
    client.drop_database("rs_train")
    client.create_database("rs_train")
    train = seed_history(
        client,
        settings.influx,
        settings.collection,
        start=MONDAY - pd.Timedelta(days=3),
        hours=6,
        hosts=[f"t{i}" for i in range(4)],
        seed=21,
        anomalies=False,
        progress=False,
        db="rs_train",
    )
    _, feats = FeaturePipeline().update_from_influx(client, "rs_train", train.start, train.end, 10)
    return LoadedModel(name="rs", version=1, run_id=None, model=fit_model(feats))


def _fresh(settings, db: str) -> InfluxClient:
    client = InfluxClient(settings.influx)
    client.drop_database(db)
    client.create_database(db)
    return client


def test_an_alarm_ends_with_its_load_and_not_before(settings, champion):
    client = _fresh(settings, "rs_recovery")
    burst = Load(start=T0 + DAY + 12 * 3600, seconds=600)
    end = MONDAY + pd.Timedelta(days=1, hours=14)
    write_host(client, "rs_recovery", "web", MONDAY, int((end - MONDAY).total_seconds()), [burst])
    pred = serve(client, "rs_recovery", MONDAY, end, champion)
    t = pred["time"]
    lo = pd.Timestamp(burst.start, unit="s", tz="UTC")
    hi = lo + pd.Timedelta(seconds=burst.seconds)
    during = pred[(t >= lo) & (t < hi)]
    assert during["is_anomaly"].any(), "the burst must alarm"
    first = during.index[during["is_anomaly"].to_numpy() == 1][0]
    held = pred.loc[first : during.index[-1], "is_anomaly"]
    assert held.mean() >= 0.9, f"the alarm must last while the load does ({held.mean():.0%} of its intervals)"
    # the normal band: what each metric did over the 12 h before the burst
    before = pred[(t >= lo - pd.Timedelta(hours=12)) & (t < lo)]
    band_lo = before[list(BASE_METRIC_NAMES)].quantile(0.005)
    band_hi = before[list(BASE_METRIC_NAMES)].quantile(0.995)
    after = pred[t >= hi].reset_index(drop=True)
    metrics = after[list(BASE_METRIC_NAMES)]
    inside = ((metrics >= band_lo) | metrics.isna()) & ((metrics <= band_hi) | metrics.isna())
    back = int(np.argmax(inside.all(axis=1).to_numpy()))
    assert inside.all(axis=1).iloc[back], "the metrics never came back: the test proves nothing"
    late = after.loc[back + 2 :, "is_anomaly"]
    tail = after.loc[: back + 1, "is_anomaly"].tolist()
    assert late.sum() == 0, f"alarmed {int(late.sum())} intervals after the metrics were back in band"
    print(f"back in band {back} intervals after the load; alarmed intervals after the load: {tail}")


def test_a_nightly_job_is_quiet_from_its_second_night_and_the_same_burst_at_an_odd_hour_alarms(
    settings, champion
):
    client = _fresh(settings, "rs_season")
    days = 6
    backups = [Load(start=T0 + d * DAY + 2 * 3600, seconds=1200) for d in range(days)]
    odd = Load(start=T0 + 4 * DAY + 14 * 3600, seconds=1200)
    write_host(client, "rs_season", "db", MONDAY, days * DAY, [*backups, odd])
    pred = serve(client, "rs_season", MONDAY, MONDAY + pd.Timedelta(days=days), champion)
    t = pred["time"]

    def alarms_in(load: Load) -> int:
        lo = pd.Timestamp(load.start, unit="s", tz="UTC")
        on = (t >= lo) & (t < lo + pd.Timedelta(seconds=load.seconds + 300))
        return int(pred.loc[on, "is_anomaly"].sum())

    nightly = [alarms_in(b) for b in backups]
    print(f"alarmed intervals at 02:00, night by night: {nightly}; at 14:00 on day 5: {alarms_in(odd)}")
    assert all(n == 0 for n in nightly[1:]), f"the nightly job alarms after its first night: {nightly}"
    assert alarms_in(odd) > 0, "the same burst at an hour it never happens must alarm"
