"""Dynamic micro-batching of reader calls for the HTTP server.

Requests put ``(question, contexts, options)`` on a bounded asyncio queue; one
worker takes the first waiting item, collects more for at most ``max_wait_s`` (or
until ``max_batch_size``), and runs them in ONE ``reader.read_batch`` call in a
worker thread (items with different reader options go in separate calls). While a
batch runs, new requests queue up and form the next batch. A full queue raises
:class:`Overloaded` at once (the API answers 503 with Retry-After).

>>> import asyncio
>>> from koqa.pipeline.fakes import FakeReader
>>> async def demo():
...     async with MicroBatcher(FakeReader({"q": "a"}), max_wait_s=0.05) as b:
...         spans = await asyncio.gather(*(b.submit("q", ["a b"]) for _ in range(3)))
...         return [s[0].text for s in spans], b.stats.batches
>>> asyncio.run(demo())
(['a', 'a', 'a'], 1)
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Sequence

from koqa.errors import KoqaError
from koqa.reader.base import Reader, Span
from koqa.reader.spans import MAX_ANSWER_LEN


class Overloaded(KoqaError):
    """The reader queue is full; retry after ``retry_after`` seconds."""

    status_code = 503

    def __init__(self, retry_after: int, reason: str = "reader queue is full"):
        self.retry_after = retry_after
        super().__init__(f"server busy: {reason}, retry after {retry_after} s")


@dataclass(frozen=True)
class ReadOptions:
    """Reader options of one request; only items with equal options share a reader call."""

    top_k: int = 1
    max_answer_len: int = MAX_ANSWER_LEN
    handle_impossible_answer: bool = False
    max_seq_len: int | None = None
    doc_stride: int | None = None
    max_question_len: int | None = None
    trim_particles: bool | None = None

    def kwargs(self) -> dict:
        kw = {"max_answer_len": self.max_answer_len, "handle_impossible_answer": self.handle_impossible_answer}
        optional = {"max_seq_len": self.max_seq_len, "doc_stride": self.doc_stride,
                    "max_question_len": self.max_question_len, "trim_particles": self.trim_particles}
        return kw | {k: v for k, v in optional.items() if v is not None}


@dataclass
class BatchStats:
    """Counters for /health and tests (mutated only by the worker task)."""

    batches: int = 0  # reader.read_batch calls
    items: int = 0  # questions read
    largest: int = 0  # most questions in one call
    rejected: int = 0  # submissions refused with 503


@dataclass
class _Item:
    question: str
    contexts: Sequence[str]
    options: ReadOptions
    future: asyncio.Future


class MicroBatcher:
    def __init__(self, reader: Reader, *, max_batch_size: int = 16, max_wait_s: float = 0.005,
                 max_queue: int = 64, retry_after_s: int = 1):
        self.reader = reader
        self.max_batch_size, self.max_wait_s = max(1, max_batch_size), max(0.0, max_wait_s)
        self.retry_after_s = retry_after_s
        self.stats = BatchStats()
        self.max_queue = max(1, max_queue)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()  # bounded by ``submit`` (see ``queued``)
        self._worker: asyncio.Task | None = None
        self._getter: asyncio.Future | None = None

    async def __aenter__(self) -> "MicroBatcher":
        self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="koqa-reader-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._getter is not None:
            if self._getter.done() and not self._getter.cancelled() and not self._getter.result().future.done():
                self._getter.result().future.set_exception(Overloaded(self.retry_after_s))
            self._getter.cancel()
            self._getter = None
        while not self._queue.empty():  # nobody will read these any more
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(Overloaded(self.retry_after_s))

    @property
    def queued(self) -> int:
        """Questions waiting for the reader (including one already taken by a pending ``get``)."""
        held = self._getter is not None and self._getter.done() and not self._getter.cancelled()
        return self._queue.qsize() + int(held)

    async def submit(self, question: str, contexts: Sequence[str], options: ReadOptions = ReadOptions()) -> list[Span]:
        """Spans for one question, read together with whatever else is waiting."""
        if self.queued >= self.max_queue:
            self.stats.rejected += 1
            raise Overloaded(self.retry_after_s)
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(question, list(contexts), options, future))
        return await future

    async def submit_many(self, items: Sequence[tuple[str, Sequence[str]]], options: ReadOptions) -> list[list[Span]]:
        """Several questions of one request; refused whole if they do not all fit in the queue."""
        if self.max_queue - self.queued < len(items):
            self.stats.rejected += 1
            raise Overloaded(self.retry_after_s)
        return list(await asyncio.gather(*(self.submit(q, c, options) for q, c in items)))

    async def read_batch(self, questions: Sequence[str], contexts: Sequence[Sequence[str]], top_k: int = 1, *,
                         max_answer_len: int = MAX_ANSWER_LEN) -> list[list[Span]]:
        """:meth:`koqa.reader.base.Reader.read_batch`, awaited and batched with other requests
        (``QAPipeline.arun(read=batcher.read_batch)``)."""
        options = ReadOptions(top_k=top_k, max_answer_len=max_answer_len)
        return await self.submit_many(list(zip(questions, contexts)), options)

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            groups: dict[ReadOptions, list[_Item]] = {}
            for item in batch:
                if not item.future.done():  # a cancelled request is not read
                    groups.setdefault(item.options, []).append(item)
            for options, items in groups.items():
                await self._read(options, items)

    async def _collect(self) -> list[_Item]:
        batch = [await self._next(None)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            item = self._queue.get_nowait() if self._getter is None and not self._queue.empty() else None
            if item is None:
                remaining = deadline - loop.time()
                item = await self._next(remaining) if remaining > 0 else None
            if item is None:
                break
            batch.append(item)
        return batch

    async def _next(self, timeout: float | None) -> _Item | None:
        """The next queued item, or None after ``timeout``.

        The pending ``get`` survives a timeout and is reused next time instead of
        being cancelled, so no item can be lost to a cancel/complete race.
        """
        if self._getter is None:
            self._getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait({self._getter}, timeout=timeout)
        if not done:
            return None
        item, self._getter = self._getter.result(), None
        return item

    async def _read(self, options: ReadOptions, items: list[_Item]) -> None:
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.largest = max(self.stats.largest, len(items))
        try:
            results = await asyncio.to_thread(self.reader.read_batch, [i.question for i in items],
                                              [i.contexts for i in items], options.top_k, **options.kwargs())
        except Exception as exc:
            if len(items) > 1:  # one bad input (e.g. an oversize context) must not fail its batch-mates
                for item in items:
                    await self._read(options, [item])
                return
            if not items[0].future.done():
                items[0].future.set_exception(exc)
            return
        for item, spans in zip(items, results):
            if not item.future.done():
                item.future.set_result(list(spans))
