"""What a test past its deadline (pytest-timeout, `timeout` in pyproject.toml) leaves behind:
every thread's and every asyncio task's stack, printed straight to the terminal, so that a hang
names itself — and the session's event loop still usable by the tests after it.

pytest-timeout's own signal handler raises inside whatever the main thread was doing: for an
async test that is the event loop's `select()`, so the test's task is never finished. It stays
pending on the session-scoped loop with everything it started (apps whose background loops
would go on claiming the next tests' rows). Here the handler instead cancels the task the loop
is running (as `asyncio.Runner` does on Ctrl-C), so the test's `finally` blocks and fixture
teardowns run; a task that swallows the cancel is cancelled again every `timeout_grace` seconds, and
only after `CANCELS` tries does the handler raise the way pytest-timeout does.
"""

from __future__ import annotations

import asyncio
import io
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any

import pytest

CANCELS = 3
_TIMED_OUT = pytest.StashKey[float]()
_run_code = asyncio.Runner.run.__code__
_until_complete_code = asyncio.BaseEventLoop.run_until_complete.__code__


def _running_task(frame: FrameType | None) -> asyncio.Future[Any] | None:
    """The task the main thread's event loop was asked to run (found up the stack)."""
    while frame is not None:
        if frame.f_code is _run_code and isinstance(frame.f_locals.get("task"), asyncio.Future):
            return frame.f_locals["task"]
        if frame.f_code is _until_complete_code:
            future = frame.f_locals.get("future")
            if isinstance(future, asyncio.Future):
                return future
        frame = frame.f_back
    return None


# The main thread's frames of pytest's own machinery say nothing about a hang.
_MACHINERY = ("/_pytest/", "/pluggy/", "/pytest_asyncio/", "<frozen runpy>", "/pytest/__main__")


def format_threads() -> str:
    names = {t.ident: t.name for t in threading.enumerate()}
    out = io.StringIO()
    for ident, frame in sys._current_frames().items():
        stack = [
            s
            for s in traceback.extract_stack(frame)
            if s.filename != __file__ and not any(m in s.filename for m in _MACHINERY)
        ]
        out.write(f"--- thread {names.get(ident, '?')} ({ident})\n")
        out.write("".join(traceback.format_list(stack)))
    return out.getvalue()


def _await_chain(awaitable: Any) -> tuple[list[FrameType], Any]:
    """The frames from a task's coroutine down its awaits, and the innermost awaited object
    (`Task.get_stack` stops at the task's own frame on Python 3.11)."""
    frames: list[FrameType] = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        frame = frame or getattr(awaitable, "ag_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
            or getattr(awaitable, "ag_await", None)
        )
    return frames, awaitable


def format_tasks(loop: asyncio.AbstractEventLoop) -> str:
    tasks = sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name())
    out = io.StringIO()
    out.write(f"{len(tasks)} asyncio tasks\n")
    for task in tasks:
        frames, innermost = _await_chain(task.get_coro())
        out.write(f"--- task {task.get_name()!r}: {task.get_coro()!r}\n")
        stack = traceback.StackSummary.extract((f, f.f_lineno) for f in frames)
        out.write("".join(stack.format()))
        waiting = getattr(task, "_fut_waiter", None)  # what the innermost await waits for
        out.write(f"    waiting for {waiting if waiting is not None else innermost!r}\n")
    return out.getvalue()


def _print(item: pytest.Item, title: str, text: str) -> None:
    """Straight to the terminal (capture suspended): seen even if the run is killed next."""
    terminal = item.config.get_terminal_writer()
    capman = item.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else _nothing():
        terminal.line()
        terminal.sep("+", title)
        terminal.write(text)
        terminal.sep("+", f"end of {title}")
        terminal.flush()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _dump(item: pytest.Item, timeout: float, loop: asyncio.AbstractEventLoop | None) -> None:
    text = "threads:\n" + format_threads()
    if loop is not None:
        text += "\n" + format_tasks(loop)
    _print(item, f"Timeout >{timeout}s in {item.nodeid}", text)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "deadline(seconds, why): this test may take longer than the default timeout, and why",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`deadline(seconds, why=...)` is the one way to give a test longer: it must say why."""
    for item in items:
        marker = item.get_closest_marker("deadline")
        if marker is None:
            # pytest-timeout's own marker would give a test longer without a word of why.
            if item.get_closest_marker("timeout") is not None:
                raise pytest.UsageError(
                    f"{item.nodeid}: use @pytest.mark.deadline(seconds, why=...), not timeout"
                )
            continue
        seconds, why = (*marker.args, None)[:2] if marker.args else (None, None)
        seconds = marker.kwargs.get("seconds", seconds)
        why = marker.kwargs.get("why", why)
        if not isinstance(seconds, int | float) or not isinstance(why, str) or not why.strip():
            raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.deadline(seconds, why=...)")
        item.add_marker(pytest.mark.timeout(seconds))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "timeout_grace",
        "seconds a timed-out test has to finish after each cancel",
        type="string",
        default="5",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
        return None  # pytest-timeout's thread method: it dumps the threads and exits
    cancels = 0
    grace = float(item.config.getini("timeout_grace"))

    def on_timeout(signum: int, frame: FrameType | None) -> None:
        nonlocal cancels
        __tracebackhide__ = True
        loop = asyncio._get_running_loop()
        task = _running_task(frame) if loop is not None else None
        if cancels == 0:
            item.stash[_TIMED_OUT] = settings.timeout
            _dump(item, settings.timeout, loop)
        if loop is None or task is None or task.done() or cancels >= CANCELS:
            pytest.fail(f"Timeout >{settings.timeout}s (stacks printed above)", pytrace=False)
        cancels += 1
        if cancels > 1:
            _print(item, "still not finished after a cancel", format_tasks(loop))
        else:
            task.add_done_callback(finished)
        task.cancel(f"Timeout >{settings.timeout}s")
        loop.call_soon_threadsafe(lambda: None)  # wake the loop from its select()
        signal.setitimer(signal.ITIMER_REAL, grace)

    def finished(task: asyncio.Future[Any]) -> None:
        # The cancelled phase is over: what remains of the test (its teardown) gets a deadline
        # of its own, instead of a grace timer going off in pytest's reporting.
        nonlocal cancels
        cancels = 0
        signal.setitimer(signal.ITIMER_REAL, settings.timeout)

    signal.signal(signal.SIGALRM, on_timeout)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """The phase that ran past the deadline fails as a timeout (even if it swallowed the
    cancel), its traceback showing where it was cancelled."""
    report = yield
    timeout = item.stash.get(_TIMED_OUT, None)
    if timeout is not None:
        del item.stash[_TIMED_OUT]
        text = report.longreprtext if report.failed else ""
        where = "" if text.startswith("Timeout") else f"\n{text}"
        report.outcome = "failed"
        report.longrepr = f"Timeout >{timeout}s (stacks printed above){where}"
    return report
