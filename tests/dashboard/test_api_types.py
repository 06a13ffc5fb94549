"""web/src/api/schema.d.ts is generated from this API's OpenAPI document and kept current."""

from __future__ import annotations

from pathlib import Path

from pytake.dashboard.api_types import fingerprint, recorded_fingerprint, typed_document

SCHEMA = Path(__file__).resolve().parents[2] / "web" / "src" / "api" / "schema.d.ts"


def test_the_consoles_api_types_match_the_api() -> None:
    recorded = recorded_fingerprint(SCHEMA)
    assert recorded is not None, f"{SCHEMA} is missing: run `python3 dev.py api-types`"
    assert recorded == fingerprint(typed_document()), (
        "The API changed since web/src/api/schema.d.ts was generated: run "
        "`python3 dev.py api-types`, then fix what the console's type check reports "
        "(`cd web && npx tsc -p .`)."
    )


def test_prose_does_not_make_the_types_stale() -> None:
    doc = typed_document()
    reworded = {**doc, "paths": {p: dict(ops) for p, ops in doc["paths"].items()}}
    assert fingerprint(reworded) == fingerprint(doc)
    assert all("description" not in op for ops in doc["paths"].values() for op in ops.values())
