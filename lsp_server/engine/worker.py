"""The one engine thread: runs inference jobs from a priority queue.

llama.cpp contexts are not thread-safe and the CPU is shared, so every job of a
process runs here, one at a time, lowest :class:`~lsp_server.engine.base.Priority`
first. The asyncio loop only waits on futures and never blocks on inference.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

_STOP = object()


class EngineWorker:
    """A daemon thread executing submitted callables in priority order."""

    def __init__(self, name: str = "open-llm-engine") -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Any, Future[Any] | None]] = (
            queue.PriorityQueue()
        )
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.current_priority: int | None = None
        """Priority of the job now running (None when idle)."""

    def submit(self, priority: int, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` to run on the engine thread; return its future."""
        fut: Future[T] = Future()
        self._queue.put((priority, next(self._seq), fn, fut))
        return fut

    def run_preempting(self, below: int) -> int:
        """Run queued jobs whose priority is in ``[0, below)`` now, on this thread.

        Called by a running generation between tokens, so a completion request does
        not wait for a long chat answer. Loads (negative priority) never preempt, since
        they may free the context in use. Returns how many jobs ran.
        """
        ran = 0
        while True:
            with self._queue.mutex:
                heap = self._queue.queue
                if not heap or not (0 <= heap[0][0] < below) or heap[0][2] is _STOP:
                    return ran
            try:
                priority, _, fn, fut = self._queue.get_nowait()
            except queue.Empty:
                return ran
            if not (0 <= priority < below) or fn is _STOP:  # lost a race: put it back
                self._queue.put((priority, next(self._seq), fn, fut))
                return ran
            assert fut is not None
            if not fut.set_running_or_notify_cancel():
                continue
            outer = self.current_priority
            self.current_priority = priority
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
            finally:
                self.current_priority = outer
            ran += 1

    def has_pending_below(self, priority: int) -> bool:
        """Whether a job more urgent than ``priority`` is waiting."""
        with self._queue.mutex:
            heap = self._queue.queue
            return bool(heap) and heap[0][0] < priority

    def pending(self) -> int:
        """Number of queued jobs not yet started."""
        return self._queue.qsize()

    def stop(self) -> None:
        """Finish the running job, then end the thread."""
        self._queue.put((-1, next(self._seq), _STOP, None))

    def _run(self) -> None:
        while True:
            priority, _, fn, fut = self._queue.get()
            if fn is _STOP:
                return
            assert fut is not None
            if not fut.set_running_or_notify_cancel():
                continue
            self.current_priority = priority
            try:
                fut.set_result(fn())
            except BaseException as exc:  # delivered to the waiting caller
                fut.set_exception(exc)
            finally:
                self.current_priority = None
