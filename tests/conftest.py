"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Workspace


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    return Workspace(tmp_path)
