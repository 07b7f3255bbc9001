"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Workspace

pytest_plugins = ("pg",)  # PostgreSQL: the server, databases, and the `backends` marker (tests/pg.py)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, databases) -> Iterator[Workspace]:
    """A workspace in tmp_path, its store a SQLite file or (``backends``) a PostgreSQL database."""
    monkeypatch.chdir(tmp_path)
    workspace = Workspace(tmp_path, databases)
    yield workspace
    workspace.close()


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it receives."""
    from support import SmtpRecorder, running

    yield from running(SmtpRecorder())


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("NEWSLETTER_SECRET", "test-secret-do-not-use")
    return b"test-secret-do-not-use"


@pytest.fixture
def web(ws, smtp, secret):
    """`newsletter serve` on a free port, for a workspace with two subscribers."""
    from support import Web, free_port, smtp_config

    # Tests sign up many times from 127.0.0.1; the per-client limit has a test of its own.
    ws.configure(extra=smtp_config(smtp.port) + "signup: {per_client: 1000}\n")
    ws.issue("001.yaml", number=1, highlights='["First *highlight*"]')
    for address in ("ada@example.com", "bob@example.com"):
        ws.run("subscribers", "add", address)
    ws.run("publish", "1")  # listed in the archive's index (a draft would not be)
    server = Web(ws, free_port())
    server.wait_for("/", 'href="1/index.html"')  # serve builds the archive after it starts
    yield server
    server.stop()
