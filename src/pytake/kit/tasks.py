"""Ending background tasks without trusting them to end."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]],
    deadline_seconds: float,
    log: logging.Logger,
) -> None:
    """Cancel the tasks and wait for them, for at most `deadline_seconds`.

    A task still running then (it swallowed the cancel, or its clean-up awaits something that
    never comes) is logged with its stack and left behind: a shutdown that waits for ever is a
    hang, and what such a task had claimed is recovered by its lease. Exceptions of tasks that
    ended are logged, not raised: one loop's failure must not stop the others' clean-up.
    """
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=deadline_seconds)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed while stopping", task.get_name(), exc_info=task.exception())
    for task in pending:
        stack = io.StringIO()
        task.print_stack(file=stack)
        log.error(
            "task %s did not stop within %.1f s of its cancel; left behind:\n%s",
            task.get_name(),
            deadline_seconds,
            stack.getvalue(),
        )


async def sleep_until_woken(wakeup: asyncio.Event, seconds: float) -> None:
    """Wait for `wakeup` for at most `seconds`.

    Not `asyncio.wait_for(wakeup.wait(), timeout)`: on Python 3.11 that runs the wait as a task
    of its own and, when the wake-up and a cancel land in the same turn of the event loop,
    returns normally instead of raising CancelledError. A loop sleeping that way when its
    runner stopped lived on, and the stop awaited it for ever: the rare hang of
    test_two_workers_never_send_one_delivery_twice (wake-ups come from every Redis message).
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wakeup.wait()


async def run_uncancelled(
    work: Coroutine[Any, Any, T],
    if_cancelled: Callable[[T], Awaitable[None]],
) -> T:
    """Run `work` (a short transaction) to its end even if the caller is cancelled meanwhile:
    then its result goes to `if_cancelled` (e.g. to give claimed rows back) and the cancel
    goes on.

    Why: a claim is an `UPDATE … RETURNING`, which aiosqlite runs as two steps (execute, then
    fetch). A cancel between them leaves the statement active on a connection SQLAlchemy then
    discards, and SQLite's write lock stays held until that cursor is garbage-collected:
    every other writer waited out its 30 s busy timeout ("database is locked"), as in
    test_cancelled_dispatcher_records_what_came_back_and_resends_nothing.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await if_cancelled(await task)
        except Exception:
            # What it took waits out its lease instead; the cancel still goes on.
            logging.getLogger("pytake.tasks").exception("after a cancel, finishing %r failed", work)
        raise
