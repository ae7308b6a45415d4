"""Per-series evidence: how unusual each metric of each host is against its *own* history.

Why per series: a host's metric is judged by what that series has done before, not by a fleet
average — the first question an SRE asks ("has this disk ever written this much?"). Two members,
each an answer to one question, both scale-free and with no distribution assumed:

* **record** — is the value beyond everything the series did over the last ``record_horizon_s``
  (or at least ``record_min_samples`` samples)? Its score is ``0.5 + excess / range``: 0.5 is
  the record boundary, and the excess over the old maximum (or below the old minimum) is
  measured in units of the series' recent range, so a record far outside what was seen scores
  higher. The window is kept as ``record_blocks`` block extrema, O(1) per series.
* **rarity** — has the series rarely been at this level? The fraction ``p`` of its (decayed)
  history that fell in the value's neighbourhood (one bin of a ``rarity_bins``-bin histogram
  over the series' range). Scored ``0.5 * log(p) / log(p*)``: 0.5 exactly when the level is as
  rare as ``p*``, the share at which chance would bring the series there ``rarity_per_day``
  times a day. It catches what records cannot: a level between the usual ones (a square wave
  stuck half way) or a return to a level not seen for weeks.
* **season** — is the value beyond anything the series did at this hour of the day, by a
  quarter of its range? A job that runs at 02:00 every day is usual at 02:00 and nowhere else.

Series are laid out as hosts x metrics, so one interval of a fleet is one array of values.
A series' evidence is the larger of the two; nothing counts before the series has
``min_samples`` samples *and* ``min_history_s`` seconds of history: a record among a few dozen
samples, or within less than one daily cycle, says little. ``score`` is pure and ``learn``
mutates, so a point never helps score itself; everything is numpy over the series of one
interval, so 90,000 series (10,000 hosts x 9 metrics) cost a few array operations per interval.

>>> import numpy as np
>>> ev = SeriesEvidence(["cpu", "mem"], SeriesConfig(min_samples=50, min_history_s=0.0))
>>> rng = np.random.default_rng(0)
>>> idx = ev.index(["h1"])
>>> for i in range(500):
...     ev.learn(idx, np.array([[20.0 + rng.normal(), 50.0 + rng.normal()]]), float(i * 10))
>>> normal = ev.score(idx, np.array([[20.3, 50.2]]), 5000.0)
>>> spike = ev.score(idx, np.array([[35.0, 50.2]]), 5000.0)
>>> bool(normal.score.max() < 0.5 < spike.score[0, 0]), str(spike.member[0, 0])
(True, 'record')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

DAY_S = 86_400.0


@dataclass(frozen=True)
class SeriesConfig:
    """The per-series members' settings: time in seconds, plus the samples a statistic needs.

    Chosen on NAB's corpus with a leave-one-category-out protocol (docs/nab.md); each is a
    statement about the data, not a fitted weight:

    >>> SeriesConfig().rarity_per_day, SeriesConfig().record_horizon_s / DAY_S
    (0.3, 30.0)
    """

    #: the record window: the last 30 days, or the last ``record_min_samples`` samples if those
    #: reach further back (slow series: hourly data needs months for a meaningful record)
    record_horizon_s: float = 30 * DAY_S
    record_min_samples: int = 4000
    #: the window is kept as this many block extrema (a record is judged against the last
    #: ``record_blocks - 1`` to ``record_blocks`` blocks: within 1/8 of the horizon)
    record_blocks: int = 8
    #: a level is rare when chance would bring the host there less than this many times a day:
    #: the share of a series' history near the level is below ``rarity_per_day * dt / 1 day / M``
    #: for a series sampled every ``dt`` seconds on a host with ``M`` metrics (one series: 1 in
    #: 960 samples at 5 minutes, 1 in 28,800 at 10 s) — a false-alarm rate per host and day,
    #: whatever the sampling rate and the number of metrics
    rarity_per_day: float = 0.3
    #: the histogram the rarity is counted in: bins over the series' range
    rarity_bins: int = 16
    #: history older than this counts half as much in the rarity (the histogram decays)
    rarity_halflife_s: float = 30 * DAY_S
    #: **season**: is the value beyond anything the series did at this hour of the day? Bins of
    #: the (UTC) day, each with the envelope of its values on earlier days, which shrinks about its
    #: middle
    #: with ``season_halflife_s`` (a job that stops running stops being "usual" at its hour).
    #: 0 bins = no seasonal member.
    season_bins: int = 24
    season_halflife_s: float = 7 * DAY_S
    #: the excess beyond the hour's envelope, as a share of the series' range, that scores 0.5
    #: (a quarter of the range: a burst at an hour it never happens; not the jitter of a busy hour)
    season_excess: float = 0.25
    #: samples a bin needs (days of history x samples per bin a day) before it counts; the history
    #: the series needs before a value
    #: can be *unusual* for its hour (several days: a first Tuesday differs from a Monday) and
    #: before it can be *usual* for its hour (one day: a job seen at 02:00 is usual at 02:00
    #: the next night)
    season_min_samples: float = 100.0
    season_min_history_s: float = 3 * DAY_S
    season_usual_after_s: float = DAY_S
    #: nothing counts before a series has this many samples ...
    min_samples: int = 100
    #: ... and this much history: two daily cycles, so a first busy morning (or the first days of
    #: a slowly drifting series such as memory in use) is not an anomaly
    min_history_s: float = 2 * DAY_S

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SeriesConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class SeriesScores:
    """Scores of one interval (arrays of shape hosts x metrics, aligned with the values passed in)."""

    score: np.ndarray  # max of the members; 0.5 is the boundary; 0 while not mature
    record: np.ndarray
    rarity: np.ndarray
    season: np.ndarray
    #: bool: usual for this hour (the hour-of-day bin has enough history and the value's excess
    #: beyond that bin's envelope is under ``season_excess`` of the series' range)
    usual: np.ndarray
    mature: np.ndarray  # bool: the series has enough history for its evidence to count
    member: np.ndarray  # "record" | "rarity" | "season" | "" (the largest member where it is > 0)


class SeriesEvidence:
    """Record and rarity members for every (host, metric) series."""

    def __init__(self, metrics: Sequence[str], config: SeriesConfig | None = None) -> None:
        if not metrics:
            raise ValueError("SeriesEvidence needs at least one metric")
        self.metrics = tuple(metrics)
        self.config = config or SeriesConfig()
        self._index: dict[str, int] = {}
        self._alloc(0)

    # --- storage -----------------------------------------------------------------------------
    def _alloc(self, cap: int) -> None:
        c, m = self.config, len(self.metrics)
        self.n = np.zeros((cap, m), dtype=np.int64)
        self.t_first = np.full((cap, m), np.nan)
        self.t_last = np.full((cap, m), np.nan)
        self.dt = np.full((cap, m), np.nan)  # EW mean of the sampling interval
        self.block_len = np.zeros((cap, m))  # seconds; 0 = not set yet
        self.block_end = np.full((cap, m), np.nan)
        self.bpos = np.zeros((cap, m), dtype=np.int64)
        # float32 for the per-block and per-bin arrays: they dominate the memory (10,000 hosts x
        # 9 metrics), and their resolution (1e-7 of the value) is far below anything scored
        self.bmax = np.full((cap, m, c.record_blocks), np.nan, dtype=np.float32)
        self.bmin = np.full((cap, m, c.record_blocks), np.nan, dtype=np.float32)
        self.hist = np.zeros((cap, m, c.rarity_bins), dtype=np.float32)
        self.hlo = np.full((cap, m), np.nan)
        self.hhi = np.full((cap, m), np.nan)
        nsb = max(1, c.season_bins)
        self.s_hi = np.full((cap, m, nsb), np.nan, dtype=np.float32)
        self.s_lo = np.full((cap, m, nsb), np.nan, dtype=np.float32)
        self.s_thi = np.full((cap, m), np.nan, dtype=np.float32)  # the current hour's envelope
        self.s_tlo = np.full((cap, m), np.nan, dtype=np.float32)
        self.s_slot = np.full((cap, m), np.nan)  # the current hour (bins since the epoch)

    def _grow(self, needed: int) -> None:
        old = len(self.n)
        if needed <= old:
            return
        cap = max(16, needed, old + old // 4)
        saved = {k: getattr(self, k) for k in _ARRAYS}
        self._alloc(cap)
        for k, arr in saved.items():
            getattr(self, k)[:old] = arr

    def __len__(self) -> int:
        return len(self._index)

    @property
    def hosts(self) -> list[str]:
        return list(self._index)

    def index(self, hosts: Sequence[str]) -> np.ndarray:
        """Row of each host (new ones are created empty)."""
        new = [h for h in dict.fromkeys(hosts) if h not in self._index]
        if new:
            self._grow(len(self._index) + len(new))
            for h in new:
                self._index[h] = len(self._index)
        return np.fromiter((self._index[h] for h in hosts), dtype=np.int64, count=len(hosts))

    def known(self, hosts: Sequence[str]) -> np.ndarray:
        """Row of each host, -1 where unknown (read-only callers create nothing)."""
        return np.fromiter((self._index.get(h, -1) for h in hosts), dtype=np.int64, count=len(hosts))

    def samples(self, host: str) -> int:
        """Samples of the host's best-observed metric (0 if unknown)."""
        i = self._index.get(host)
        return 0 if i is None else int(self.n[i].max())

    def forget(self, host: str) -> None:
        """Drop a host's history (it matures again if it comes back)."""
        i = self._index.get(host)
        if i is None:
            return
        fresh = SeriesEvidence(self.metrics, self.config)
        fresh._alloc(1)
        for k in _ARRAYS:
            getattr(self, k)[i] = getattr(fresh, k)[0]

    # --- scoring -----------------------------------------------------------------------------
    def score(self, idx: np.ndarray, x: np.ndarray, t: float) -> SeriesScores:
        """Score values ``x`` (hosts x metrics) of hosts ``idx`` at time ``t`` (seconds), without
        learning them. ``idx`` may hold -1 (an unknown host scores 0); NaN values score 0."""
        c = self.config
        idx = np.asarray(idx, dtype=np.int64)
        x = np.asarray(x, dtype=float).reshape(len(idx), len(self.metrics))
        record = np.zeros(x.shape)
        rarity = np.zeros(x.shape)
        season = np.zeros(x.shape)
        usual = np.zeros(x.shape, dtype=bool)
        mature = np.zeros(x.shape, dtype=bool)
        known = idx >= 0
        if known.any():
            rows = idx[known]
            xs = x[known]
            age = np.where(np.isfinite(self.t_first[rows]), t - self.t_first[rows], 0.0)
            m = (self.n[rows] >= c.min_samples) & (age >= c.min_history_s) & np.isfinite(xs)
            with np.errstate(invalid="ignore"):
                hi = np.nanmax(np.where(np.isnan(self.bmax[rows]), -np.inf, self.bmax[rows]), axis=2)
                lo = np.nanmin(np.where(np.isnan(self.bmin[rows]), np.inf, self.bmin[rows]), axis=2)
                rng = hi - lo
                exc = np.where(xs > hi, xs - hi, np.where(xs < lo, lo - xs, -1.0))
                ok = (exc >= 0) & np.isfinite(rng) & (rng > 0)
                rec = np.where(ok, 0.5 + exc / np.where(ok, rng, 1.0), 0.0)
            p = self._rarity_p(rows, xs)
            dt = np.where(np.isfinite(self.dt[rows]), self.dt[rows], DAY_S)
            # per host: a host's metrics share the day's rate (a host with 9 metrics is not 9
            # times as likely to page by chance as a single series)
            share = c.rarity_per_day / len(self.metrics)
            log_ps = np.log(np.clip(share * dt / DAY_S, 1e-12, 0.5))
            rar = np.where(p < 1.0, 0.5 * np.log(p) / log_ps, 0.0)
            record[known] = np.where(m, np.minimum(rec, 1.0), 0.0)
            rarity[known] = np.where(m, np.clip(rar, 0.0, 1.0), 0.0)
            if c.season_bins:
                ses, within = self._season(rows, xs, t, rng, age)
                season[known] = np.where(m, np.minimum(ses, 1.0), 0.0)
                usual[known] = within  # a veto: needs the hour's history, not maturity
            mature[known] = m
        score = np.maximum(np.maximum(record, rarity), season)
        member = np.where(
            score <= 0,
            "",
            np.where(
                record >= np.maximum(rarity, season), "record", np.where(rarity >= season, "rarity", "season")
            ),
        )
        return SeriesScores(
            score=score,
            record=record,
            rarity=rarity,
            season=season,
            usual=usual,
            mature=mature,
            member=member,
        )

    def _season(
        self, rows: np.ndarray, x: np.ndarray, t: float, rng: np.ndarray, age: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(score, usual): 0.5 * (excess beyond this hour's envelope / series range) /
        season_excess, and whether the bin is ready and the value is not unusual for it (its
        excess is under ``season_excess``: one notion of "usual at this hour" for both)."""
        c = self.config
        b = _season_bin(t, c.season_bins)
        hi = self.s_hi[rows, :, b].astype(float)  # earlier days' envelope of this hour
        lo = self.s_lo[rows, :, b].astype(float)
        known = (
            (
                age
                / DAY_S
                * (DAY_S / c.season_bins)
                / np.where(np.isfinite(self.dt[rows]), self.dt[rows], DAY_S)
                >= c.season_min_samples
            )
            & np.isfinite(hi)
            & np.isfinite(rng)
            & (rng > 0)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            exc = np.where(x > hi, x - hi, np.where(x < lo, lo - x, 0.0)) / np.where(rng > 0, rng, 1.0)
        score = 0.5 * exc / c.season_excess
        usual = known & (age >= c.season_usual_after_s) & (score < 0.5)
        return np.where(known & (age >= c.season_min_history_s), score, 0.0), usual

    def _rarity_p(self, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Share of each series' (decayed) history in ``x``'s bin; 1.0 where none is kept yet."""
        nb = self.config.rarity_bins
        lo, hi = self.hlo[rows], self.hhi[rows]
        hist = self.hist[rows]
        total = hist.sum(axis=2)
        have = np.isfinite(lo) & (hi > lo) & (total > 0) & np.isfinite(x)
        b = _bin_of(x, lo, hi, nb)
        inside = have & (b >= 0) & (b < nb)
        counts = np.take_along_axis(hist, np.clip(b, 0, nb - 1)[..., None], axis=2)[..., 0]
        counts = np.where(inside, counts, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(have, (counts + 1.0) / (total + 1.0), 1.0)
        return np.minimum(p, 1.0)

    # --- learning ----------------------------------------------------------------------------
    def learn(self, idx: np.ndarray, x: np.ndarray, t: float) -> None:
        """Absorb values ``x`` (hosts x metrics; NaN = not observed) of distinct hosts ``idx`` at ``t``."""
        idx = np.asarray(idx, dtype=np.int64)
        x = np.asarray(x, dtype=float).reshape(len(idx), len(self.metrics))
        keep = idx >= 0
        if not keep.any():
            return
        rows, x = idx[keep], x[keep]
        obs = np.isfinite(x)
        if not obs.any():
            return
        r, m = np.nonzero(obs)
        rows = rows[r]
        xs = x[r, m]
        self._learn_time(rows, m, t)
        self._learn_record(rows, m, xs, t)
        self._learn_rarity(rows, m, xs)
        if self.config.season_bins:
            self._learn_season(rows, m, xs, t)
        self.n[rows, m] += 1

    def _learn_time(self, rows: np.ndarray, m: np.ndarray, t: float) -> None:
        first = ~np.isfinite(self.t_first[rows, m])
        self.t_first[rows[first], m[first]] = t
        prev = self.t_last[rows, m]
        gap = t - prev
        seen = np.isfinite(prev) & (gap > 0)
        dt = self.dt[rows, m]
        self.dt[rows, m] = np.where(seen, np.where(np.isfinite(dt), dt + 0.05 * (gap - dt), gap), dt)
        self.last_gap = np.where(seen, gap, 0.0)  # for the histogram's decay in this step
        self.t_last[rows, m] = np.where(np.isfinite(prev), np.maximum(prev, t), t)

    def _learn_record(self, rows: np.ndarray, m: np.ndarray, x: np.ndarray, t: float) -> None:
        c = self.config
        unset = self.block_len[rows, m] <= 0
        ready = unset & np.isfinite(self.dt[rows, m])
        if ready.any():  # the block length is fixed once the sampling interval is known
            r, mm = rows[ready], m[ready]
            horizon = np.maximum(c.record_horizon_s, c.record_min_samples * self.dt[r, mm])
            self.block_len[r, mm] = horizon / c.record_blocks
            self.block_end[r, mm] = t + self.block_len[r, mm]
        has = self.block_len[rows, m] > 0
        for _ in range(c.record_blocks):  # close blocks whose end has passed (a long gap: several)
            roll = has & (t >= self.block_end[rows, m])
            if not roll.any():
                break
            r, mm = rows[roll], m[roll]
            self.bpos[r, mm] = (self.bpos[r, mm] + 1) % c.record_blocks
            self.bmax[r, mm, self.bpos[r, mm]] = np.nan
            self.bmin[r, mm, self.bpos[r, mm]] = np.nan
            self.block_end[r, mm] += self.block_len[r, mm]
        late = has & (t >= self.block_end[rows, m])  # a gap longer than the whole window
        if late.any():
            r, mm = rows[late], m[late]
            self.block_end[r, mm] = t + self.block_len[r, mm]
        pos = self.bpos[rows, m]
        self.bmax[rows, m, pos] = np.fmax(self.bmax[rows, m, pos], x)
        self.bmin[rows, m, pos] = np.fmin(self.bmin[rows, m, pos], x)

    def _learn_rarity(self, rows: np.ndarray, m: np.ndarray, x: np.ndarray) -> None:
        c = self.config
        nb = c.rarity_bins
        fresh = ~np.isfinite(self.hlo[rows, m])
        self.hlo[rows[fresh], m[fresh]] = x[fresh]
        self.hhi[rows[fresh], m[fresh]] = x[fresh]
        # decay: history older than rarity_halflife_s counts half (by the time since the series'
        # previous sample)
        decay = 0.5 ** (self.last_gap / c.rarity_halflife_s)
        self.hist[rows, m] *= decay[:, None]
        lo, hi = self.hlo[rows, m], self.hhi[rows, m]
        out = (x < lo) | (x > hi)
        if out.any():
            self._widen(rows[out], m[out], x[out])
            lo, hi = self.hlo[rows, m], self.hhi[rows, m]
        b = np.clip(np.where(hi > lo, _bin_of(x, lo, hi, nb), 0), 0, nb - 1)
        np.add.at(self.hist, (rows, m, b), 1.0)

    def _learn_season(self, rows: np.ndarray, m: np.ndarray, x: np.ndarray, t: float) -> None:
        """The current hour's values go into an envelope of their own; when the series' hour (its
        hour-of-day bin, or its day) changes, that envelope joins the bin's history (after the
        history shrank by one day's relaxation), so a bin's envelope is always what *earlier*
        days did at that hour: an anomaly cannot make itself usual while it lasts.

        A series that skips days relaxes by one day per visit of a bin, not per day elapsed
        (it keeps "usual" a little longer: the safe side of a veto)."""
        c = self.config
        slot = float(np.floor(t / (DAY_S / c.season_bins)))  # hours since the epoch (24 bins)
        cur = self.s_slot[rows, m]
        done = np.isfinite(cur) & (slot != cur)
        if done.any():
            r, mm = rows[done], m[done]
            b = (cur[done] % c.season_bins).astype(np.int64)
            relax = np.float32(0.5 ** (DAY_S / c.season_halflife_s))
            hi, lo = self.s_hi[r, mm, b], self.s_lo[r, mm, b]
            mid = (hi + lo) / 2  # the envelope shrinks about its middle
            self.s_hi[r, mm, b] = np.fmax(mid + (hi - mid) * relax, self.s_thi[r, mm])
            self.s_lo[r, mm, b] = np.fmin(mid + (lo - mid) * relax, self.s_tlo[r, mm])
            self.s_thi[r, mm] = np.nan
            self.s_tlo[r, mm] = np.nan
        self.s_slot[rows, m] = slot
        self.s_thi[rows, m] = np.fmax(self.s_thi[rows, m], x.astype(np.float32))
        self.s_tlo[rows, m] = np.fmin(self.s_tlo[rows, m], x.astype(np.float32))

    def _widen(self, rows: np.ndarray, ms: np.ndarray, x: np.ndarray) -> None:
        """Widen each series' histogram range to hold ``x``; bins are re-counted onto the wider
        grid (by whole multiples of the width, so the grid never drifts)."""
        nb = self.config.rarity_bins
        for r, m, v in zip(rows.tolist(), ms.tolist(), x.tolist(), strict=True):
            lo, hi = float(self.hlo[r, m]), float(self.hhi[r, m])
            width = hi - lo
            if width <= 0:  # every sample so far had one value: the range starts now
                new_lo, new_hi = min(lo, v), max(hi, v)
                mass = float(self.hist[r, m].sum())
                self.hist[r, m] = 0.0
                self.hist[r, m, min(nb - 1, int((lo - new_lo) / (new_hi - new_lo) * nb))] = mass
                self.hlo[r, m], self.hhi[r, m] = new_lo, new_hi
                continue
            new_lo, new_hi = lo, hi
            while v < new_lo or v > new_hi:
                w = new_hi - new_lo
                if v < new_lo:
                    new_lo -= w
                else:
                    new_hi += w
            centres = lo + (np.arange(nb) + 0.5) * width / nb
            target = np.clip(((centres - new_lo) / (new_hi - new_lo) * nb).astype(np.int64), 0, nb - 1)
            regrid = np.zeros(nb)
            np.add.at(regrid, target, self.hist[r, m])
            self.hist[r, m] = regrid
            self.hlo[r, m], self.hhi[r, m] = new_lo, new_hi

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Plain parts for a checkpoint."""
        n = len(self._index)
        return {
            "metrics": list(self.metrics),
            "config": self.config.to_dict(),
            "index": dict(self._index),
            **{k: getattr(self, k)[:n].copy() for k in _ARRAYS},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesEvidence:
        out = cls(state["metrics"], SeriesConfig.from_dict(state["config"]))
        out._index = dict(state["index"])
        out._alloc(len(out._index))
        for k in _ARRAYS:
            getattr(out, k)[:] = state[k]
        return out

    def subset(self, hosts: Sequence[str]) -> SeriesEvidence:
        """A copy holding just ``hosts`` (the scoring API reads it outside the detector's lock)."""
        out = SeriesEvidence(self.metrics, self.config)
        known = [h for h in dict.fromkeys(hosts) if h in self._index]
        if not known:
            return out
        src = np.fromiter((self._index[h] for h in known), dtype=np.int64, count=len(known))
        dst = out.index(known)
        for k in _ARRAYS:
            getattr(out, k)[dst] = getattr(self, k)[src]
        return out


_ARRAYS = (
    "n",
    "t_first",
    "t_last",
    "dt",
    "block_len",
    "block_end",
    "bpos",
    "bmax",
    "bmin",
    "hist",
    "hlo",
    "hhi",
    "s_hi",
    "s_lo",
    "s_thi",
    "s_tlo",
    "s_slot",
)


def _season_bin(t: float, bins: int) -> int:
    """The bin of the (UTC) day that time ``t`` (seconds since the epoch) falls in."""
    return int((t % DAY_S) // (DAY_S / bins)) if bins else 0


def _bin_of(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, nb: int) -> np.ndarray:
    """Histogram bin of ``x`` on [lo, hi] (may be < 0 or >= nb outside the range; -1 for NaN)."""
    width = np.where(hi > lo, hi - lo, 1.0)
    with np.errstate(invalid="ignore"):
        b = np.floor((x - lo) / width * nb)
    b = np.where(x == hi, nb - 1, b)
    return np.nan_to_num(b, nan=-1, posinf=nb, neginf=-1).astype(np.int64)
