"""Reading and parsing an import's source in worker processes, so that the one writer (the calling
process) does nothing but write.

`workers` processes: the first reads the source and runs `prepare` without parsing (keys imported
before skipped, folder names checked), and cuts the events into chunks; chunk n is parsed
(envelope, attachment list, text for the full-text index, SHA-256) by process n mod `workers`: the
reader itself for n mod `workers` = 0, which sends the chunk straight on to the writer, and
otherwise a parser process, which gets the chunk from the reader and passes it on to the writer
with what it derived. The writer takes chunk n from process n mod `workers`, so the events come out
in source order, exactly as `prepare(read_source(...), done)` yields them. On two cores that is one
process reading and parsing and one writing. The writer's process only unpickles and writes: a
thread of its own doing Python work (reading the source, say) would hold the interpreter lock that
the writer needs back after every SQLite call, and slows it down more than it helps.

Processes are started with the "spawn" method: the calling process holds SQLite connections, which a
forked child must not inherit. A receiving thread per worker drains its results into a queue of at
most `CHUNKS_AHEAD` chunks, so workers go on while the writer commits, and a full queue stops the
worker and then the reader: the memory an import uses ahead of its writer is bounded whatever the
size of the source. Each pipe has one sending and one receiving process; when one dies, SIGKILL
included, the next in line gets end-of-file or a broken pipe and leaves. None of them opens the
database.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from ...errors import CPSError
from ..messages import ParsedMessage
from ..parse import Attachment, Envelope
from .mbox import Quoting
from .prepare import PreparedEvent, parse_raw, parsed_events, prepare
from .readers import Format, read_source
from .sources import Candidate

CHUNK_EVENTS = 64
CHUNK_BYTES = 4 << 20
# Chunks parsed and not yet written, per parser: bounds the memory an import uses ahead of its writer.
CHUNKS_AHEAD = 8

RESUME = ("Every batch committed before is kept: run the same import again to import the rest "
          "(nothing is imported twice).")

# What a parser derives from one message: its SHA-256 and envelope fields (plain tuples, which
# pickle several times faster than the dataclasses), or why it cannot be imported.
Derived = tuple[bytes, tuple[Any, ...]] | str


@dataclass(frozen=True, slots=True)
class _Failed:
    """The reader or a parser hit a bug; the text is its traceback."""

    text: str


# What goes down the pipes, chunk by chunk: from the reader to a parser, the events (None once the
# source is done); to the writer, the events and what was derived from their messages, in order.
_Read = list[PreparedEvent] | _Failed | None
_Parsed = tuple[list[PreparedEvent], list[Derived]] | _Failed | None


def parsed_in_workers(
    source: Path, kind: Format, quoting: Quoting, done: set[str], workers: int
) -> Iterator[PreparedEvent]:
    """The same events as `prepare(read_source(...), done)`, read by one process and parsed by
    `workers` processes (that one included)."""
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    receivers: list[_Receiver] = []
    handed: list[Connection] = []  # pipe ends for the children: closed here once they are started
    try:
        results = []
        for _number in range(workers):
            result_end, result_sender = context.Pipe(duplex=False)
            receivers.append(_Receiver(result_end))
            results.append(result_sender)
            handed.append(result_sender)
        into_parsers = []
        for number in range(1, workers):
            task_end, task_sender = context.Pipe(duplex=False)
            handed += [task_end, task_sender]
            into_parsers.append(task_sender)
            processes.append(_start(context, f"cps-import-parser-{number}", _parse_chunks,
                                    task_end, results[number]))
        processes.append(_start(context, "cps-import-reader", _read_chunks,
                                results[0], into_parsers, source, kind, quoting, done))
        _close(handed)
        yield from _in_order(receivers)
    finally:
        _close(handed)  # if starting failed: so that every receiver sees its pipe end
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
        for receiver in receivers:
            receiver.stop()


def _start(context: SpawnContext, name: str, target: Callable[..., None], *args: Any) -> BaseProcess:
    process = context.Process(target=target, args=args, name=name, daemon=True)
    process.start()
    return process


def _close(pipes: list[Connection]) -> None:
    for pipe in pipes:
        pipe.close()


def _in_order(receivers: list[_Receiver]) -> Iterator[PreparedEvent]:
    """The events of chunk n, from worker n mod len(receivers), until the end of the source."""
    turn = 0
    while (chunk := receivers[turn].take()) is not None:
        turn = (turn + 1) % len(receivers)
        events, derived = chunk
        answers = iter(derived)
        for event in events:
            if isinstance(event, Candidate):
                yield from parsed_events(event, _rebuilt(event.raw, next(answers)))
            else:
                yield event


class _Receiver:
    """A thread keeping a parser's result pipe drained (the pipe alone buffers only 64 KiB)."""

    def __init__(self, pipe: Connection) -> None:
        self._pipe = pipe
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=CHUNKS_AHEAD)
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def take(self) -> tuple[list[PreparedEvent], list[Derived]] | None:
        """The parser's next chunk, or None when the source is done."""
        data = self._chunks.get()
        if data is None:
            raise CPSError("a reading or parsing process of the import ended unexpectedly",
                           hint=RESUME)
        chunk: _Parsed = pickle.loads(data)
        if isinstance(chunk, _Failed):
            raise CPSError(f"the import's reading or parsing failed:\n{chunk.text}", hint=RESUME)
        return chunk

    def stop(self) -> None:
        """After the parser has ended: let the thread see the end of the pipe, and close it."""
        while self._thread.is_alive():  # it may wait for room in the queue: make some
            with contextlib.suppress(queue.Empty):
                self._chunks.get(timeout=0.1)
        self._pipe.close()

    def _receive(self) -> None:
        try:
            while True:
                self._chunks.put(self._pipe.recv_bytes())
        except (EOFError, OSError):
            self._chunks.put(None)


def _read_chunks(
    results: Connection, parsers: list[Connection], source: Path, kind: Format, quoting: Quoting,
    done: set[str],
) -> None:
    """The reader process: the source's events in chunks, chunk n parsed by process n mod `workers`:
    0 is this one, which sends the chunk on to the writer; 1 and up are `parsers`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the writer, which stops us
    turn = 0

    def send(chunk: _Read) -> None:
        nonlocal turn
        if turn == 0:
            results.send_bytes(pickle.dumps(_parsed(chunk), pickle.HIGHEST_PROTOCOL))
        else:
            parsers[turn - 1].send_bytes(pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL))
        turn = (turn + 1) % (len(parsers) + 1)

    try:
        events: list[PreparedEvent] = []
        size = 0
        for event in prepare(read_source(source, kind, quoting), done, parsing=False):
            events.append(event)
            size += len(event.raw) if isinstance(event, Candidate) else 0
            if len(events) >= CHUNK_EVENTS or size >= CHUNK_BYTES:
                send(events)
                events, size = [], 0
        if events:
            send(events)
        send(None)
    except BrokenPipeError:
        pass  # the writer stopped (an error, or it was killed), and so did the parsers
    except BaseException:
        with contextlib.suppress(OSError):
            send(_Failed(traceback.format_exc()))
    finally:
        for pipe in [results, *parsers]:
            pipe.close()


def _parse_chunks(chunks: Connection, results: Connection) -> None:
    """A parser process: every chunk from the reader passed on, with what its messages yield."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            chunk: _Read = pickle.loads(chunks.recv_bytes())
            results.send_bytes(pickle.dumps(_parsed(chunk), pickle.HIGHEST_PROTOCOL))
    except (EOFError, OSError):
        # The source is done, or a process beside this one is gone: the writer (a broken pipe)
        # or the reader, killed part-way through sending a chunk ("end of file during message").
        # The writer tells which from the pipes that end.
        pass
    except BaseException:
        with contextlib.suppress(OSError):
            results.send_bytes(pickle.dumps(_Failed(traceback.format_exc())))
    finally:
        chunks.close()
        results.close()


def _parsed(chunk: _Read) -> _Parsed:
    """A chunk from the reader with what its messages yield (an end or a failure as it is)."""
    if chunk is None or isinstance(chunk, _Failed):
        return chunk
    return chunk, [_derived(parse_raw(e.raw)) for e in chunk if isinstance(e, Candidate)]


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
