"""Per-module mutation scores from mutmut's results; exits 1 when a module is under the bar.

`make mutate` runs it after `mutmut run`. It reads mutants/<module>.py.meta (mutmut 3's
record of each mutant's test exit code) and prints, per module, killed / all mutants.
Rules:
- A mutant no test runs ("no tests") counts as a survivor: no test would notice it.
- A timeout counts as killed (the tests did not pass); an unchecked mutant is an error.
- Every module is held to the bar on its own: a strong module cannot carry a weak one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BAR = 90.0
KILLED = {1, 3, 36, -24, 24, 152, 255}  # tests failed, pytest error, or timeout
SURVIVED = {0, 5, 33}  # tests passed, or no test covers the mutant


def score(meta: Path) -> tuple[int, int]:
    """(killed, total) for the mutants of one module."""
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    unknown = {name: code for name, code in exit_codes.items() if code not in KILLED | SURVIVED}
    if unknown:
        raise SystemExit(f"{meta}: mutants not checked or of unknown outcome: {unknown}")
    return sum(code in KILLED for code in exit_codes.values()), len(exit_codes)


def main(folders: list[Path]) -> int:
    """Print the table for the modules under `folders`; 1 when any module scores under
    BAR (or nothing was run)."""
    metas = sorted(meta for folder in folders for meta in folder.glob("*.meta"))
    rows = [(meta.name.removesuffix(".meta"), *score(meta)) for meta in metas]
    rows = [row for row in rows if row[2]]  # a module with nothing to mutate has no score
    if not rows:
        where = ", ".join(map(str, folders))
        print(f"no mutmut results under {where}: run `mutmut run` first", file=sys.stderr)
        return 1
    failing = []
    print(f"{'module':<16}{'killed':>8}{'total':>8}{'score':>9}")
    for module, killed, total in rows:
        percent = 100 * killed / total
        print(f"{module:<16}{killed:>8}{total:>8}{percent:>8.1f}%")
        if percent < BAR:
            failing.append(module)
    if failing:
        print(f"under {BAR:.0f}%: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main([Path(arg) for arg in sys.argv[1:]]))
