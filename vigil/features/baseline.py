"""Per-host baselines: turn base metrics into host-relative features, one interval at a time.

Why a stateful builder rather than a pandas rolling window: the detector sees a
few new intervals per poll while training sees days at once, and both must
produce *identical* features (training/serving skew is the classic bug here).
So there is one recursion — a robust exponentially weighted mean and variance
per host and metric, plus a short ring buffer — and batch extraction is simply
the same recursion run over a longer frame.

>>> import pandas as pd
>>> b = FeatureBuilder(("cpu",), BaselineConfig(warmup_s=20.0), interval_s=10.0)
>>> frame = pd.DataFrame({"host": ["a"] * 4, "time": pd.date_range("2026-01-01", periods=4, freq="10s", tz="UTC"),
...                       "cpu": [10.0, 12.0, 11.0, 90.0]})
>>> out = b.transform(frame)
>>> list(out.columns)
['host', 'time', 'cpu_z', 'cpu_zmean', 'cpu_vol', 'warmup']
>>> bool(out["cpu_z"].iloc[-1] > 10), int(out["warmup"].iloc[0]), int(out["warmup"].iloc[-1])
(True, 1, 0)
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vigil.features.definitions import BASE_METRICS, feature_names


@dataclass(frozen=True)
class BaselineConfig:
    """Tunables of the per-host baseline (one place; documented in docs/features.md).

    Time scales are in seconds, so one configuration serves 10 s host metrics and 5-minute
    series alike; :meth:`rows` turns them into intervals for a given interval width.

    >>> BaselineConfig().rows(10.0), BaselineConfig().rows(5.0)
    ((360.0, 6, 30), (720.0, 12, 60))
    """

    halflife_s: float = 3600.0  # how fast a host's normal adapts
    window_s: float = 60.0  # the short window (mean and spread of the last minute)
    clip_z: float = 4.0  # deviations beyond this many sigmas count as abnormal for the baseline
    slow_factor: float = 20.0  # abnormal points move the baseline this many times more slowly
    #: seconds before a host's baseline is trusted (it may not alarm before): 5 min.
    #: Equal to the ``warmup_s`` setting's default (tests/unit/test_settings.py checks). 3 min was
    #: tried in the demo: the host left warm-up before its baseline had seen one of this VM's
    #: periodic disk-read bursts (page cache dropped every few minutes) and alarmed on the next one.
    warmup_s: float = 300.0
    z_cap: float = 50.0  # features are capped so one absurd value cannot dominate a model
    #: the smallest spread of log(short-window σ + floor) a host's volatility baseline assumes:
    #: a change of the short-window spread by e^0.5 = 1.65x is one unit of ``vol``. Smaller
    #: floors made an idle metric's first small burst (a process reading its libraries from an
    #: idle disk) a 7-sigma volatility event
    vol_floor: float = 0.5

    def rows(self, interval_s: float) -> tuple[float, int, int]:
        """(half-life, window, warm-up) in intervals of ``interval_s`` seconds."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        return (
            max(1.0, self.halflife_s / interval_s),
            max(1, round(self.window_s / interval_s)),
            max(0, round(self.warmup_s / interval_s)),
        )


DEFAULT_FLOORS: dict[str, float] = {m.name: m.floor for m in BASE_METRICS}


@dataclass
class _State:
    hosts: dict[str, int] = field(default_factory=dict)
    n_host: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n: np.ndarray | None = None  # [H, F] observations per metric
    mu: np.ndarray | None = None
    var: np.ndarray | None = None
    #: [H, F] how many windows fed the volatility baseline, and its mean and variance of
    #: log(rolling σ + floor). Class-level None defaults: checkpoints written before these
    #: existed still unpickle.
    n_vol: np.ndarray | None = None
    mu_vol: np.ndarray | None = None
    var_vol: np.ndarray | None = None
    buf_x: np.ndarray | None = None  # [H, W, F]
    buf_z: np.ndarray | None = None
    pos: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_time: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="datetime64[ns]"))


class FeatureBuilder:
    """Robust per-host EWMA baselines over ``metrics``; emits ``<metric>_{z,zmean,vol}`` features."""

    def __init__(
        self,
        metrics: Sequence[str],
        config: BaselineConfig | None = None,
        floors: dict[str, float] | None = None,
        interval_s: float = 10.0,
    ) -> None:
        self.metrics = tuple(metrics)
        self.config = config or BaselineConfig()
        self.interval_s = float(interval_s)
        halflife, self.window, self.warmup = self.config.rows(self.interval_s)
        floors = {**DEFAULT_FLOORS, **(floors or {})}
        self.floor = np.array([floors.get(m, 1e-3) for m in self.metrics], dtype=float)
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.columns = feature_names(self.metrics)
        self._s = _State()
        self._grow(0)

    # --- state -------------------------------------------------------------------------------
    @property
    def hosts(self) -> list[str]:
        return list(self._s.hosts)

    def seen(self, host: str) -> int:
        """How many intervals of ``host`` the baseline has absorbed."""
        idx = self._s.hosts.get(host)
        return 0 if idx is None else int(self._s.n_host[idx])

    def last_time(self, host: str) -> pd.Timestamp | None:
        idx = self._s.hosts.get(host)
        if idx is None or self._s.n_host[idx] == 0:
            return None
        return pd.Timestamp(self._s.last_time[idx]).tz_localize("UTC")

    def forget(self, host: str) -> None:
        """Drop a host's baseline (it will warm up again if it comes back)."""
        idx = self._s.hosts.pop(host, None)
        if idx is not None:
            self._reset_rows(np.array([idx]))

    def subset(self, hosts: Sequence[str], keep_time: bool = True) -> FeatureBuilder:
        """A new builder with copies of the baselines of ``hosts`` (unknown ones left out).

        Why: the scoring API scores rows against a host's baseline without moving it, so it
        works on a copy of just the hosts it needs (copying 10,000 hosts per request would cost
        more than scoring). ``keep_time=False`` forgets the last absorbed time, so rows at or
        before it are scored instead of dropped as already seen.
        """
        out = FeatureBuilder(self.metrics, self.config, interval_s=self.interval_s)
        out.floor = self.floor.copy()
        known = [h for h in dict.fromkeys(hosts) if h in self._s.hosts]
        if not known:
            return out
        src = np.fromiter((self._s.hosts[h] for h in known), dtype=np.int64, count=len(known))
        dst = out._index(known)
        for name in (
            "n",
            "mu",
            "var",
            "n_vol",
            "mu_vol",
            "var_vol",
            "buf_x",
            "buf_z",
            "n_host",
            "pos",
            "last_time",
        ):
            getattr(out._s, name)[dst] = getattr(self._s, name)[src]
        if not keep_time:
            out._s.last_time[dst] = np.datetime64("NaT")
        return out

    def state(self) -> tuple:
        """Everything a restart needs, as plain picklable parts (the arrays are not copied).

        Why not only :meth:`to_bytes`: at 10,000 hosts the arrays are ~22 MB, and a checkpoint
        that nests bytes in bytes holds a copy per level at once; pickling this tuple straight
        into the checkpoint file (``detector.state.save_checkpoint``) holds none.
        """
        return (self.metrics, self.config, self.floor, self._s, self.interval_s)

    def to_bytes(self) -> bytes:
        return pickle.dumps(self.state(), protocol=5)

    @classmethod
    def from_bytes(cls, data: bytes) -> FeatureBuilder:
        return cls.from_state(pickle.loads(data))  # noqa: S301 - our own checkpoint

    @classmethod
    def from_state(cls, saved: tuple) -> FeatureBuilder:
        """Inverse of :meth:`state`."""
        metrics, config, floor, state, *rest = saved  # checkpoints before interval_s: 10 s
        builder = cls(metrics, config, interval_s=rest[0] if rest else 10.0)
        builder.floor = floor
        builder._s = state
        if state.mu_vol is None and state.mu is not None:  # a checkpoint older than the vol baseline
            state.n_vol = np.zeros_like(state.n)
            state.mu_vol = np.zeros_like(state.mu)
            state.var_vol = np.zeros_like(state.mu)
        return builder

    def _grow(self, n_new: int) -> None:
        s, f, w = self._s, len(self.metrics), self.window
        old = 0 if s.mu is None else s.mu.shape[0]
        needed = len(s.hosts) + n_new  # new hosts take the free rows below this (see _index)
        if s.mu is not None and needed <= old:
            return
        # grow by a quarter at least: amortised like a list when hosts trickle in, and no more
        # than needed when a whole fleet arrives at once. (It doubled on every call that brought
        # a new host, free rows or not: twelve hosts arriving one at a time made 32,768 rows.)
        cap = max(16, needed, old + old // 4)

        def extend(
            arr: np.ndarray | None, shape: tuple[int, ...], fill: float, dtype: str = "float64"
        ) -> np.ndarray:
            out = np.full(shape, fill, dtype=dtype)
            if arr is not None and arr.shape[0]:
                out[: arr.shape[0]] = arr
            return out

        s.n = extend(s.n, (cap, f), 0, "int64")
        s.mu = extend(s.mu, (cap, f), 0.0)
        s.var = extend(s.var, (cap, f), 0.0)
        s.n_vol = extend(s.n_vol, (cap, f), 0, "int64")
        s.mu_vol = extend(s.mu_vol, (cap, f), 0.0)
        s.var_vol = extend(s.var_vol, (cap, f), 0.0)
        s.buf_x = extend(s.buf_x, (cap, w, f), np.nan)
        s.buf_z = extend(s.buf_z, (cap, w, f), np.nan)
        s.n_host = extend(s.n_host, (cap,), 0, "int64")
        s.pos = extend(s.pos, (cap,), 0, "int64")
        s.last_time = extend(s.last_time, (cap,), np.datetime64("NaT"), "datetime64[ns]")

    def _reset_rows(self, idx: np.ndarray) -> None:
        s = self._s
        s.n[idx] = 0
        s.mu[idx] = 0.0
        s.var[idx] = 0.0
        s.n_vol[idx] = 0
        s.mu_vol[idx] = 0.0
        s.var_vol[idx] = 0.0
        s.buf_x[idx] = np.nan
        s.buf_z[idx] = np.nan
        s.n_host[idx] = 0
        s.pos[idx] = 0
        s.last_time[idx] = np.datetime64("NaT")

    def _index(self, hosts: Sequence[str]) -> np.ndarray:
        s = self._s
        new = [h for h in dict.fromkeys(hosts) if h not in s.hosts]
        if new:
            free = sorted(set(range(len(s.hosts) + len(new))) - set(s.hosts.values()))
            self._grow(len(new))
            for h, i in zip(new, free, strict=False):
                s.hosts[h] = i
            self._reset_rows(np.array([s.hosts[h] for h in new]))
        return np.fromiter((s.hosts[h] for h in hosts), dtype=np.int64, count=len(hosts))

    # --- the recursion -------------------------------------------------------------------------
    def _step(self, idx: np.ndarray, x: np.ndarray, when: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
        """Absorb one interval for hosts ``idx`` (distinct); return features [k, 3F] and warm-up flags."""
        s, cfg = self._s, self.config
        n = s.n[idx]
        observed = np.isfinite(x)
        z, s.mu[idx], s.var[idx] = _robust_step(
            n, s.mu[idx], s.var[idx], x, observed, self.floor, 1, self.alpha, cfg, self.warmup
        )
        s.n[idx] = n + observed

        # short window
        pos = s.pos[idx]
        s.buf_x[idx, pos] = np.where(observed, x, np.nan)
        s.buf_z[idx, pos] = np.where(observed, z, np.nan)
        s.pos[idx] = (pos + 1) % self.window
        s.n_host[idx] += 1
        s.last_time[idx] = when

        bz, bx = s.buf_z[idx], s.buf_x[idx]
        cnt = np.isfinite(bz).sum(axis=1)
        zmean = np.where(cnt > 0, np.nansum(bz, axis=1) / np.maximum(cnt, 1), 0.0)
        bx_mean = np.where(cnt > 0, np.nansum(bx, axis=1) / np.maximum(cnt, 1), 0.0)
        dev = np.where(np.isfinite(bx), bx - bx_mean[:, None, :], 0.0)
        roll_sd = np.sqrt((dev * dev).sum(axis=1) / np.maximum(cnt - 1, 1))
        # volatility against the host's own usual short-window spread (a baseline of its own):
        # a stuck metric goes strongly negative, a burst positive, and a host whose noise is
        # spiky (long quiet stretches, rare bursts) sits at 0 like a smooth one, instead of
        # looking "too calm" next to its long-run variance all the time.
        # + floor: spread below the metric's resolution (its floor) counts as none, so an idle
        # host's jitter (a load average decaying from 0.01 to 0.001) is not read as "calmer".
        # It is standardised like z (the same robust recursion), so every host's vol has the
        # same unit whatever the texture of its noise, and a fleet model can compare hosts.
        log_sd = np.log(roll_sd + self.floor)
        has_window = (cnt >= 3) & (n >= 3)
        n_vol = s.n_vol[idx]
        vol, s.mu_vol[idx], s.var_vol[idx] = _robust_step(
            n_vol,
            s.mu_vol[idx],
            s.var_vol[idx],
            log_sd,
            has_window,
            cfg.vol_floor,
            3,
            self.alpha,
            cfg,
            self.warmup,
        )
        s.n_vol[idx] = n_vol + has_window

        feats = np.stack([z, np.clip(zmean, -cfg.z_cap, cfg.z_cap), vol], axis=2).reshape(len(idx), -1)
        warm = s.n_host[idx] <= self.warmup
        return feats, warm

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Absorb ``frame`` (columns host, time, *metrics) in time order; return its feature rows.

        Rows for (host, time) pairs at or before the host's last absorbed interval are dropped
        (they were already scored), so feeding overlapping windows never double counts.
        """
        out_cols = ["host", "time", *self.columns, "warmup"]
        if frame.empty:
            return pd.DataFrame(columns=out_cols)
        missing = [m for m in self.metrics if m not in frame.columns]
        data = frame.copy()
        for m in missing:
            data[m] = np.nan
        data["time"] = pd.to_datetime(data["time"], utc=True, cache=False)
        data = data.drop_duplicates(["host", "time"], keep="last").sort_values(
            ["time", "host"], kind="stable"
        )
        data = self._drop_already_seen(data)
        if data.empty:
            return pd.DataFrame(columns=out_cols)
        values = data[list(self.metrics)].to_numpy(dtype=float)
        values[~np.isfinite(values)] = np.nan
        hosts = data["host"].astype(str).to_numpy()
        times = data["time"].dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        starts = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
        ends = np.r_[starts[1:], len(times)]
        feats = np.empty((len(data), len(self.columns)))
        warm = np.empty(len(data), dtype=bool)
        for lo, hi in zip(starts, ends, strict=True):
            idx = self._index(list(hosts[lo:hi]))
            feats[lo:hi], warm[lo:hi] = self._step(idx, values[lo:hi], times[lo])
        out = pd.DataFrame(feats, columns=list(self.columns), index=data.index)
        out.insert(0, "time", data["time"].to_numpy())
        out.insert(0, "host", hosts)
        out["warmup"] = warm.astype(np.int64)
        return out.sort_values(["host", "time"], kind="stable").reset_index(drop=True)

    def _drop_already_seen(self, data: pd.DataFrame) -> pd.DataFrame:
        s = self._s
        if not s.hosts:
            return data
        last = pd.Series(
            {h: s.last_time[i] for h, i in s.hosts.items() if s.n_host[i] > 0}, dtype="datetime64[ns]"
        )
        if last.empty:
            return data
        cutoff = data["host"].map(last.dt.tz_localize("UTC"))
        keep = cutoff.isna() | (data["time"] > cutoff)
        return data[keep.to_numpy()]


def _robust_step(
    n: np.ndarray,
    mu: np.ndarray,
    var: np.ndarray,
    x: np.ndarray,
    observed: np.ndarray,
    floor: np.ndarray | float,
    min_n: int,
    alpha_min: float,
    cfg: BaselineConfig,
    warmup: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of the robust baseline: the standardised deviation of ``x``, then the new mean
    and variance (plain mean while young, then EWMA; once trusted, abnormal values are
    winsorised at ``clip_z`` and move the baseline ``slow_factor`` times more slowly).

    One function for the level baseline (``z``) and the volatility baseline (``vol``), so the
    two can never drift apart. ``min_n``: observations needed before a deviation is reported.
    """
    sd = np.maximum(np.sqrt(var), floor)
    with np.errstate(invalid="ignore"):
        z = np.where(observed & (n >= min_n), (x - mu) / sd, 0.0)
    z = np.clip(z, -cfg.z_cap, cfg.z_cap)
    trusted = n >= warmup
    abnormal = trusted & (np.abs(z) > cfg.clip_z)
    alpha = np.maximum(1.0 / (n + 1.0), alpha_min)
    alpha = np.where(abnormal, alpha / cfg.slow_factor, alpha)
    target = np.where(trusted, mu + np.clip(z, -cfg.clip_z, cfg.clip_z) * sd, x)
    delta = np.where(observed, target - mu, 0.0)
    alpha = np.where(observed, alpha, 0.0)
    new_mu = mu + alpha * delta
    new_var = np.where(n > 0, (1.0 - alpha) * (var + alpha * delta * delta), 0.0)
    return z, new_mu, new_var
