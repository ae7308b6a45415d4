"""A client for the InfluxDB 1.x HTTP API (``/ping``, ``/write``, ``/query``).

Why our own client: the only API that InfluxDB 1.6 through 3 Core all serve is
the 1.x one, and ``influxdb-client`` speaks only v2. Rules kept here (see
``shared/reference/INFLUX_COMPAT.md``): HTTP Basic auth, explicit precision, no
``rp`` unless configured, ``CREATE DATABASE`` only as a best effort, and errors
that arrive inside an HTTP 200 are raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import requests
import tenacity

from vigil.errors import VigilError
from vigil.lineprotocol import Point
from vigil.settings import InfluxSettings

log = logging.getLogger(__name__)

PRECISIONS = ("ns", "u", "ms", "s", "m", "h")


class InfluxError(VigilError, RuntimeError):
    """InfluxDB refused a request; ``status`` is the HTTP code (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class InfluxUnavailable(InfluxError):
    """InfluxDB could not be reached (or kept answering 5xx) after all retries."""


# ------------------------------------------------------------------------------------------------
# InfluxQL quoting: every name and value that comes from outside goes through these.


def quote_ident(name: str) -> str:
    """Quote an identifier (measurement, tag key, field key, database)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal (a tag value in a WHERE clause).

    >>> quote_literal("a' OR host =~ /.*/ --")
    "'a\\\\' OR host =~ /.*/ --'"
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def time_literal(when: datetime | pd.Timestamp | int | float) -> str:
    """An RFC3339 time literal (portable across 1.x, 2.x and 3.x InfluxQL); ints are ns."""
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        when = pd.Timestamp(int(when), unit="ns", tz="UTC")
    ts = pd.Timestamp(when)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return "'" + ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{ts.nanosecond:03d}Z'"


def time_range(start: Any, end: Any) -> str:
    """``time >= start AND time < end`` with portable literals."""
    return f"time >= {time_literal(start)} AND time < {time_literal(end)}"


def tag_in(tag: str, values: Sequence[str]) -> str:
    """``("tag" = 'a' OR "tag" = 'b')``: a safe filter on many tag values."""
    if not values:
        raise ValueError(f"tag_in({tag!r}) needs at least one value")
    return "(" + " OR ".join(f"{quote_ident(tag)} = {quote_literal(v)}" for v in values) + ")"


# ------------------------------------------------------------------------------------------------


class InfluxClient:
    """Writes line protocol in batches with retries; runs InfluxQL into DataFrames."""

    def __init__(
        self,
        config: InfluxSettings | None = None,
        *,
        url: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float | None = None,
        batch_size: int | None = None,
        retries: int | None = None,
        backoff_s: float | None = None,
        rp: str | None = None,
    ) -> None:
        """``config``: the InfluxDB section of the settings (``settings.influx``); None = the
        built-in defaults (the local influxd on 127.0.0.1:8086), never the environment. The
        keyword arguments override single values of it."""
        s = config if config is not None else InfluxSettings()
        self.url = (url or s.base_url).rstrip("/")
        self.timeout_s = timeout_s if timeout_s is not None else s.timeout_s
        self.batch_size = batch_size or s.batch_size
        self.retries = retries if retries is not None else s.retries
        self.backoff_s = backoff_s if backoff_s is not None else s.backoff_s
        self.rp = rp if rp is not None else s.rp
        self.session = requests.Session()
        user = username if username is not None else s.username
        secret = password if password is not None else s.password.get_secret_value()
        if user or secret:
            self.session.auth = (user or "vigil", secret)

    # --- plumbing -------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> requests.Response:
        """One HTTP call; connection failures, timeouts and 5xx are retried ``self.retries`` times
        (exponential backoff from ``backoff_s``, capped at 10 s, with up to ``backoff_s`` of jitter
        so that clients that failed together do not retry together), then
        :class:`InfluxUnavailable`. A 4xx is returned at once: asking again would not help."""
        attempts = self.retries + 1 if retry else 1
        last = ""

        def attempt() -> requests.Response | None:
            nonlocal last
            try:
                resp = self.session.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"cannot reach InfluxDB at {self.url}: {exc.__class__.__name__}"
                return None
            if resp.status_code < 500:
                return resp
            last = f"InfluxDB at {self.url} answered {resp.status_code}: {_error_text(resp)}"
            return None

        def before_sleep(state: tenacity.RetryCallState) -> None:
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning("%s; retry %d/%d in %.1fs", last, state.attempt_number, attempts - 1, delay)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential_jitter(initial=self.backoff_s, max=10.0, jitter=self.backoff_s),
            retry=tenacity.retry_if_result(lambda resp: resp is None),
            before_sleep=before_sleep,
            retry_error_callback=lambda _state: None,
        )
        resp = retrying(attempt)
        if resp is None:
            raise InfluxUnavailable(last, 0)
        return resp

    def ping(self) -> str:
        """Return the server version; raises :class:`InfluxUnavailable` if it does not answer."""
        resp = self._request("GET", "/ping", retry=False)
        if resp.status_code != 204:
            raise InfluxError(f"/ping answered {resp.status_code}", resp.status_code)
        return resp.headers.get("X-Influxdb-Version", "unknown")

    def healthy(self) -> bool:
        try:
            self.ping()
            return True
        except InfluxError:
            return False

    # --- databases -------------------------------------------------------------------------------
    def create_database(self, db: str) -> bool:
        """Best-effort ``CREATE DATABASE`` (1.x); False where the server does not support it."""
        try:
            self.query(None, f"CREATE DATABASE {quote_ident(db)}", method="POST")
            return True
        except InfluxError as exc:
            log.info("CREATE DATABASE %s not supported here (%s); expecting it to exist", db, exc)
            return False

    def create_retention_policy(self, db: str, name: str, duration: str, default: bool = False) -> bool:
        """Best-effort retention policy creation (1.x only)."""
        stmt = (
            f"CREATE RETENTION POLICY {quote_ident(name)} ON {quote_ident(db)} "
            f"DURATION {duration} REPLICATION 1" + (" DEFAULT" if default else "")
        )
        try:
            self.query(None, stmt, method="POST")
            return True
        except InfluxError as exc:
            log.info("retention policy not created (%s)", exc)
            return False

    def drop_database(self, db: str) -> None:
        self.query(None, f"DROP DATABASE {quote_ident(db)}", method="POST")

    # --- writing ---------------------------------------------------------------------------------
    def write_lines(self, db: str, lines: Iterable[str], precision: str = "ns") -> int:
        """Write line-protocol lines in batches; returns the number of lines written.

        Connection errors and 5xx are retried with backoff (a re-sent batch overwrites the same
        points, so nothing is duplicated); 4xx raises at once with the server's message.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        params = {"db": db, "precision": precision}
        if self.rp:
            params["rp"] = self.rp
        written = 0
        for batch in _batches(lines, self.batch_size):
            body = ("\n".join(batch) + "\n").encode("utf-8")
            resp = self._request("POST", "/write", params=params, data=body)
            if resp.status_code != 204:
                raise InfluxError(
                    f"write of {len(batch)} lines to {db!r} refused ({resp.status_code}): {_error_text(resp)}",
                    resp.status_code,
                )
            written += len(batch)
        return written

    def write_points(self, db: str, points: Iterable[Point]) -> int:
        """Write :class:`Point` objects (timestamps in ns)."""
        return self.write_lines(db, (p.to_line() for p in points), precision="ns")

    # --- querying --------------------------------------------------------------------------------
    def query(
        self, db: str | None, q: str, *, epoch: str = "ns", method: str = "GET"
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; return every series of every statement; raise on any statement error."""
        params: dict[str, str] = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        if self.rp:
            params["rp"] = self.rp
        if method == "POST":
            resp = self._request("POST", "/query", data=params)
        else:
            resp = self._request("GET", "/query", params=params)
        if resp.status_code != 200:
            raise InfluxError(
                f"query refused ({resp.status_code}): {_error_text(resp)} — {q[:200]}", resp.status_code
            )
        payload = resp.json()
        if payload.get("error"):
            raise InfluxError(f"query failed: {payload['error']} — {q[:200]}", resp.status_code)
        series: list[dict[str, Any]] = []
        for result in payload.get("results", []):
            if result.get("error"):
                raise InfluxError(f"query failed: {result['error']} — {q[:200]}", resp.status_code)
            series.extend(result.get("series", []))
        return series

    def query_df(self, db: str, q: str) -> pd.DataFrame:
        """Run InfluxQL into one DataFrame: ``time`` (UTC), ``_measurement``, tag columns, fields."""
        return series_to_frame(self.query(db, q, epoch="ns"))

    def query_window(
        self,
        db: str,
        template: str,
        start: datetime | pd.Timestamp,
        end: datetime | pd.Timestamp,
        chunk: timedelta = timedelta(hours=6),
    ) -> pd.DataFrame:
        """Run ``template`` (with a ``{time}`` placeholder for the time filter) chunk by chunk."""
        frames = [
            self.query_df(db, template.format(time=time_range(lo, hi)))
            for lo, hi in _time_chunks(pd.Timestamp(start), pd.Timestamp(end), chunk)
        ]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def measurements(self, db: str) -> list[str]:
        return [v[0] for s in self.query(db, "SHOW MEASUREMENTS") for v in s.get("values", [])]

    def tag_values(self, db: str, measurement: str, key: str) -> list[str]:
        q = f"SHOW TAG VALUES FROM {quote_ident(measurement)} WITH KEY = {quote_ident(key)}"
        return sorted({v[1] for s in self.query(db, q) for v in s.get("values", [])})

    def close(self) -> None:
        self.session.close()


def series_to_frame(series: list[dict[str, Any]]) -> pd.DataFrame:
    """Flatten InfluxDB JSON series (each with optional ``tags``) into one frame.

    Output: the series' columns (``time`` as UTC datetimes), ``_measurement`` first, and one
    column per tag key (missing where a series lacks that tag). Built in one pass — rows and
    tags are flattened first and one DataFrame is made — because a ``GROUP BY host`` answer
    holds one series per host and a frame per series dominates the read at thousands of hosts.
    Series with different column lists (e.g. ``SELECT *`` over measurements with other fields)
    are aligned by column name.
    """
    if not series:
        return pd.DataFrame()
    columns: list[str] = list(series[0]["columns"])
    for s in series[1:]:
        if s["columns"] != columns:
            columns += [c for c in s["columns"] if c not in columns]
    tag_keys = sorted({k for s in series for k in (s.get("tags") or {})})
    rows: list[list[Any]] = []
    names: list[str] = []
    tag_cols: dict[str, list[Any]] = {k: [] for k in tag_keys}
    for s in series:
        values = s.get("values") or []
        if s["columns"] != columns:  # another field set: align by name
            values = [[dict(zip(s["columns"], v, strict=True)).get(c) for c in columns] for v in values]
        rows.extend(values)
        names.extend([s.get("name", "")] * len(values))
        tags = s.get("tags") or {}
        for k in tag_keys:
            tag_cols[k].extend([tags.get(k)] * len(values))
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(0, "_measurement", names)
    for k, col in tag_cols.items():  # a tag named like a field overwrites it, as it always did
        frame[k] = col
    if "time" in frame.columns:
        frame["time"] = pd.to_datetime(frame["time"], unit="ns", utc=True)
    return frame


def _error_text(resp: requests.Response) -> str:
    try:
        payload = resp.json()
        if isinstance(payload, dict) and payload.get("error"):
            return str(payload["error"])
    except ValueError:
        pass
    return resp.text.strip()[:500] or resp.reason


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _time_chunks(start: pd.Timestamp, end: pd.Timestamp, chunk: timedelta) -> Iterator[tuple[Any, Any]]:
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    end = end.tz_localize("UTC") if end.tzinfo is None else end
    lo = start
    while lo < end:
        hi = min(lo + chunk, end)
        yield lo, hi
        lo = hi


def utcnow() -> datetime:
    return datetime.now(UTC)
