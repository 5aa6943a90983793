"""Parsing an import's messages in worker processes, so that the one writer (the calling process)
does little but write.

A thread of the calling process reads the source and runs `prepare` without parsing (keys imported
before skipped, folder names checked). It cuts the events into chunks and hands the messages of
each chunk to the next of `workers` worker processes in turn. A worker parses them (envelope,
attachment list, text for the full-text index, SHA-256) and sends back only what it derived: the
raw bytes stay in the calling process, so they cross a pipe once. The calling process takes the
chunks back in source order, so the events come out exactly as `prepare(read_source(...), done)`
yields them.

Workers are started with the "spawn" method: the calling process holds SQLite connections, which a
forked child must not inherit. At most `CHUNKS_AHEAD` chunks are out (read, not yet written), which
bounds the memory an import uses ahead of its writer whatever the size of the source. A receiving
thread per worker drains its results as they come, so workers parse on while the writer commits.
Only the calling process holds the sending end of a worker's task pipe: when it dies, SIGKILL
included, the worker reads end-of-file and leaves. The workers never open the database.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import queue
import signal
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from ..messages import ParsedMessage
from ..parse import Attachment, Envelope
from .mbox import Quoting
from .prepare import PreparedEvent, parse_raw, parsed_events, prepare
from .readers import Format, read_source
from .sources import Candidate

CHUNK_EVENTS = 64
CHUNK_BYTES = 4 << 20
# Chunks read and not yet written: bounds the memory an import uses ahead of its writer.
CHUNKS_AHEAD = 16
# How often the reading thread, waiting for room, looks whether the import has stopped.
WAIT_SECONDS = 0.1

# What a worker sends back for one message: its SHA-256 and envelope fields (plain tuples, which
# pickle several times faster than the dataclasses), or why it cannot be imported.
Derived = tuple[bytes, tuple[Any, ...]] | str


@dataclass(frozen=True, slots=True)
class _Failed:
    """A worker or the reading thread hit a bug; the text is its traceback."""

    text: str


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Consecutive events of the source; `worker` parses its candidates (-1: it has none)."""

    events: list[PreparedEvent]
    worker: int


def parsed_in_workers(
    source: Path, kind: Format, quoting: Quoting, done: set[str], workers: int
) -> Iterator[PreparedEvent]:
    """The same events as `prepare(read_source(...), done)`, parsed by `workers` processes."""
    pool = _Pool(multiprocessing.get_context("spawn"), workers)
    chunks: queue.Queue[_Chunk | _Failed | None] = queue.Queue()
    room = threading.Semaphore(CHUNKS_AHEAD)
    stopped = threading.Event()
    reading = threading.Thread(
        target=_read, args=(pool, source, kind, quoting, done, chunks, room, stopped),
        name="cps-import-reader", daemon=True)
    reading.start()
    try:
        while (chunk := chunks.get()) is not None:
            if isinstance(chunk, _Failed):
                raise RuntimeError(f"reading the import's source failed:\n{chunk.text}")
            derived = iter(pool.results(chunk.worker)) if chunk.worker >= 0 else iter(())
            room.release()
            for event in chunk.events:
                if isinstance(event, Candidate):
                    yield from parsed_events(event, _rebuilt(event.raw, next(derived)))
                else:
                    yield event
    finally:
        stopped.set()
        pool.stop()
        reading.join()


def _read(
    pool: _Pool, source: Path, kind: Format, quoting: Quoting, done: set[str],
    chunks: queue.Queue[_Chunk | _Failed | None], room: threading.Semaphore,
    stopped: threading.Event,
) -> None:
    """The reading thread: the source's events, in chunks, their messages sent to the workers."""
    turn = 0
    events: list[PreparedEvent] = []
    raws: list[bytes] = []
    size = 0

    def hand_over() -> bool:
        nonlocal turn, events, raws, size
        while not room.acquire(timeout=WAIT_SECONDS):
            if stopped.is_set():
                return False
        worker = -1
        sent = True
        if raws:
            worker, turn = turn, (turn + 1) % pool.size
            sent = pool.send(worker, raws)
        chunks.put(_Chunk(events, worker))
        events, raws, size = [], [], 0
        return sent

    try:
        for event in prepare(read_source(source, kind, quoting), done, parsing=False):
            events.append(event)
            if isinstance(event, Candidate):
                raws.append(event.raw)
                size += len(event.raw)
            if (len(events) >= CHUNK_EVENTS or size >= CHUNK_BYTES) and not hand_over():
                return
        if events and not hand_over():
            return
        chunks.put(None)
    except BaseException:
        if not stopped.is_set():  # else the import stopped, killing its workers mid-send
            chunks.put(_Failed(traceback.format_exc()))


class _Pool:
    """The worker processes, each with a pipe for its tasks and a thread receiving its results."""

    def __init__(self, context: SpawnContext, size: int) -> None:
        self.size = size
        self._processes: list[BaseProcess] = []
        self._tasks: list[Connection] = []
        self._results: list[queue.Queue[bytes | None]] = []
        for number in range(size):
            task_reader, task_sender = context.Pipe(duplex=False)
            result_reader, result_sender = context.Pipe(duplex=False)
            process = context.Process(target=_work, args=(task_reader, result_sender),
                                      name=f"cps-import-parser-{number}", daemon=True)
            process.start()
            task_reader.close()
            result_sender.close()
            results: queue.Queue[bytes | None] = queue.Queue()
            threading.Thread(target=_receive, args=(result_reader, results), daemon=True).start()
            self._processes.append(process)
            self._tasks.append(task_sender)
            self._results.append(results)

    def send(self, worker: int, raws: list[bytes]) -> bool:
        """Give `worker` messages to parse; False if it is gone (`results` then says how)."""
        try:
            self._tasks[worker].send_bytes(pickle.dumps(raws, pickle.HIGHEST_PROTOCOL))
        except OSError:  # BrokenPipeError included
            return False
        return True

    def results(self, worker: int) -> list[Derived]:
        """What `worker` derived from the oldest messages sent to it and not yet taken back."""
        data = self._results[worker].get()
        if data is None:
            process = self._processes[worker]
            process.join()
            raise RuntimeError(
                f"the import's parsing process ended unexpectedly (exit {process.exitcode})")
        answer = pickle.loads(data)
        if isinstance(answer, _Failed):
            raise RuntimeError(f"the import's parsing process failed:\n{answer.text}")
        return answer  # type: ignore[no-any-return]

    def stop(self) -> None:
        for process, tasks in zip(self._processes, self._tasks, strict=True):
            if process.is_alive():
                process.kill()
            process.join()
            tasks.close()


def _receive(receiver: Connection, results: queue.Queue[bytes | None]) -> None:
    """Keep a worker's result pipe drained (the pipe alone buffers only 64 KiB)."""
    try:
        while True:
            results.put(receiver.recv_bytes())
    except (EOFError, OSError):
        results.put(None)
    finally:
        receiver.close()


def _work(tasks: Connection, results: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the writer, which stops us
    try:
        while True:
            raws: list[bytes] = pickle.loads(tasks.recv_bytes())
            answer = [_derived(parse_raw(raw)) for raw in raws]
            results.send_bytes(pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))
    except (EOFError, BrokenPipeError):
        pass  # the writer is done, stopped or gone: nothing left to do
    except BaseException:
        with contextlib.suppress(OSError):
            results.send_bytes(pickle.dumps(_Failed(traceback.format_exc())))
    finally:
        tasks.close()
        results.close()


def _derived(parsed: ParsedMessage | str) -> Derived:
    if isinstance(parsed, str):
        return parsed
    e = parsed.envelope
    attachments = tuple((a.filename, a.content_type, a.size) for a in e.attachments)
    return parsed.sha256, (e.message_id, e.subject, e.from_, e.to, e.cc, e.date, e.in_reply_to,
                           e.references, attachments, e.text, e.defects)


def _rebuilt(raw: bytes, derived: Derived) -> ParsedMessage | str:
    if isinstance(derived, str):
        return derived
    sha256, (message_id, subject, from_, to, cc, date, in_reply_to, references, attachments, text,
             defects) = derived
    envelope = Envelope(message_id, subject, from_, to, cc, date, in_reply_to, references,
                        tuple(Attachment(*a) for a in attachments), text, defects)
    return ParsedMessage(raw, sha256, envelope)
