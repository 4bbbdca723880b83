"""Debian's machine-readable copyright file for the single-file binary:
`.venv-dist/bin/python packaging/copyright.py dist/hookd > dist/copyright` (`make copyright`).

DEP-5 (copyright-format 1.0) covering everything inside the binary, found by listing it:
- every Python distribution whose modules or files are inside, from the build venv's
  installed metadata (importlib.metadata): name, version, where its source is, its
  License-Expression (else License, else the License classifiers) and the full text of
  its licence files; hookd itself is `Files: *`;
- the parts that are not Python distributions: CPython (PSF-2.0, its LICENSE text from
  the interpreter that built the binary), OpenSSL (Apache-2.0 for 3.x), SQLite (public
  domain, compiled into apsw's extension module), PyInstaller's bootloader and loader
  (GPL-2+ with the bootloader exception, quoted from PyInstaller's COPYING.txt, which is
  what lets the binary be distributed under hookd's licence) and its runtime hooks
  (Apache-2.0), and the system libraries the interpreter loads (SYSTEM_LIBRARIES).
The versions of CPython, OpenSSL and SQLite are those `hookd version --verbose` prints.

Rules:
- Anything inside the binary that no rule here accounts for (a module of no installed
  distribution, a library not in SYSTEM_LIBRARIES, a distribution without licence files)
  fails the run naming it: the file never silently leaves something out.
- Every licence short name used either has its text in its stanza or a stand-alone
  License paragraph (pointing to /usr/share/common-licenses where Debian has the text).
- Needs PyInstaller (to list the binary) only in `main`; the rest is plain Python, so
  tests can run it on any environment's metadata.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import re
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

FORMAT = "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"

# SPDX identifiers -> Debian's short names where they differ (copyright-format 1.0, "License
# specification"); any other identifier is used as it is, its text in the stanza.
DEBIAN_NAMES = {
    "MIT": "Expat",
    "BSD-2-Clause": "BSD-2-clause",
    "BSD-3-Clause": "BSD-3-clause",
    "Apache 2.0": "Apache-2.0",
    "Apache Software License": "Apache-2.0",
    "GPL-2.0-or-later": "GPL-2+",
}
CLASSIFIER_NAMES = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: BSD License": "BSD-3-Clause",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
}
# Licences whose text Debian ships: a stand-alone paragraph points there.
COMMON_LICENSES = {"Apache-2.0": "Apache-2.0", "MPL-2.0": "MPL-2.0", "GPL-2+": "GPL-2"}

SQLITE_BLESSING = """\
The author disclaims copyright to this source code. In place of a legal notice, here is
a blessing:

   May you do good and not evil.
   May you find forgiveness for yourself and forgive others.
   May you share freely, never taking more than you give."""


@dataclass(frozen=True)
class Library:
    """A shared library the interpreter loads, not a Python distribution."""

    project: str
    copyright: str
    license: str  # a Debian short name with a stand-alone paragraph (LICENSE_TEXTS)


# The system libraries PyInstaller bundles with this interpreter (by soname prefix).
SYSTEM_LIBRARIES = {
    "libz.so": Library("zlib", "1995-2024 Jean-loup Gailly and Mark Adler", "Zlib"),
    "libbz2.so": Library("bzip2", "1996-2019 Julian R Seward", "bzip2-1.0.6"),
    "liblzma.so": Library(
        "XZ Utils (liblzma)", "none: the authors put it in the public domain", "public-domain"
    ),
    "libffi.so": Library("libffi", "1996-2024 Anthony Green, Red Hat, Inc and others", "Expat"),
    "libuuid.so": Library(
        "util-linux (libuuid)", "1996, 1997, 1998, 1999 Theodore Ts'o", "BSD-3-clause"
    ),
}

LICENSE_TEXTS = {
    "public-domain": "SQLite and XZ Utils' liblzma have no copyright holder: their\n"
    "authors put them in the public domain. SQLite's source carries this notice instead:\n\n"
    + SQLITE_BLESSING,
    "Zlib": """\
This software is provided 'as-is', without any express or implied warranty. In no event
will the authors be held liable for any damages arising from the use of this software.

Permission is granted to anyone to use this software for any purpose, including
commercial applications, and to alter it and redistribute it freely, subject to the
following restrictions:

1. The origin of this software must not be misrepresented; you must not claim that you
   wrote the original software. If you use this software in a product, an
   acknowledgment in the product documentation would be appreciated but is not required.
2. Altered source versions must be plainly marked as such, and must not be
   misrepresented as being the original software.
3. This notice may not be removed or altered from any source distribution.""",
    "bzip2-1.0.6": """\
Redistribution and use in source and binary forms, with or without modification, are
permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.
2. The origin of this software must not be misrepresented; you must not claim that you
   wrote the original software. If you use this software in a product, an
   acknowledgment in the product documentation would be appreciated but is not required.
3. Altered source versions must be plainly marked as such, and must not be
   misrepresented as being the original software.
4. The name of the author may not be used to endorse or promote products derived from
   this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE AUTHOR ``AS IS'' AND ANY EXPRESS OR IMPLIED WARRANTIES,
INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY DIRECT,
INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR
BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT,
STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE
USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.""",
    "Expat": """\
Permission is hereby granted, free of charge, to any person obtaining a copy of this
software and associated documentation files (the "Software"), to deal in the Software
without restriction, including without limitation the rights to use, copy, modify, merge,
publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
DEALINGS IN THE SOFTWARE.""",
    "BSD-3-clause": """\
Redistribution and use in source and binary forms, with or without modification, are
permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of
   conditions and the following disclaimer.
2. Redistributions in binary form must reproduce the above copyright notice, this list
   of conditions and the following disclaimer in the documentation and/or other
   materials provided with the distribution.
3. Neither the name of the copyright holder nor the names of its contributors may be
   used to endorse or promote products derived from this software without specific
   prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY
EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF
MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE
COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF
SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION)
HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR
TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS
SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.""",
}

# What PyInstaller itself puts inside: the bootloader (the executable's start), its loader
# modules, and its runtime hooks (pyi_rth_*, under Apache-2.0).
PYINSTALLER_LOADER = re.compile(r"(pyiboot\d+_\w+|pyimod\d+_\w+)$")
PYINSTALLER_RTHOOK = re.compile(r"pyi_rth_\w+$")
# CPython's own parts of the archive.
CPYTHON_FILES = re.compile(r"(base_library\.zip|libpython3[\d.]*\.so[\d.]*|python3\.\d+/.*)$")
OPENSSL_FILES = re.compile(r"lib(ssl|crypto)\.so[\d.]*$")


class Unaccounted(Exception):
    """Something inside the binary that no rule of this script accounts for."""


class Stanzas:
    """The paragraphs of the file, in order, and the short names they use."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.needs_paragraph: set[str] = set()

    def files(
        self,
        files: Iterable[str],
        copyright: str,
        license: str,
        text: str = "",
        comment: str = "",
    ) -> None:
        """A Files paragraph; without `text`, `license`'s names need stand-alone ones."""
        fields = [("Files", " ".join(files)), ("Copyright", copyright)]
        fields.append(("License", license + ("\n" + text if text else "")))
        if not text:
            self.needs_paragraph.update(short_names(license))
        if comment:
            fields.append(("Comment", comment))
        self.paragraphs.append(paragraph(fields))

    def render(self, header: list[tuple[str, str]]) -> str:
        """The whole file: the header, the Files paragraphs, then the License ones."""
        licenses = []
        for name in sorted(self.needs_paragraph):
            if name in COMMON_LICENSES:
                text = (
                    f"On Debian systems, the complete text of this licence is in\n"
                    f"/usr/share/common-licenses/{COMMON_LICENSES[name]}."
                )
            elif name in LICENSE_TEXTS:
                text = LICENSE_TEXTS[name]
            else:
                raise Unaccounted(f"no text known for the licence {name!r}")
            licenses.append(paragraph([("License", f"{name}\n{text}")]))
        return "\n".join([paragraph(header), *self.paragraphs, *licenses])


def paragraph(fields: list[tuple[str, str]]) -> str:
    """One DEP-5 paragraph: `Field: first line`, then continuation lines (' .' if empty)."""
    lines = []
    for name, value in fields:
        if name == "Comment":
            value = textwrap.fill(value, width=88, subsequent_indent="", break_on_hyphens=False)
        first, *rest = value.strip("\n").split("\n")
        lines.append(f"{name}: {first.strip()}".rstrip())
        lines += [f" {line.rstrip()}" if line.strip() else " ." for line in rest]
    return "\n".join(lines) + "\n"


def short_names(license: str) -> set[str]:
    """The licence names in a License field's first line ('Expat or Apache-2.0')."""
    words = re.split(r"\s+(?:or|and)\s+|,\s*", license.replace("(", "").replace(")", ""))
    return {word.split(" with ")[0].strip() for word in words if word.strip()}


def debian_license(spdx: str) -> str:
    """An SPDX-style expression in Debian's spelling ('MIT OR Apache-2.0')."""
    tokens = re.split(r"(\s+OR\s+|\s+AND\s+)", spdx.strip())
    spelled = []
    for token in tokens:
        if token.strip() in ("OR", "AND"):
            spelled.append(f" {token.strip().lower()} ")
        else:
            spelled.append(DEBIAN_NAMES.get(token.strip(), token.strip()))
    return "".join(spelled)


def field(meta: importlib.metadata.PackageMetadata, name: str) -> str:
    """A metadata field's (first) value, "" when absent."""
    values = meta.get_all(name) or []
    return str(values[0]) if values else ""


def license_of(dist: importlib.metadata.Distribution) -> str:
    """A distribution's licence: License-Expression, else a short License, else classifiers."""
    meta = dist.metadata
    expression = field(meta, "License-Expression")
    if not expression:
        declared = field(meta, "License").strip()
        if declared and "\n" not in declared and len(declared) <= 40:
            expression = declared
    if not expression:
        names = [
            CLASSIFIER_NAMES[c] for c in meta.get_all("Classifier") or [] if c in CLASSIFIER_NAMES
        ]
        expression = " OR ".join(names)
    if not expression:
        raise Unaccounted(f"{meta['Name']} {dist.version} declares no licence")
    return debian_license(expression)


def license_files(dist: importlib.metadata.Distribution) -> list[Path]:
    """The licence files a distribution installed (LICENSE, COPYING, NOTICE...)."""
    found = []
    for file in dist.files or []:
        # In a wheel's .dist-info; at the top of the project for an egg-info (editable).
        beside_metadata = len(file.parts) == 1 or file.parts[-2].endswith(
            (".dist-info", ".egg-info", "licenses")
        )
        if beside_metadata and file.name.upper().startswith(("LICEN", "COPYING", "NOTICE")):
            found.append(Path(str(dist.locate_file(file))))
    if not found:
        raise Unaccounted(f"{dist.metadata['Name']} {dist.version} installed no licence file")
    return sorted(found)


# Full licence texts Debian ships in /usr/share/common-licenses (lintian refuses them in
# a copyright file): a marker of the full text -> the file there.
FULL_TEXTS = {
    r"Apache License\s+Version 2\.0, January 2004": "Apache-2.0",
    r"Mozilla Public License Version 2\.0\s+=+": "MPL-2.0",
    r"GNU GENERAL PUBLIC LICENSE\s+Version 2, June 1991": "GPL-2",
    r"GNU GENERAL PUBLIC LICENSE\s+Version 3, 29 June 2007": "GPL-3",
}


def shortened(name: str, text: str) -> str:
    """`text`, or where it is a full licence Debian ships, a pointer to Debian's copy."""
    for marker, common in FULL_TEXTS.items():
        if re.search(marker, text):
            return (
                f"{name} holds the complete text of this licence; on Debian systems it is\n"
                f"in /usr/share/common-licenses/{common}."
            )
    return text.strip()


def copyright_lines(texts: Iterable[str]) -> list[str]:
    """The 'Copyright ...' lines of licence texts, without the word itself, once each."""
    found: list[str] = []
    for text in texts:
        for line in text.splitlines():
            match = re.match(r"\s*(?:Copyright\s*)?(?:\(c\)|©)?\s*(.*\d{4}.*)", line, re.I)
            if match and re.match(r"\s*(Copyright|\(c\)|©)", line, re.I):
                holder = re.sub(r"^(?:\(c\)|©)\s*", "", match.group(1), flags=re.I).strip()
                if holder and holder not in found:
                    found.append(holder)
    return found


def source_of(dist: importlib.metadata.Distribution) -> str:
    """Where a distribution's source is: its Source or Homepage URL, else its home page."""
    entries = dist.metadata.get_all("Project-URL") or []
    urls = {
        label.strip().lower(): url.strip()
        for label, _, url in (str(entry).partition(",") for entry in entries)
    }
    for label in ("source", "source code", "repository", "homepage"):
        if label in urls:
            return urls[label]
    return field(dist.metadata, "Home-page") or f"the {dist.metadata['Name']} project"


def distribution_stanza(
    stanzas: Stanzas,
    dist: importlib.metadata.Distribution,
    top_levels: Iterable[str],
    everything: bool = False,
) -> None:
    """A Files paragraph for one Python distribution, its licence files' text inline."""
    files = license_files(dist)
    texts = [file.read_text(encoding="utf-8", errors="replace") for file in files]
    holders = copyright_lines(texts)
    author = field(dist.metadata, "Author") or field(dist.metadata, "Author-email")
    copyright = "\n".join(holders) or f"{author or dist.metadata['Name']} (no year stated)"
    body = "\n\n".join(
        f"--- {file.name} ---\n{shortened(file.name, text)}"
        for file, text in zip(files, texts, strict=True)
    )
    stanzas.files(
        ["*"] if everything else [f"{name}/*" for name in sorted(top_levels)],
        copyright,
        license_of(dist),
        body,
        f"{dist.metadata['Name']} {dist.version}; source: {source_of(dist)}",
    )


@dataclass
class Contents:
    """What the binary holds, as the archive names it."""

    modules: set[str]  # the top-level names of the Python modules inside (PYZ and scripts)
    files: set[str]  # every other entry: libraries, extension modules, data files


def sort_out(
    contents: Contents,
    owners: Mapping[str, list[str]],
    stdlib: Iterable[str],
    own: str = "hookd",
) -> tuple[dict[str, set[str]], set[str], set[str], set[str]]:
    """(distribution -> its top-level names inside, CPython's entries, PyInstaller's,
    the system libraries), raising Unaccounted for anything none of them holds."""
    stdlib = set(stdlib)
    dists: dict[str, set[str]] = {}
    cpython, pyinstaller, libraries = set(), set(), set()
    for name in sorted(contents.modules | contents.files):
        top = re.split(r"[/.]", name, maxsplit=1)[0]
        if PYINSTALLER_LOADER.match(name) or PYINSTALLER_RTHOOK.match(name):
            pyinstaller.add(name)
        elif name in ("PYZ.pyz", "__main__", "rthook_certs"):  # the archive, hookd's scripts
            dists.setdefault(own, set())
        elif CPYTHON_FILES.match(name) or top in stdlib:
            cpython.add(name)
        elif OPENSSL_FILES.match(name) or any(name.startswith(lib) for lib in SYSTEM_LIBRARIES):
            libraries.add(name)
        elif name.split("/")[0].endswith(".dist-info"):
            continue  # metadata copied beside its package, which is accounted for
        elif top in owners:
            dists.setdefault(owners[top][0], set()).add(top)
        else:
            raise Unaccounted(
                f"{name!r} is inside the binary, but is of no installed "
                f"distribution, CPython, PyInstaller or a known system library"
            )
    return dists, cpython, pyinstaller, libraries


def render(contents: Contents, versions: Mapping[str, str], own: str = "hookd") -> str:
    """The copyright file for `contents`, with `versions` as `hookd version --verbose` says."""
    owners = importlib.metadata.packages_distributions()
    dists, cpython, pyinstaller, libraries = sort_out(
        contents, owners, sys.stdlib_module_names, own
    )
    stanzas = Stanzas()
    distribution_stanza(stanzas, importlib.metadata.distribution(own), [], everything=True)
    for name in sorted(dists, key=str.lower):
        if name != own:
            distribution_stanza(stanzas, importlib.metadata.distribution(name), dists[name])
    cpython_stanza(stanzas, cpython, versions["python"])
    library_stanzas(stanzas, libraries, versions["openssl"])
    if "apsw" in dists:
        stanzas.files(
            sorted(f for f in contents.files if f.startswith("apsw/") and ".so" in f),
            "none: SQLite is in the public domain",
            "public-domain",
            comment=f"SQLite {versions['sqlite']}, compiled into apsw's extension module "
            "with apsw's own code (under apsw's licence, above).",
        )
    pyinstaller_stanzas(stanzas, pyinstaller)
    header = [
        ("Format", FORMAT),
        ("Upstream-Name", own),
        (
            "Comment",
            "Everything inside the single-file binary /usr/bin/hookd, built with "
            "PyInstaller: hookd, the CPython interpreter and standard library, the Python "
            "distributions below, the shared libraries the interpreter loads and PyInstaller's "
            "bootloader. Files names the entries as the binary's archive lists them "
            "(pyi-archive_viewer); a package's modules are named as its directory.",
        ),
    ]
    return stanzas.render(header)


def cpython_stanza(stanzas: Stanzas, entries: set[str], python: str) -> None:
    """CPython, under the PSF licence whose text the interpreter that built the binary has."""
    if python != f"CPython {platform.python_version()}":
        raise Unaccounted(f"the binary runs {python}, not this CPython {platform.python_version()}")
    version = platform.python_version()
    license_file = Path(sysconfig.get_path("stdlib")) / "LICENSE.txt"
    text = license_file.read_text(encoding="utf-8")
    files = sorted(e for e in entries if "/" in e or e.endswith((".zip", ".so.1.0")))
    stanzas.files(
        [*files, "python3-stdlib/*"],
        "\n".join(copyright_lines([text])) or "Python Software Foundation",
        "PSF-2.0",
        text,
        f"CPython {version}: the interpreter and the standard library (its modules inside "
        "the PYZ archive, named python3-stdlib/* here). Source: "
        f"https://www.python.org/downloads/release/python-{version.replace('.', '')}/",
    )


def library_stanzas(stanzas: Stanzas, libraries: set[str], openssl: str) -> None:
    """OpenSSL (Apache-2.0 from 3.0 on) and the other system libraries, one paragraph each."""
    ssl_files = sorted(name for name in libraries if OPENSSL_FILES.match(name))
    if ssl_files:
        if not openssl.startswith("OpenSSL 3."):
            raise Unaccounted(f"{openssl} is not under Apache-2.0 (only OpenSSL 3 and later)")
        stanzas.files(
            ssl_files,
            "1998-2025 The OpenSSL Project Authors",
            "Apache-2.0",
            comment=f"{openssl}; source: https://github.com/openssl/openssl",
        )
    for prefix, library in SYSTEM_LIBRARIES.items():
        files = sorted(name for name in libraries if name.startswith(prefix))
        if files:
            stanzas.files(
                files,
                library.copyright,
                library.license,
                comment=f"{library.project}, as the build machine's system has it.",
            )


def pyinstaller_stanzas(stanzas: Stanzas, entries: set[str]) -> None:
    """PyInstaller's bootloader and loader (GPL-2+ with the bootloader exception, quoted
    from its COPYING.txt) and its runtime hooks (Apache-2.0)."""
    dist = importlib.metadata.distribution("pyinstaller")
    copying = next(f for f in license_files(dist) if f.name.upper().startswith("COPYING"))
    text = copying.read_text(encoding="utf-8")
    exception = re.search(r"Bootloader Exception\n-+\n(.*?)\n\s*\n", text, re.S)
    if exception is None:
        raise Unaccounted(f"no 'Bootloader Exception' section in {copying}")
    holders = copyright_lines([text.partition("Bootloader Exception")[0]])
    loader = sorted(e for e in entries if PYINSTALLER_LOADER.match(e))
    stanzas.files(
        ["bootloader", *loader],
        "\n".join(holders),
        "GPL-2+ with Bootloader exception",
        "\n".join(line.strip() for line in exception.group(1).strip().splitlines())
        + "\n\nThe GPL itself: on Debian systems, /usr/share/common-licenses/GPL-2.",
        f"PyInstaller {dist.version}: the bootloader (the start of the executable, which "
        "unpacks and runs the rest) and its loader modules. The exception above lets the "
        "binary be distributed under hookd's licence. Source: "
        f"{source_of(dist)}",
    )
    stanzas.needs_paragraph.add("GPL-2+")
    hooks = sorted(e for e in entries if PYINSTALLER_RTHOOK.match(e))
    if hooks:
        stanzas.files(
            hooks,
            "\n".join(holders),
            "Apache-2.0",
            comment=f"PyInstaller {dist.version}'s run-time hooks.",
        )


def read_binary(binary: Path) -> Contents:
    """The entries of a PyInstaller single-file binary (needs PyInstaller installed)."""
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(binary))
    modules = set(archive.open_embedded_archive("PYZ.pyz").toc)
    files = set(archive.toc)
    return Contents({m.split(".")[0] for m in modules}, files)


def verbose_versions(binary: Path) -> dict[str, str]:
    """What `BINARY version --verbose` says, as {name: value}."""
    out = subprocess.run(
        [str(binary), "version", "--verbose"], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(": ", 1) for line in out.splitlines()[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", type=Path, help="the single-file binary, e.g. dist/hookd")
    binary = parser.parse_args().binary
    try:
        sys.stdout.write(render(read_binary(binary), verbose_versions(binary)))
    except Unaccounted as exc:
        print(f"copyright: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
