"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Workspace


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    return Workspace(tmp_path)


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it receives."""
    from aiosmtpd.controller import Controller

    from support import SmtpRecorder, free_port

    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    recorder.port = controller.port
    yield recorder
    controller.stop()


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("NEWSLETTER_SECRET", "test-secret-do-not-use")
    return b"test-secret-do-not-use"
