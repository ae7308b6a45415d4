"""``up`` / ``down`` / ``status`` over the service registry.

Why launch first and wait later: Airflow needs about a minute to come up and the
others seconds, so every service is launched as soon as the services it
``requires`` are healthy, and the waits overlap. A service is only ever stopped
through the PID record ``up`` wrote (PID + start time), so ``down`` never touches
a process it did not start.

Each service runs with the settings it was first started with unless the user sets
them again (``toolkit.stack.recorded``): ``up`` writes them to ``RUN/settings/NAME.json``
once the service is healthy, reuses them on the next start, and says what it reused
and what changed; ``status`` shows each service's key settings from the same record.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psutil

from toolkit.stack import recorded
from toolkit.stack.services import SERVICE_NAMES, SERVICES, Service, get_service, settings_env
from vigil.processes import (
    ProcessRecord,
    ServiceError,
    log_tail,
    pid_file,
    port_in_use,
    read_record,
    start_process,
    stop_process,
)
from vigil.settings import Settings, flat_get

Echo = Callable[[str], None]


def select_services(only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[Service]:
    """The registry filtered by ``--only`` / ``--skip`` (unknown names are an error), in start order."""
    only, skip = set(only), set(skip)
    unknown = (only | skip) - set(SERVICE_NAMES)
    if unknown:
        raise ServiceError(
            f"unknown service(s) {', '.join(sorted(unknown))}; known: {', '.join(SERVICE_NAMES)}"
        )
    return [s for s in SERVICES if (not only or s.name in only) and s.name not in skip]


def running_record(settings: Settings, service: Service) -> ProcessRecord | None:
    """The record of a service ``up`` started that is still alive (None if stale or absent)."""
    record = read_record(settings.run_dir, service.name)
    if record is None or record.process() is None:
        return None
    return record


def port_owner(port: int) -> str:
    """Who listens on ``port`` (best effort: 'pid N (name)'), for the error message."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                with contextlib.suppress(psutil.Error):
                    return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                return f"pid {conn.pid}"
    return "another process"


def _check_ports(settings: Settings, service: Service) -> None:
    port = service.port(settings)
    for p in ([port] if port else []) + service.extra_ports(settings):
        if port_in_use(p, settings.bind_host):
            raise ServiceError(
                f"{service.name}: port {p} on {settings.bind_host} is already in use by {port_owner(p)}; "
                f"stop it or choose another port (VIGIL_* settings, see .env.example)"
            )


@dataclass
class _Pending:
    service: Service
    record: ProcessRecord
    started: float
    settings: Settings
    env: dict[str, str] | None = None  # what a service this call launched was started with


def service_settings(settings: Settings, name: str) -> Settings:
    """The settings service ``name`` runs with: its record, overridden by explicit settings."""
    return recorded.effective(settings, name).settings


def up(
    settings: Settings, only: Iterable[str] = (), skip: Iterable[str] = (), echo: Echo = print
) -> dict[str, float]:
    """Start every selected service that is not already running; return seconds to healthy per service.

    Already-healthy services are left alone. On a failure everything this call launched is stopped
    again and :class:`ServiceError` says why (with the failing service's log tail).
    """
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    selected = select_services(only, skip)
    pending: dict[str, _Pending] = {}
    ready: set[str] = set()
    timings: dict[str, float] = {}
    launched: list[str] = []

    def wait_for(names: Iterable[str]) -> None:
        """Poll every pending service until all of ``names`` are healthy (others finish on the way)."""
        wanted = {n for n in names if n in pending}
        while wanted:
            for name, item in list(pending.items()):
                service, record, svc = item.service, item.record, item.settings
                if _probe(svc, service, record):
                    del pending[name]
                    wanted.discard(name)
                    timings[name] = time.monotonic() - item.started
                    echo(f"[{name}] healthy in {timings[name]:.1f}s at {service.url(svc)}")
                    if item.env is not None:
                        recorded.write(settings.run_dir, name, item.env)
                    for line in service.after_start(svc) if service.after_start else []:
                        echo(f"[{name}] {line}")
                    ready.add(name)
                elif record.process() is None:
                    raise ServiceError(
                        f"{name} exited during start-up (log {record.log}); last lines:\n{log_tail(record.log)}"
                    )
                elif time.monotonic() > item.started + service.timeout_s:
                    raise ServiceError(
                        f"{name} not healthy after {service.timeout_s:.0f}s on port {record.port} "
                        f"(log {record.log}); last lines:\n{log_tail(record.log)}"
                    )
            if wanted:
                time.sleep(0.5)

    try:
        for service in selected:
            name = service.name
            if not service.available():
                echo(f"[{name}] skipped: its code ({service.module}) is not there yet")
                continue
            wait_for(service.requires)
            missing = [d for d in service.requires if d not in ready and not _is_healthy(settings, d)]
            if missing:
                echo(f"[{name}] note: needs {', '.join(missing)}, which is not running; starting anyway")
            eff = recorded.effective(settings, name)
            svc = eff.settings
            record = running_record(settings, service)
            if record is not None:
                echo(f"[{name}] already running (pid {record.pid})")
                if eff.changed:
                    diff = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in sorted(eff.changed.items()))
                    echo(
                        f"[{name}] note: it runs with the settings of its start, not yours ({diff}); "
                        f"`vigil down --only {name}` then `vigil up` applies them"
                    )
                    svc = recorded.running(settings, name)  # probe what runs, not what was asked
                pending[name] = _Pending(service, record, time.monotonic(), svc)
                continue
            for line in eff.describe(recorded.settings_file(settings.run_dir, name)):
                echo(f"[{name}] {line}")
            _check_ports(svc, service)
            launch = service.launch(svc)
            env = {**settings_env(svc), **launch.env}
            record = start_process(
                name,
                launch.cmd,
                run_dir=settings.run_dir,
                port=service.port(svc) or 0,
                url=service.url(svc),
                env=env,
                cwd=launch.cwd,
            )
            launched.append(name)
            echo(f"[{name}] started pid {record.pid}, log {record.log}")
            pending[name] = _Pending(service, record, time.monotonic(), svc, env)
        wait_for(list(pending))
    except BaseException:
        # All or nothing for what this call launched: a half-started stack is stopped again
        # (services that were already running before this call are left alone).
        for name in reversed(launched):
            record = read_record(settings.run_dir, name)
            if record is not None and stop_process(record):
                echo(f"[{name}] stopped again because start-up failed")
            _forget(settings, get_service(name))
        raise
    return timings


def _probe(settings: Settings, service: Service, record: ProcessRecord) -> bool:
    try:
        return bool(service.healthy(settings, record))
    except Exception:  # noqa: BLE001 - a failing probe just means "not healthy yet"
        return False


def _is_healthy(settings: Settings, name: str) -> bool:
    service = get_service(name)
    record = running_record(settings, service)
    return record is not None and _probe(recorded.running(settings, name), service, record)


def _forget(settings: Settings, service: Service) -> None:
    pid_file(settings.run_dir, service.name).unlink(missing_ok=True)


def down(
    settings: Settings, only: Iterable[str] = (), skip: Iterable[str] = (), echo: Echo = print
) -> list[str]:
    """Stop what ``up`` started, gracefully then forcibly; return the names stopped.

    Services that depend on others (collector, detector) stop first so they can flush; the rest
    then stop in parallel (Airflow alone can take ~20 s to wind down).
    """
    found = [
        (service, record)
        for service in reversed(select_services(only, skip))
        if (record := read_record(settings.run_dir, service.name)) is not None
    ]
    if not found:
        echo("nothing was running")
        return []
    stopped: list[str] = []

    def stop(item: tuple[Service, ProcessRecord]) -> None:
        service, record = item
        began = time.monotonic()
        if stop_process(record):
            stopped.append(service.name)
            echo(f"[{service.name}] stopped pid {record.pid} in {time.monotonic() - began:.1f}s")
        else:
            echo(f"[{service.name}] was not running (stale record removed)")
        _forget(settings, service)

    dependents = [item for item in found if item[0].requires]
    others = [item for item in found if not item[0].requires]
    for phase in (dependents, others):
        with ThreadPoolExecutor(max_workers=max(1, len(phase))) as pool:
            list(pool.map(stop, phase))
    return stopped


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    port: int | None
    healthy: bool
    url: str
    note: str
    #: the service's key settings (``Service.key_settings``): what it runs with if it runs (its
    #: record), else what ``up`` would start it with
    settings: dict[str, str] = field(default_factory=dict)


def status(settings: Settings) -> list[ServiceStatus]:
    """One row per registered service."""
    rows = []
    for service in SERVICES:
        record = running_record(settings, service) if service.available() else None
        svc = (
            recorded.running(settings, service.name)
            if record is not None
            else recorded.effective(settings, service.name).settings
        )
        port = service.port(svc)
        keys = {k: recorded.env_value(flat_get(svc, k)) or "-" for k in service.key_settings}
        if not service.available():
            rows.append(ServiceStatus(service.name, None, port, False, "", "not implemented yet", keys))
            continue
        healthy = record is not None and _probe(svc, service, record)
        note = "" if record is not None else "not running"
        if record is not None and service.detail is not None:
            with contextlib.suppress(Exception):
                note = service.detail(svc)
        rows.append(
            ServiceStatus(
                service.name, record.pid if record else None, port, healthy, service.url(svc), note, keys
            )
        )
    return rows


def format_settings(rows: list[ServiceStatus]) -> str:
    """Each service's key settings, one line each (``name  key=value ...``)."""
    width = max((len(r.name) for r in rows), default=0)
    return "\n".join(
        f"{r.name.ljust(width)}  " + " ".join(f"{k}={v}" for k, v in r.settings.items())
        for r in rows
        if r.settings
    )


def format_table(rows: list[ServiceStatus]) -> str:
    header = ("service", "pid", "port", "healthy", "url", "note")
    body = [
        (r.name, str(r.pid or "-"), str(r.port or "-"), "yes" if r.healthy else "no", r.url or "-", r.note)
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]
    )
