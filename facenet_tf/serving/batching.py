"""A micro-batcher: the items of concurrent requests go through one function call (one model call), with a bounded
queue, a maximum batch and a maximum wait.

A request submits its items (e.g. the face crops of one upload) and gets a future. One worker thread takes the
first waiting request, then keeps taking requests until the batch holds ``max_batch`` items or ``max_wait``
seconds have passed since it took the first, calls the function once on all their items (a request larger than
``max_batch`` is split into several calls) and hands each request its part of the result. Under load the queue is
never empty, so batches fill without waiting; alone, a request waits at most ``max_wait``.

The queue holds at most ``max_queue`` requests: one more is refused at once with :class:`Overloaded` (the service
answers 503 with Retry-After) instead of letting the queue, and every client's latency, grow without bound.
Numpy only; the function may be anything that maps a list of items to a list of results of the same length.
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any


class Overloaded(RuntimeError):
    """The queue is full: the request was not taken."""


@dataclasses.dataclass
class _Job:
    items: list[Any]
    future: Future


class MicroBatcher:
    """Batches the items of concurrent :meth:`submit` calls into calls of ``fn(list of items) -> list of results``.

    Args:
        fn: called from the worker thread only (so it need not be thread-safe).
        max_batch: most items per call.
        max_wait: seconds the worker waits for more requests after taking the first of a batch.
        max_queue: most requests waiting; more are refused with :class:`Overloaded`.
        name: names the worker thread and the errors.
    """

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], max_batch: int = 32, max_wait: float = 0.005,
                 max_queue: int = 64, name: str = "batcher") -> None:
        if max_batch < 1 or max_queue < 1 or not max_wait >= 0:
            raise ValueError(f"{name}: max_batch and max_queue must be >= 1 and max_wait >= 0; got {max_batch}, "
                             f"{max_queue}, {max_wait}")
        self.fn, self.max_batch, self.max_wait, self.max_queue, self.name = fn, max_batch, max_wait, max_queue, name
        self._queue: queue.Queue[_Job | None] = queue.Queue(max_queue)
        self._held: _Job | None = None  # taken from the queue but left for the next batch (it did not fit)
        self._stats_lock = threading.Lock()
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        self.refused = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[Any]) -> Future:
        """A future of ``fn``'s results for ``items`` (in order). Overloaded when the queue is full."""
        future: Future = Future()
        if not items:
            future.set_result([])
            return future
        if self._closed:
            raise Overloaded(f"{self.name} is shut down")
        try:
            self._queue.put_nowait(_Job(list(items), future))
        except queue.Full:
            with self._stats_lock:
                self.refused += 1
            raise Overloaded(f"{self.name}: {self.max_queue} requests are already waiting; try again shortly") from None
        return future

    def __call__(self, items: Sequence[Any]) -> list[Any]:
        """:meth:`submit` and wait for the results."""
        return self.submit(items).result()

    def stats(self) -> dict[str, Any]:
        """Calls made, items and requests passed, batch sizes formed ({size: calls}), requests refused, queued."""
        with self._stats_lock:
            sizes = dict(sorted(self.batch_sizes.items()))
            refused = self.refused
        calls = sum(sizes.values())
        items = sum(size * count for size, count in sizes.items())
        return {"calls": calls, "items": items, "mean_batch": items / calls if calls else 0.0,
                "batch_sizes": sizes, "refused": refused, "queued": self._queue.qsize(),
                "max_batch": self.max_batch, "max_wait_ms": self.max_wait * 1000, "max_queue": self.max_queue}

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking requests; those already queued are still answered."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout)

    # ------------------------------------------------------------------------------------------- worker

    def _take(self, timeout: float | None) -> _Job | None:
        if self._held is not None:
            job, self._held = self._held, None
            return job
        return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()

    def _run(self) -> None:
        while True:
            first = self._take(None)
            if first is None:
                return
            batch, count = [first], len(first.items)
            deadline = time.monotonic() + self.max_wait
            stop = False
            while count < self.max_batch:
                try:
                    job = self._take(deadline - time.monotonic())
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                if count + len(job.items) > self.max_batch:
                    self._held = job  # first of the next batch
                    break
                batch.append(job)
                count += len(job.items)
            self._process(batch)
            if stop:
                self._drain()
                return

    def _drain(self) -> None:
        while True:
            try:
                job = self._take(0)
            except queue.Empty:
                return
            if job is not None:
                self._process([job])

    def _process(self, batch: list[_Job]) -> None:
        items = [item for job in batch for item in job.items]
        try:
            results: list[Any] = []
            for start in range(0, len(items), self.max_batch):
                chunk = items[start:start + self.max_batch]
                out = list(self.fn(chunk))
                if len(out) != len(chunk):
                    raise RuntimeError(f"{self.name}: {len(out)} results for {len(chunk)} items")
                results.extend(out)
                with self._stats_lock:
                    self.batch_sizes[len(chunk)] += 1
        except BaseException as error:  # noqa: BLE001 - handed to every waiting request
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        start = 0
        for job in batch:
            job.future.set_result(results[start:start + len(job.items)])
            start += len(job.items)
