#!/usr/bin/env python3
"""Bootstrap and run PyTake with nothing but Python 3.11+.

    python3 dev.py serve [pytake serve options]   # install if needed, then start on SQLite
    python3 dev.py test  [pytest options]         # install if needed, then run the whole suite

The first run creates `.venv/` and installs PyTake into it; later runs reinstall only when
pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".pytake-installed"


def _python() -> str:
    return str(BIN / ("python.exe" if os.name == "nt" else "python"))


def ensure_installed() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"PyTake needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        print("Creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing PyTake and its dependencies into .venv (first run only) …", flush=True)
    pip = [_python(), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"serve", "test", "pytake"}:
        print(__doc__)
        return 2
    ensure_installed()
    command, rest = sys.argv[1], sys.argv[2:]
    os.chdir(ROOT)
    if command == "test":
        return subprocess.call([_python(), "-m", "pytest", *rest])
    if command == "serve":
        return subprocess.call([str(BIN / "pytake"), "serve", *rest])
    return subprocess.call([str(BIN / "pytake"), *rest])


if __name__ == "__main__":
    sys.exit(main())
