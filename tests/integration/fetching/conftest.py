"""The tests that fetch (enrich, drafts from links and feeds) share one local web and a
guard that nothing leaves 127.0.0.1. ``web`` here is the fake web, not `serve`."""

from __future__ import annotations

import pytest

from newsletter.authoring import arxivmeta

from fakeweb import FakeWeb, stay_offline


@pytest.fixture(scope="module")
def web():
    with FakeWeb() as server:
        yield server


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    stay_offline(monkeypatch)
    monkeypatch.setattr(arxivmeta, "INTERVAL", 0.05)  # arXiv's pace, shortened (one test checks the default)
