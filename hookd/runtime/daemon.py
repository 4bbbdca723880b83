"""The daemon: open the store, load config endpoints, serve the API, stop cleanly.

Rules:
- Start-up order: descriptor limit raised and the connection limits fitted in it
  (`hookd.descriptors`), database open and migrated, config endpoints synced, listeners
  bound; only then is the daemon ready (`task_status.started`).
- SIGHUP re-reads the config file (`hookd.reload`), one reload at a time. A SIGHUP that
  comes before the daemon is ready is held (never the default action, which would end
  the process) and runs its reload once ready. Start-up and reload build the catalog,
  the sender's and the scheduler's settings and the config endpoints the same way.
- Stop (SIGTERM, SIGINT or `stop()`): stop accepting connections, let requests in
  progress finish within `delivery.shutdown_grace`, then cancel what is left, close
  the database (its queued writes are committed first) and remove the socket file
  (only one hookd bound itself: an adopted socket belongs to systemd).
- Retention (`hookd.retention`) and the subject indexer (`runtime.subject_indexer`) run
  in the background from ready until the stop.
- Under systemd (`hookd.systemd`): sockets passed by socket activation are served
  instead of binding new ones; `READY=1` goes out once ready, `STATUS=` lines with live
  figures every STATUS_INTERVAL, `WATCHDOG=1` at half the watchdog timeout from the
  trio loop itself (a wedged loop stops pinging and gets restarted), `STOPPING=1` when
  a stop begins.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import trio

from hookd import __version__
from hookd.api import routes
from hookd.api.handlers import Api
from hookd.api.hosts import Hosts
from hookd.api.server import Handler, Limits, Server
from hookd.db.errors import StorageError
from hookd.db.sqlite import SqliteBackend
from hookd.delivery.alerts import Alerts
from hookd.delivery.client import Sender
from hookd.delivery.scheduler import FAILURE_WINDOW, Scheduler
from hookd.domain.durations import span
from hookd.domain.views import Reloaded, Status
from hookd.runtime import config as config_module
from hookd.runtime import descriptors, keys, reload, systemd
from hookd.runtime.clock import Clock
from hookd.runtime.config import Config
from hookd.runtime.listeners import ListenError, adopt, open_tcp_listeners, open_unix_listener
from hookd.runtime.metrics import Metrics
from hookd.runtime.retention import Retention
from hookd.runtime.subject_indexer import SubjectIndexer
from hookd.service import Service
from hookd.ui.console import Console

log = logging.getLogger("hookd.daemon")

STATUS_INTERVAL = 30.0  # seconds between STATUS= updates to systemd


class Daemon:
    """One hookd instance; `await run()` serves until `stop()` or a signal."""

    def __init__(
        self, config: Config, handle_signals: bool = True, config_path: str | None = None
    ) -> None:
        """`config_path` is what `config.load` was given: a reload reads it again."""
        self.config = config
        self._config_path = config_path
        self._handle_signals = handle_signals
        self._notifier = systemd.Notifier.from_environment()
        self._stop = trio.Event()
        # Held through a reload: a stop tells systemd STOPPING=1 only once the reload
        # under way has said READY=1, never between its RELOADING=1 and READY=1.
        self._reloading = trio.Lock()
        self._reloader: reload.Reloader | None = None
        self.store: SqliteBackend | None = None
        self.scheduler: Scheduler | None = None
        self.retention: Retention | None = None

    def stop(self) -> None:
        """Begin a graceful stop."""
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until stopped."""
        with contextlib.ExitStack() as held:
            hangups = None
            if self._handle_signals:  # from the start: SIGHUP's default action ends a process
                hangups = held.enter_context(trio.open_signal_receiver(signal.SIGHUP))
            await self._run(hangups, task_status)

    async def _run(
        self, hangups: AsyncIterator[int] | None, task_status: trio.TaskStatus[Any]
    ) -> None:
        config = self.config
        clock = Clock()
        nofile = descriptors.raise_limit()
        ring = _secret_ring(config)
        store = self.store = await SqliteBackend.open(
            config.storage.path, config.storage.durability, ring[0] if ring else None
        )
        if ring is None:
            log.warning(
                "action=secrets.in_clear endpoint secrets are stored unencrypted: no "
                'storage.key_file nor hookd-key credential (README, "Secrets at rest")'
            )
        else:
            log.info("action=secrets.sealed key=%s from=%s", store.secrets_key, ring[1])
        metrics = Metrics(__version__)
        store.on_commit = functools.partial(metrics.ingest_commit.observe, ())
        socket_path = config.server.socket
        bound = False  # the socket file is ours to remove only once we made it
        try:
            subject_key = _subject_key(config) if config.storage.subject_index else None
            indexer = SubjectIndexer(store)
            sender = Sender(clock, **reload.sender_settings(config))
            scheduler = self.scheduler = Scheduler(
                store,
                sender,
                clock,
                metrics=metrics,
                alerts=Alerts(metrics),
                **reload.scheduler_settings(config),
            )
            catalog = reload.catalog_of(config)
            service = Service(
                store,
                clock,
                scheduler,
                metrics=metrics,
                catalog=catalog,
                secret_overlap=config.delivery.secret_overlap,
                subject_key=subject_key,
                subjects_stored=indexer.wake,
            )
            await service.sync_config_endpoints(config_module.declared_endpoints(config))
            api = Api(
                service,
                config.server.api_token,
                openapi=reload.document_of(catalog, config),
                reload=self.reload_config,
            )
            retention = self.retention = Retention(store, clock, config.storage.retention)
            listeners, bound = await _listeners(config)
            tcp = any(origin == "tcp" for _, origin in listeners)
            handle: Handler = routes.Router(api).handle
            if tcp:  # the web console (/ui/) and the Host check of the TCP listener
                console = Console(service, config.server.api_token)
                hosts = Hosts(_tcp_addresses(listeners), config.server.allowed_hosts)
                handle = hosts.guard(console.front(handle))
            limits = _limits(config, nofile, tcp)
            server = Server(handle, limits, f"hookd/{__version__}")
            connections_served = limits.max_connections + (limits.max_tcp_connections if tcp else 0)
            self._reloader = reload.Reloader(
                self._config_path,
                service=service,
                api=api,
                sender=sender,
                scheduler=scheduler,
                notifier=self._notifier,
                concurrency_problem=functools.partial(
                    descriptors.concurrency_problem, nofile, connections_served
                ),
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(scheduler.run)
                async with trio.open_nursery() as connections:
                    async with trio.open_nursery() as accepting:
                        for listener, origin in listeners:
                            accepting.start_soon(server.serve, listener, origin, connections)
                        if self._handle_signals:
                            nursery.start_soon(self._wait_for_signals)
                        log.info(
                            "action=ready version=%s socket=%s listen=%s db=%s",
                            __version__,
                            socket_path,
                            config.server.listen or "-",
                            config.storage.path,
                        )
                        task_status.started(self)
                        self._notifier.notify(READY="1", STATUS="ready")
                        nursery.start_soon(retention.run)
                        if subject_key is not None:
                            nursery.start_soon(indexer.run)
                        watchdog = systemd.watchdog_interval()
                        if watchdog is not None:
                            nursery.start_soon(self._watchdog, watchdog / 2)
                        if self._notifier.enabled:
                            nursery.start_soon(self._report_status, store, scheduler, clock)
                        if hangups is not None:
                            nursery.start_soon(self._reload_on_hangup, hangups)
                        await self._stop.wait()
                        async with self._reloading:  # the reload under way ends first
                            self._notifier.notify(STOPPING="1", STATUS="stopping")
                        accepting.cancel_scope.cancel()
                    for listener, _ in listeners:
                        await listener.aclose()
                    server.drain()
                    grace = self.config.delivery.shutdown_grace
                    async with trio.open_nursery() as stopping:
                        stopping.start_soon(scheduler.stop, grace)
                        with trio.move_on_after(grace):
                            await server.wait_closed()
                    connections.cancel_scope.cancel()
                nursery.cancel_scope.cancel()  # the watchdog, the signal handler, retention
                sender.close()
        finally:
            with trio.CancelScope(shield=True):
                await store.aclose()
            if bound:
                _remove_socket(socket_path)
            self._notifier.close()
            log.info("action=stopped")

    async def _report_status(
        self, store: SqliteBackend, scheduler: Scheduler, clock: Clock
    ) -> None:
        """Tell systemd the live figures (`systemctl status hookd` shows them)."""
        while True:
            try:
                figures = await store.status(__version__, clock.now())
            except StorageError as exc:
                log.warning("action=status.failed error=%s", exc)
            else:
                failed = scheduler.failed_since(clock.now() - FAILURE_WINDOW)
                if not self._stop.is_set():
                    self._notifier.notify(STATUS=status_line(figures, failed))
            await trio.sleep(STATUS_INTERVAL)

    async def reload_config(self) -> Reloaded:
        """Read the config file again and apply it (SIGHUP, `POST /v1/config/reload`): one
        reload at a time, whole even when the asker goes away; none once a stop began."""
        outcome = Reloaded(applied=False, error="hookd is stopping")
        with trio.CancelScope(shield=True):  # a stop waits for the reload to end
            async with self._reloading:
                if self._stop.is_set() or self._reloader is None:
                    log.info("action=config.reload_skipped reason=stopping")
                    return outcome
                try:
                    self.config, outcome = await self._reloader.reload(self.config)
                except Exception:  # a bug: logged, and hookd serves on
                    log.exception("action=config.reload_crashed")
                    outcome = Reloaded(applied=False, error="the reload failed: see the log")
        return outcome

    async def _reload_on_hangup(self, hangups: AsyncIterator[int]) -> None:
        """Reload at each SIGHUP, one after another (those during a reload make one more)."""
        async for _ in hangups:
            await self.reload_config()

    async def _watchdog(self, period: float) -> None:
        """Ping systemd's watchdog every `period` seconds, from the trio loop."""
        while True:
            self._notifier.notify(WATCHDOG="1")
            await trio.sleep(period)

    async def _wait_for_signals(self) -> None:
        """The first SIGTERM or SIGINT starts a graceful stop; later ones change nothing.

        The single-file binary's bootloader forwards signals to hookd, so a signal sent
        to both (Ctrl-C, systemd's default KillMode) arrives twice.
        """
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for number in signals:
                name = signal.Signals(number).name
                if self._stop.is_set():
                    log.info("action=stopping.already signal=%s", name)
                    continue
                log.info("action=stopping signal=%s", name)
                self.stop()


def status_line(figures: Status, failed_last_hour: int) -> str:
    """The one-line summary systemd shows: backlog, recent failures, endpoints."""
    pending = figures.deliveries.get("pending", 0)
    oldest = figures.oldest_pending_age_s
    backlog = f"{pending:,} pending" + (f" (oldest {span(oldest)})" if pending and oldest else "")
    return (
        f"{backlog}, {failed_last_hour:,} failed in the last hour, "
        f"{figures.endpoints_enabled} of {figures.endpoints} endpoints enabled"
    )


async def _listeners(config: Config) -> tuple[list[tuple[trio.SocketListener, str]], bool]:
    """The listeners with their origin, and whether we bound the Unix socket ourselves.

    Sockets passed by systemd replace those of their kind (Unix, TCP) in the config.
    """
    try:
        adopted = adopt(systemd.listen_sockets())
    except ValueError as exc:
        raise ListenError(str(exc)) from None
    origins = {origin for _, origin in adopted}
    if "tcp" in origins and not config.server.api_token:
        raise ListenError(
            "a TCP socket passed by systemd needs server.api_token (or api_token_file, "
            "api_token_credential) in the config"
        )
    listeners = list(adopted)
    bound = "socket" not in origins
    if bound:
        mode = config_module.socket_mode(config)
        listeners.append((await open_unix_listener(config.server.socket, mode), "socket"))
    if config.server.listen and "tcp" not in origins:
        tcp = await open_tcp_listeners(config.server.listen)
        listeners += [(listener, "tcp") for listener in tcp]
    if adopted:
        log.info("action=sockets.adopted count=%d origins=%s", len(adopted), ",".join(origins))
    return listeners, bound


def _tcp_addresses(listeners: list[tuple[trio.SocketListener, str]]) -> list[tuple[str, int]]:
    """The (host, port) each TCP listener is bound to."""
    return [listener.socket.getsockname()[:2] for listener, origin in listeners if origin == "tcp"]


def _limits(config: Config, nofile: int, tcp: bool) -> Limits:
    """The server's limits, its connection limits fitted in `nofile` descriptors."""
    server = config.server
    tcp_connections = server.max_tcp_connections if tcp else 0
    try:
        budget = descriptors.budget(
            nofile, server.max_connections, tcp_connections, config.delivery.concurrency
        )
    except descriptors.BudgetError as exc:
        raise ListenError(str(exc)) from None
    return Limits(
        max_body_bytes=server.max_body_bytes,
        request_timeout=server.request_timeout,
        idle_timeout=server.idle_timeout,
        unauthenticated_timeout=server.unauthenticated_timeout,
        max_connections=budget.socket_connections,
        max_tcp_connections=budget.tcp_connections or server.max_tcp_connections,
    )


def _remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _secret_ring(config: Config) -> tuple[list[bytes], str] | None:
    """The key ring of endpoint secrets, and where it was read (None: none given)."""
    try:
        return keys.secret_ring(config.storage.key_file)
    except keys.KeyFileError as exc:
        raise StorageError(str(exc)) from None


def _subject_key(config: Config) -> bytes:
    """The subject index's key beside the database (made at the first start, once the
    database, and so its directory, is open)."""
    try:
        return keys.subject_key(config.storage.path)
    except keys.KeyFileError as exc:
        raise StorageError(str(exc)) from None
