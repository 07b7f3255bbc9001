"""Rendering, judged by what a reader sees: parse the HTML and the text part."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from bs4 import BeautifulSoup

from newsletter.authoring.build import preview_values, review_issue
from newsletter.authoring.check import check_issue
from newsletter.authoring.render import GMAIL_CLIP_BYTES, Renderer

from support import ITEM, items_block

FULL = """\
intro: "Hello *readers*."
highlights:
  - "[PASS](https://arxiv.org/abs/2109.13228?ref=x) leaves people out."
sections:
  featured:
    - title: Scale efficiently
      url: https://arxiv.org/abs/2109.10686
      image: {src: img/figure.png, alt: Scaling curves, caption: From the paper}
      paper: {arxiv: "2109.10686", title: "Scale Efficiently: Insights from Pre-training"}
      summary: Wider is not always better.
  use_cases:
    - title: Sustainable AI
      url: https://thegradient.pub/sustainable-ai/?utm_source=gradient
      card: {title: The Imperative for Sustainable AI Systems, description: An essay}
      summary: "Write to [me](mailto:me@example.com)."
  papers:
    - title: PatchCore
      url: https://arxiv.org/abs/2106.08265
      summary: Anomalies.
more:
  - {title: More reading, url: "https://example.com/more", description: Later}
outro: Bye.
"""


def render(ws, body=FULL, **top):
    reviewed = review_issue(ws.issue(body=body, **top), ws.settings)
    html, text = reviewed.rendered.fill(preview_values(ws.settings))
    return reviewed, BeautifulSoup(html, "html.parser"), text, BeautifulSoup(reviewed.rendered.web, "html.parser")


def utm(href: str) -> dict[str, list[str]]:
    return {k: v for k, v in parse_qs(urlsplit(href).query).items() if k.startswith("utm_")}


def test_email_and_web_show_every_item_with_a_tagged_link(ws) -> None:
    _, email, _, web = render(ws)
    for soup in (email, web):
        for title, url in [("Scale efficiently", "https://arxiv.org/abs/2109.10686"),
                           ("Sustainable AI", "https://thegradient.pub/sustainable-ai/"),
                           ("PatchCore", "https://arxiv.org/abs/2106.08265")]:
            link = soup.find("a", string=title)
            assert link is not None, title
            assert link["href"].startswith(url)
            assert utm(link["href"])["utm_medium"] == ["email"]
            assert utm(link["href"])["utm_campaign"] == ["Test Weekly #1"]


def test_utm_keeps_what_the_author_wrote(ws) -> None:
    _, email, _, _ = render(ws)
    gradient = email.find("a", string="Sustainable AI")["href"]
    assert parse_qs(urlsplit(gradient).query)["utm_source"] == ["gradient"]  # not overwritten
    highlight = email.find("a", string="PASS")["href"]
    assert parse_qs(urlsplit(highlight).query)["ref"] == ["x"]
    assert email.find("a", string="me")["href"] == "mailto:me@example.com"
    unsubscribe = email.find("a", string="Unsubscribe")["href"]
    assert unsubscribe.startswith("https://news.example.com/unsubscribe?token=")
    assert "utm_" not in unsubscribe


def test_utm_can_be_turned_off(ws) -> None:
    ws.configure(extra="utm:\n  enabled: false\n")
    _, email, _, _ = render(ws)
    assert email.find("a", string="PatchCore")["href"] == "https://arxiv.org/abs/2106.08265"


def test_email_shows_image_paper_card_labels_and_footer(ws) -> None:
    _, email, _, _ = render(ws)
    img = email.find("img", alt="Scaling curves")
    assert img["src"] == "img/figure.png"
    assert int(img["width"]) <= 600
    # width:100% with a max-width, not max-width:100% alone: a blocked image then shrinks
    # to the phone too, instead of laying the whole card out at its width attribute.
    style = img["style"].replace(" ", "")
    assert "width:100%" in style and f"max-width:{img['width']}px" in style
    assert "From the paper" in email.get_text()
    paper = email.find("a", string="arXiv:2109.10686")
    assert paper["href"].startswith("https://arxiv.org/abs/2109.10686")
    assert "Scale Efficiently: Insights from Pre-training" in paper.parent.get_text()
    assert "The Imperative for Sustainable AI Systems" in email.get_text()
    headings = [h.get_text() for h in email.find_all("h2")]
    assert headings[:1] == ["This week's highlights"]
    assert ["Featured news", "Use cases", "Papers", "More posts"] == headings[1:]
    text = email.get_text(" ")
    assert "1 Example Street, Springfield" in text
    assert "Written by the editor" in " ".join(text.split())
    assert email.find("a", string="Read this issue in your browser")["href"] == "https://news.example.com/1/"


@pytest.mark.parametrize(
    "lang, labels",
    [
        ("en", ["Featured news", "Use cases", "Papers"]),
        ("ja", ["今週の注目ニュース", "機械学習の活用事例", "論文"]),
        ("zh", ["本周精选", "机器学习应用案例", "论文"]),
    ],
)
def test_section_labels_and_lang_follow_the_issue(ws, lang: str, labels: list[str]) -> None:
    _, email, text, web = render(ws, lang=lang)
    assert email.html["lang"] == lang
    assert web.html["lang"] == lang
    for label in labels:
        assert email.find("h2", string=label) is not None
        assert web.find("h2", string=label) is not None
        assert f"== {label} ==" in text


def test_newsletter_yaml_overrides_a_section_label(ws) -> None:
    ws.configure(extra="sections:\n  papers: Papers of the week\n")
    _, email, _, web = render(ws)
    assert email.find("h2", string="Papers of the week") is not None
    assert web.find("h2", string="Papers of the week") is not None


def test_issue_lang_defaults_to_newsletter_lang(ws) -> None:
    ws.configure(lang="ja")
    _, email, _, _ = render(ws)
    assert email.html["lang"] == "ja"


HOSTILE = """\
highlights:
  - "<script>alert('h')</script> and [click](javascript:alert(1))"
sections:
  featured:
    - title: "<img src=x onerror=alert(1)> {{ 7 * 7 }} {% if true %}yes{% endif %}"
      url: "https://example.com/a?q=<b>&x=\\"onmouseover=alert(1)"
      source: "</mj-text><mj-raw><script>alert(2)</script></mj-raw>"
      summary: |
        <iframe src="https://evil.example"></iframe> [x](javascript:alert(1))
        [y](JAVASCRIPT:alert(1)) [z](data:text/html;base64,PHNjcmlwdD4=) <a href="javascript:1">a</a>
        Line one\r
        Line two {{ secret }}
      image: {src: img/figure.png, alt: "\\" onload=\\"alert(1)"}
"""


def assert_inert(soup: BeautifulSoup) -> None:
    assert soup.find_all(["script", "iframe", "mj-raw", "object", "embed"]) == []
    for tag in soup.find_all(True):
        for attr, value in tag.attrs.items():
            assert not attr.lower().startswith("on"), (tag.name, attr)
            if attr in ("href", "src"):
                assert not str(value).strip().lower().startswith(("javascript:", "data:")), value


def test_hostile_content_is_shown_as_text_and_never_live(ws) -> None:
    _, email, text, web = render(ws, body=HOSTILE)
    for soup in (email, web):
        assert_inert(soup)
        shown = soup.get_text()
        assert "<img src=x onerror=alert(1)> {{ 7 * 7 }} {% if true %}yes{% endif %}" in shown
        assert "<script>alert('h')</script>" in shown
        assert "{{ secret }}" in shown
        assert "49" not in shown
    assert "{{ 7 * 7 }}" in text
    assert "javascript:" not in " ".join(a.get("href", "") for a in email.find_all("a"))


def test_markdown_raw_html_is_escaped_not_dropped(ws) -> None:
    _, email, _, _ = render(ws, body=HOSTILE)
    assert '<iframe src="https://evil.example"></iframe>' in email.get_text()


def test_a_30_item_issue_stays_under_90_kb(ws) -> None:
    summary = "A two-sentence summary of a paper that says what it found. " * 3
    body = items_block("papers", 30, summary)
    reviewed, email, _, _ = render(ws, body=body)
    size = len(str(reviewed.rendered.fill(preview_values(ws.settings))[0]).encode())
    assert size < 90 * 1024, size
    assert len(email.find_all("h3")) == 30
    assert not reviewed.warnings


def test_size_warning_fires_on_a_huge_issue(ws) -> None:
    body = items_block("papers", 60, "Long text with [a link](https://ml.test/x). " * 12)
    reviewed, _, _, _ = render(ws, body=body)
    (warning,) = reviewed.warnings
    assert warning.warning
    assert "Gmail clips messages over 102 KB" in str(warning)
    assert reviewed.rendered.html_size > GMAIL_CLIP_BYTES


def test_text_part_fits_72_columns_and_writes_out_every_link(ws) -> None:
    _, email, text, _ = render(ws)
    for line in text.splitlines():
        assert len(line) <= 72 or " " not in line.strip() or re.search(r"https?://\S{40,}", line), line
    for href in ["https://arxiv.org/abs/2109.13228?ref=x", "https://arxiv.org/abs/2109.10686",
                 "https://thegradient.pub/sustainable-ai/?utm_source=gradient", "mailto:me@example.com",
                 "https://example.com/more", "https://news.example.com/unsubscribe?token="]:
        assert href in text, href
    assert "<" not in text.replace("<http", "").replace("<mailto", "")  # no markup leaks
    assert "Hello _readers_." in text
    assert "1 Example Street, Springfield" in text


def test_text_part_wraps_cjk_by_display_width(ws) -> None:
    long_zh = "这是一段很长的中文摘要，用来检查纯文本部分在没有空格的语言里也能按显示宽度换行。" * 3
    body = "sections:\n  featured:\n" + ITEM.format(title="标题", url="https://example.com/zh", summary=long_zh)
    _, _, text, _ = render(ws, body=body, lang="zh")
    import unicodedata

    def width(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    lines = [ln for ln in text.splitlines() if "中文摘要" in ln or "换行" in ln]
    assert len(lines) >= 3
    assert all(width(ln) <= 72 for ln in lines), [width(ln) for ln in lines]
    assert not any(ln.startswith(("，", "。")) for ln in text.splitlines())


def test_web_page_is_semantic_html_not_email_tables(ws) -> None:
    _, _, _, web = render(ws)
    assert web.find("table") is None
    assert web.find("main") and web.find("article")
    assert web.find("h1").get_text() == "Test issue"
    assert web.find("section", id="papers") is not None
    figure = web.find("figure")
    assert figure.find("img")["alt"] == "Scaling curves"
    assert figure.find("figcaption").get_text() == "From the paper"
    assert web.find("meta", attrs={"name": "viewport"}) is not None
    assert web.find("time")["datetime"] == "2021-10-10"


def test_nothing_is_fetched_from_the_internet(ws) -> None:
    reviewed, email, _, web = render(ws)
    for soup in (email, web):
        assert soup.find_all("link") == []
        assert soup.find_all("script") == []
        for style in soup.find_all("style"):
            assert "@import" not in style.get_text() and "url(" not in style.get_text()
    assert "googleapis" not in reviewed.rendered.html


def test_preheader_is_hidden_first_text_of_the_email(ws) -> None:
    _, email, _, _ = render(ws, preheader="Inbox teaser")
    hidden = email.body.find("div")
    assert "display:none" in hidden["style"].replace(" ", "")
    assert hidden.get_text().startswith("Inbox teaser")


def test_personal_fields_are_escaped_per_recipient(ws) -> None:
    issue = check_issue(ws.issue()).issue
    rendered = Renderer(ws.settings).render(issue)
    html, text = rendered.fill({"unsubscribe_url": 'https://x.example/u?t=1&a="><script>'})
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("a", string="Unsubscribe")["href"] == 'https://x.example/u?t=1&a="><script>'
    assert soup.find_all("script") == []
    assert 'https://x.example/u?t=1&a="><script>' in text
    assert rendered.marker not in html and rendered.marker not in text


def test_author_text_cannot_forge_a_personal_marker(ws) -> None:
    issue = check_issue(ws.issue()).issue
    first = Renderer(ws.settings).render(issue)
    second = Renderer(ws.settings).render(issue)
    assert first.marker != second.marker


@pytest.mark.parametrize("name, encoded", [
    ("img/my figure.png", "img/my%20figure.png"),
    ("img/\u56fe.png", "img/%E5%9B%BE.png"),
    ("img/100% #1?.png", "img/100%25%20%231%3F.png"),
])
def test_image_names_with_spaces_or_non_ascii_are_percent_encoded_and_copied(ws, tmp_path, name, encoded) -> None:
    from newsletter.authoring.build import write_issue

    (ws.issues / name).write_bytes((ws.issues / "img" / "figure.png").read_bytes())
    body = ("sections:\n  featured:\n    - title: T\n      url: https://arxiv.org/abs/2109.10686\n"
            f"      summary: S\n      image: {{src: \"{name}\", alt: A figure}}\n")
    reviewed, email, _, web = render(ws, body=body)
    assert email.find("img", alt="A figure")["src"] == encoded
    assert web.find("img", alt="A figure")["src"] == encoded
    written = write_issue(reviewed, ws.settings, tmp_path / "build")
    assert tmp_path / "build" / "1" / name in written  # copied under its own name, beside the pages
    assert (tmp_path / "build" / "1" / name).read_bytes() == (ws.issues / name).read_bytes()
    # Hosted (base_url) or attached (cid:), the URL refers to the same file.
    rendered = Renderer(ws.settings).render(reviewed.rendered.issue, lambda src: f"https://news.example.com/1/{src}")
    hosted = BeautifulSoup(rendered.html, "html.parser").find("img", alt="A figure")["src"]
    assert hosted == f"https://news.example.com/1/{encoded}"
    rendered = Renderer(ws.settings).render(reviewed.rendered.issue, lambda src: "cid:img-1@example.com")
    assert BeautifulSoup(rendered.html, "html.parser").find("img", alt="A figure")["src"] == "cid:img-1@example.com"


def test_a_papers_first_authors_show_in_every_part(ws) -> None:
    from bs4 import BeautifulSoup

    from newsletter.authoring.check import check_issue
    from newsletter.authoring.render import Renderer

    body = ("sections:\n  papers:\n    - title: Scale efficiently\n      url: https://arxiv.org/abs/2109.10686\n"
            "      summary: S.\n      paper: {arxiv: '2109.10686', title: Scale Efficiently,"
            " authors: 'Tay, Dehghani, et al.'}\n")
    rendered = Renderer(ws.settings).render(check_issue(ws.issue(body=body)).issue)
    for part in (BeautifulSoup(rendered.html, "html.parser").get_text(), BeautifulSoup(rendered.web, "html.parser")
                 .get_text(), rendered.text):
        assert "Tay, Dehghani, et al." in " ".join(part.split())
