"""Reloading the configuration while serving (SIGHUP, or `POST /v1/config/reload`, which
`hookd config reload` and so `systemctl reload hookd` use).

Rules (the README's "Reloading"; docs/ARCHITECTURE.md):
- The file is read again from the path the daemon started with and checked as at start
  (`config.load`). One that cannot be read or does not check is one ERROR line with the
  reason, and nothing changes.
- What is bound at start (every `server.*` and `storage.*` key: `config.plan_reload`)
  keeps its running value, one WARNING line per key the file changed, naming it; the
  rest of the reload is applied. So does a `delivery.concurrency` whose descriptors do
  not fit beside the connections the server was started with (`hookd.descriptors`).
- What starting with the file would do is done through the calls start-up makes: the
  endpoints declared in it are synced (`Service.sync_config_endpoints`: added, changed,
  removed; those that receive differently start anew in the scheduler, kept retry jobs
  included), the catalog and its OpenAPI document are rebuilt, the [delivery] settings
  go to the sender and the scheduler, the log level is set. The steps that can fail come
  first (the sender's CA file, then the sync): such a failure is an ERROR line, and
  nothing changes.
- Connections and attempts in flight go on: nothing is closed or cut short but the
  attempts of an endpoint the file disables or removes (as through the API).
- One INFO line per reload applied, `action=config.reloaded`, with counts and the names
  of the settings changed (never values). systemd hears `RELOADING=1` first, `READY=1`
  and a `STATUS=` line at the end, whatever the outcome.
- One reload at a time (`Daemon.reload_config` holds a lock through each); each returns
  what it did (`views.Reloaded`), which the API answers once the reload is over.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import TypedDict

import msgspec
import trio

from hookd.api import openapi, routes
from hookd.api.handlers import Api
from hookd.db.errors import StorageError
from hookd.delivery.client import Sender
from hookd.delivery.scheduler import Scheduler
from hookd.domain import views
from hookd.domain.addresses import AddressPolicy
from hookd.domain.catalog import Catalog
from hookd.runtime import config as config_module
from hookd.runtime import logs, systemd
from hookd.runtime.config import Config, ConfigError
from hookd.service import Service

log = logging.getLogger("hookd.daemon")


class SenderSettings(TypedDict):
    timeout: float
    policy: AddressPolicy
    require_https: bool
    ca_file: str


class SchedulerSettings(TypedDict):
    schedule: list[float]
    concurrency: int
    per_endpoint: int
    disable_after: float


def sender_settings(config: Config) -> SenderSettings:
    """What the sender takes from [delivery]."""
    delivery = config.delivery
    return SenderSettings(
        timeout=delivery.timeout,
        policy=AddressPolicy(delivery.allow_private_networks, delivery.allowed_networks),
        require_https=delivery.require_https,
        ca_file=delivery.ca_file,
    )


def scheduler_settings(config: Config) -> SchedulerSettings:
    """What the scheduler takes from [delivery]."""
    delivery = config.delivery
    return SchedulerSettings(
        schedule=list(delivery.retry_schedule),
        concurrency=delivery.concurrency,
        per_endpoint=delivery.per_endpoint_concurrency,
        disable_after=delivery.disable_after,
    )


def catalog_of(config: Config) -> Catalog:
    """The catalog: the spec's types and the file's `[[event_type]]`, checked per `ingest`."""
    return Catalog(config.event_type, config.ingest.validate)


def document_of(catalog: Catalog, config: Config) -> bytes:
    """The OpenAPI document for this catalog and config."""
    return openapi.document_bytes(
        routes.OPERATIONS, catalog, with_token=bool(config.server.api_token)
    )


class Reloader:
    """Applies the config file again to the running parts of one daemon."""

    def __init__(
        self,
        path: str | None,
        *,
        service: Service,
        api: Api,
        sender: Sender,
        scheduler: Scheduler,
        notifier: systemd.Notifier,
        concurrency_problem: Callable[[int], str | None],
    ) -> None:
        self._path = path
        self._service = service
        self._api = api
        self._sender = sender
        self._scheduler = scheduler
        self._notifier = notifier
        self._concurrency_problem = concurrency_problem

    async def reload(self, running: Config) -> tuple[Config, views.Reloaded]:
        """Read the file and apply what can change live: the config now in force, and
        what the reload did."""
        self._notifier.reloading("reloading the configuration")
        status = "configuration reload failed: running on the previous one"
        try:
            applied, outcome = await self._reload(running)
            if outcome.applied:
                summary = _summary(outcome)
                log.info("action=config.reloaded %s", summary)
                status = f"configuration reloaded: {summary}"
        finally:
            self._notifier.notify(READY="1", STATUS=status)
        return applied, outcome

    async def _reload(self, running: Config) -> tuple[Config, views.Reloaded]:
        try:
            read = await trio.to_thread.run_sync(config_module.load, self._path)
        except ConfigError as exc:
            return running, _failed(str(exc))
        plan = config_module.plan_reload(running, read)
        new, refused, changed = plan.config, list(plan.refused), plan.changed
        problem = self._concurrency_problem(new.delivery.concurrency)
        if "delivery.concurrency" in changed and problem is not None:
            kept, wanted = running.delivery.concurrency, new.delivery.concurrency
            refused.append(
                config_module.Refused("delivery.concurrency", str(kept), str(wanted), problem)
            )
            changed = [key for key in changed if key != "delivery.concurrency"]
            delivery = msgspec.structs.replace(new.delivery, concurrency=kept)
            new = msgspec.structs.replace(new, delivery=delivery)
        for key, kept_value, wanted_value, reason in refused:
            log.warning(
                "action=config.reload_refused key=%s kept=%s wanted=%s reason=%r",
                key,
                kept_value,
                wanted_value,
                reason,
            )
        try:
            self._sender.configure(**sender_settings(new))
        except (ssl.SSLError, OSError) as exc:
            return running, _failed(
                f"delivery.ca_file: cannot load {new.delivery.ca_file!r}: {exc}"
            )
        try:
            synced = await self._service.sync_config_endpoints(
                config_module.declared_endpoints(new)
            )
        except StorageError as exc:
            self._sender.configure(**sender_settings(running))
            return running, _failed(str(exc))
        catalog = catalog_of(new)
        self._service.catalog = catalog
        self._service.secret_overlap = new.delivery.secret_overlap
        self._api.configure(openapi=document_of(catalog, new))
        self._scheduler.configure(**scheduler_settings(new))
        logs.set_level(new.log.level)
        return new, views.Reloaded(
            applied=True,
            endpoints_added=synced.added,
            endpoints_changed=list(synced.changed),
            endpoints_removed=synced.removed,
            event_types_changed=_event_type_changes(running, new),
            settings_changed=changed,
            refused=[views.ReloadRefusal(*refusal) for refusal in refused],
        )


def _failed(error: str) -> views.Reloaded:
    """A reload that changed nothing: its ERROR line, and its outcome."""
    log.error("action=config.reload_failed error=%r kept=running", error)
    return views.Reloaded(applied=False, error=error)


def _summary(outcome: views.Reloaded) -> str:
    """The counts and changed keys of an applied reload, as its log line has them."""
    return (
        f"endpoints_added={len(outcome.endpoints_added)} "
        f"endpoints_changed={len(outcome.endpoints_changed)} "
        f"endpoints_removed={len(outcome.endpoints_removed)} "
        f"event_types_changed={outcome.event_types_changed} "
        f"settings_changed={len(outcome.settings_changed)} refused={len(outcome.refused)} "
        f"settings={','.join(outcome.settings_changed) or '-'}"
    )


def _event_type_changes(running: Config, new: Config) -> int:
    """How many `[[event_type]]` entries were added, changed or removed."""
    before = {kind.name: kind for kind in running.event_type}
    after = {kind.name: kind for kind in new.event_type}
    return sum(before.get(name) != after.get(name) for name in before.keys() | after.keys())
