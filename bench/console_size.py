"""The web console's built size: what the first page load fetches, and the code-split chunks.

    python3 dev.py console && .venv/bin/python bench/console_size.py

Reads src/pytake/dashboard/static/ (the build); "initial" is what index.html loads (its entry
script, the modules it preloads, its style sheets). Sizes are gzip -9, as a server would send them.
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "src" / "pytake" / "dashboard" / "static"
BUDGET_KB = 250


def _gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def main() -> int:
    index = STATIC / "index.html"
    if not index.is_file():
        print("no build: run `python3 dev.py console` first")
        return 1
    html = index.read_text()
    initial = {Path(m).name for m in re.findall(r'(?:src|href)="/app/(assets/[^"]+)"', html)}
    rows = []
    for path in sorted((STATIC / "assets").iterdir()):
        rows.append((path.name in initial, path.suffix, path.name, path.stat().st_size, _gz(path)))
    print(f"{'file':<44} {'kind':<8} {'raw KB':>8} {'gzip KB':>8}")
    for is_initial, suffix, name, raw, gz in sorted(rows, key=lambda r: (not r[0], r[1], -r[4])):
        kind = ("initial " if is_initial else "lazy ") + suffix.lstrip(".")
        print(f"{name:<44} {kind:<8} {raw / 1024:8.1f} {gz / 1024:8.1f}")
    js = sum(r[4] for r in rows if r[0] and r[1] == ".js") / 1024
    css = sum(r[4] for r in rows if r[0] and r[1] == ".css") / 1024
    lazy = sum(r[4] for r in rows if not r[0] and r[1] == ".js") / 1024
    print(
        f"\ninitial JS {js:.1f} KB gzip (budget {BUDGET_KB}), initial CSS {css:.1f} KB, "
        f"lazy JS {lazy:.1f} KB in {sum(1 for r in rows if not r[0] and r[1] == '.js')} chunks"
    )
    return 0 if js <= BUDGET_KB else 2


if __name__ == "__main__":
    sys.exit(main())
