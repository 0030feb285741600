"""Deliver the spool oldest-first: exponential backoff with jitter, a deadline, one sender.

docs/uplink.md, "Delivery". Strict FIFO: a transient failure retries the same batch
(head-of-line), so batches reach the collector in the order they were spooled. A batch
is acked (deleted) only after a 2xx; a permanent refusal is dead-lettered and the queue
moves on; 401/403 and certificate errors stop the drain with the batches still spooled.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from agent.uplink.client import (
    Outcome,
    SendResult,
    UplinkAuthError,
    UplinkClient,
    UplinkError,
)
from agent.uplink.spool import Spool, SpoolError

log = logging.getLogger(__name__)

LOCK_FILE = "drain.lock"
LOCK_POLL = 0.1


@dataclass
class Backoff:
    """Exponential with "equal jitter": the n-th delay is uniform in [d/2, d] with
    d = min(cap, base * factor**n), so retries neither synchronise across sensors nor
    reach zero. A server's Retry-After raises the delay (capped too)."""

    base: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        delay = ceiling / 2 + self.rng.uniform(0.0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return delay

    def reset(self) -> None:
        self.attempt = 0


class SpoolWriteError(UplinkError):
    """The spool cannot record a delivery (disk full, I/O error): the drain stops, the
    batches stay; one already delivered is sent again later and answered ``duplicate``."""


@dataclass
class DrainResult:
    stored: int = 0
    duplicate: int = 0
    dead: int = 0
    retries: int = 0
    remaining: int = 0
    complete: bool = False  # the spool was empty when the drain ended
    fatal: UplinkError | None = None  # auth / TLS / config: no point in retrying
    timed_out: bool = False  # no delivery for ``idle_deadline`` seconds
    last_failure: str | None = None


def drain(
    spool: Spool,
    client: UplinkClient,
    *,
    idle_deadline: float | None = None,
    backoff: Backoff | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DrainResult:
    """Send until the spool is empty, ``stop`` is set, a fatal error, or no batch got
    through for ``idle_deadline`` seconds (None: keep trying)."""
    backoff = backoff or Backoff()
    stop = stop or threading.Event()
    result = DrainResult()
    progress = clock()
    failing = False
    while not stop.is_set():
        entry = spool.head()
        if entry is None:
            result.complete = True
            break
        try:
            sent = client.send(entry.batch_id, entry.body)
            _record(spool, entry.seq, sent)
        except UplinkError as exc:
            result.fatal = exc
            break
        if sent.outcome in (Outcome.STORED, Outcome.DUPLICATE):
            duplicate = sent.outcome is Outcome.DUPLICATE
            result.duplicate += duplicate
            result.stored += not duplicate
            if failing:
                log.warning(
                    "collector %s reachable again after %d retries", client.host, result.retries
                )
            failing = False
            progress = clock()
            backoff.reset()
            continue
        if sent.outcome is Outcome.PERMANENT:
            result.dead += 1
            log.error(
                "batch %s refused by the collector (%s): moved to the dead-letter table",
                entry.batch_id,
                sent.reason,
            )
            progress = clock()
            continue
        # transient: same batch again after a pause (FIFO)
        result.retries += 1
        result.last_failure = sent.reason
        delay = backoff.next(sent.retry_after)
        if not failing:
            log.warning(
                "collector %s: %s; batches stay spooled, retrying with backoff",
                client.host,
                sent.reason,
            )
        failing = True
        log.info("batch %s: %s; retry in %.2f s", entry.batch_id, sent.reason, delay)
        if idle_deadline is not None:
            left = progress + idle_deadline - clock()
            if left <= 0:
                result.timed_out = True
                break
            delay = min(delay, left)
        stop.wait(delay)
    result.remaining = spool.depth()
    return result


def _record(spool: Spool, seq: int, sent: SendResult) -> None:
    """Write the outcome of one send to the spool (ack, dead letter or failure note)."""
    try:
        if sent.outcome in (Outcome.STORED, Outcome.DUPLICATE):
            spool.ack(seq, duplicate=sent.outcome is Outcome.DUPLICATE)
        elif sent.outcome is Outcome.PERMANENT:
            spool.dead_letter(seq, sent.reason)
        else:
            spool.note_failure(seq, sent.reason)
    except SpoolError as exc:
        raise SpoolWriteError(f"cannot update the spool: {exc}") from None


class DrainLock:
    """One sender per spool (an ``flock`` on DIR/drain.lock, released by the kernel when
    the process dies, ``kill -9`` included), so two drains never interleave batches."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, timeout: float | None = None) -> bool:
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if end is not None and time.monotonic() >= end:
                    os.close(fd)
                    return False
                time.sleep(LOCK_POLL)
                continue
            self._fd = fd
            return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DrainLock:
        if not self.acquire():
            raise RuntimeError("unreachable: a blocking acquire returned False")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class UplinkWorker:
    """Background drainer for a long-running sensor: ``wake()`` after each ``put``.

    Transient failures and TLS errors back off and retry forever (a sensor runs
    unattended; the certificate may get fixed); 401/403 stop the worker with ``error``
    set, since every further request would be refused the same way."""

    def __init__(
        self,
        spool: Spool,
        client: UplinkClient,
        *,
        poll: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.spool, self.client, self.poll = spool, client, poll
        self.backoff = backoff or Backoff()
        self.error: UplinkError | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medtap-uplink", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        with DrainLock(self.spool.directory):
            while not self._stop.is_set():
                self._wake.clear()
                result = drain(self.spool, self.client, backoff=self.backoff, stop=self._stop)
                if isinstance(result.fatal, UplinkAuthError):
                    self.error = result.fatal
                    log.error("uplink stopped: %s", result.fatal)
                    return
                if result.fatal is not None:
                    log.error("uplink: %s; retrying", result.fatal)
                    self._stop.wait(self.backoff.next())
                    continue
                self._wake.wait(self.poll)
