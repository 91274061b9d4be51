"""Run a native call (the interpreter's `invoke()`) on a thread of its own, under a time limit.

While a thread runs native code that does not return, Python cannot act on Ctrl+C in that
thread, and nothing in-process can stop the native code: LiteRT's Python interpreter has no
cancellation hook (its wrapper exposes Invoke, not SetCancellationFunction). So the call runs
on a worker thread and the caller waits for it, and a wait can always be interrupted: Ctrl+C
raises KeyboardInterrupt in the caller at once, and a call that takes longer than the limit
raises CallTimeout. The worker thread is a daemon; a call stuck in native code dies with the
process. The model checks (`mnist_edge.runtime.classifier`) refuse control flow, so a model
that passes them always ends, and a timed-out call is one that is merely far too slow.

A hand-off costs a few microseconds (about 5 us on a 2-core x86 machine), well under a
millisecond frame.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any


class CallTimeout(Exception):
    """The call did not return within the limit; it may still be running on its thread."""


def _serve(jobs: queue.SimpleQueue) -> None:
    while True:
        job = jobs.get()
        if job is None:  # the owner was garbage-collected
            return
        call, reply = job
        try:
            reply.put((True, call()))
        except BaseException as error:  # handed to the caller, raised there
            reply.put((False, error))


class Watchdog:
    """`run(call)` runs call() on the worker thread and returns its result, or raises."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._busy: queue.SimpleQueue | None = None  # the reply queue of an unfinished call
        self.stuck = False  # a call timed out: the worker may never be free again

    def run(self, call: Callable[[], Any]) -> Any:
        if self.stuck:
            raise CallTimeout(f"an earlier call took longer than {self.limit_s:g} s")
        if self._busy is not None:  # a call whose wait was interrupted (Ctrl+C): let it end
            self._wait(self._busy)
        if self._thread is None:
            self._thread = threading.Thread(target=_serve, args=(self._jobs,), daemon=True)
            self._thread.start()
            weakref.finalize(self, self._jobs.put, None)
        reply: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs.put((call, reply))
        ok, value = self._wait(reply)
        if not ok:
            raise value
        return value

    def _wait(self, reply: queue.SimpleQueue) -> tuple[bool, Any]:
        self._busy = reply
        try:
            result = reply.get(timeout=self.limit_s)  # Ctrl+C interrupts this wait
        except queue.Empty:
            self.stuck = True
            raise CallTimeout(f"took longer than {self.limit_s:g} s") from None
        self._busy = None
        return result
