"""A Debian system booted with systemd as PID 1, for `make systemd-check`
(packaging/systemd_check.py): the root file system, the container and the ways in.

The root file system is made once with `debootstrap` (Debian's packages, about a minute) and
cached under ${XDG_CACHE_HOME:-~/.cache}/hookd/, in a directory named after its recipe;
containers boot it with `systemd-nspawn --boot --volatile=overlay`, so nothing a run does
reaches the cache. If Debian's archive cannot be reached, making it fails saying so.

Rules:
- The container shares the host's network and sees the unified cgroup hierarchy (as a Debian
  host has it, whatever this machine uses); `--register=no --keep-unit` because the host may
  have no systemd of its own.
- Commands run inside with nsenter; files inside are reached through /proc/<its PID 1>/root.
- Every wait is bounded and says what it waited for when it gives up.
- Standard library only; needs debootstrap, systemd-nspawn (Debian's systemd-container) and
  nsenter (util-linux).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SUITE = "bookworm"
MIRROR = os.environ.get("HOOKD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the container needs besides Debian's minimal base: systemd as PID 1, curl for the
# socket-activation check, and what the package depends on (adduser, procps).
PACKAGES = ("systemd", "systemd-sysv", "dbus", "libpam-systemd", "curl", "adduser", "procps")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CheckFailed(Exception):
    """A check saw something other than what it expects."""


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    """Poll `predicate` until it returns something true; CheckFailed naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


def cache_dir() -> Path:
    """Where root file systems are kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hookd"


def root_fs() -> Path:
    """The cached Debian root, made with debootstrap when missing (its name follows its recipe)."""
    recipe = f"{SUITE} {MIRROR} {' '.join(PACKAGES)}"
    root = cache_dir() / f"nspawn-{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if (root / "usr" / "lib" / "systemd" / "systemd").exists():
        print(f"root file system: {root} (cached)")
        return root
    if shutil.which("debootstrap") is None:
        raise CheckFailed("debootstrap is not installed (apt-get install debootstrap)")
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"root file system: debootstrap {SUITE} from {MIRROR} into {root} ...", flush=True)
    proc = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
         SUITE, str(partial), MIRROR],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise CheckFailed(
            f"debootstrap could not build the Debian root from {MIRROR} (exit {proc.returncode});"
            f" are Debian's packages reachable? (HOOKD_DEBIAN_MIRROR names another mirror)\n{tail}"
        )
    # A machine id of its own, so journald keeps the container's journal apart.
    (partial / "etc" / "machine-id").write_text("")
    partial.rename(root)
    print(f"root file system: made in {time.monotonic() - started:.0f} s")
    return root


class Container:
    """A booted systemd-nspawn container and the ways in."""

    def __init__(self, root: Path, shared: Path, log: Path) -> None:
        self.root = root
        self.shared = shared
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0

    def boot(self) -> None:
        """Boot the root with systemd as PID 1; return once the system is up."""
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
             "--volatile=overlay", f"--directory={self.root}", "--machine=hookd-check",
             f"--bind-ro={self.shared}:/srv/check", "--console=pipe",
             # The BPF firewall of IPAddressDeny= (the unit's drop-in) needs the bpf() call,
             # which nspawn's seccomp filter withholds from containers by default.
             "--system-call-filter=bpf"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            # The unified cgroup hierarchy inside, as on a Debian host (whatever this one uses).
            env={**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"},
        )
        log.close()
        self.leader = wait_until("the container's PID 1", self._find_leader, 30)
        state = wait_until("systemd to finish booting", self._booted, 90)
        print(f"container: booted (systemd {self.systemd_version()}, system {state})")

    def _find_leader(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is not None:
            console = self.log_path.read_text()[-3000:]
            raise CheckFailed(f"systemd-nspawn exited {self.proc.returncode}:\n{console}")
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                text = status.read_text()
                nspid = re.search(r"^NSpid:\s+(\d+)\s+1$", text, re.MULTILINE)
                if nspid and self._descends_from(int(nspid.group(1)), self.proc.pid):
                    return int(nspid.group(1))
        return 0

    @staticmethod
    def _descends_from(pid: int, ancestor: int) -> bool:
        while pid > 1:
            if pid == ancestor:
                return True
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return False
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        return False

    def _booted(self) -> str:
        out = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
        return out if out in ("running", "degraded") else ""

    def systemd_version(self) -> str:
        """systemd's version number inside."""
        return self.run(["systemctl", "--version"]).stdout.split()[1]

    def run(
        self, argv: list[str], *, check: bool = True, timeout: float = 120, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the container (as root, or `user`); CheckFailed if it fails."""
        inner = ["env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "SYSTEMD_COLORS=0", *argv]
        if user is not None:
            inner = ["runuser", "-u", user, "--", *inner]
        proc = subprocess.run(
            ["nsenter", f"--target={self.leader}", "--mount", "--uts", "--ipc", "--net", "--pid",
             "--cgroup", "--", *inner],
            capture_output=True, text=True, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise CheckFailed(
                f"in the container, {' '.join(argv)} exited {proc.returncode}:\n"
                f"{proc.stdout}{proc.stderr}"
            )
        return proc

    def path(self, inside: str) -> Path:
        """A path inside the container, as this process reaches it."""
        return Path(f"/proc/{self.leader}/root") / inside.lstrip("/")

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """`systemctl show` properties of a unit."""
        out = self.run(["systemctl", "show", unit, "-p", ",".join(props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self) -> int:
        """hookd.service's main PID, as seen from here (0 when it is not running, or has just
        exited)."""
        inside = int(self.show("hookd.service", "MainPID")["MainPID"])
        return self.host_pid(inside) if inside else 0

    def host_pid(self, inside: int) -> int:
        """The host's PID of a process the container numbers `inside` (0 if there is none)."""
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                text = status.read_text()
                match = re.search(r"^NSpid:\s+(\d+)\s+(\d+)$", text, re.MULTILINE)
                if match and int(match.group(2)) == inside and self._descends_from(
                    int(match.group(1)), self.leader
                ):
                    return int(match.group(1))
        return 0

    def hookd_pid(self) -> int:
        """The PID (host's numbering) of hookd itself: the bootloader's child."""
        main = wait_until("hookd.service's main process", self.main_pid, 30)
        children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
        if len(children) != 1:
            raise CheckFailed(f"hookd's main process {main} has children {children}, not one")
        return int(children[0])

    def journal(self, *args: str) -> str:
        """`journalctl -u hookd` with `args`, since the container booted."""
        return self.run(["journalctl", "-u", "hookd", "--no-pager", "-q", *args]).stdout

    def poweroff(self) -> None:
        """Stop the container (SIGTERM to systemd-nspawn powers it off) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def process_limit(pid: int, name: str) -> tuple[int, int]:
    """A process's soft and hard limit `name` (as /proc/PID/limits words it); -1 unlimited."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            soft, hard = line[len(name):].split()[:2]
            return tuple(-1 if v == "unlimited" else int(v) for v in (soft, hard))  # type: ignore[return-value]
    raise CheckFailed(f"no {name!r} in /proc/{pid}/limits")


def parse_span(text: str) -> float:
    """A systemd time span (`30s`, `1min 30s`, `500ms`) in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)\s*(us|ms|min|s|h)", text):
        total += float(number) * units[unit]
    return total


@contextlib.contextmanager
def booted(root: Path, shared: Path) -> Iterator[Container]:
    """A container booted from `root`, powered off on the way out."""
    container = Container(root, shared, shared / "console.log")
    try:
        container.boot()
        yield container
    finally:
        container.poweroff()
