"""The login path: yagmail logs in with the password from the environment; a refused
login stops the send before any message, with the server's reply."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from support import SmtpRecorder, free_port, smtp_config

USER, PASSWORD = "news@example.com", "correct horse"
# A test server on loopback: AUTH without TLS is fine here, and aiosmtpd warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def auth_smtp():
    recorder = SmtpRecorder()

    def authenticator(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (USER, PASSWORD)
        return AuthResult(success=ok, handled=False)

    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    recorder.port = controller.port
    yield recorder
    controller.stop()


@pytest.fixture
def authed(ws, auth_smtp, secret):
    ws.configure(extra=smtp_config(auth_smtp.port, username=USER))
    ws.issue("033.yaml", number=33)
    ws.run("subscribers", "add", "ada@example.com")
    return ws


def test_send_logs_in_with_the_password_from_the_environment(authed, auth_smtp, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
    result = authed.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 0, result.output
    assert [rcpt for rcpt, _ in auth_smtp.messages] == ["ada@example.com"]


def test_a_refused_login_stops_the_send_and_keeps_everyone_pending(authed, auth_smtp, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "wrong")
    result = authed.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"127.0.0.1:{auth_smtp.port}: login refused (535 ")
    assert PASSWORD not in result.output + result.stderr and "wrong" not in result.stderr
    assert auth_smtp.messages == []
    assert "Issue 33: 1 pending" in authed.run("status", "issues/033.yaml").stdout


def test_a_username_without_a_password_is_a_clear_error(authed, auth_smtp, monkeypatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SMTP_PASSWORD", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    result = authed.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"no SMTP password for {USER}: set NEWSLETTER_SMTP_PASSWORD")
    assert auth_smtp.messages == []


@pytest.fixture(params=["starttls", "ssl"])
def tls_smtp(request, tmp_path):
    """A relay with a certificate from a CA made here: STARTTLS (required), or TLS from
    the first byte."""
    import ssl

    from support import make_certificates

    ca, cert, key = make_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    recorder = SmtpRecorder()
    extra = ({"tls_context": context, "require_starttls": True} if request.param == "starttls"
             else {"ssl_context": context})
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), **extra)
    controller.start()
    recorder.port, recorder.security, recorder.ca = controller.port, request.param, ca
    yield recorder
    controller.stop()


def test_the_relays_certificate_is_verified(ws, tls_smtp, secret, monkeypatch) -> None:
    ws.configure(extra=smtp_config(tls_smtp.port, security=tls_smtp.security))
    ws.issue("033.yaml", number=33)
    ws.run("subscribers", "add", "ada@example.com")
    monkeypatch.setenv("SSL_CERT_FILE", str(ws.root / "nowhere.pem"))  # trust nothing: the CA is unknown
    refused = ws.run("send", "--yes", "issues/033.yaml")
    assert refused.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.output
    assert "SSL_CERT_FILE" in refused.stderr and "Traceback" not in refused.output
    assert tls_smtp.messages == []

    monkeypatch.setenv("SSL_CERT_FILE", str(tls_smtp.ca))  # the relay's CA, trusted
    sent = ws.run("send", "--yes", "issues/033.yaml")
    assert sent.exit_code == 0, sent.output
    assert [rcpt for rcpt, _ in tls_smtp.messages] == ["ada@example.com"]
