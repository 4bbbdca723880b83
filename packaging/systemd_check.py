"""hookd's Debian package under a real systemd: `make systemd-check` runs

    python3 packaging/systemd_check.py dist/hookd_<version>_<arch>.deb

as root. It boots a Debian root file system with systemd as PID 1 (packaging/nspawn.py),
installs the package with `dpkg -i` and checks, under that systemd, what an operator relies
on: socket activation and the socket's group, Type=notify start-up, journal priorities, the
unit's limits and `systemd-analyze security`, the watchdog, a stop that drains, kill -9, the
IP address drop-in, `systemctl reload`, an upgrade that keeps data and config, remove and
purge. Each check prints
one line with its figures; the first that fails stops the run with what it saw and the end of
hookd's journal, exit status 1.

The receivers the endpoints point at run in this process on 127.0.0.1 (the container shares
the network), and hookd's API socket is reached from here through the container's root.

Rules:
- One method of `Check` per property, run in order on one container; each leaves hookd
  running for the next (the file is long because each check is spelled out, not because
  they share state beyond the container and the receivers).
- Events are counted by X-Webhook-Id at the receiver: "delivered" means arrived at least once.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nspawn import CheckFailed, Container, booted, parse_span, process_limit, root_fs, wait_until

SOCKET = "/run/hookd/hookd.sock"
CONFIG = "/etc/hookd/hookd.toml"
SECRET = "systemd-check-secret-0123456789"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# -- the receivers and the API client -------------------------------------------------------


class Receivers:
    """HTTP receivers on 127.0.0.1: /ok answers 200 after `delay` seconds, /gone 410."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.seen: Counter[str] = Counter()
        self.delay = 0.0
        self.in_flight = 0  # requests to /ok being answered
        self.lock = threading.Lock()
        receivers = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/gone":
                    self._answer(410)
                    return
                with receivers.lock:
                    receivers.in_flight += 1
                time.sleep(receivers.delay)
                with receivers.lock:
                    receivers.in_flight -= 1
                    receivers.seen[self.headers["X-Webhook-Id"]] += 1
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a connection hookd dropped (killed, frozen, stopped) is expected here

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, ids: list[str]) -> int:
        """How many of `ids` arrived at least once."""
        with self.lock:
            return sum(1 for i in ids if self.seen[i])

    def duplicates(self, ids: list[str]) -> int:
        """Deliveries of `ids` beyond the first (at-least-once)."""
        with self.lock:
            return sum(max(0, self.seen[i] - 1) for i in ids)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self.socket_path = str(path)

    def connect(self) -> None:
        """Connect to the socket file instead of a TCP address."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class Api:
    """hookd's API through the container's socket."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request; returns the status and the decoded JSON answer."""
        conn = UnixHTTPConnection(self.container.path(SOCKET))
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def metrics(self) -> str:
        """GET /metrics, as text."""
        conn = UnixHTTPConnection(self.container.path(SOCKET))
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def send(self, prefix: str, count: int, event: str = "cliente.criado") -> list[str]:
        """POST `count` events with ids `prefix-N`; every one must be acknowledged (202)."""
        ids = []
        conn = UnixHTTPConnection(self.container.path(SOCKET))
        try:
            for n in range(count):
                event_id = f"{prefix}-{n}"
                body = json.dumps(
                    {"id": event_id, "event": event, "data": {"id": str(n)}}
                ).encode()
                conn.request("POST", "/v1/events", body=body,
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
                if response.status != 202:
                    raise CheckFailed(f"event {event_id} answered {response.status}: {answer!r}")
                ids.append(event_id)
        finally:
            conn.close()
        return ids


# -- the checks -----------------------------------------------------------------------------


class Check:
    """The checks, in order, sharing one container."""

    def __init__(self, container: Container, receivers: Receivers, debs: tuple[str, str]) -> None:
        self.c = container
        self.receivers = receivers
        self.api = Api(container)
        self.first, self.second = debs

    def report(self, name: str, line: str) -> None:
        """Print one check's outcome."""
        print(f"ok   {name}: {line}", flush=True)

    def install(self) -> None:
        """dpkg -i: user, units enabled, the socket listening, the service not yet started."""
        out = self.c.run(["dpkg", "-i", f"/srv/check/{self.first}"]).stdout
        for unit, wanted in (("hookd.socket", "enabled"), ("hookd.service", "enabled")):
            state = self.c.run(["systemctl", "is-enabled", unit], check=False).stdout.strip()
            if state != wanted:
                raise CheckFailed(f"after dpkg -i, {unit} is {state!r}, not {wanted}\n{out}")
        if self.c.run(["systemctl", "is-active", "hookd.socket"], check=False).stdout.strip() \
                != "active":
            raise CheckFailed("after dpkg -i, hookd.socket is not active")
        if self.c.run(["systemctl", "is-active", "hookd.service"], check=False).stdout.strip() \
                == "active":
            raise CheckFailed("after dpkg -i, hookd.service already runs: nothing asked for it")
        user = self.c.run(["getent", "passwd", "hookd"]).stdout.strip()
        mode = self.c.run(["stat", "-c", "%a %U:%G", CONFIG]).stdout.strip()
        if mode != "640 root:hookd":
            raise CheckFailed(f"{CONFIG} is {mode}, not 640 root:hookd: it may hold secrets")
        self.report("install", f"user {user.split(':')[0]}, {CONFIG} {mode}, socket enabled and "
                    "listening, service waiting for its first request")

    def configure(self) -> None:
        """The operator's edit: a declared endpoint (the receiver) and a short retry schedule."""
        delivery = (
            "[delivery]\n# systemd-check: the operator's edit\nallow_private_networks = true\n"
            'retry_schedule = ["0s", "1s", "2s", "2s", "2s"]\n'
        )
        endpoint = (
            "\n# systemd-check: the operator's edit\n[[endpoint]]\n"
            'id = "receiver"\n'
            f'url = "http://127.0.0.1:{self.receivers.port}/ok"\n'
            'events = ["cliente.*"]\n'
            f'secret = "{SECRET}"\n'
        )
        path = self.c.path(CONFIG)
        text = path.read_text()
        if "\n[delivery]\n" not in text:
            raise CheckFailed(f"the packaged {CONFIG} has no [delivery] table to edit")
        path.write_text(text.replace("\n[delivery]\n", "\n" + delivery, 1) + endpoint)
        self.c.run(["hookd", "config", "check", CONFIG], user="hookd")

    def socket_activation(self) -> None:
        """The first request starts the service; the socket's group decides who connects."""
        self.c.run(["useradd", "--create-home", "crm"])
        self.c.run(["usermod", "-aG", "hookd", "crm"])
        self.c.run(["useradd", "--create-home", "stranger"])
        started = time.monotonic()
        answer = self.c.run(
            ["curl", "-sS", "--fail", "--unix-socket", SOCKET, "http://hookd/healthz"], user="crm"
        ).stdout
        first = time.monotonic() - started
        if self.c.run(["systemctl", "is-active", "hookd.service"], check=False).stdout.strip() \
                != "active":
            raise CheckFailed("a request on hookd.socket did not start hookd.service")
        denied = self.c.run(
            ["curl", "-sS", "-v", "--unix-socket", SOCKET, "http://hookd/healthz"],
            user="stranger", check=False,
        )
        if denied.returncode == 0 or "Permission denied" not in denied.stderr:
            raise CheckFailed(
                "a user outside the hookd group was not refused by the socket's permissions:\n"
                f"exit {denied.returncode}\n{denied.stdout}{denied.stderr[-800:]}"
            )
        self.report("socket activation", f"first request (user crm, group hookd) answered "
                    f"{answer.strip()} in {first:.2f} s, starting hookd.service; user stranger: "
                    "Permission denied")

    def notify_ready(self) -> None:
        """systemctl start returns once hookd said READY=1; its STATUS shows."""
        self.c.run(["systemctl", "stop", "hookd.service"])
        started = time.monotonic()
        self.c.run(["systemctl", "start", "hookd.service"])
        took = time.monotonic() - started
        props = self.c.show("hookd.service", "Type", "ActiveState", "SubState", "StatusText")
        if (props["Type"], props["ActiveState"], props["SubState"]) != ("notify", "active",
                                                                          "running"):
            raise CheckFailed(f"after systemctl start: {props}")
        journal = self.c.journal("-o", "short-monotonic", "-n", "40")
        ready = journal.rfind("action=ready")
        started_line = journal.rfind("Started hookd")
        if ready < 0 or started_line < 0 or started_line < ready:
            raise CheckFailed(f"systemd reported hookd started before hookd was ready:\n{journal}")
        status = wait_until(
            "a STATUS line with hookd's figures",
            lambda: "pending" in self.c.show("hookd.service", "StatusText")["StatusText"]
            and self.c.show("hookd.service", "StatusText")["StatusText"],
            30,
        )
        shown = self.c.run(["systemctl", "status", "hookd.service", "--no-pager"], check=False)
        if f"Status: \"{status}\"" not in shown.stdout:
            raise CheckFailed(f"systemctl status does not show the STATUS line:\n{shown.stdout}")
        self.report("Type=notify", f"systemctl start returned in {took:.2f} s, after hookd's "
                    f"action=ready; status shows \"{status}\"")

    def secrets_at_rest(self) -> None:
        """The package's key seals endpoint secrets: none in clear in the database files."""
        key = self.c.path("/etc/hookd/hookd.key").stat()
        uid = int(self.c.run(["id", "-u", "hookd"]).stdout)
        if (key.st_mode & 0o777, key.st_uid) != (0o600, uid):
            raise CheckFailed(f"/etc/hookd/hookd.key: mode {key.st_mode & 0o777:o}, uid "
                              f"{key.st_uid}; want 600 and hookd's")
        secret = "whsec_" + "SealedAtRestCheck" * 2
        status, answer = self.api.call("POST", "/v1/endpoints", {
            "url": f"http://127.0.0.1:{self.receivers.port}/sealed", "events": ["x.y"],
            "secret": secret,
        })
        if status != 201:
            raise CheckFailed(f"POST /v1/endpoints answered {status}: {answer}")
        found = [p.name for p in self.c.path("/var/lib/hookd").iterdir()
                 if p.is_file() and secret.encode() in p.read_bytes()]
        if found:
            raise CheckFailed(f"an endpoint secret in clear in {found}")
        shown = self.c.run(["hookd", "status"], user="hookd").stdout
        if "encrypted (key" not in shown:
            raise CheckFailed(f"hookd status does not say the secrets are encrypted:\n{shown}")
        [line] = [x for x in shown.splitlines() if "encrypted (key" in x]
        self.report("secrets at rest", f"/etc/hookd/hookd.key 0600 hookd; a new endpoint's "
                    f"secret in none of /var/lib/hookd's files; hookd status: {line.strip()}")

    def journal_priority(self) -> None:
        """A warning (an endpoint disabled by a 410) is filed at priority 4, info at 6."""
        status, answer = self.api.call("POST", "/v1/endpoints", {
            "url": f"http://127.0.0.1:{self.receivers.port}/gone",
            "events": ["cliente.atualizado"],
        })
        if status != 201:
            raise CheckFailed(f"POST /v1/endpoints answered {status}: {answer}")
        status, answer = self.api.call(
            "POST", "/v1/events", {"event": "cliente.atualizado", "data": {"id": "1"}}
        )
        if status != 202:
            raise CheckFailed(f"POST /v1/events answered {status}: {answer}")
        warnings = wait_until(
            "the endpoint-disabled warning in `journalctl -u hookd -p warning`",
            lambda: [line for line in self.c.journal("-p", "warning", "-o", "json").splitlines()
                     if "alert.endpoint_disabled" in line],
            30,
        )
        entry = json.loads(warnings[0])
        if entry.get("PRIORITY") != "4":
            raise CheckFailed(f"the warning was filed at priority {entry.get('PRIORITY')}: {entry}")
        infos = self.c.journal("-p", "warning")
        if "action=ready" in infos:
            raise CheckFailed(f"info lines show under -p warning:\n{infos}")
        self.report("journal", "`journalctl -u hookd -p warning` shows action=alert.endpoint_"
                    "disabled at PRIORITY=4 and no info line")

    def hardening(self) -> None:
        """The unit's limits reach the process; systemd-analyze security stays under 2.0."""
        pid = self.c.hookd_pid()
        unit_nofile = int(self.c.show("hookd.service", "LimitNOFILE")["LimitNOFILE"])
        # systemd cannot raise a limit above its own: PID 1's hard limit caps the unit's.
        ceiling = process_limit(self.c.leader, "Max open files")[1]
        nofile = process_limit(pid, "Max open files")
        if unit_nofile != 65536 or nofile != (min(65536, ceiling),) * 2:
            raise CheckFailed(f"LimitNOFILE is {unit_nofile}, hookd's open files {nofile} "
                              f"(PID 1's hard limit {ceiling})")
        if process_limit(pid, "Max core file size") != (0, 0):
            raise CheckFailed("hookd may dump core (LimitCORE=0 is not applied)")
        props = self.c.show("hookd.service", "MemoryHigh", "MemoryMax", "TasksMax",
                            "DevicePolicy", "PrivateUsers", "ControlGroup")
        if props["DevicePolicy"] != "closed" or props["PrivateUsers"] != "yes" \
                or "infinity" in (props["MemoryHigh"], props["MemoryMax"], props["TasksMax"]):
            raise CheckFailed(f"hookd.service's limits are not set: {props}")
        enforced = self._cgroup_limits(props)
        uid_map = Path(f"/proc/{pid}/uid_map").read_text().split()
        if uid_map[:3] == ["0", "0", "4294967295"]:
            raise CheckFailed("PrivateUsers=yes, yet hookd runs in the host's user namespace")
        security = self.c.run(["systemd-analyze", "security", "hookd.service", "--no-pager"],
                              check=False).stdout
        match = re.search(r"Overall exposure level for hookd.service: ([0-9.]+)", security)
        if match is None or float(match.group(1)) >= 2.0:
            raise CheckFailed(f"systemd-analyze security hookd.service:\n{security[-3000:]}")
        self.report("hardening", f"LimitNOFILE {unit_nofile} (hookd has {nofile[0]}: PID 1's "
                    f"ceiling is {ceiling}), core 0, MemoryHigh {mib(props['MemoryHigh'])}, "
                    f"MemoryMax {mib(props['MemoryMax'])}, TasksMax {props['TasksMax']} "
                    f"({enforced}), DevicePolicy closed, PrivateUsers yes (own user namespace); "
                    f"systemd-analyze security: {match.group(1)}")

    def _cgroup_limits(self, props: dict[str, str]) -> str:
        """Check the kernel enforces the unit's memory and task limits, where it can."""
        cgroup = self.c.path("/sys/fs/cgroup") / props["ControlGroup"].lstrip("/")
        available = self.c.path("/sys/fs/cgroup/cgroup.controllers").read_text().split()
        wanted = {"memory.high": props["MemoryHigh"], "memory.max": props["MemoryMax"],
                  "pids.max": props["TasksMax"]}
        checked = []
        for name, value in wanted.items():
            if name.split(".")[0] not in available:
                continue
            applied = (cgroup / name).read_text().strip()
            if applied != value:
                raise CheckFailed(f"{props['ControlGroup']}/{name} is {applied}, not {value}")
            checked.append(name)
        if not checked:
            # A host whose memory and pids controllers sit on cgroup v1 (a hybrid layout)
            # cannot hand them to a container: systemd has the values, the kernel no hold.
            return "set; not enforceable in this container: the host keeps its memory and " \
                   "pids controllers on cgroup v1"
        return f"enforced: {', '.join(checked)}"

    def watchdog(self) -> None:
        """hookd frozen with SIGSTOP is killed by the watchdog and restarted; nothing is lost."""
        watchdog_s = parse_span(self.c.show("hookd.service", "WatchdogUSec")["WatchdogUSec"])
        abort_s = parse_span(self.c.show("hookd.service", "TimeoutAbortUSec")["TimeoutAbortUSec"])
        self.receivers.delay = 0.5
        ids = self.api.send("freeze", 200)
        wait_until("some deliveries to arrive", lambda: self.receivers.received(ids) >= 5, 30)
        before = self.c.main_pid()
        frozen = self.c.hookd_pid()
        frozen_at = time.monotonic()
        os.kill(frozen, signal.SIGSTOP)
        self.receivers.delay = 0.0
        wait_until("systemd to kill the frozen hookd",
                   lambda: not Path(f"/proc/{frozen}").exists(), watchdog_s + abort_s + 10, 0.05)
        killed = time.monotonic() - frozen_at
        wait_until(
            "systemd to start hookd again",
            lambda: self.c.main_pid() not in (0, before) and self._healthy(), 30, every=0.05,
        )
        restarted = time.monotonic() - frozen_at
        if killed > watchdog_s + abort_s + 1:
            raise CheckFailed(f"the frozen hookd was killed {killed:.1f} s after SIGSTOP; "
                              f"WatchdogSec is {watchdog_s:.0f} s, TimeoutAbortSec {abort_s:.0f} s")
        delivered = wait_until(f"the {len(ids)} events acknowledged before the freeze",
                               lambda: self.receivers.received(ids) == len(ids) and len(ids), 60)
        journal = self.c.journal("-n", "200")
        if "Watchdog timeout" not in journal:
            raise CheckFailed(f"no watchdog timeout in the journal:\n{journal[-2000:]}")
        self.report("watchdog", f"SIGSTOP -> killed by the watchdog after {killed:.1f} s, "
                    f"answering again after {restarted:.1f} s (WatchdogSec={watchdog_s:.0f}s, "
                    f"RestartSec 2 s); {delivered}/{len(ids)} events acknowledged before the "
                    f"freeze delivered, {self.receivers.duplicates(ids)} of them twice")

    def _healthy(self) -> bool:
        try:
            return self.api.call("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def stop_drains(self) -> None:
        """systemctl stop under load lets attempts in flight finish, and exits 0."""
        self.receivers.delay = 2.0
        ids = self.api.send("stop", 100)
        wait_until("attempts in flight", lambda: self.receivers.in_flight > 0, 30, every=0.05)
        in_flight = self.receivers.in_flight
        started = time.monotonic()
        self.c.run(["systemctl", "stop", "hookd.service"])
        took = time.monotonic() - started
        props = self.c.show("hookd.service", "ExecMainStatus", "ExecMainCode", "Result")
        if props["ExecMainStatus"] != "0" or props["Result"] != "success":
            raise CheckFailed(f"hookd did not exit 0 on systemctl stop: {props}")
        journal = self.c.journal("-n", "60")
        if "action=stopping signal=SIGTERM" not in journal or "action=stopped" not in journal:
            raise CheckFailed(f"the journal does not show the graceful stop:\n{journal}")
        if "shutdown.cut_off" in journal.split("action=stopping signal=SIGTERM")[-1]:
            raise CheckFailed(f"attempts were cut off within the grace:\n{journal}")
        arrived = self.receivers.received(ids)
        self.receivers.delay = 0.0
        self.c.run(["systemctl", "start", "hookd.service"])
        wait_until(f"the {len(ids)} events after the restart",
                   lambda: self.receivers.received(ids) == len(ids), 60)
        self.report("stop", f"systemctl stop with {in_flight} attempts in flight took {took:.1f} s,"
                    f" exit status 0, journal: stopping/stopped, nothing cut off; {arrived} "
                    f"delivered before the stop, "
                    f"{len(ids)}/{len(ids)} delivered after the restart, "
                    f"{self.receivers.duplicates(ids)} twice")

    def kill_9(self) -> None:
        """kill -9 of the main process: systemd restarts hookd; nothing acknowledged is lost."""
        lines = [
            self._kill_9("main PID (bootloader)", self.c.main_pid),
            self._kill_9("hookd (its child)", self.c.hookd_pid),
        ]
        self.report("kill -9", "; ".join(lines))

    def _kill_9(self, name: str, target: Callable[[], int]) -> str:
        """SIGKILL to `target()` while 300 acknowledged events are being delivered."""
        self.receivers.delay = 0.2
        ids = self.api.send(f"kill-{name.split()[0]}", 300)
        wait_until("some deliveries", lambda: self.receivers.received(ids) >= 5, 30)
        before = self.c.main_pid()
        started = time.monotonic()
        os.kill(target(), signal.SIGKILL)
        self.receivers.delay = 0.0
        wait_until(
            "systemd to restart hookd after kill -9",
            lambda: self.c.main_pid() not in (0, before) and self._healthy(), 30, every=0.1,
        )
        took = time.monotonic() - started
        wait_until(f"the {len(ids)} events acknowledged before kill -9",
                   lambda: self.receivers.received(ids) == len(ids), 60)
        return (f"{name}: restarted in {took:.1f} s, {len(ids)}/{len(ids)} delivered, "
                f"{self.receivers.duplicates(ids)} twice")

    def ip_allow(self) -> None:
        """The documented IPAddressDeny/IPAddressAllow drop-in keeps hookd off other addresses."""
        example = self.c.path("/usr/share/doc/hookd/examples/hookd-ip-allow.conf").read_text()
        allowed = re.sub(r"(?m)^IPAddressAllow=.*\n?", "", example) + "IPAddressAllow=127.0.0.1\n"
        dropin = self.c.path("/etc/systemd/system/hookd.service.d/ip-allow.conf")
        dropin.parent.mkdir(parents=True, exist_ok=True)
        dropin.write_text(allowed)
        self.c.run(["systemctl", "daemon-reload"])
        self.c.run(["systemctl", "restart", "hookd.service"])
        outside = Receivers("127.0.0.2")
        status, endpoint = self.api.call("POST", "/v1/endpoints", {
            "url": f"http://127.0.0.2:{outside.port}/ok", "events": ["tarefa.*"],
        })
        if status != 201:
            raise CheckFailed(f"POST /v1/endpoints answered {status}: {endpoint}")
        blocked = self.api.send("ip-outside", 1, "tarefa.criada")
        allowed_ids = self.api.send("ip-inside", 1)
        timeout_line = f'hookd_attempts_total{{endpoint="{endpoint["id"]}",outcome="timeout"}}'
        wait_until("an attempt to 127.0.0.2 to time out behind the firewall",
                   lambda: timeout_line in self.api.metrics(), 30)
        if outside.received(blocked) or not self.receivers.received(allowed_ids):
            raise CheckFailed("with the drop-in, 127.0.0.2 got a delivery or 127.0.0.1 none")
        dropin.unlink()
        self.c.run(["systemctl", "daemon-reload"])
        self.c.run(["systemctl", "restart", "hookd.service"])
        wait_until("the delivery to 127.0.0.2 once the drop-in is gone",
                   lambda: outside.received(blocked), 30)
        self.api.call("DELETE", f"/v1/endpoints/{endpoint['id']}")
        outside.server.shutdown()
        self.report("IP address drop-in", "with IPAddressDeny=any, IPAddressAllow=127.0.0.1: "
                    "127.0.0.1 delivered, the attempt to 127.0.0.2 timed out; without it, "
                    "127.0.0.2 got its retry")

    def reload(self) -> None:
        """systemctl reload applies an edited config in place and returns once it is applied
        (same process, new endpoint at once); a file that does not check fails it."""
        before = self.c.main_pid()
        path = self.c.path(CONFIG)
        original = path.read_text()
        path.write_text(original + (
            "\n[[endpoint]]\n"
            'id = "added-by-reload"\n'
            f'url = "http://127.0.0.1:{self.receivers.port}/ok"\n'
            'events = ["chamado.*"]\n'
            f'secret = "{SECRET}"\n'
        ))
        started = time.monotonic()
        self.c.run(["systemctl", "reload", "hookd.service"])
        took = time.monotonic() - started
        status, _ = self.api.call("GET", "/v1/endpoints/added-by-reload")
        if status != 200 or self.c.main_pid() != before:
            raise CheckFailed(f"right after systemctl reload: GET the new endpoint answered "
                              f"{status}, main PID {before} -> {self.c.main_pid()}")
        ids = self.api.send("reload", 1, "chamado.aberto")
        wait_until("a delivery to the endpoint the reload added",
                   lambda: self.receivers.received(ids), 30)
        path.write_text(original + (
            "\n[[endpoint]]\n"
            'id = "broken"\n'
            'url = "ftp://127.0.0.1/"\n'
            'events = ["*"]\n'
            f'secret = "{SECRET}"\n'
        ))
        refused = self.c.run(["systemctl", "reload", "hookd.service"], check=False)
        journal = self.c.run(["journalctl", "-u", "hookd.service", "-n", "20", "-o", "cat"])
        if refused.returncode == 0 or "url must start with http" not in journal.stdout:
            raise CheckFailed(f"systemctl reload of a file that does not check exited "
                              f"{refused.returncode}; the journal:\n{journal.stdout}")
        path.write_text(original)
        self.c.run(["systemctl", "reload", "hookd.service"])
        status, _ = self.api.call("GET", "/v1/endpoints/added-by-reload")
        if status != 404 or self.c.main_pid() != before:
            raise CheckFailed(f"right after reloading the original config: GET the endpoint "
                              f"it removes answered {status}, main PID {before} -> "
                              f"{self.c.main_pid()}")
        self.report("reload", f"systemctl reload returned in {took:.2f} s with the endpoint "
                    "added to the config served (then delivered to), same main PID; a file "
                    "that does not check fails it, naming the key, and changes nothing")

    def upgrade(self) -> None:
        """A second build over the running install keeps data and config, restarts hookd."""
        config_before = self.c.path(CONFIG).read_bytes()
        _, endpoints = self.api.call("GET", "/v1/endpoints")
        _, events = self.api.call("GET", "/v1/events?limit=1")
        before = self.c.main_pid()
        out = self.c.run(["dpkg", "-i", f"/srv/check/{self.second}"])
        after = wait_until("hookd to run again after the upgrade",
                           lambda: (p := self.c.main_pid()) not in (0, before) and p, 30)
        version = self.c.run(["dpkg-query", "-W", "-f=${Version}", "hookd"]).stdout
        if self.c.path(CONFIG).read_bytes() != config_before:
            raise CheckFailed(f"the upgrade changed the operator's {CONFIG}:\n{out.stdout}")
        wait_until("hookd to answer after the upgrade", self._healthy, 30)
        _, endpoints_after = self.api.call("GET", "/v1/endpoints")
        _, events_after = self.api.call("GET", "/v1/events?limit=1")
        ids = sorted(e["id"] for e in endpoints["items"])
        if sorted(e["id"] for e in endpoints_after["items"]) != ids:
            raise CheckFailed(f"endpoints before {endpoints} and after {endpoints_after}")
        if events_after["items"][:1] != events["items"][:1]:
            raise CheckFailed(f"the latest event before {events} and after {events_after}")
        self.report("upgrade", f"dpkg -i {self.second} (now {version}): hookd restarted "
                    f"(main PID {before} -> {after}), edited config kept byte for byte, "
                    f"endpoints {ids} and the events kept")

    def remove_and_purge(self) -> None:
        """remove keeps /var/lib/hookd; purge deletes it and the config."""
        self.c.run(["dpkg", "--remove", "hookd"])
        if self.c.run(["systemctl", "is-active", "hookd.service"], check=False).stdout.strip() \
                == "active":
            raise CheckFailed("hookd.service still runs after dpkg --remove")
        if not self.c.path("/var/lib/hookd/hookd.db").exists():
            raise CheckFailed("dpkg --remove deleted the database; only purge may")
        self.c.run(["dpkg", "--purge", "hookd"])
        left = [p for p in ("/var/lib/hookd", "/etc/hookd") if self.c.path(p).exists()]
        if left:
            raise CheckFailed(f"dpkg --purge left {left}")
        self.report("remove, purge", "remove stopped hookd and kept /var/lib/hookd; purge "
                    "deleted it and /etc/hookd")


def mib(value: str) -> str:
    """A byte count systemctl shows, in MiB."""
    return f"{int(value) / 2**20:,.0f} MiB"


def run_checks(check: Check) -> None:
    """Every check in order; on a failure, hookd's journal is shown before the container goes."""
    steps = (check.install, check.configure, check.socket_activation, check.notify_ready,
             check.secrets_at_rest, check.journal_priority, check.hardening, check.watchdog,
             check.stop_drains,
             check.kill_9, check.ip_allow, check.reload, check.upgrade, check.remove_and_purge)
    try:
        for step in steps:
            step()
    except CheckFailed:
        with contextlib.suppress(Exception):
            journal = check.c.run(["journalctl", "-n", "80", "--no-pager", "-q"]).stdout
            print(f"--- the container's journal (last 80 lines) ---\n{journal}", file=sys.stderr)
        raise


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deb", type=Path, help="the package to check (make deb)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("systemd-check: needs root (systemd-nspawn)", file=sys.stderr)
        return 1
    for tool in ("systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            print(f"systemd-check: {tool} is not installed", file=sys.stderr)
            return 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hookd-systemd-check-") as tmp:
        shared = Path(tmp)
        try:
            root = root_fs()
            debs = second_build(args.deb, shared)
            with booted(root, shared) as container:
                run_checks(Check(container, Receivers(), debs))
        except CheckFailed as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            return 1
    print(f"systemd-check: all passed in {time.monotonic() - started:.0f} s")
    return 0


def second_build(deb: Path, shared: Path) -> tuple[str, str]:
    """The package to check and a second build of it with a higher version, for the upgrade."""
    first = shared / deb.name
    shutil.copy(deb, first)
    version = deb.name.split("_")[1]
    unpacked = shared / "unpacked"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(unpacked)], check=True)
    control = unpacked / "DEBIAN" / "control"
    upgraded = f"{version}+check1"
    control.write_text(control.read_text().replace(f"Version: {version}\n",
                                                   f"Version: {upgraded}\n"))
    second = shared / deb.name.replace(f"_{version}_", f"_{upgraded}_")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(unpacked),
                    str(second)], check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(unpacked)
    return first.name, second.name


if __name__ == "__main__":
    sys.exit(main())
