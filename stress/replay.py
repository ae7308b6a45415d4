"""``vigil replay``: re-feed recorded raw metrics into a scratch database, optionally perturbed.

Why: to reproduce a detection exactly (point the detector's ``VIGIL_INFLUX__RAW_DB`` at the
scratch database) and to see how the detector copes with the data faults real collectors
produce — points out of order, sent twice, or lost. Everything random comes from one
``numpy`` generator seeded with ``--seed``, drawn in a fixed order (drops, then duplicates,
then the shuffle), so the same input and seed give the same sequence, byte for byte.

The three steps are separate so tests can drive them with a virtual clock:

1. :func:`plan_replay` — pure: which points, in which order, each in which *send slot*
   (the source time at which it is sent: the time of the point that held that position
   before the shuffle, so a point moved later is sent after its own time — it arrives late).
2. :func:`time_shift` — by how much timestamps move (a whole number of feature intervals,
   so the detector's interval grid is unchanged): so that the replay lands at "now", or not
   at all with ``--keep-time``.
3. :func:`write_replay` — writes each point when its slot comes, at ``--speed``.

Counts are exact, not probabilistic: ``--drop-rate 0.01`` drops ``round(0.01 * N)`` points.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd

from stress.replay_source import ReplayInputError, read_bundle, read_influx_window
from vigil.cli_errors import interrupted
from vigil.influx import InfluxClient, InfluxError
from vigil.lineprotocol import Point
from vigil.settings import FeatureSettings, InfluxSettings, get_settings

log = logging.getLogger(__name__)

NS = 1_000_000_000


@dataclass(frozen=True)
class Perturbation:
    """What to do to the recorded stream (all off by default: a faithful replay)."""

    shuffle_window: int = 0  # permute points within consecutive blocks of K (0 or 1: in order)
    duplicate_rate: float = 0.0  # share of points sent twice
    drop_rate: float = 0.0  # share of points never sent (gaps)
    seed: int = 0
    #: A duplicate's time offset. 0 = the exact same point, which InfluxDB silently merges (last
    #: write wins), so nothing downstream can ever see it; the default 1 ms keeps both copies in
    #: the same interval, as a collector that reports twice does.
    duplicate_offset_ns: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be in [0, 1), not {value}")
        if self.shuffle_window < 0:
            raise ValueError(f"shuffle-window must be >= 0, not {self.shuffle_window}")
        if self.duplicate_offset_ns < 0:
            raise ValueError("duplicate offset must be >= 0")


@dataclass
class ReplayStats:
    """What a replay did; ``late`` = points sent after the end of their own feature interval."""

    read: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    late: int = 0
    written: int = 0
    shift_s: float = 0.0
    seconds: float = 0.0

    def summary(self, into: str) -> str:
        return (
            f"replay into {into!r}: read {self.read}, dropped {self.dropped}, duplicated {self.duplicated}, "
            f"reordered {self.reordered} ({self.late} sent after their interval closed), "
            f"written {self.written}; time shift {self.shift_s:+.0f} s; {self.seconds:.1f} s"
        )


@dataclass
class ReplayPlan:
    """The points in send order (source timestamps) and each one's send slot (source time, ns)."""

    points: list[Point]
    slots_ns: np.ndarray
    stats: ReplayStats

    @property
    def first_slot_ns(self) -> int:
        return int(self.slots_ns[0])

    @property
    def last_slot_ns(self) -> int:
        return int(self.slots_ns[-1])

    def lines(self, shift_ns: int, lo: int = 0, hi: int | None = None) -> list[str]:
        """Line protocol of points ``lo:hi``, timestamps moved by ``shift_ns``."""
        out = []
        for p in self.points[lo:hi]:
            out.append(Point(p.measurement, p.tags, p.fields, int(p.time_ns or 0) + shift_ns).to_line())
        return out

    def slot_groups(self, interval_ns: int) -> list[tuple[int, int, int]]:
        """``(slot interval start ns, lo, hi)``: the points sent during each source interval."""
        idx = self.slots_ns // interval_ns
        cuts = np.flatnonzero(np.diff(idx)) + 1
        edges = [0, *cuts.tolist(), len(self.points)]
        return [(int(idx[lo]) * interval_ns, lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def plan_replay(points: Sequence[Point], perturbation: Perturbation, interval_s: int) -> ReplayPlan:
    """Drop, duplicate and shuffle ``points`` (canonical order) deterministically."""
    if not points:
        raise ReplayInputError("nothing to replay: no raw points")
    p = perturbation
    rng = np.random.default_rng(p.seed)
    n = len(points)
    stats = ReplayStats(read=n)
    keep = np.ones(n, dtype=bool)
    stats.dropped = int(round(p.drop_rate * n))
    if stats.dropped:
        keep[rng.choice(n, stats.dropped, replace=False)] = False
    kept = [points[i] for i in np.flatnonzero(keep)]
    stats.duplicated = int(round(p.duplicate_rate * len(kept)))
    twice = np.zeros(len(kept), dtype=bool)
    if stats.duplicated:
        twice[rng.choice(len(kept), stats.duplicated, replace=False)] = True
    seq: list[Point] = []
    for point, dup in zip(kept, twice, strict=True):
        seq.append(point)
        if dup:
            seq.append(
                Point(
                    point.measurement,
                    point.tags,
                    point.fields,
                    int(point.time_ns or 0) + p.duplicate_offset_ns,
                )
            )
    # send slots: the times of the sequence before the shuffle (never decreasing)
    slots = np.maximum.accumulate(np.fromiter((q.time_ns or 0 for q in seq), dtype=np.int64, count=len(seq)))
    if p.shuffle_window > 1:
        perm = np.arange(len(seq))
        for lo in range(0, len(seq), p.shuffle_window):
            hi = min(lo + p.shuffle_window, len(seq))
            perm[lo:hi] = lo + rng.permutation(hi - lo)
        stats.reordered = int((perm != np.arange(len(seq))).sum())
        seq = [seq[j] for j in perm]
    own = np.fromiter((q.time_ns or 0 for q in seq), dtype=np.int64, count=len(seq))
    interval_ns = int(interval_s) * NS
    stats.late = int((slots // interval_ns > own // interval_ns).sum())
    return ReplayPlan(seq, slots, stats)


def time_shift(plan: ReplayPlan, *, speed: float, now_ns: int, interval_s: int, keep_time: bool) -> int:
    """Nanoseconds to add to every timestamp: the replay *ends* now + its run time.

    At ``--speed 1`` the first point lands at the current interval and each later one in real
    time; faster replays are shifted back so no point is ever in the future when it is written
    (a detector would otherwise hold it until the wall clock caught up). Rounded down to whole
    feature intervals so the interval grid (and so every feature) is unchanged.
    """
    if keep_time:
        return 0
    span = plan.last_slot_ns - plan.first_slot_ns
    run_ns = 0 if speed == 0 else int(span / speed)
    shift = now_ns + run_ns - plan.last_slot_ns
    interval_ns = int(interval_s) * NS
    return shift // interval_ns * interval_ns


def write_replay(
    client: InfluxClient,
    db: str,
    plan: ReplayPlan,
    *,
    shift_ns: int,
    speed: float,
    echo: Callable[[str], None] = print,
    progress_every_s: float = 5.0,
) -> ReplayStats:
    """Write every point when its slot comes (``speed`` 0: all at once, in send order)."""
    began = time.monotonic()
    n = len(plan.points)
    if speed == 0:
        due = np.zeros(n)
    else:
        due = (plan.slots_ns - plan.first_slot_ns) / NS / speed
    stats = plan.stats
    stats.shift_s = shift_ns / NS
    done, last_echo = 0, began
    try:
        while done < n:
            elapsed = time.monotonic() - began
            upto = int(np.searchsorted(due, elapsed, side="right"))
            if upto <= done:
                time.sleep(min(float(due[done]) - elapsed, 0.5))
                continue
            stats.written += client.write_lines(db, plan.lines(shift_ns, done, upto), precision="ns")
            done = upto
            now = time.monotonic()
            if now - last_echo >= progress_every_s or done == n:
                last_echo = now
                source_t = pd.Timestamp(int(plan.slots_ns[done - 1]), tz="UTC")
                echo(f"replay: {done}/{n} points written ({100 * done / n:.0f}%), source time {source_t}")
    except KeyboardInterrupt:
        echo(f"replay interrupted: {stats.written} of {n} points written (they stay written)")
        raise
    finally:
        stats.seconds = time.monotonic() - began
    return stats


def load_points(
    influx: InfluxSettings,
    client: InfluxClient,
    *,
    source: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    hosts: Sequence[str] | None,
    bundle: Path | None,
) -> list[Point]:
    """Read the replay's input; an empty result raises :class:`ReplayInputError` (nothing written)."""
    if source == "influx":
        if start is None or end is None:
            raise ReplayInputError("--source influx needs --from and --to")
        points = read_influx_window(client, influx.raw_db, start, end, hosts)
        where = f"{influx.raw_db!r} between {start} and {end}"
    elif source == "bundle":
        if bundle is None:
            raise ReplayInputError("--source bundle needs --bundle DIR")
        points = read_bundle(bundle, start, end, hosts)
        where = f"bundle {bundle}"
    else:
        raise ReplayInputError(f"unknown source {source!r} (influx or bundle)")
    if not points:
        who = f" for hosts {', '.join(hosts)}" if hosts else ""
        raise ReplayInputError(f"nothing to replay: no raw points in {where}{who}; nothing written")
    return points


def replay_run(
    influx: InfluxSettings,
    features: FeatureSettings,
    *,
    source: str,
    into: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    hosts: Sequence[str] | None = None,
    bundle: Path | None = None,
    speed: float = 1.0,
    keep_time: bool = False,
    perturbation: Perturbation = Perturbation(),
    echo: Callable[[str], None] = print,
    client: InfluxClient | None = None,
) -> ReplayStats:
    """Read, plan, shift and write: the whole ``vigil replay``."""
    if speed < 0 or not math.isfinite(speed):
        raise ReplayInputError(f"--speed must be >= 0 (0 = as fast as possible), not {speed}")
    if into == influx.raw_db:
        raise ReplayInputError(
            f"--into {into!r} is the live raw database; replay into a scratch database "
            "(and point the detector's VIGIL_INFLUX__RAW_DB at it)"
        )
    client = client or InfluxClient(influx)
    points = load_points(influx, client, source=source, start=start, end=end, hosts=hosts, bundle=bundle)
    plan = plan_replay(points, perturbation, features.interval_s)
    shift = time_shift(
        plan, speed=speed, now_ns=time.time_ns(), interval_s=features.interval_s, keep_time=keep_time
    )
    if influx.create_databases:
        client.create_database(into)
    first = pd.Timestamp(plan.first_slot_ns + shift, tz="UTC")
    echo(
        f"replaying {plan.stats.read} points ({len(plan.points)} to send) into {into!r} from {first} "
        f"at speed {'max' if speed == 0 else f'{speed:g}x'}; perturbation {asdict(perturbation)}"
    )
    return write_replay(client, into, plan, shift_ns=shift, speed=speed, echo=echo)


def _parse_time(value: str | None, option: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(f"not a time: {value!r}", param_hint=option) from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@click.command("replay")
@click.option(
    "--source", type=click.Choice(["influx", "bundle"]), required=True, help="Where the points come from."
)
@click.option("--from", "start", default=None, help="Window start (ISO time) for --source influx.")
@click.option("--to", "end", default=None, help="Window end (ISO time, exclusive).")
@click.option("--hosts", default=None, metavar="H1,H2", help="Only these hosts.")
@click.option("--bundle", type=click.Path(path_type=Path), default=None, help="Incident bundle folder.")
@click.option("--into", required=True, help="Scratch database to write into (never the live raw one).")
@click.option(
    "--speed", type=float, default=1.0, show_default=True, help="1 = real time; 0 = as fast as possible."
)
@click.option("--keep-time", is_flag=True, help="Keep the original timestamps (no shift to now).")
@click.option(
    "--shuffle-window", type=int, default=0, show_default=True, help="Disorder within blocks of K points."
)
@click.option(
    "--duplicate-rate", type=float, default=0.0, show_default=True, help="Share of points sent twice."
)
@click.option(
    "--duplicate-offset-ms", type=float, default=1.0, show_default=True, help="0 = exact duplicates."
)
@click.option("--drop-rate", type=float, default=0.0, show_default=True, help="Share of points never sent.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
def replay(
    source: str,
    start: str | None,
    end: str | None,
    hosts: str | None,
    bundle: Path | None,
    into: str,
    speed: float,
    keep_time: bool,
    shuffle_window: int,
    duplicate_rate: float,
    duplicate_offset_ms: float,
    drop_rate: float,
    seed: int,
) -> None:
    """Re-feed recorded raw metrics into scratch database INTO, optionally perturbed."""
    try:
        perturbation = Perturbation(
            shuffle_window=shuffle_window,
            duplicate_rate=duplicate_rate,
            drop_rate=drop_rate,
            seed=seed,
            duplicate_offset_ns=int(duplicate_offset_ms * 1_000_000),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    host_list = [h.strip() for h in hosts.split(",") if h.strip()] if hosts else None
    try:
        settings = get_settings()
        stats = replay_run(
            settings.influx,
            settings.features,
            source=source,
            into=into,
            start=_parse_time(start, "--from"),
            end=_parse_time(end, "--to"),
            hosts=host_list,
            bundle=bundle,
            speed=speed,
            keep_time=keep_time,
            perturbation=perturbation,
            echo=click.echo,
        )
    except (ReplayInputError, InfluxError) as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise interrupted() from None
    click.echo(stats.summary(into))
