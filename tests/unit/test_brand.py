"""The author's own look and wording: brand (logo, accent, footer), labels, greeting; and
what the text part and the email's contents show. Judged by what a reader sees."""

from __future__ import annotations

import email
from email import policy

import pytest
from bs4 import BeautifulSoup

from newsletter.authoring.build import preview_values, review_issue, write_issue
from newsletter.authoring.check import check_issue
from newsletter.authoring.labels import greeting, joined, labels_for
from newsletter.authoring.render import Renderer
from newsletter.brand import AA, DARK_SURFACE, LIGHT_SURFACE, accent_problem, contrast, palette
from newsletter.errors import Invalid
from newsletter.mailing.personalize import MessageTemplate, Recipient

from support import REPO, SAMPLE_IMAGE

LOGO = REPO / "issues" / "img" / "logo.png"
SECTIONS = """\
sections:
  featured:
    - title: Scale efficiently
      url: https://arxiv.org/abs/2109.10686
      image: {src: img/figure.png, alt: Scaling curves, caption: From the paper}
      summary: Wider is **not** always better.
  papers:
    - title: Is bigger better?
      url: https://thegradient.pub/sustainable-ai/
      card: {title: Is this the page's title?, description: One line from it, image: img/figure.png}
      summary: Cards.
"""


def render(ws, body=SECTIONS, **top):
    reviewed = review_issue(ws.issue(body=body, **top), ws.settings)
    html, text = reviewed.rendered.fill(preview_values(ws.settings))
    return reviewed, BeautifulSoup(html, "html.parser"), text, BeautifulSoup(reviewed.rendered.web, "html.parser")


def brand(ws, extra: str = "") -> None:
    (ws.root / "logo.png").write_bytes(LOGO.read_bytes())
    ws.configure(extra="brand:\n  logo: logo.png\n  accent: '#0b6e4f'\n  footer: Forward it to a *friend*.\n" + extra)


def test_logo_accent_and_footer_in_the_email_and_the_web_page(ws, tmp_path) -> None:
    brand(ws)
    reviewed, mail, text, web = render(ws)
    logo = mail.find("img", class_="logo")
    assert logo["alt"] == "Test Weekly" and logo["src"] == "brand/logo.png"
    assert int(logo["height"]) == 44 and int(logo["width"]) <= 240
    assert web.find("img", class_="logo")["alt"] == "Test Weekly"
    assert "color: #0b6e4f" in mail.find("a", string="Scale efficiently")["style"]
    assert "Forward it to a friend." in " ".join(mail.get_text().split())
    assert "Forward it to a _friend_." in text and web.find(class_="own") is not None
    written = write_issue(reviewed, ws.settings, tmp_path / "out")
    assert (tmp_path / "out" / "1" / "brand" / "logo.png").read_bytes() == LOGO.read_bytes()
    assert tmp_path / "out" / "1" / "brand" / "logo.png" in written


def test_footer_per_language(ws) -> None:
    ws.configure(extra="brand:\n  footer: {en: Forward it, zh: 转发给朋友}\n")
    assert "Forward it" in render(ws)[2] and "转发给朋友" in render(ws, lang="zh")[2]
    assert "转发给朋友" not in render(ws, lang="ja")[2]


def test_logo_alt_and_attached_by_content_id_without_base_url(ws) -> None:
    brand(ws, "  logo_alt: The Weekly\n")
    config = ws.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("base_url: https://news.example.com\n", ""))
    rendered = Renderer(ws.settings).render(check_issue(ws.issue(body=SECTIONS)).issue, lambda src: f"cid:{src}")
    assert BeautifulSoup(rendered.html, "html.parser").find("img", class_="logo")["alt"] == "The Weekly"
    message = MessageTemplate(rendered, ws.settings, b"k", attach_images=True).personalize(Recipient("a@b.example"))
    parsed = email.message_from_bytes(message, policy=policy.default)
    assert LOGO.read_bytes() in [p.get_content() for p in parsed.walk() if p.get_content_type() == "image/png"]


def test_a_missing_logo_is_a_warning_and_the_name_stands_in(ws) -> None:
    ws.configure(extra="brand:\n  logo: nowhere.png\n")
    reviewed, mail, _, _ = render(ws)
    assert any("brand.logo: no image file 'nowhere.png'" in str(w) for w in reviewed.warnings)
    assert mail.find("img", class_="logo") is None and mail.find(class_="wordmark").get_text() == "Test Weekly"


@pytest.mark.parametrize("accent, warns", [("#1a5fb4", False), ("#0b8a5f", True), ("#f4c430", True)])
def test_check_warns_about_a_pale_accent_where_it_is_written(ws, accent: str, warns: bool) -> None:
    ws.configure(extra=f"brand:\n  accent: '{accent}'\n")
    ws.issue()
    result = ws.run("check", "issues/001.yaml")
    assert result.exit_code == 0
    line = next((ln for ln in result.stderr.splitlines() if "brand.accent" in ln), None)
    if warns:
        assert line.startswith("newsletter.yaml:13:11: warning: brand.accent: "), line
        shade = line.split("such as ")[1].split()[0]
        assert contrast(shade, LIGHT_SURFACE) >= AA
    else:
        assert line is None


@pytest.mark.parametrize("accent", ["#1a5fb4", "#e4572e", "#7b2cbf", "#f4c430", "#000000", "#ffffff"])
def test_derived_colours_always_reach_4_5(accent: str) -> None:
    colours = palette(accent)
    assert contrast(colours.accent_dark, DARK_SURFACE) >= AA
    assert contrast(colours.on_accent_dark, colours.accent_dark) >= AA
    if not accent_problem(accent):
        assert contrast(colours.on_accent, colours.accent) >= AA


def test_an_accent_that_is_not_a_colour_is_an_error(ws) -> None:
    ws.configure(extra="brand:\n  accent: blue\n")
    with pytest.raises(Invalid, match="brand.accent: 'blue' does not look like a colour like #1a5fb4"):
        _ = ws.settings


@pytest.mark.parametrize("url, warns", [("http://news.example.com/u?t={token}", True),
                                        ("https://news.example.com/u?t={token}", False),
                                        ("http://127.0.0.1:8000/u?t={token}", False)])
def test_check_warns_that_a_non_https_unsubscribe_url_loses_one_click(ws, url: str, warns: bool) -> None:
    config = ws.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("https://news.example.com/unsubscribe?token={token}", url))
    ws.issue()
    result = ws.run("check", "issues/001.yaml")
    assert ("unsubscribe.url: is not https, so messages go without List-Unsubscribe-Post" in result.stderr) == warns


def test_labels_from_newsletter_yaml_then_the_issue(ws) -> None:
    ws.configure(extra="labels:\n  highlights: This month's highlights\n  paper: {en: Preprint, zh: 预印本}\n"
                       "  contents: Inside\n")
    _, mail, text, web = render(ws, highlights='["One"]', labels="{contents: Also inside}")
    for shown in (mail.get_text(), web.get_text(), text):
        assert "This month's highlights" in shown and "This week" not in shown
    assert "Also inside" in mail.get_text() and "Also inside" in web.get_text()
    assert labels_for("zh", {"paper": {"en": "Preprint", "zh": "预印本"}})["paper"] == "预印本"
    assert labels_for("ja", {"paper": {"en": "Preprint"}})["paper"] == "論文"  # no Japanese given: built in


@pytest.mark.parametrize("where", ["config", "issue"])
def test_an_unknown_label_is_an_error_with_a_hint(ws, where: str) -> None:
    if where == "config":
        ws.configure(extra="labels:\n  higlights: Monthly\n")
        with pytest.raises(Invalid) as raised:
            _ = ws.settings
    else:
        with pytest.raises(Invalid) as raised:
            check_issue(ws.issue(labels="{higlights: Monthly}"))
    assert "labels: unknown key 'higlights'; did you mean 'highlights'?" in str(raised.value.problems[0])


def test_a_label_may_only_use_its_own_placeholders(ws) -> None:
    ws.configure(extra="labels:\n  issue: 'No. {num}'\n")
    with pytest.raises(Invalid, match=r"labels.issue: \{num\} is not filled in here; this label can use: \{number\}"):
        _ = ws.settings


@pytest.mark.parametrize("template, name, shown", [
    ("Hi {name},", "Ada", "Hi Ada,"), ("Hi {name},", "", "Hi,"), ("Hi {name}, welcome!", "  ", "Hi, welcome!"),
    ("{name}，你好！", "", "你好！"), ("{name}，你好！", "李伟", "李伟，你好！"), ("Hello!", "", "Hello!")])
def test_greeting_with_and_without_a_name(template: str, name: str, shown: str) -> None:
    assert greeting(labels_for("en", {"greeting": template}), name) == shown


def test_greeting_no_name_label_words_it_differently() -> None:
    labels = labels_for("ja", {"greeting": "{name}さん、こんにちは", "greeting_no_name": "こんにちは"})
    assert greeting(labels, "") == "こんにちは" and greeting(labels, "佐藤") == "佐藤さん、こんにちは"


def test_greeting_is_personal_escaped_and_matches_what_is_sent(ws) -> None:
    ws.configure(extra='greeting: "Hi {name},"\n')
    rendered = Renderer(ws.settings).render(check_issue(ws.issue()).issue)
    template = MessageTemplate(rendered, ws.settings, b"k", attach_images=False)
    for name, shown in [('<b>Eve</b> "x"', 'Hi <b>Eve</b> "x",'), ("", "Hi,")]:
        recipient = Recipient("a@example.com", name)
        message = email.message_from_bytes(template.personalize(recipient), policy=policy.default)
        html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
        text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert (html, text) == rendered.fill(template.values(recipient))
        assert BeautifulSoup(html, "html.parser").find(class_="greeting").get_text() == shown
        assert f"\n{shown}\n" in text
        assert "<b>Eve" not in html
    built = rendered.fill(preview_values(ws.settings))[0]
    assert "Hi Ada Lovelace," in built  # built files and the preview show a sample name


def test_contents_link_into_the_web_version_or_are_plain_words(ws) -> None:
    _, mail, _, web = render(ws)
    assert [a["href"] for a in mail.find(class_="contents").find_all("a")] == [
        "https://news.example.com/1/#featured", "https://news.example.com/1/#papers"]
    assert web.find("nav", class_="contents").find("a")["href"] == "#featured"
    config = ws.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("base_url: https://news.example.com\n", ""))
    _, mail, _, _ = render(ws)
    assert mail.find(class_="contents").find_all("a") == [] and "Featured news" in mail.find(class_="contents").text


def test_cards_show_a_thumbnail_and_their_source_once(ws) -> None:
    reviewed, mail, _, web = render(ws)
    card = mail.find(class_="linkcard")
    assert card.find("img")["alt"] == "" and card.find("img")["src"] == "img/figure.png"
    assert "thegradient.pub" not in card.get_text()
    assert mail.get_text().count("thegradient.pub") == 1 and web.get_text().count("thegradient.pub") == 1
    assert web.find("aside", class_="card").find("img")["alt"] == ""
    assert [i.src for i in reviewed.rendered.issue.images] == ["img/figure.png", "img/figure.png"]


def test_text_part_captions_colons_and_bold(ws) -> None:
    _, _, text, _ = render(ws)
    assert "[Scaling curves]\nFrom the paper\n" in text
    assert "> Is this the page's title? One line from it" in text
    assert "Wider is **not** always better." in text
    _, _, text, _ = render(ws, lang="zh")
    assert "> Is this the page's title? One line from it" in text  # no colon after a question
    assert "在浏览器中阅读：\n" in text and "退订：https://" in text


@pytest.mark.parametrize("head, tail, lang, shown", [
    ("Paper", "arXiv:1", "en", "Paper: arXiv:1"), ("论文", "arXiv:1", "zh", "论文：arXiv:1"),
    ("Why?", "Because", "en", "Why? Because"), ("为什么？", "因为", "zh", "为什么？因为"),
    ("Title", None, "en", "Title"), ("Read", "", "en", "Read:"),
    ("阅读", "", "zh", "阅读：")])
def test_joined_punctuates_for_the_language(head, tail, lang, shown) -> None:
    assert joined(head, tail, lang) == shown


def test_card_image_must_exist(ws) -> None:
    body = SECTIONS.replace("image: img/figure.png}", "image: img/nope.png}")
    with pytest.raises(Invalid, match="card.image: image file 'img/nope.png' does not exist"):
        check_issue(ws.issue(body=body))
    assert SAMPLE_IMAGE.is_file()


def test_the_archive_publishes_the_logo_the_email_links_to(ws, tmp_path) -> None:
    from newsletter.web.archive import build_archive

    brand(ws)
    ws.issue(body=SECTIONS)
    build_archive(ws.settings, tmp_path / "site")
    assert (tmp_path / "site" / "1" / "brand" / "logo.png").read_bytes() == LOGO.read_bytes()
