"""A run in which fewer tests ran than were collected fails, saying how many went missing.

Why: pytest-xdist's `loadfile` and `loadscope` schedulers ran one of the API fuzz test's 124
schemathesis items and reported the run green (see dev.py, which uses `worksteal`). Counted in
the process that reports: the controller under xdist, which receives every worker's reports.
"""

from __future__ import annotations

import pytest

# Reports counted, not node ids: schemathesis's items all report the test function's bare id.
_ran = [0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _ran[0] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workeroutput") or exitstatus != pytest.ExitCode.OK:
        return  # a worker (the controller counts), or a run that already failed or stopped
    if session.config.option.collectonly:
        return
    collected = session.testscollected - session.testsfailed
    missing = collected - _ran[0]
    if missing > 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("!", f"{missing} of {collected} collected tests never ran", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
