"""The connections of one send at work: each takes the next reader, personalizes,
waits for the rate limit and delivers; what was not taken goes back with a not-before
time, so a temporary failure never holds up its connection.

Reading pages of pending rows (on PostgreSQL, claiming batches of them, shared with
any other sender of the issue), retry times and the rules that stop a run early live
here; the journal's writes go through ``commits.Writer``.
"""

from __future__ import annotations

import collections
import heapq
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from newsletter.config import Smtp
from newsletter.errors import NewsletterError
from newsletter.mailing.commits import Writer
from newsletter.mailing.journal import Journal, Task
from newsletter.mailing.leases import SharedRate
from newsletter.mailing.personalize import MessageTemplate
from newsletter.mailing.transport import Connection, ConnectionLost, Delivery, RateLimiter, backoff

Progress = Callable[[int, int], None]  # (done this run, to do this run)
PAGE = 256  # pending rows read at a time
SAME_REFUSALS = 10  # identical refusals of the sender or the message in a row that stop a run


class _Retry(NamedTuple):
    not_before: float
    order: int
    task: Task
    attempts: int


class Dispatch:
    """State shared by the connections of one send."""

    def __init__(self, template: MessageTemplate, smtp: Smtp, journal: Journal, writer: Writer, todo: int,
                 progress: Progress | None):
        self.template, self.smtp, self.journal, self.writer = template, smtp, journal, writer
        self.todo, self.progress = todo, progress
        # PostgreSQL: the rate is shared by every sender of the database, not each one's
        self.rate = SharedRate(journal.db, smtp.rate) if journal.shared else RateLimiter(smtp.rate)
        # a claim small enough that other senders get their share, large enough to save round trips
        self.batch = min(PAGE, max(8, 4 * smtp.connections))
        self.cond = threading.Condition()
        self.fresh: collections.deque[Task] = collections.deque()
        self.retries: list[_Retry] = []
        self.after = 0  # the last rowid read from the journal
        self.exhausted = False
        self.taken = self.in_flight = self.sent = self.failed = self.unknown = self.skipped = self.order = 0
        self.stopping = False
        self.fatal: NewsletterError | None = None
        self.same: tuple[str, int] = ("", 0)  # the last refusal's signature, and how many in a row

    # -- handing out work -------------------------------------------------------------

    def stop(self, error: NewsletterError | None = None) -> None:
        with self.cond:
            self.stopping = True
            if error is not None and self.fatal is None:
                self.fatal = error
            self.cond.notify_all()

    def _next(self) -> tuple[Task, int] | None:
        with self.cond:
            while True:
                if self.stopping:
                    return None
                now = time.monotonic()
                if self.retries and self.retries[0].not_before <= now:
                    retry = heapq.heappop(self.retries)
                    self.in_flight += 1
                    return retry.task, retry.attempts
                if not self.fresh and not self.exhausted and self.taken < self.todo:
                    if self.journal.shared:  # empty: the rest is sent, or held by live senders
                        page = self.journal.claim(min(self.batch, self.todo - self.taken))
                    else:
                        page = self.journal.pending(self.after, min(PAGE, self.todo - self.taken))
                    if page:
                        self.after = page[-1].rowid
                        self.fresh.extend(page)
                    else:
                        self.exhausted = True
                if self.fresh and self.taken < self.todo:
                    task = self.fresh.popleft()
                    self.taken += task.subscribed  # `todo` counts subscribed readers; one who left is settled
                    self.in_flight += 1
                    return task, 0
                if self.retries:
                    self.cond.wait(self.retries[0].not_before - now)
                elif self.in_flight:
                    self.cond.wait()  # a message in flight may come back as a retry
                else:
                    return None

    def _put_back(self, task: Task, attempts: int, outcome: Delivery) -> None:
        with self.cond:
            self.order += 1
            when = time.monotonic() + (backoff(self.smtp, attempts) if outcome.code is not None else 0.0)
            heapq.heappush(self.retries, _Retry(when, self.order, task, attempts))
            self.in_flight -= 1
            self.cond.notify_all()

    def _finish(self, outcome: Delivery) -> None:
        with self.cond:
            self.in_flight -= 1
            if outcome.status == "sent":
                self.sent += 1
                self.same = ("", 0)
            elif outcome.status == "unknown":
                self.unknown += 1
            elif outcome.status == "skipped":
                self.skipped += 1
            elif outcome.status == "failed":
                self.failed += 1
                self._judge(outcome)
            done = self.sent + self.failed + self.unknown + self.skipped
            self.cond.notify_all()
        if self.progress:
            self.progress(done, self.todo)

    def _judge(self, outcome: Delivery) -> None:
        """Stop the run when the relay refuses the sender or the message rather than the
        reader, before it burns the whole list (the rest stays pending)."""
        if outcome.relay_denied:
            self._halt(f"the relay refuses to pass our mail on ({outcome.detail})")
            return
        if outcome.kind != "refused":
            self.same = ("", 0)
            return
        signature = outcome.signature
        count = self.same[1] + 1 if self.same[0] == signature else 1
        self.same = (signature, count)
        if count >= SAME_REFUSALS:
            self._halt(f"the relay refused {count} messages in a row with the same reply ({outcome.detail})")

    def _halt(self, why: str) -> None:
        self.stopping = True
        self.fatal = self.fatal or NewsletterError(
            f"{why}; it refuses the sender or the message, not the readers, so the send stopped",
            hint="fix the cause, then rerun; `--retry-failed` also resends the ones it refused")

    # -- one connection's loop ----------------------------------------------------------

    def work(self, connection: Connection) -> None:
        """Deliver until there is nothing left; every exception ends in ``fatal``."""
        lost = 0  # connection failures in a row on this connection
        try:
            while (claimed := self._next()) is not None:
                task, attempts = claimed
                if not task.subscribed:  # left after the run began: settled without a word to the relay
                    outcome = Delivery("skipped", None, "unsubscribed during the send")
                    self.writer.record(task.key, outcome)
                    self._finish(outcome)
                    continue
                try:
                    outcome = self._attempt(connection, task)
                except BaseException as e:  # never die silently: put the reader back, stop the run
                    self._put_back(task, attempts, Delivery("retry"))
                    self.stop(e if isinstance(e, NewsletterError) else NewsletterError(
                        f"sending to {task.recipient.email} failed unexpectedly ({type(e).__name__}: {e}); the send"
                        " stopped and the rest is pending"))
                    return
                if outcome.status == "retry":
                    attempts += 1
                    lost = lost + 1 if outcome.code is None else 0
                    if outcome.code is None and lost >= self.smtp.retries:
                        self._put_back(task, attempts - 1, outcome)
                        self.stop(ConnectionLost(f"{connection.where}: {outcome.detail}, {lost} times"))
                        return
                    if attempts < self.smtp.retries:
                        self._put_back(task, attempts, outcome)
                        if outcome.code is None:
                            time.sleep(backoff(self.smtp, lost))  # this connection is the one that is broken
                        continue
                    outcome = outcome._replace(status="failed", kind="temporary",
                                               detail=f"{outcome.detail} (gave up after {attempts} attempts)")
                else:
                    lost = 0
                self.writer.record(task.key, outcome)  # a skipped row was settled when it was marked
                self._finish(outcome)
        finally:
            connection.close()

    def _attempt(self, connection: Connection, task: Task) -> Delivery:
        message = self.template.personalize(task.recipient)
        self.rate.wait()
        marked: list[bool] = []

        def may_hand_over() -> bool:
            marked.append(self.writer.mark_sending(task.key))
            return marked[0]

        verp = self.template.return_path
        outcome = connection.deliver(task.recipient.email, message, may_hand_over,
                                     verp(task.recipient.email) if verp else None)
        if marked and marked[0] and outcome.status == "retry":
            self.writer.record(task.key, Delivery("pending"))  # the write broke off before the dot
        return outcome
