"""The README's commands work as written for a newcomer (issue 14, item 10)."""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def shell_lines(text: str) -> list[str]:
    """The commands of the ```sh blocks in `text`, comments and continuations joined."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_the_install_block_installs_files_the_checkout_has_or_builds() -> None:
    built = {"dist/hookd"}  # `make dist`
    assert "dist/hookd:" in (ROOT / "Makefile").read_text()
    sources = []
    for line in shell_lines(README):
        words = shlex.split(line, comments=True)
        if words[:1] != ["install"] or "-d" in words:
            continue
        operands = iter(words[1:-1])  # the last word is where to
        for word in operands:
            if word in ("-m", "-g", "-o"):
                next(operands)  # the option's value
            elif not word.startswith("-"):
                sources.append(word)
    assert "dist/hookd" in sources
    for source in sources:
        assert source in built or (ROOT / source).is_file(), f"install {source}: no such file"


def test_the_quick_start_and_walkthrough_subscribe_each_url_once() -> None:
    newcomer = README.partition("## The hookd command")[0]
    urls = []
    for line in shell_lines(newcomer):
        urls += re.findall(r'"url":"([^"]+)"', line)  # curl .../v1/endpoints -d '{...}'
        urls += re.findall(r"hookd endpoints add (\S+)", line)
    assert urls, "the newcomer path subscribes nothing"
    twice = [url for url, count in Counter(urls).items() if count > 1]
    assert not twice, f"subscribed twice, so every event is delivered twice: {twice}"
