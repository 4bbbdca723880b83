"""Build the Debian package from the single-file binary: `make deb` runs

    python3 packaging/deb.py --binary dist/hookd --copyright dist/copyright \
        --manpage dist/hookd.1 --out dist

and writes dist/hookd_<version>_<arch>.deb with `dpkg-deb`, offline, from files of this
repository only (standard library; needs dpkg-deb and gzip).

What the package holds (Debian bookworm's layout):
- /usr/bin/hookd, the binary;
- /lib/systemd/system/hookd.service and hookd.socket, from systemd/, their ExecStart pointed
  at /usr/bin/hookd (the files in systemd/ name /usr/local/bin/hookd, for the manual install);
- /usr/lib/sysusers.d/hookd.conf (the user and group) and /usr/lib/tmpfiles.d/hookd.conf
  (the data directory);
- /usr/share/man/man1/hookd.1.gz, written by packaging/manpage.py;
- /etc/hookd/hookd.toml from conf/hookd.toml, a conffile: an operator's edits survive upgrades;
- /usr/share/doc/hookd/: the README, Debian's machine-readable copyright file (generated from
  the build's installed metadata, see packaging/README.md), a changelog, and under examples/
  the drop-in that limits the addresses hookd may reach;
- the maintainer scripts of packaging/deb/ (user, data directory, units, purge).

Rules:
- The version is hookd's (`hookd.__version__`) unless --version gives another (an upgrade test
  builds a second package of the same binary).
- Reproducible: file times are SOURCE_DATE_EPOCH (else the last commit's time), owners root,
  modes set here, gzip without names or times; dpkg-deb clamps what it writes to the same time.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from email.utils import formatdate
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "deb"
MANUAL_BINARY = "/usr/local/bin/hookd"
PACKAGED_BINARY = "/usr/bin/hookd"
CONFFILE = "/etc/hookd/hookd.toml"
MAINTAINER = "hookd maintainers <maintainers@hookd.dev>"


def hookd_version() -> str:
    """hookd's version as hookd/__init__.py declares it."""
    text = (ROOT / "hookd" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise SystemExit("deb.py: no __version__ in hookd/__init__.py")
    return match.group(1)


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time, else 0."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def debian_arch() -> str:
    """The architecture dpkg builds for (amd64, arm64, ...)."""
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def glibc_floor() -> str:
    """The C library version of this machine: the binary needs at least it."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "libc6"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return out.split("-")[0]


def gzipped(data: bytes) -> bytes:
    """gzip -9n: no file name, no time stamp, so the same input gives the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0, filename="") as out:
        out.write(data)
    return buffer.getvalue()


def changelog(version: str, epoch: int) -> bytes:
    """A native package's changelog: one entry for this version."""
    date = formatdate(epoch, usegmt=False).replace("-0000", "+0000")
    return (
        f"hookd ({version}) unstable; urgency=medium\n\n"
        f"  * hookd {version}: see /usr/share/doc/hookd/README.md.gz.\n\n"
        f" -- {MAINTAINER}  {date}\n"
    ).encode()


def unit_for_package(path: Path) -> bytes:
    """A unit of systemd/ with its ExecStart pointed at the packaged binary."""
    text = path.read_text()
    if path.suffix == ".service":
        if MANUAL_BINARY not in text:
            raise SystemExit(f"deb.py: {path} does not name {MANUAL_BINARY}")
        text = text.replace(MANUAL_BINARY, PACKAGED_BINARY)
    return text.encode()


class Tree:
    """The package's file tree being staged, with each file's mode."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, dest: str, data: bytes, mode: int = 0o644) -> None:
        """Write `data` at `dest` (an absolute path inside the package)."""
        path = self.root / dest.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)

    def installed_size_kib(self) -> int:
        """Installed-Size: the payload's size in KiB, rounded up per file as dpkg does."""
        total = 0
        for dirpath, _, files in os.walk(self.root):
            if "DEBIAN" in Path(dirpath).relative_to(self.root).parts:
                continue
            total += 1 + sum((os.path.getsize(Path(dirpath) / f) + 1023) // 1024 for f in files)
        return total

    def md5sums(self) -> bytes:
        """DEBIAN/md5sums: one line per payload file, sorted."""
        lines = []
        for dirpath, dirs, files in os.walk(self.root):
            dirs.sort()
            rel = Path(dirpath).relative_to(self.root)
            if rel.parts[:1] == ("DEBIAN",):
                continue
            for name in sorted(files):
                digest = hashlib.md5((Path(dirpath) / name).read_bytes()).hexdigest()
                lines.append(f"{digest}  {(rel / name).as_posix()}\n")
        return "".join(lines).encode()

    def clamp_times(self, epoch: int) -> None:
        """Every file and directory dated `epoch`, directories 0755."""
        for dirpath, dirs, files in os.walk(self.root):
            for name in dirs:
                (Path(dirpath) / name).chmod(0o755)
            for name in [*dirs, *files]:
                os.utime(Path(dirpath) / name, (epoch, epoch), follow_symlinks=False)
        self.root.chmod(0o755)
        os.utime(self.root, (epoch, epoch))


def stage(tree: Tree, inputs: Inputs, version: str, epoch: int) -> None:
    """Put every file of the package, and its control files, into `tree`."""
    tree.put(PACKAGED_BINARY, inputs.binary.read_bytes(), 0o755)
    tree.put("/usr/share/man/man1/hookd.1.gz", gzipped(inputs.manpage.read_bytes()))
    for unit in ("hookd.service", "hookd.socket"):
        tree.put(f"/lib/systemd/system/{unit}", unit_for_package(ROOT / "systemd" / unit))
    tree.put("/usr/lib/sysusers.d/hookd.conf", (ROOT / "systemd" / "hookd.sysusers").read_bytes())
    tree.put("/usr/lib/tmpfiles.d/hookd.conf", (HERE / "hookd.tmpfiles").read_bytes())
    tree.put(CONFFILE, (ROOT / "conf" / "hookd.toml").read_bytes())
    doc = "/usr/share/doc/hookd"
    tree.put(f"{doc}/README.md.gz", gzipped((ROOT / "README.md").read_bytes()))
    tree.put(f"{doc}/copyright", inputs.copyright.read_bytes())
    tree.put(f"{doc}/changelog.gz", gzipped(changelog(version, epoch)))
    for example in ("hookd-ip-allow.conf", "hookd-credential.conf"):
        tree.put(f"{doc}/examples/{example}", (ROOT / "systemd" / example).read_bytes())
    for script in ("postinst", "prerm", "postrm"):
        tree.put(f"/DEBIAN/{script}", (HERE / script).read_bytes(), 0o755)
    tree.put("/DEBIAN/conffiles", f"{CONFFILE}\n".encode())
    tree.put("/DEBIAN/md5sums", tree.md5sums())
    control = (
        (HERE / "control.in").read_text()
        .replace("@VERSION@", version)
        .replace("@ARCH@", debian_arch())
        .replace("@INSTALLED_SIZE@", str(tree.installed_size_kib()))
        .replace("@DEPENDS@", f"libc6 (>= {glibc_floor()}), libgcc-s1, adduser, procps")
        .replace("@MAINTAINER@", MAINTAINER)
    )
    tree.put("/DEBIAN/control", control.encode())
    tree.clamp_times(epoch)


class Inputs(NamedTuple):
    """The built files the package is made of, besides this repository's."""

    binary: Path
    copyright: Path
    manpage: Path


def build(inputs: Inputs, out_dir: Path, version: str) -> Path:
    """Stage the package and build it with dpkg-deb; returns the .deb's path."""
    epoch = source_date_epoch()
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"hookd_{version}_{debian_arch()}.deb"
    with tempfile.TemporaryDirectory(prefix="hookd-deb-") as staging:
        tree = Tree(Path(staging) / "hookd")
        tree.root.mkdir()
        stage(tree, inputs, version, epoch)
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(tree.root), str(deb)],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )
    return deb


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, required=True, help="the single-file hookd")
    parser.add_argument("--copyright", type=Path, required=True, help="DEP-5 copyright file")
    parser.add_argument("--manpage", type=Path, required=True, help="hookd(1), in roff")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory")
    parser.add_argument("--version", default=None, help="package version (default: hookd's)")
    args = parser.parse_args(argv)
    for tool in ("dpkg-deb", "dpkg-query"):
        if shutil.which(tool) is None:
            raise SystemExit(f"deb.py: {tool} not found (Debian's dpkg package)")
    inputs = Inputs(args.binary, args.copyright, args.manpage)
    deb = build(inputs, args.out, args.version or hookd_version())
    print(f"{deb} ({deb.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
