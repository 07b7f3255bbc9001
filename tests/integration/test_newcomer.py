"""A newcomer's first minutes: a fresh workspace, secrets from the keyring, hints that
fit the workspace they are in."""

from __future__ import annotations

import keyring
import pytest
from keyring.backend import KeyringBackend

from support import free_port, smtp_config


class MemoryKeyring(KeyringBackend):
    """A real keyring backend (the keyring API end to end) that keeps passwords in memory."""

    priority = 1

    def __init__(self):
        super().__init__()
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.data.get((service, username))

    def set_password(self, service, username, password):
        self.data[(service, username)] = password

    def delete_password(self, service, username):
        self.data.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    before = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(before)


def test_init_makes_a_fresh_workspace_that_checks_and_builds(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    runner = CliRunner()
    folder = tmp_path / "mine"
    result = runner.invoke(main, ["init", str(folder), "--name", "Ada's Notes"])
    assert result.exit_code == 0, result.output
    assert (folder / "layouts" / "email.mjml").is_file() and list((folder / "issues").glob("*.yaml")) == []
    assert "name: Ada's Notes" in (folder / "newsletter.yaml").read_text()
    monkeypatch.chdir(folder)
    new = runner.invoke(main, ["new"])
    assert new.exit_code == 0, new.output
    assert runner.invoke(main, ["check", new.stdout.strip()]).exit_code == 0
    assert runner.invoke(main, ["build", new.stdout.strip(), "-o", "out"]).exit_code == 0
    again = runner.invoke(main, ["init", str(folder)])
    assert again.exit_code == 1 and "exists already; nothing was changed" in again.stderr


def test_the_signing_secret_comes_from_the_keyring(ws, smtp, monkeypatch, memory_keyring) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    ws.configure(extra=smtp_config(smtp.port))
    ws.issue("033.yaml", number=33)
    ws.run("subscribers", "add", "ada@example.com")
    refused = ws.run("send", "--yes", "issues/033.yaml")
    assert refused.exit_code == 1 and "keyring set newsletter secret" in refused.stderr
    memory_keyring.set_password("newsletter", "secret", "from-the-keyring")
    result = ws.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 0, result.output
    assert [rcpt for rcpt, _ in smtp.messages] == ["ada@example.com"]


def test_cannot_connect_hints_fit_the_workspace(ws, secret) -> None:
    ws.issue("033.yaml", number=33)
    ws.run("subscribers", "add", "ada@example.com")
    ws.configure(extra=smtp_config(free_port()))
    result = ws.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 1 and "check `smtp:` in newsletter.yaml" in result.stderr
    assert "make demo" not in result.stderr
    ws.configure()  # no smtp section: the local default, 127.0.0.1:8025
    result = ws.run("send", "--yes", "issues/033.yaml")
    if "cannot connect" in result.stderr:  # (unless something happens to listen on 8025 here)
        assert "`newsletter capture` runs a local server" in result.stderr
