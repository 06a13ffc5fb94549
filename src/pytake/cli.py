"""The `pytake` command: serve, migrate, create-admin (and more as the system grows)."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from pytake.config import Settings, get_settings

app = typer.Typer(help="PyTake: self-hostable WhatsApp Business automation.", no_args_is_help=True)


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default 0.0.0.0, PYTAKE_HOST)."),
    port: int = typer.Option(None, help="Port (default 8080, PYTAKE_PORT)."),
    workers: int = typer.Option(1, help="Server processes (needs PostgreSQL and Redis for >1)."),
    demo_mode: bool = typer.Option(
        False, "--demo", help="Also run the simulator with a demo organisation (see `demo`)."
    ),
) -> None:
    """Run the API, WebSocket and dashboard (and, on the embedded default, the background loops)."""
    import uvicorn

    from pytake.observability import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    if demo_mode:
        from pytake.demo import main as run_demo

        run_demo(settings, host or "127.0.0.1", port or settings.port, 9090)
        return
    uvicorn.run("pytake.app:create_app", **server_options(settings, host, port, workers))


def server_options(
    settings: Settings, host: str | None, port: int | None, workers: int
) -> dict[str, Any]:
    """uvicorn's options for `pytake serve`."""
    return {
        "factory": True,
        "host": host or settings.host,
        "port": port or settings.port,
        "workers": workers,
        "access_log": False,
        "log_config": None,
        "proxy_headers": True,
        # /ws frames are JSON of a few hundred bytes: permessage-deflate halved nothing worth
        # having, while its state was half of each connection's memory (80 vs 43 KiB) and a
        # third of the fan-out's CPU (bench/realtime.py). PYTAKE_WS_COMPRESSION=true restores it.
        "ws_per_message_deflate": settings.ws_compression,
    }


@app.command()
def simulator(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(9090, help="Port."),
) -> None:
    """Run the WhatsApp simulator: a fake Graph API and Evolution API, and the customer's phone."""
    from pytake.whatsapp.simulator import run

    run(host, port)


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8080, help="PyTake's port."),
    simulator_port: int = typer.Option(9090, help="The simulator's port."),
) -> None:
    """PyTake and the simulator in one process, with a demo organisation and number."""
    from pytake.demo import main as run_demo
    from pytake.observability import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    run_demo(settings, host, port, simulator_port)


@app.command()
def migrate() -> None:
    """Apply database migrations up to the newest revision."""
    from pytake.db import create_engine
    from pytake.migrate import upgrade_to_head

    async def run() -> None:
        engine = create_engine(get_settings().database_url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo("Database is at the newest revision.")


@app.command()
def worker() -> None:
    """Run the background loops only (outgoing webhooks, events relay); any number of them."""
    from pytake.observability import configure_logging
    from pytake.worker.runtime import run_worker_process

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    run_worker_process(settings)


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., prompt=True),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
    name: str = typer.Option("Administrator", help="Full name."),
    organization: str = typer.Option("PyTake", help="Organisation to create for the admin."),
    super_admin: bool = typer.Option(True, help="Grant super_admin (all organisations)."),
) -> None:
    """Create an organisation and its first administrator."""
    from pytake.admin import create_admin as create

    settings = get_settings()
    if len(password) < settings.password_min_length:
        raise typer.BadParameter(
            f"must be at least {settings.password_min_length} characters", param_hint="password"
        )
    user_id = asyncio.run(create(settings, email, password, name, organization, super_admin))
    typer.echo(f"Created {'super_admin' if super_admin else 'org_admin'} {email} (id {user_id}).")


if __name__ == "__main__":
    app()
