"""A local SMTP server that keeps what it receives: one .eml file per message in an
outbox folder. The default ``smtp`` (127.0.0.1:8025, no TLS, no login) points at it, so
a whole send runs on a fresh machine (``make demo``)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from aiosmtpd.controller import Controller

from newsletter.errors import NewsletterError


class OutboxHandler:
    """aiosmtpd handler: each message, as received, to ``<outbox>/<n>-<recipient>.eml``."""

    def __init__(self, outbox: Path):
        self.outbox = outbox
        self.lock = threading.Lock()
        self.count = len(list(outbox.glob("*.eml")))

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        for rcpt in envelope.rcpt_tos:
            with self.lock:
                self.count += 1
                number = self.count
            safe = re.sub(r"[^A-Za-z0-9@._-]+", "_", rcpt)
            (self.outbox / f"{number:05d}-{safe}.eml").write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def start_capture(outbox: Path, port: int = 8025) -> Controller:
    """Start the server on 127.0.0.1:``port`` in a thread; ``.stop()`` ends it."""
    outbox.mkdir(parents=True, exist_ok=True)
    controller = Controller(OutboxHandler(outbox), hostname="127.0.0.1", port=port,
                            data_size_limit=50 * 1024 * 1024)
    try:
        controller.start()
    except Exception as e:  # aiosmtpd reports a busy port in several ways
        raise NewsletterError(f"127.0.0.1:{port}: cannot start the capture server ({e})",
                              hint="is another one running? pass --port N") from None
    return controller
