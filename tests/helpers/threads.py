"""Running test code in several threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial


def run_threads(*calls: Callable[[], object], timeout: float | None = 60) -> None:
    """Run each call in its own thread and wait for all (each join waits at most ``timeout`` s)."""
    threads = [threading.Thread(target=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


def together(*calls: Callable[[], object], timeout: float | None = 60) -> list[BaseException]:
    """Run each call in its own thread, all released at the same moment (a barrier), wait for them
    and return what they raised (an empty list: every call went through)."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call) -> None:
        try:
            barrier.wait(timeout=30)
            call()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    run_threads(*(partial(run, call) for call in calls), timeout=timeout)
    return errors
