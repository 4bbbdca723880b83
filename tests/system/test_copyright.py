"""packaging/copyright.py writes Debian's machine-readable copyright file (DEP-5) for what
is inside the single-file binary, from installed metadata (issue 16, item 5).

The generator runs here on this environment's metadata (the runtime and build locks are
installed in it, as in the build venv) and on the entries a binary holds, as `make
copyright` lists them from dist/hookd; the output is parsed as DEP-5 paragraphs.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hookd.cli.commands.version import runtime_versions

ROOT = Path(__file__).resolve().parents[2]
PINS = dict(
    re.findall(
        r"^([A-Za-z0-9][\w.-]*)==(\S+)", (ROOT / "requirements/runtime.txt").read_text(), re.M
    )
)
LEFT_OUT = {"anyio"}  # packaging/hookd.spec excludes it: not inside the binary


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "hookd_copyright", ROOT / "packaging/copyright.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


copyright: Any = load_generator()


def binary_contents(*extra: str) -> Any:
    """Entries as a built binary has them: the locked distributions' modules (but those
    the spec leaves out), hookd's scripts, CPython, PyInstaller's parts, libraries."""
    owners = copyright.importlib.metadata.packages_distributions()
    modules = {
        top
        for top, dists in owners.items()
        if any(d.lower().replace("_", "-") in PINS for d in dists)
        and not any(d in LEFT_OUT for d in dists)
    }
    modules |= {"hookd", "json", "email", "encodings"}
    files = {
        "PYZ.pyz", "__main__", "rthook_certs", "struct", "base_library.zip",
        "pyiboot01_bootstrap", "pyimod01_archive", "pyimod02_importers", "pyi_rth_inspect",
        "libpython3.11.so.1.0", "python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
        "libssl.so.3", "libcrypto.so.3", "libz.so.1", "libffi.so.8", "liblzma.so.5",
        "apsw/__init__.cpython-311-x86_64-linux-gnu.so", "msgspec/_core.cpython-311.so",
        "certifi/cacert.pem", "attrs-26.1.0.dist-info/METADATA", *extra,
    }  # fmt: skip
    return copyright.Contents(modules, files)


def versions() -> dict[str, str]:
    return dict(runtime_versions())


def parse_dep5(text: str) -> list[dict[str, str]]:
    """DEP-5 paragraphs as {field: value}, continuation lines joined with newlines."""
    paragraphs = []
    for block in text.strip("\n").split("\n\n"):
        fields: dict[str, str] = {}
        name = ""
        for line in block.split("\n"):
            if line.startswith(" "):
                assert name, f"a continuation line before any field: {line!r}"
                fields[name] += "\n" + line[1:]
            else:
                name, colon, value = line.partition(":")
                assert colon, f"not a field: {line!r}"
                assert re.fullmatch(r"[A-Za-z-]+", name), f"not a field name: {line!r}"
                assert name not in fields, f"{name} twice in a paragraph"
                fields[name] = value.strip()
        paragraphs.append(fields)
    return paragraphs


def test_it_is_dep5_with_a_licence_text_for_every_short_name() -> None:
    paragraphs = parse_dep5(copyright.render(binary_contents(), versions()))
    header, *rest = paragraphs
    assert header["Format"] == "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    files = [p for p in rest if "Files" in p]
    standalone = {p["License"].split("\n")[0]: p["License"] for p in rest if "Files" not in p}
    assert files[0]["Files"] == "*"
    assert files[0]["License"].startswith("Expat\n")
    assert "The hookd authors" in files[0]["Copyright"]
    assert len(files) + len(standalone) == len(rest), "a paragraph neither Files nor License"
    for paragraph in files:
        assert {"Files", "Copyright", "License"} <= set(paragraph), paragraph
        assert all(paragraph[key].strip() for key in ("Files", "Copyright", "License"))
        first, _, text = paragraph["License"].partition("\n")
        if not text.strip():
            for name in copyright.short_names(first):
                assert name in standalone, f"{name} (of {paragraph['Files']}) has no text"
    for name, text in standalone.items():
        assert text.partition("\n")[2].strip(), f"the License paragraph {name} has no text"


def test_every_distribution_inside_is_named_with_its_version_and_source() -> None:
    paragraphs = parse_dep5(copyright.render(binary_contents(), versions()))
    comments = "\n".join(p.get("Comment", "") for p in paragraphs).replace("\n", " ")
    for name, version in PINS.items():
        spelled = re.escape(name).replace("\\-", "[-_]")
        named = re.search(rf"\b{spelled} {re.escape(version)};", comments, re.I)
        if name in LEFT_OUT:
            assert not named, f"{name} is not inside the binary, but the file names it"
        else:
            assert named, f"{name} {version} is inside the binary, but the file does not name it"
    by_files = {p["Files"]: p for p in paragraphs if "Files" in p}
    certifi = by_files["certifi/*"]
    assert certifi["License"].startswith("MPL-2.0\n")
    assert "https://github.com/certifi/python-certifi" in certifi["Comment"]
    assert by_files["trio/*"]["License"].startswith("Expat or Apache-2.0\n")


def test_the_parts_that_are_not_python_distributions() -> None:
    text = copyright.render(binary_contents(), versions())
    paragraphs = {p.get("Files", ""): p for p in parse_dep5(text)}
    facts = versions()
    python = next(p for files, p in paragraphs.items() if "libpython3.11.so.1.0" in files)
    assert python["License"].startswith("PSF-2.0\n")
    assert f"{facts['python']}:" in python["Comment"]
    openssl = paragraphs["libcrypto.so.3 libssl.so.3"]
    assert openssl["License"] == "Apache-2.0"
    assert facts["openssl"] in openssl["Comment"]
    sqlite = paragraphs["apsw/__init__.cpython-311-x86_64-linux-gnu.so"]
    assert sqlite["License"] == "public-domain"
    assert f"SQLite {facts['sqlite']}" in sqlite["Comment"].replace("\n", " ")
    bootloader = next(p for files, p in paragraphs.items() if files.startswith("bootloader"))
    assert bootloader["License"].startswith("GPL-2+ with Bootloader exception\n")
    assert "unlimited permission to link or embed compiled bootloader" in bootloader["License"]
    assert paragraphs["libz.so.1"]["License"] == "Zlib"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("libmystery.so.2", "libmystery.so.2"),  # a library no rule knows
        ("mystery_module", "mystery_module"),  # a module of no installed distribution
    ],
)
def test_anything_unaccounted_for_fails_naming_it(extra: str, named: str) -> None:
    contents = binary_contents()
    contents.files.add(extra)
    with pytest.raises(copyright.Unaccounted, match=re.escape(named)):
        copyright.render(contents, versions())


def test_openssl_before_3_is_refused() -> None:
    facts = versions() | {"openssl": "OpenSSL 1.1.1w  11 Sep 2023"}
    with pytest.raises(copyright.Unaccounted, match=r"not under Apache-2\.0"):
        copyright.render(binary_contents(), facts)


def test_full_texts_debian_ships_are_pointed_to_not_copied() -> None:
    # lintian: copyright-file-contains-full-apache-2-license (trio's LICENSE.APACHE2)
    text = copyright.render(binary_contents(), versions())
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" not in text
    assert "LICENSE.APACHE2 holds the complete text of this licence" in text
    assert "/usr/share/common-licenses/Apache-2.0" in text
