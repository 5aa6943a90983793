"""Reading and parsing an import's source in a worker process, so parsing (CPU-bound) and writing
(the one SQLite writer, in the calling process) run on two cores at once.

The worker is started with the "spawn" method: the calling process holds SQLite connections, which a
forked child must not inherit. It runs the reader and `prepare`, and sends the events in chunks
through a pipe into a bounded queue, so the worker stays at most `QUEUE_CHUNKS` chunks ahead of
the writer, whatever the size of the source. The worker never opens the database.
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
from multiprocessing.process import BaseProcess
from pathlib import Path

from .mbox import Quoting
from .prepare import PreparedEvent, Ready, prepare
from .readers import Format, read_source

CHUNK_EVENTS = 64
CHUNK_BYTES = 4 << 20
# The writer parses every LEAVE_EVERY-th message itself: on two cores, parsing everything in the
# worker leaves the writer idle a third of the time (measured on the development corpus).
LEAVE_EVERY = 3
# Chunks received and not yet written: bounds the memory an import uses ahead of its writer.
QUEUE_CHUNKS = 16


@dataclass(frozen=True, slots=True)
class _Failed:
    """The worker hit a bug; the text is its traceback."""

    text: str


def prepared_in_worker(
    source: Path, kind: Format, quoting: Quoting, done: set[str], *, leave_every: int = LEAVE_EVERY
) -> Iterator[PreparedEvent]:
    """The same events as `prepare(read_source(...), done)`, produced by a worker process."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_work, args=(sender, source, kind, quoting, done, leave_every), name="cps-import-parser",
        daemon=True,
    )
    process.start()
    sender.close()
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
    receiving = threading.Thread(target=_receive, args=(receiver, chunks), daemon=True)
    receiving.start()
    try:
        while (data := chunks.get()) is not None:
            chunk = pickle.loads(data)
            if isinstance(chunk, _Failed):
                raise RuntimeError(f"the import's parsing process failed:\n{chunk.text}")
            if not chunk:
                return
            yield from chunk
        process.join()
        raise RuntimeError(f"the import's parsing process ended unexpectedly (exit {process.exitcode})")
    finally:
        _stop(process, receiving, chunks)
        receiver.close()


def _receive(receiver: Connection, chunks: queue.Queue[bytes | None]) -> None:
    """Keep the pipe drained into a bounded queue, so the worker parses on while the writer is
    busy committing (the pipe alone buffers only 64 KiB)."""
    try:
        while True:
            chunks.put(receiver.recv_bytes())
    except (EOFError, OSError):
        chunks.put(None)


def _stop(process: BaseProcess, receiving: threading.Thread, chunks: queue.Queue[bytes | None]) -> None:
    if process.is_alive():
        process.kill()
    process.join()
    while receiving.is_alive():  # it may wait for room in the queue: make some
        with contextlib.suppress(queue.Empty):
            chunks.get(timeout=0.1)


def _work(
    sender: Connection, source: Path, kind: Format, quoting: Quoting, done: set[str],
    leave_every: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the writer, which stops us
    try:
        chunk: list[PreparedEvent] = []
        size = 0
        for event in prepare(read_source(source, kind, quoting), done, leave_every=leave_every):
            chunk.append(event)
            size += len(event.message.raw) if isinstance(event, Ready) else 0
            if len(chunk) >= CHUNK_EVENTS or size >= CHUNK_BYTES:
                sender.send(chunk)
                chunk, size = [], 0
        if chunk:
            sender.send(chunk)
        sender.send([])
    except BrokenPipeError:
        pass  # the writer stopped (an error, or it was killed): nothing left to do
    except BaseException:
        with contextlib.suppress(OSError):
            sender.send(_Failed(traceback.format_exc()))
    finally:
        sender.close()
