"""Group commit for the send journal: one thread owns the journal's writes and commits
whatever the connections have asked for since its last commit in one transaction.

Each message still needs its row ``sending`` on disk before it is handed over, so a
connection waits for that commit; but four connections waiting at once share one
commit, and the outcomes of earlier messages ride along with it (an outcome wakes
nobody: it waits for the next commit). A connection's outcome is queued before its
next request, so it is on disk no later than that request: a crash leaves at most one
row per connection ``sending``. One writer also means the workers
never queue on SQLite's write lock (they used to spend a third of their time there),
and on PostgreSQL a round trip's wait is shared the same way.
"""

from __future__ import annotations

import collections
import queue
import threading
import time

from newsletter.errors import NewsletterError
from newsletter.mailing.journal import Journal
from newsletter.mailing.store import connect, disk_full, now
from newsletter.mailing.transport import Delivery

HEARTBEAT = 10.0  # seconds between "this send is alive" marks (see journal.acquire)


class _Ask:
    """A request a connection waits on: ``mark_sending``'s answer, or a flush. A held
    lock is its signal (lighter than an Event, which is a lock plus a condition)."""

    __slots__ = ("answer", "done", "error", "key")

    def __init__(self, key: str | None):
        self.key = key
        self.done = threading.Lock()
        self.done.acquire()
        self.answer = False
        self.error: BaseException | None = None


class Writer:
    """The journal's one writer: a thread with its own connection to the store."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self.db = connect(journal.target)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()  # asks: they wake the writer
        self.outcomes: collections.deque = collections.deque()  # they ride along with the next commit
        self.failure: NewsletterError | None = None
        self.last_beat = 0.0
        self.thread = threading.Thread(target=self._loop, name="journal", daemon=True)
        self.thread.start()

    def mark_sending(self, key: str) -> bool:
        """Mark ``key``'s row ``sending`` and wait until that is on disk; False if its
        reader has left (the row is then settled as skipped)."""
        ask = _Ask(key)
        self.queue.put(ask)
        ask.done.acquire()
        if ask.error is not None:
            raise self.failure or NewsletterError(str(ask.error))
        return ask.answer

    def record(self, key: str, delivery: Delivery) -> None:
        """Queue an outcome; it is committed with the next batch."""
        self.outcomes.append((key, delivery))

    def flush(self) -> None:
        """Wait until everything queued so far is on disk."""
        ask = _Ask(None)
        self.queue.put(ask)
        ask.done.acquire()

    def close(self) -> None:
        self.flush()
        self.queue.put(None)
        self.thread.join()
        self.db.close()

    def _loop(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < 1000:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            closing = batch[-1] is None
            asks = [item for item in batch if item is not None]
            outcomes = []
            while self.outcomes:
                outcomes.append(self.outcomes.popleft())
            self._commit(outcomes, asks)
            for ask in asks:
                ask.done.release()
            if closing:
                return

    def _commit(self, outcomes: list, asks: list[_Ask]) -> None:
        if self.failure is not None:  # nothing more can be written: answer every ask with it
            for ask in asks:
                ask.error = self.failure
            return
        at = now()
        try:
            with self.db.transaction() as db:
                for key, delivery in outcomes:  # first: a connection's outcome precedes its next mark
                    self.journal.record(db, key, delivery, at)
                for ask in asks:
                    if ask.key is not None:
                        ask.answer = self.journal.mark_sending(db, ask.key, at)
                if time.monotonic() - self.last_beat > HEARTBEAT:
                    self.journal.heartbeat(db)
                    self.last_beat = time.monotonic()
        except self.db.Error as e:
            self.failure = journal_error(self.journal, e)
            for ask in asks:
                ask.error = self.failure

    def beat(self) -> None:
        """Keep the heartbeat fresh while the connections are idle (a slow relay)."""
        if time.monotonic() - self.last_beat > HEARTBEAT:
            self.flush()


def journal_error(journal: Journal, error: Exception) -> NewsletterError:
    """What a failed journal write (the database driver's error) means to the author."""
    if disk_full(error):
        return NewsletterError(f"{journal.db.name}: the disk is full; the send stopped and nothing it had not"
                               " recorded was sent", hint="free some space, then rerun the same command")
    text = " ".join(str(error).split())
    return NewsletterError(f"{journal.db.name}: cannot write the send journal ({text}); the send stopped",
                           hint="rerun the same command once the store is writable")
