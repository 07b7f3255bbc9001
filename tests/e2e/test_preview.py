"""`newsletter preview` in real Chromium, against a server each test starts on a free port."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from newsletter.ports import free_port, wait_for_port

from support import REPO, screenshot

SAMPLE = REPO / "issues" / "033.yaml"


class Server:
    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}/"
        self.issue = root / "issues" / "033.yaml"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "preview", "issues/033.yaml", "--port", str(port)],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            wait_for_port(port, timeout=20)
        except TimeoutError:  # say why: a crash, a busy port
            self.process.kill()
            raise AssertionError(self.process.communicate()[1]) from None

    def edit(self, old: str, new: str) -> None:
        text = self.issue.read_text("utf-8")
        assert old in text
        self.issue.write_text(text.replace(old, new, 1), "utf-8")

    def stop(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=10)
        return self.process.returncode, out, err


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "issues", tmp_path / "issues")
    shutil.copytree(REPO / "layouts", tmp_path / "layouts")
    shutil.copy(REPO / "newsletter.yaml", tmp_path / "newsletter.yaml")
    return tmp_path


@pytest.fixture
def server(workspace: Path):
    srv = Server(workspace, free_port())
    yield srv
    if srv.process.poll() is None:
        srv.stop()


def titles() -> list[str]:
    data = yaml.safe_load(SAMPLE.read_text("utf-8"))
    return [item["title"] for items in data["sections"].values() for item in items]


def assert_images_load(page) -> None:
    broken = page.frame_locator("#frame").locator("img").evaluate_all(
        """imgs => Promise.all(imgs.map(i => i.decode().then(() => null, () => i.src)))
                   .then(r => r.filter(Boolean))""")
    assert broken == []


def test_page_shows_every_item_title_and_the_inbox_line(page, server: Server) -> None:
    page.goto(server.url)
    body = page.frame_locator("#frame").locator("body")
    for title in titles():
        body.get_by_text(title, exact=True).wait_for()
    assert page.locator("#subject").inner_text() == (
        "Akira's Machine Learning News #33: Pre-training accuracy is not downstream accuracy")
    assert page.locator("#preheader").inner_text().startswith("A people-free ImageNet replacement")
    assert "KB of 102 KB" in page.locator("#size").inner_text()
    assert_images_load(page)
    screenshot(page, "preview-desktop")


def test_mobile_view_is_375px_wide_without_horizontal_scroll(page, server: Server) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(server.url)
    page.get_by_role("button", name="Mobile").click()
    frame = page.frame_locator("#frame")
    frame.get_by_text(titles()[0], exact=True).wait_for()
    page.wait_for_function("document.getElementById('frame').clientWidth === 375")
    scroll, client = frame.locator("html").evaluate(
        "el => [el.scrollWidth, el.clientWidth]")
    assert client == 375
    assert scroll <= client
    screenshot(page, "preview-mobile")


def test_text_and_web_views(page, server: Server) -> None:
    page.goto(server.url)
    page.get_by_role("button", name="Text").click()
    text = page.frame_locator("#frame").locator("#text")
    text.wait_for()
    shown = text.inner_text()
    assert "== Featured news ==" in shown
    assert "https://arxiv.org/abs/2109.10686" in shown
    page.get_by_role("button", name="Web").click()
    web = page.frame_locator("#frame")
    web.locator("main article.issue").wait_for()
    assert web.locator("h1").inner_text() == "Pre-training accuracy is not downstream accuracy"


def test_dark_mode_applies_the_emails_dark_styles(page, server: Server) -> None:
    page.goto(server.url)
    frame = page.frame_locator("#frame")
    frame.get_by_text(titles()[0], exact=True).wait_for()
    light = frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
    page.get_by_role("button", name="Dark").click()
    page.wait_for_function(
        "getComputedStyle(document.getElementById('frame').contentDocument.body).backgroundColor"
        " === 'rgb(17, 20, 24)'")
    assert light != "rgb(17, 20, 24)"


def test_saving_updates_the_page_without_a_reload_keeping_view_and_scroll(page, server: Server) -> None:
    page.goto(server.url)
    page.get_by_role("button", name="Mobile").click()
    frame = page.frame_locator("#frame")
    frame.get_by_text(titles()[0], exact=True).wait_for()
    # The frame narrows to 375px over a CSS transition; scrolling before it ends lets the
    # reflow (with the browser's scroll anchoring) move the place before any save.
    page.wait_for_function("document.getElementById('frame').clientWidth === 375")
    page.evaluate("window.notReloaded = true")
    page.evaluate("document.getElementById('frame').contentWindow.scrollTo(0, 900)")
    assert page.evaluate("document.getElementById('frame').contentWindow.scrollY") == 900
    # An edit below the reader's place: what they are looking at must not move.
    server.edit("Thanks for reading.", "Thanks for reading, edited while previewing.")
    frame.get_by_text("edited while previewing").wait_for(timeout=5000)
    assert page.evaluate("window.notReloaded") is True
    assert_images_load(page)
    assert page.get_by_role("button", name="Mobile").get_attribute("aria-pressed") == "true"
    y = page.evaluate("document.getElementById('frame').contentWindow.scrollY")
    assert abs(y - 900) < 5


def test_a_broken_save_shows_the_error_with_its_line_and_a_fix_heals(page, server: Server) -> None:
    page.goto(server.url)
    page.frame_locator("#frame").get_by_text(titles()[0], exact=True).wait_for()
    page.evaluate("window.notReloaded = true")
    server.edit("      summary: |\n        The authors train", "      summery: |\n        The authors train")
    errors = page.locator("#errors")
    errors.wait_for(state="visible", timeout=5000)
    shown = page.locator("#error-list").inner_text()
    line = next(n for n, text in enumerate(server.issue.read_text().splitlines(), 1) if "summery:" in text)
    assert f"issues/033.yaml:{line}:7: sections.featured[0]: unknown key 'summery'; did you mean 'summary'?" in shown
    assert page.locator("#device").is_hidden()
    server.edit("      summery: |", "      summary: |")
    errors.wait_for(state="hidden", timeout=5000)
    page.frame_locator("#frame").get_by_text(titles()[0], exact=True).wait_for()
    assert page.evaluate("window.notReloaded") is True
    assert server.process.poll() is None  # the server kept running


def test_warnings_and_config_changes_show_up(page, server: Server) -> None:
    page.goto(server.url)
    page.frame_locator("#frame").get_by_text(titles()[0], exact=True).wait_for()
    assert page.locator("#warnings li").count() == 0
    server.edit("preheader: A people-free", "preheader: " + "Very long. " * 15 + "A people-free")
    page.locator("#warnings li", has_text="inboxes show about 150").wait_for(timeout=5000)
    server.edit("title: Pre-training accuracy is not downstream accuracy", "title: A new title")
    page.locator("#subject", has_text="#33: A new title").wait_for(timeout=5000)
    config = server.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("name: Akira's Machine Learning News", "name: Renamed Weekly"))
    page.locator("#name", has_text="Renamed Weekly").wait_for(timeout=5000)


def test_a_layout_change_rebuilds(page, server: Server) -> None:
    page.goto(server.url)
    page.get_by_role("button", name="Text").click()
    page.frame_locator("#frame").locator("#text").wait_for()
    layout = server.root / "layouts" / "email.txt"
    layout.write_text(layout.read_text().replace("== {{ label }} ==", "### {{ label }} ###"))
    page.frame_locator("#frame").get_by_text("### Featured news ###").wait_for(timeout=5000)


def test_busy_port_is_a_clear_error_and_ctrl_c_stops_cleanly(server: Server) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "preview", "issues/033.yaml", "--port", str(server.port)],
        cwd=server.root, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == f"127.0.0.1:{server.port} is busy (Address already in use) (pass --port N)\n"
    code, out, err = server.stop()
    assert code == 0, err
    assert out.splitlines() == [f"Previewing issues/033.yaml at {server.url} (Ctrl-C stops)", "Stopped."]
    assert "Traceback" not in err


def test_the_server_listens_on_loopback_only(server: Server) -> None:
    addresses = [a for a in {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
                 if not a.startswith("127.") and a != "::1"]
    for address in addresses[:1]:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
            s.settimeout(1)
            assert s.connect_ex((address, server.port)) != 0


def test_send_test_button_mails_one_copy_like_send_test(page, workspace: Path, smtp, secret) -> None:
    from support import smtp_config

    config = workspace / "newsletter.yaml"
    # links: its base_url (127.0.0.1:8000) has no server here
    config.write_text(config.read_text() + smtp_config(smtp.port) + "links: {check_hosted: false}\n")
    server = Server(workspace, free_port())
    try:
        page.goto(server.url)
        page.get_by_label("Test address").fill("someone@localhost")
        page.get_by_role("button", name="Send test").click()
        page.locator("#test-result.bad").wait_for(timeout=10_000)
        assert "is not a valid email address" in page.locator("#test-result").inner_text()
        page.get_by_label("Test address").fill("me@example.org")
        page.get_by_role("button", name="Send test").click()
        page.locator("#test-result.ok").wait_for(timeout=10_000)
        assert page.locator("#test-result").inner_text() == "Test copy sent to me@example.org."
        ((rcpt, message),) = smtp.received()
        assert rcpt == "me@example.org"
        assert message["Subject"].startswith("[TEST] Akira's Machine Learning News #33")
    finally:
        server.stop()


def page_token(server: Server) -> str:
    """The per-run secret, read from the page as the browser gets it."""
    import urllib.request

    with urllib.request.urlopen(server.url, timeout=5) as response:
        return re.search(r'<meta name="preview-token" content="([^"]+)">', response.read().decode()).group(1)


def test_send_test_refuses_other_origins_even_with_the_secret(server: Server) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(server.url + "send-test", data=b'{"address": "x@example.com"}', method="POST",
                                     headers={"Content-Type": "application/json", "Origin": "https://evil.example",
                                              "X-Preview-Token": page_token(server)})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 403


def test_a_page_from_before_a_restart_is_told_to_reload(page, workspace: Path, smtp, secret) -> None:
    from support import smtp_config

    config = workspace / "newsletter.yaml"
    # links: its base_url (127.0.0.1:8000) has no server here
    config.write_text(config.read_text() + smtp_config(smtp.port) + "links: {check_hosted: false}\n")
    port = free_port()
    first = Server(workspace, port)
    page.goto(first.url)
    page.frame_locator("#frame").get_by_text(titles()[0], exact=True).wait_for()
    first.stop()
    second = Server(workspace, port)  # same URL, a new secret
    try:
        page.get_by_label("Test address").fill("me@example.org")
        page.get_by_role("button", name="Send test").click()
        page.locator("#test-result.bad").wait_for(timeout=10_000)
        assert "Reload the page" in page.locator("#test-result").inner_text()
        assert smtp.received() == []
        page.reload()
        page.get_by_label("Test address").fill("me@example.org")
        page.get_by_role("button", name="Send test").click()
        page.locator("#test-result.ok").wait_for(timeout=10_000)
        assert len(smtp.received()) == 1
    finally:
        second.stop()


DEEP_LIST = "number: " + "[" * 600 + "]" * 600 + "\n"
DEEP_MAPPING = "".join("  " * i + f"k{i}:\n" for i in range(600)) + "  " * 600 + "leaf\n"


def test_a_too_deeply_nested_save_shows_an_error_and_a_fix_heals(page, server: Server) -> None:
    good = server.issue.read_text("utf-8")
    page.goto(server.url)
    frame = page.frame_locator("#frame")
    frame.get_by_text(titles()[0], exact=True).wait_for()
    page.evaluate("window.notReloaded = true")
    for deep in (DEEP_LIST, DEEP_MAPPING):
        server.issue.write_text(deep, "utf-8")
        page.locator("#errors").wait_for(state="visible", timeout=5000)
        shown = page.locator("#error-list").inner_text()
        assert "issues/033.yaml" in shown
        assert re.search(r"nest|deep", shown, re.IGNORECASE), shown
        assert "Traceback" not in shown
        server.issue.write_text(good.replace("Thanks for reading.", "Thanks for reading, healed."), "utf-8")
        page.locator("#errors").wait_for(state="hidden", timeout=5000)
        frame.get_by_text("healed", exact=False).wait_for(timeout=5000)
        server.issue.write_text(good, "utf-8")
        frame.get_by_text("healed", exact=False).wait_for(state="detached", timeout=5000)
    assert page.evaluate("window.notReloaded") is True
    code, _, err = server.stop()
    assert code == 0 and "Traceback" not in err, err


@pytest.mark.parametrize("broken", ["review_issue", "build_snapshot"])
def test_the_watcher_survives_any_exception(workspace: Path, monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    """A bug in the checker (review_issue) or in the builder itself (build_snapshot): the
    error shows, the watcher thread lives on, and the next save heals the page."""
    import threading
    import time

    from newsletter.web import preview as module

    issue = workspace / "issues" / "033.yaml"
    preview = module.Preview(issue, workspace / "newsletter.yaml", "issues/033.yaml")
    watcher = threading.Thread(target=preview.watch, daemon=True)
    watcher.start()

    def save_until(condition, note: str) -> None:
        # Saved again until seen: the watcher may not have taken its first look yet.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            issue.write_text(issue.read_text("utf-8") + f"# {note}\n", "utf-8")
            for _ in range(25):
                if condition(preview.snapshot.state):
                    return
                time.sleep(0.02)
        raise AssertionError(f"never saw the save: {preview.snapshot.state}")

    def boom(*args, **kwargs):
        raise ZeroDivisionError("boom in the builder")

    try:
        monkeypatch.setattr(module, broken, boom)
        save_until(lambda state: state["errors"], "saved")
        assert preview.snapshot.state["errors"] == ["issues/033.yaml: ZeroDivisionError: boom in the builder"]
        monkeypatch.undo()
        save_until(lambda state: not state["errors"] and state.get("subject"), "saved again")
        assert watcher.is_alive()
        assert preview.snapshot.images  # the referenced images are servable again
    finally:
        preview.stopping.set()
        watcher.join(timeout=5)
