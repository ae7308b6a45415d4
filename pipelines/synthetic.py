"""Synthetic datasets in the extract schema for tests and benchmarks (no InfluxDB needed).

* :func:`synthetic_dataset` — feature rows only: correlated Gaussian z-scores (what per-host
  baselines produce on a healthy fleet), anomalies as windows where a few features of one host
  move by several sigmas. Any size, quickly; no raw frames, so only labelled objectives train on it.
* :func:`synthetic_history` — the seeder's hosts (:func:`vigil.synthetic.generate_host`: the history
  ``vigil seed`` writes), turned into raw per-interval frames and through the feature pipeline,
  saved exactly as ``extract`` saves a window (features + raw frames + labels with
  ``source=seed``). What the label-free search and the served evaluation need, without InfluxDB.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.common import DATASET_COLUMNS, LABEL_SOURCE_COLUMN
from vigil.features import FEATURE_COLUMNS


def synthetic_dataset(
    rows: int,
    hosts: int = 8,
    seed: int = 0,
    anomaly_rate: float = 0.03,
    window: int = 30,
    shift: float = 6.0,
    interval_s: int = 10,
    start: str = "2026-01-01",
) -> pd.DataFrame:
    """About ``rows`` rows (rounded to whole intervals of ``hosts`` hosts) in DATASET_COLUMNS."""
    rng = np.random.default_rng(seed)
    n_t = max(rows // hosts, window * 4)
    f = len(FEATURE_COLUMNS)
    mix = rng.normal(size=(f, f)) * 0.3 + np.eye(f)
    frames = []
    times = pd.date_range(start, periods=n_t, freq=f"{interval_s}s", tz="UTC")
    for h in range(hosts):
        x = rng.normal(size=(n_t, f)) @ mix.T * 0.5
        label = np.zeros(n_t, dtype=np.int64)
        label_id = np.full(n_t, "", dtype=object)
        kind = np.full(n_t, "", dtype=object)
        n_windows = max(1, int(anomaly_rate * n_t / window))
        starts = np.sort(rng.choice(np.arange(window, n_t - window), size=n_windows, replace=False))
        for k, s in enumerate(starts):
            if label[s : s + window].any():
                continue
            cols = rng.choice(f, size=3, replace=False)
            x[s : s + window, cols] += shift * rng.choice([-1.0, 1.0], size=3)
            label[s : s + window] = 1
            label_id[s : s + window] = f"syn-{h}-{k}"
            kind[s : s + window] = "shift"
        frame = pd.DataFrame(x, columns=list(FEATURE_COLUMNS))
        frame.insert(0, "time", times)
        frame.insert(0, "host", f"host-{h:02d}")
        frame["warmup"] = np.zeros(n_t, dtype=np.int64)
        frame.loc[:4, "warmup"] = 1
        frame["label"], frame["label_id"], frame["label_kind"] = label, label_id, kind
        frame[LABEL_SOURCE_COLUMN] = np.where(label == 1, "seed", "")
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)[list(DATASET_COLUMNS)]
    out["time"] = out["time"].astype("datetime64[ns, UTC]")
    return out


def raw_frames_of_hosts(
    hosts: int,
    hours: float,
    *,
    seed: int = 0,
    start: str = "2026-01-01",
    interval_s: int = 10,
    anomalies: bool = True,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The seeder's hosts as raw per-interval frames (what ``fetch_raw`` returns) and their labels."""
    from vigil.synthetic.history import generate_host, host_names
    from vigil.synthetic.lines import DISK, INTERFACE

    start_s = int(pd.Timestamp(start, tz="UTC").value // 1_000_000_000) // interval_s * interval_s
    n = int(hours * 3600 // interval_s)
    parts: dict[str, list[pd.DataFrame]] = {g: [] for g in GROUPS}
    labels = []
    for index, name in enumerate(host_names(hosts)):
        h = generate_host(index, name, start_s=start_s, n=n, dt=interval_s, seed=seed, anomalies=anomalies)
        v, t = h.values, pd.to_datetime(h.t_s, unit="s", utc=True)
        parts["cpu[cpu=cpu-total]"].append(
            pd.DataFrame(
                {"time": t, "host": name, "usage_idle": v["usage_idle"], "usage_iowait": v["usage_iowait"]}
            )
        )
        parts["mem"].append(pd.DataFrame({"time": t, "host": name, "used_percent": v["used_percent"]}))
        parts["system"].append(
            pd.DataFrame({"time": t, "host": name, "load1": v["load1"], "n_cpus": float(h.profile.n_cpus)})
        )
        parts["processes"].append(
            pd.DataFrame({"time": t, "host": name, "total": v["proc_total"].astype(float)})
        )
        parts["net/interface"].append(
            pd.DataFrame(
                {
                    "time": t,
                    "host": name,
                    "interface": INTERFACE,
                    "bytes_recv": v["bytes_recv"].astype(float),
                    "bytes_sent": v["bytes_sent"].astype(float),
                }
            )
        )
        parts["diskio/name"].append(
            pd.DataFrame(
                {
                    "time": t,
                    "host": name,
                    "name": DISK,
                    "read_bytes": v["read_bytes"].astype(float),
                    "write_bytes": v["write_bytes"].astype(float),
                }
            )
        )
        labels += h.labels
    raw = {
        g: pd.concat(f, ignore_index=True).sort_values(["time", "host"], kind="stable").reset_index(drop=True)
        for g, f in parts.items()
    }
    frame = pd.DataFrame(labels, columns=["host", "kind", "start", "end", "label_id"])
    frame["source"] = "seed"
    return raw, frame


#: The raw query groups of the feature definitions (``vigil.features.source.GROUP_KEYS``).
GROUPS = ("cpu[cpu=cpu-total]", "mem", "system", "processes", "net/interface", "diskio/name")


def synthetic_history(
    out_dir,
    hosts: int = 5,
    hours: float = 12.0,
    *,
    seed: int = 0,
    start: str = "2026-01-01",
    interval_s: int = 10,
):
    """Write the seeder's history of ``hosts`` x ``hours`` as ``extract`` would: returns the
    dataset path (the raw frames are beside it) and the label windows."""
    from pathlib import Path

    from pipelines.common import dataset_hash, raw_path_of, write_raw
    from pipelines.extract import join_labels
    from vigil.features import FeaturePipeline

    raw, labels = raw_frames_of_hosts(hosts, hours, seed=seed, start=start, interval_s=interval_s)
    _, features = FeaturePipeline().update(raw)
    data = join_labels(features, labels, interval_s)
    data["time"] = pd.to_datetime(data["time"], utc=True).astype("datetime64[ns, UTC]")
    data["warmup"] = data["warmup"].astype(np.int64)
    data = data[list(DATASET_COLUMNS)].sort_values(["host", "time"], kind="stable").reset_index(drop=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"features-{dataset_hash(data)[:16]}.parquet"
    data.to_parquet(path, index=False)
    write_raw(raw, raw_path_of(path))
    return path, labels
