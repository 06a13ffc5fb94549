#!/usr/bin/env python3
"""Bootstrap and run PyTake with nothing but Python 3.11+.

    python3 dev.py serve [pytake serve options]   # install if needed, then start on SQLite
    python3 dev.py test  [pytest options]         # install if needed, then run the whole suite
                                                  # (on every core; PYTAKE_TEST_WORKERS=N)
    python3 dev.py api-types                      # regenerate web/src/api/schema.d.ts
    python3 dev.py console                        # build the web console (web/) now

The first run creates `.venv/` and installs PyTake into it; later runs reinstall only when
pyproject.toml changes. `serve` and `test` also build the web console into
src/pytake/dashboard/static/ when its sources changed and Node.js 20+ is present.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".pytake-installed"
WEB = ROOT / "web"
CONSOLE_OUT = ROOT / "src" / "pytake" / "dashboard" / "static"
CONSOLE_STAMP = CONSOLE_OUT / ".pytake-built"
MODULES_STAMP = WEB / "node_modules" / ".pytake-installed"
NODE_MAJOR = 20


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


def _node_version() -> tuple[int, ...] | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return tuple(int(p) for p in out.stdout.strip().lstrip("v").split(".") if p.isdigit())


def _console_sources_digest() -> str:
    """Everything the console's build reads (not node_modules, not the build itself)."""
    digest = hashlib.sha256()
    names = ["package.json", "package-lock.json", "index.html", "vite.config.ts", "tsconfig.json"]
    files = [WEB / n for n in names] + sorted(p for p in (WEB / "src").rglob("*") if p.is_file())
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(WEB)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _npm_install() -> None:
    wanted = hashlib.sha256((WEB / "package-lock.json").read_bytes()).hexdigest()
    if MODULES_STAMP.exists() and MODULES_STAMP.read_text() == wanted:
        return
    print("Installing the console's packages (npm ci) …", flush=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
    MODULES_STAMP.write_text(wanted)


def ensure_console_built(force: bool = False) -> bool:
    """Build the console when its sources changed; False (with a hint) when Node is missing."""
    if not (WEB / "package.json").exists():
        return False
    wanted = _console_sources_digest()
    built = (CONSOLE_OUT / "index.html").exists()
    if not force and built and CONSOLE_STAMP.exists() and CONSOLE_STAMP.read_text() == wanted:
        return True
    version = _node_version()
    if version is None or version[:1] < (NODE_MAJOR,) or shutil.which("npm") is None:
        state = "is out of date" if built else "is not built"
        print(
            f"The web console {state}: building it needs Node.js {NODE_MAJOR}+ and npm "
            "(https://nodejs.org). PyTake runs without it; /app explains how to build.",
            flush=True,
        )
        return built
    _npm_install()
    print("Building the web console (web/ -> src/pytake/dashboard/static/) …", flush=True)
    subprocess.run(["npm", "run", "build", "--silent"], cwd=WEB, check=True)
    CONSOLE_STAMP.write_text(wanted)
    return True


def api_types() -> int:
    """Regenerate web/src/api/schema.d.ts from the app's OpenAPI document."""
    if _node_version() is None:
        print(f"api-types needs Node.js {NODE_MAJOR}+ and npm.", flush=True)
        return 1
    _npm_install()
    return subprocess.call([_python(), "-m", "pytake.dashboard.api_types", str(WEB)])


def _parallel(args: list[str]) -> list[str]:
    """pytest-xdist options for the suite: one worker per core, at most 4 (PYTAKE_TEST_WORKERS
    overrides; 0 runs the tests in one process). `worksteal`: an idle worker takes tests queued
    on a busy one. Not `loadfile`/`loadscope`: they ran one of the fuzz test's 124 schemathesis
    items (tests/completeness.py now fails such a run). Nothing is added when the caller chose
    (-n, --dist, no:xdist, --pdb)."""
    if any(
        a.startswith(("-n", "--numprocesses", "--dist", "--pdb")) or a == "no:xdist" for a in args
    ):
        return []
    workers = os.environ.get("PYTAKE_TEST_WORKERS") or str(min(os.cpu_count() or 1, 4))
    return [] if workers == "0" else ["-n", workers, "--dist", "worksteal"]


def main() -> int:
    commands = {"serve", "test", "pytake", "api-types", "console"}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    ensure_installed()
    command, rest = sys.argv[1], sys.argv[2:]
    os.chdir(ROOT)
    if command == "api-types":
        return api_types()
    if command == "console":
        return 0 if ensure_console_built(force=True) else 1
    if command == "test":
        ensure_console_built()  # a failed build fails the tests: they would test a stale console
    elif command == "serve":
        try:
            ensure_console_built()
        except subprocess.CalledProcessError as exc:
            print(f"The web console failed to build ({exc}); serving the API anyway.", flush=True)
    if command == "test":
        return subprocess.call([_python(), "-m", "pytest", *_parallel(rest), *rest])
    if command == "serve":
        return subprocess.call([str(BIN / "pytake"), "serve", *rest])
    return subprocess.call([str(BIN / "pytake"), *rest])


if __name__ == "__main__":
    sys.exit(main())
