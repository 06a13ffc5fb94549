"""Contacts at scale on PostgreSQL: list, deep page, search, tag filter, get; CSV import rate.

Seeds one organisation with --contacts contacts and --others organisations with --other-contacts
each (COPY straight into the tables), serves the app with uvicorn in a subprocess, and times
--requests sequential HTTP requests per scenario (p50 / p95). Then imports an --import-rows CSV
through POST /v1/contacts/import on a fresh server process and reports rows/s and the server's
peak RSS (VmHWM).

    .venv/bin/python bench/contacts.py                       # 1,000,000 + 9 × 100,000
    .venv/bin/python bench/contacts.py --contacts 100000 --other-contacts 10000 --import-rows 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytake.contact.listing import Cursor  # noqa: E402
from pytake.contact.search import contact_search_text, fold  # noqa: E402

FIRST = ["João", "Maria", "José", "Ana", "Antônio", "Francisca", "Carlos", "Márcia", "Paulo",
         "Adriana", "Lucas", "Juliana", "Luís", "Fernanda", "Gabriel", "Patrícia", "Rafael",
         "Aline", "Marcos", "Sandra", "Pedro", "Camila", "Thiago", "Letícia", "Bruno", "Érica"]  # fmt: skip
LAST = ["Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
        "Lima", "Gomes", "Ribeiro", "Carvalho", "Conceição", "Araújo", "Melo", "Barbosa",
        "Cardoso", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira", "Nunes", "Marques",
        "Machado", "Mendes", "Freitas", "Cavalcanti", "Gonçalves", "Brandão"]  # fmt: skip
TAGS = [
    "lead",
    "customer",
    "vip",
    "churned",
    "newsletter",
    "black-friday",
    "sp",
    "rj",
    "b2b",
    "trial",
]
PASSWORD = "bench-password-123"


AREAS = [11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38, 41,
         42, 43, 44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69, 71,
         73, 74, 75, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99]  # fmt: skip


def phone(org_index: int, i: int) -> str:
    n = (i * 2_654_435_761 + org_index * 7_777_777) % 100_000_000
    area = AREAS[i % len(AREAS)]
    return f"+55{area}9{n:08d}"


async def _admin(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))


async def recreate_database(url: str) -> None:
    base, name = url.rsplit("/", 1)
    conn = await _admin(base + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()


class Server:
    def __init__(self, url: str, port: int) -> None:
        env = {**os.environ, "PYTAKE_DATABASE_URL": url, "PYTAKE_RATE_LIMIT_ENABLED": "false",
               "PYTAKE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "pytake.app:create_app", "--factory",
             "--port", str(port), "--log-level", "warning", "--no-access-log"],
            env=env, cwd=ROOT,
        )  # fmt: skip

    async def wait(self) -> None:
        async with httpx.AsyncClient() as c:
            for _ in range(300):
                try:
                    if (await c.get(self.base + "/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("server did not start")

    def memory_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def register(client: httpx.AsyncClient, name: str) -> tuple[str, str]:
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    r.raise_for_status()
    token = r.json()["token"]
    key = await client.post(
        "/v1/api-keys",
        json={"name": "bench", "scopes": ["contacts:read", "contacts:write"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    key.raise_for_status()
    return r.json()["user"]["organization_id"], key.json()["key"]


async def seed(url: str, orgs: list[tuple[uuid.UUID, int]]) -> None:
    conn = await _admin(url)
    await conn.execute("DROP INDEX ix_contacts_search_text_trgm")
    await conn.execute("DROP INDEX ix_contacts_live_org_created")
    await conn.execute("DROP INDEX ix_contact_tags_tag_created")
    await conn.execute("DROP INDEX ix_contacts_digit_grams")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    for org_index, (org_id, count) in enumerate(orgs):
        tag_ids = [uuid.uuid4() for _ in TAGS]
        await conn.copy_records_to_table(
            "tags", columns=["id", "organization_id", "name", "created_at"],
            records=[(t, org_id, n, start) for t, n in zip(tag_ids, TAGS, strict=True)],
        )  # fmt: skip
        for chunk in range(0, count, 100_000):
            contacts, links = [], []
            for i in range(chunk, min(count, chunk + 100_000)):
                cid = uuid.uuid4()
                first, last = rng.choice(FIRST), rng.choice(LAST)
                name = f"{first} {last}"
                email = f"{fold(first)}.{fold(last)}{i}@example.com"
                number = phone(org_index, i)
                created = start + timedelta(seconds=i * 17)
                contacts.append((
                    cid, org_id, number, number[1:], name, email,
                    json.dumps({"city": rng.choice(["São Paulo", "Recife", "Curitiba"])}),
                    i % 20 != 0, created, "import", False,
                    contact_search_text(name, email, number), created, created,
                ))  # fmt: skip
                for t in rng.sample(tag_ids, rng.choice([0, 1, 1, 2, 3])):
                    links.append((cid, t, created))
            await conn.copy_records_to_table(
                "contacts",
                columns=["id", "organization_id", "whatsapp_id", "match_key", "name", "email",
                         "attributes", "opt_in", "opt_in_changed_at", "opt_in_source",
                         "is_blocked", "search_text", "created_at", "updated_at"],
                records=contacts,
            )  # fmt: skip
            await conn.copy_records_to_table(
                "contact_tags",
                columns=["contact_id", "tag_id", "contact_created_at"],
                records=links,
            )
            print(f"  seeded org {org_index}: {min(count, chunk + 100_000):,}", flush=True)
    t = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '1GB'")
    await conn.execute(
        "CREATE INDEX ix_contacts_search_text_trgm ON contacts USING gin (search_text gin_trgm_ops)"
    )
    await conn.execute(
        "CREATE INDEX ix_contacts_live_org_created ON contacts (organization_id, created_at, id)"
        " WHERE deleted_at IS NULL"
    )
    await conn.execute(
        "CREATE INDEX ix_contact_tags_tag_created ON contact_tags"
        " (tag_id, contact_created_at, contact_id)"
    )
    await conn.execute(
        "CREATE INDEX ix_contacts_digit_grams ON contacts"
        " USING gin (contact_digit_grams(search_text))"
    )
    await conn.execute("VACUUM ANALYZE")
    print(f"  indexes + vacuum analyze: {time.perf_counter() - t:.0f} s", flush=True)
    await conn.close()


async def _cursor_at(
    conn: asyncpg.Connection, org_id: uuid.UUID, seen: int, tag: str | None
) -> str:
    """The cursor a client would hold after paging through `seen` contacts of the list."""
    join = (
        "JOIN contact_tags ct ON ct.contact_id = c.id JOIN tags t ON t.id = ct.tag_id"
        if tag
        else ""
    )
    where = "AND t.name = $3" if tag else ""
    row = await conn.fetchrow(
        f"SELECT c.created_at, c.id FROM contacts c {join} WHERE c.organization_id = $1"
        f" AND c.deleted_at IS NULL {where} ORDER BY c.created_at DESC, c.id DESC OFFSET $2 - 1 LIMIT 1",
        *([org_id, seen, tag] if tag else [org_id, seen]),
    )  # fmt: skip
    return Cursor(row["created_at"], row["id"], seen).encode()


async def timed(
    client: httpx.AsyncClient, requests: list[tuple[str, dict[str, Any]]]
) -> tuple[float, float]:
    samples = []
    for path, params in requests:
        t = time.perf_counter()
        r = await client.get(path, params=params)
        samples.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


async def latency(
    server: Server, key: str, url: str, org_id: uuid.UUID, n: int, count: int
) -> list[str]:
    rng = random.Random(11)
    conn = await _admin(url)
    ids = [r[0] for r in await conn.fetch(
        "SELECT id FROM contacts WHERE organization_id = $1 ORDER BY random() LIMIT $2", org_id, n)]  # fmt: skip
    deep = max(1, (count // 2) // 50)
    cursors = {
        "all": await _cursor_at(conn, org_id, (deep - 1) * 50, None),
        "tag": await _cursor_at(conn, org_id, 50_000, TAGS[0]),
    }
    await conn.close()
    fragments = [fold(x)[:5] for x in LAST]
    scenarios = {
        "list, first page (limit 50)": [("/v1/contacts", {})] * n,
        "list, page 2000 (offset 99,950)": [("/v1/contacts", {"page": min(2000, deep)})] * n,
        f"list, page {deep:,} (offset {(deep - 1) * 50:,})": [("/v1/contacts", {"page": deep})] * n,
        f"list, cursor after {(deep - 1) * 50:,} (keyset)": [
            ("/v1/contacts", {"cursor": cursors["all"]})] * n,
        "search by name fragment (3 letters)": [
            ("/v1/contacts", {"search": rng.choice(fragments)[:3]}) for _ in range(n)],
        "search by name fragment (5 letters)": [
            ("/v1/contacts", {"search": rng.choice(fragments)}) for _ in range(n)],
        "search by phone fragment (8 digits, formatted)": [
            ("/v1/contacts", {"search": f"9{rng.randrange(10**7):07d}"[:5] + "-" + f"{rng.randrange(1000):03d}"})
            for _ in range(n)],
        "search by full phone, other spelling": [
            ("/v1/contacts", {"search": phone(0, rng.randrange(count))[1:5] + phone(0, rng.randrange(count))[6:]})
            for _ in range(n)],
        "filter by tag": [("/v1/contacts", {"tags": rng.choice(TAGS)}) for _ in range(n)],
        f"filter by tag, cursor after 50,000 ('{TAGS[0]}')": [
            ("/v1/contacts", {"tags": TAGS[0], "cursor": cursors["tag"]})] * n,
        "filter by two tags": [
            ("/v1/contacts", {"tags": ",".join(rng.sample(TAGS, 2))}) for _ in range(n)],
        "GET /v1/contacts/{id}": [(f"/v1/contacts/{i}", {}) for i in ids],
    }  # fmt: skip
    lines = []
    async with httpx.AsyncClient(base_url=server.base, headers={"Authorization": f"Bearer {key}"},
                                 timeout=60) as client:  # fmt: skip
        await timed(client, [("/v1/contacts", {})] * 20)  # warm up connections and caches
        for name, reqs in scenarios.items():
            p50, p95 = await timed(client, reqs)
            lines.append(f"| {name} | {p50:.1f} | {p95:.1f} |")
            print(lines[-1], flush=True)
    return lines


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(3)
    with path.open("w") as f:
        f.write("whatsapp_id,name,email,tags,city,plan\n")
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            bad = i % 1000 == 999
            number = "not-a-number" if bad else phone(42, i)
            f.write(f'{number},{first} {last},{fold(first)}{i}@example.com,"{rng.choice(TAGS)}",'
                    f"{rng.choice(['Recife', 'Natal'])},{rng.choice(['gold', 'free'])}\n")  # fmt: skip


async def import_run(url: str, port: int, rows: int) -> list[str]:
    path = Path(tempfile.gettempdir()) / f"bench-contacts-{rows}.csv"
    write_csv(path, rows)
    server = Server(url, port)
    await server.wait()
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=600) as client:
            _, key = await register(client, "Import bench")
            headers = {"Authorization": f"Bearer {key}"}
            rss_before = server.memory_kib("VmRSS")
            t = time.perf_counter()
            with path.open("rb") as f:
                r = await client.post("/v1/contacts/import", files={"file": ("c.csv", f, "text/csv")},
                                      headers=headers)  # fmt: skip
            r.raise_for_status()
            uploaded = time.perf_counter() - t
            job = r.json()
            while job["status"] not in ("completed", "failed"):
                await asyncio.sleep(1)
                job = (await client.get(f"/v1/contacts/import/{job['id']}", headers=headers)).json()
            total = time.perf_counter() - t
    finally:
        peak = server.memory_kib("VmHWM")
        server.stop()
    size_mb = path.stat().st_size / 1e6
    path.unlink()
    return [
        f"- rows: {rows:,} ({size_mb:.0f} MB CSV, 1 in 1,000 rows invalid); status {job['status']}: "
        f"created {job['created']:,}, updated {job['updated']:,}, failed {job['failed']:,}",
        f"- upload (stream to disk, job row): {uploaded:.1f} s; whole import: {total:.1f} s "
        f"→ **{rows / total:,.0f} rows/s**",
        f"- server RSS before upload {rss_before / 1024:.0f} MiB, peak (VmHWM) {peak / 1024:.0f} MiB",
    ]


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/pytake_bench")
    p.add_argument("--contacts", type=int, default=1_000_000)
    p.add_argument("--others", type=int, default=9)
    p.add_argument("--other-contacts", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--import-rows", type=int, default=1_000_000)
    p.add_argument("--port", type=int, default=18765)
    p.add_argument("--skip-latency", action="store_true")
    args = p.parse_args()
    report: list[str] = []
    if not args.skip_latency:
        await recreate_database(args.db)
        server = Server(args.db, args.port)
        await server.wait()
        try:
            async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
                main_org, key = await register(client, "Big")
                others = [await register(client, f"Other {i}") for i in range(args.others)]
            t = time.perf_counter()
            orgs = [(uuid.UUID(main_org), args.contacts)] + [
                (uuid.UUID(o), args.other_contacts) for o, _ in others
            ]
            await seed(args.db, orgs)
            print(f"seeded in {time.perf_counter() - t:.0f} s", flush=True)
            report += ["| request | p50 ms | p95 ms |", "|---|---|---|"]
            report += await latency(
                server, key, args.db, uuid.UUID(main_org), args.requests, args.contacts
            )
        finally:
            server.stop()
    if args.import_rows:
        report += [""] + await import_run(args.db, args.port + 1, args.import_rows)
    print("\n".join(report))


if __name__ == "__main__":
    asyncio.run(main())
