"""A plain clone is the whole project: nothing reads or links outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|/work/shared")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CHECKED = ("src", "tests", "docs", "bench", "web/src", ".ci")


def _files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "dev.py", ROOT / "pyproject.toml"]
    for folder in CHECKED:
        base = ROOT / folder
        if base.is_dir():
            files += [
                p
                for p in base.rglob("*")
                if p.is_file()
                and p.suffix in {".py", ".md", ".toml", ".ts", ".tsx", ".json", ""}
                and "node_modules" not in p.parts
                and "__pycache__" not in p.parts
                and not any(part.endswith(".egg-info") for part in p.parts)
            ]
    return [p for p in files if p != Path(__file__).resolve()]


def test_nothing_refers_outside_the_repository() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in _files() if OUTSIDE.search(p.read_text(errors="ignore"))
    ]
    assert offenders == []


def test_every_relative_link_in_the_docs_exists() -> None:
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []
