"""`newsletter enrich` against a local web (tests/fakeweb.py): what it fills, what it keeps
byte for byte, its cache, --force, failures, limits, and arXiv's pace. Nothing leaves
127.0.0.1: a guard refuses any other address."""

from __future__ import annotations

import difflib
import io
import time
from pathlib import Path

import yaml
from PIL import Image

from newsletter.authoring import arxivmeta

from fakeweb import FOREVER_CAP, FakeWeb, configure

DEFAULT_INTERVAL = arxivmeta.INTERVAL  # read before any test shortens it


ISSUE = """\
# yaml-language-server: $schema=../issue.schema.json
number: 2        # the second one
date: 2021-10-10
title: "Links, filled in"
intro: |
  Written by hand.

  # not a comment: part of the intro
sections:
  featured:
    # OpenGraph: everything but the summary comes from the page
    - url: {base}/og.html
      summary: |
        An OpenGraph page.
    - title: Kept as written      # the author's own title
      url: {base}/twitter.html
      source: My source
      card:
        title: The author's card title
      summary: Twitter only.
  papers:
    - url: https://arxiv.org/abs/2109.10686v2
      summary: A paper with a version.
    - url: https://arxiv.org/pdf/2109.13228.pdf
      summary: A PDF link.
    - paper:
        arxiv: "2106.08265"
      summary: Only the arXiv id.
  articles:
    - url: {base}/jsonld.html
      summary: JSON-LD only.

    - url: {base}/title.html    # a bare title
      summary: A bare title.
    - url: {base}/relative.html
      summary: A relative image.
    - url: {base}/big-image.html
      summary: A big photo.
more:
  - url: {base}/latin1.html
  - title: A post the author named
    url: {base}/og.html
# the end
"""


def write_issue(ws, web, text: str = ISSUE) -> Path:
    return ws.write("002.yaml", text.format(base=web.base))


def loaded(path: Path) -> dict:
    return yaml.safe_load(path.read_text("utf-8"))


def only_insertions(before: str, after: str) -> list[str]:
    """The lines added; fails if any line of ``before`` was changed, moved or removed."""
    old, new = before.splitlines(True), after.splitlines(True)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    changed = [op for op in matcher.get_opcodes() if op[0] not in ("equal", "insert")]
    assert not changed, "".join(difflib.unified_diff(old, new))
    return [line for op in matcher.get_opcodes() if op[0] == "insert" for line in new[op[3]:op[4]]]


def test_enrich_fills_exactly_what_is_missing(ws, web) -> None:
    configure(ws, web)
    path = write_issue(ws, web)
    result = ws.run("enrich", "issues/002.yaml")
    assert result.exit_code == 0, result.stderr
    assert "value(s) filled in 10 item(s)" in result.stderr
    data = loaded(path)
    featured, papers, articles = (data["sections"][k] for k in ("featured", "papers", "articles"))
    assert featured[0] == {
        "url": web.url("/og.html"), "title": "An OpenGraph title", "source": "Open Graph Weekly",
        "card": {"title": "An OpenGraph title", "description": "What the OpenGraph page says.",
                 "image": featured[0]["card"]["image"]},
        "summary": "An OpenGraph page.\n"}
    assert featured[0]["card"]["image"].startswith("img/card-127-0-0-1-")
    # The author's title, source and card title stay; the card gets what it lacked.
    assert featured[1]["title"] == "Kept as written" and featured[1]["source"] == "My source"
    assert featured[1]["card"]["title"] == "The author's card title"
    assert featured[1]["card"]["description"] == "Said in a Twitter card."
    assert featured[1]["card"]["image"].endswith(".png")
    assert papers[0] == {
        "url": "https://arxiv.org/abs/2109.10686v2",
        "title": "Scale Efficiently: Insights from Pre-training and Fine-tuning Transformers",
        "source": "arXiv",
        "paper": {"arxiv": "2109.10686v2",
                  "title": "Scale Efficiently: Insights from Pre-training and Fine-tuning Transformers",
                  "authors": "Tay, Dehghani, et al."},
        "summary": "A paper with a version."}
    assert papers[1]["paper"] == {"arxiv": "2109.13228", "authors": "Asano, Rupprecht",
                                  "title": "PASS: An ImageNet replacement for self-supervised pretraining "
                                           "without humans"}
    assert papers[2]["url"] == "https://arxiv.org/abs/2106.08265"  # from the id alone
    assert papers[2]["paper"]["arxiv"] == "2106.08265" and papers[2]["paper"]["authors"] == "Roth"
    assert articles[0]["title"] == "A JSON-LD headline" and articles[0]["source"] == "LD Publisher"
    assert articles[0]["card"]["description"] == "Said in JSON-LD."
    assert articles[1] == {"url": web.url("/title.html"), "title": "Just a <title> element",
                           "source": "127.0.0.1", "summary": "A bare title."}  # no card for a title alone
    assert articles[2]["card"]["image"].endswith(".png")  # ../pic.png against <base href>
    assert data["more"] == [{"url": web.url("/latin1.html"), "title": "Café crème"},
                            {"title": "A post the author named", "url": web.url("/og.html")}]
    assert web.agents == {ws.settings.enrich.user_agent}
    check = ws.run("check", "issues/002.yaml")
    assert check.exit_code == 0, check.stderr


def test_enrich_keeps_every_line_the_author_wrote(ws, web) -> None:
    configure(ws, web)
    path = write_issue(ws, web)
    before = path.read_text("utf-8")
    assert ws.run("enrich", "issues/002.yaml").exit_code == 0
    added = only_insertions(before, path.read_text("utf-8"))
    assert added[:2] == ["      title: An OpenGraph title\n", "      source: Open Graph Weekly\n"]
    assert not any("#" in line for line in added)


def test_thumbnails_are_at_most_600_px_wide_and_re_encoded(ws, web) -> None:
    configure(ws, web)
    path = write_issue(ws, web)
    assert ws.run("enrich", "issues/002.yaml").exit_code == 0
    data = loaded(path)
    cards = {item["url"].rsplit("/", 1)[1]: item["card"]["image"]
             for key in ("featured", "articles") for item in data["sections"][key] if "image" in item.get("card", {})}
    served = {"og.html": "/img/photo.jpg", "big-image.html": "/img/big.jpg", "jsonld.html": "/img/alpha.png",
              "twitter.html": "/img/wide.png", "relative.html": "/assets/pic.png"}
    assert set(cards) == set(served)
    for page, src in cards.items():
        file = ws.issues / src
        original = web.images[served[page]][0]
        assert file.read_bytes() != original
        with Image.open(file) as thumb, Image.open(io.BytesIO(original)) as source:
            assert thumb.format in ("PNG", "JPEG")
            assert thumb.width == min(600, source.width)
            assert abs(thumb.height - source.height * thumb.width / source.width) <= 1
            assert not thumb.getexif()  # the camera's metadata stayed behind
    with Image.open(ws.issues / cards["jsonld.html"]) as alpha:
        assert alpha.format == "PNG" and alpha.mode == "RGBA"
    with Image.open(ws.issues / cards["big-image.html"]) as big:
        assert big.format == "JPEG" and big.size == (600, 400)


def test_a_rerun_makes_no_request(ws, web) -> None:
    configure(ws, web)
    path = write_issue(ws, web)
    before = path.read_text("utf-8")
    assert ws.run("enrich", "issues/002.yaml").exit_code == 0
    first = path.read_text("utf-8")
    path.write_text(before, "utf-8")
    count = web.count()
    result = ws.run("enrich", "issues/002.yaml")
    assert result.exit_code == 0 and "(0 request(s))" in result.stderr
    assert web.count() == count
    assert path.read_text("utf-8") == first
    assert ws.run("enrich", "issues/002.yaml").stderr.startswith("issues/002.yaml: 0 value(s) filled")


def test_force_replaces_what_the_author_wrote(ws, web) -> None:
    configure(ws, web)
    path = write_issue(ws, web)
    assert ws.run("enrich", "issues/002.yaml").exit_code == 0
    assert loaded(path)["sections"]["featured"][1]["title"] == "Kept as written"
    assert ws.run("enrich", "issues/002.yaml", "--force").exit_code == 0
    item = loaded(path)["sections"]["featured"][1]
    assert item["title"] == "A Twitter card title"
    assert item["source"] == "127.0.0.1"
    assert item["card"]["title"] == "A Twitter card title"
    assert item["summary"] == "Twitter only."  # the author's words are never replaced
    line = next(ln for ln in path.read_text("utf-8").splitlines() if "Twitter card title #" in ln)
    assert line.startswith("    - title: A Twitter card title") and line.endswith("# the author's own title")


FAILING = """\
number: 3
date: 2021-10-10
title: Failures
sections:
  featured:
    - url: {base}/missing
      summary: Not found.
    - url: {base}/broken
      summary: A server error.
    - url: {base}/slow.html
      summary: Too slow.
    - url: {base}/forever.html
      summary: An endless image.
    - url: {base}/declared-huge.html
      summary: A 50 MB image.
    - url: {base}/bad-image.html
      summary: Not an image.
    - url: {base}/loop
      summary: Redirects for ever.
    - url: {base}/to-ftp
      summary: Redirects to ftp.
    - url: {base}/notitle.html
      summary: No title.
    - url: {base}/paper.pdf
      summary: A PDF.
    - url: https://arxiv.org/abs/2109.99999
      summary: No such paper.
    - url: {base}/og.html
      summary: This one works.
"""


def test_failures_are_listed_where_they_are_and_exit_1(ws, web) -> None:
    configure(ws, web)
    path = ws.write("003.yaml", FAILING.format(base=web.base))
    before = path.read_text("utf-8")
    started = time.monotonic()
    result = ws.run("enrich", "issues/003.yaml")
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    b = web.base
    lines = result.stderr.splitlines()
    written = path.read_text("utf-8").splitlines()

    def at(url: str) -> str:  # where the url stands in the file as written
        return f"issues/003.yaml:{next(n for n, ln in enumerate(written, 1) if ln.endswith(url))}:12"

    assert lines[:-1] == [
        f"{at('/missing')}: {b}/missing: 404 Not Found",
        f"{at('/broken')}: {b}/broken: 500 Internal Server Error",
        f"{at('/slow.html')}: {b}/slow.html: timed out (no complete answer within 0.5 s)",
        f"{at('/forever.html')}: {b}/forever.html: preview image {b}/img/forever.png: is more than the "
        "10 MB allowed; stopped reading",
        f"{at('/declared-huge.html')}: {b}/declared-huge.html: preview image {b}/img/declared-huge.png: is 50 MB, "
        "more than the 10 MB allowed",
        f"{at('/bad-image.html')}: {b}/bad-image.html: preview image {b}/img/not-an-image.png: is not a PNG, "
        "JPEG, GIF or WebP image",
        f"{at('/loop')}: {b}/loop: more than 10 redirects",
        f"{at('/to-ftp')}: {b}/to-ftp: redirects (302) to ftp://example.com/file, which is not an "
        "http(s) address",
        f"{at('/notitle.html')}: {b}/notitle.html: the page gives no title; write one",
        f"{at('/paper.pdf')}: warning: {b}/paper.pdf: is application/pdf, not a web page",
        f"{at('/paper.pdf')}: {b}/paper.pdf: the page gives no title; write one",
        f"{at('/2109.99999')}: 2109.99999: arXiv has no such paper",
    ]
    assert "; 11 could not be filled (" in lines[-1]
    assert web.sent["/img/forever.png"] < FOREVER_CAP  # we hung up; it did not run to its end
    data = loaded(path)["sections"]["featured"]
    for failed in (0, 1, 2, 6, 7, 10):
        assert set(data[failed]) == {"url", "summary"}, data[failed]
    assert "image" not in data[3]["card"] and data[3]["title"] == "An endless image"
    assert data[11]["title"] == "An OpenGraph title"
    only_insertions(before, path.read_text("utf-8"))


def test_redirects_are_followed_and_reported(ws, web) -> None:
    configure(ws, web)
    ws.write("004.yaml", f"number: 4\ndate: 2021-10-10\ntitle: R\nsections:\n  featured:\n"
                         f"    - url: {web.url('/old')}\n      summary: Moved.\n")
    result = ws.run("enrich", "issues/004.yaml")
    assert result.exit_code == 0
    assert (f"issues/004.yaml:6:12: warning: {web.url('/old')}: redirects (301, 302) to "
            f"{web.url('/og-redirected.html')}; link it directly?") in result.stderr
    item = loaded(ws.issues / "004.yaml")["sections"]["featured"][0]
    assert item["url"] == web.url("/old") and item["title"] == "Where redirects end"


def test_arxiv_is_asked_once_for_every_id_of_the_issue(ws, web) -> None:
    configure(ws, web)
    write_issue(ws, web)
    count = web.count("/api/query")
    assert ws.run("enrich", "issues/002.yaml").exit_code == 0
    assert web.count("/api/query") == count + 1
    with web.lock:
        query = [p for _, p in web.requests if p.startswith("/api/query")][-1]
    assert "id_list=2106.08265%2C2109.10686v2%2C2109.13228&max_results=3" in query
    assert not [p for _, p in web.requests if "arxiv.org" in p]


def test_arxiv_gets_three_seconds_between_requests_across_runs(ws, web, monkeypatch) -> None:
    assert DEFAULT_INTERVAL == 3.0
    monkeypatch.setattr(arxivmeta, "INTERVAL", 1.0)
    configure(ws, web)
    for number, arxiv in ((5, "2109.10686"), (6, "2109.13228")):
        ws.write(f"00{number}.yaml", f"number: {number}\ndate: 2021-10-10\ntitle: A\nsections:\n  papers:\n"
                                     f"    - url: https://arxiv.org/abs/{arxiv}\n      summary: S.\n")
    before = len(web.times("/api/query"))
    assert ws.run("enrich", "issues/005.yaml").exit_code == 0
    assert ws.run("enrich", "issues/006.yaml").exit_code == 0  # a second run, at once
    first, second = web.times("/api/query")[before:]
    assert second - first >= 0.95
    stamp = ws.root / ".cache" / "newsletter" / "enrich" / "arxiv-last-request"
    assert abs(float(stamp.read_text()) - second) < 0.5


def test_at_most_two_requests_to_one_host_and_concurrency_in_all(ws) -> None:
    with FakeWeb() as web:
        configure(ws, web, concurrency=3)
        items = "".join(f"    - url: http://{host}:{web.port}/wait/{i}\n      summary: S.\n"
                        for host in ("127.0.0.1", "localhost") for i in range(5))
        ws.write("007.yaml", f"number: 7\ndate: 2021-10-10\ntitle: W\nsections:\n  featured:\n{items}")
        started = time.monotonic()
        assert ws.run("enrich", "issues/007.yaml").exit_code == 0
        assert web.max_in_flight == 3
        assert time.monotonic() - started < 10 * 0.3  # not one after the other
    with FakeWeb() as web:
        configure(ws, web, concurrency=8)
        items = "".join(f"    - url: {web.url(f'/wait/{i}')}\n      summary: S.\n" for i in range(6))
        ws.write("008.yaml", f"number: 8\ndate: 2021-10-10\ntitle: W\nsections:\n  featured:\n{items}")
        assert ws.run("enrich", "issues/008.yaml").exit_code == 0
        assert web.max_in_flight == 2


def test_check_says_enrich_can_fill_a_missing_title(ws) -> None:
    ws.write("009.yaml", """\
        number: 9
        date: 2021-10-10
        title: T
        sections:
          featured:
            - url: https://thegradient.pub/a
              summary: Only a link.
            - paper: {arxiv: "2109.10686"}
              summary: Only a paper.
            - summary: Nothing to go by.
        """)
    result = ws.run("check", "issues/009.yaml")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "issues/009.yaml:6:7: sections.featured[0]: 'title' is required; run `newsletter enrich` to fill it "
        "from the linked page",
        "issues/009.yaml:8:7: sections.featured[1]: 'title' is required; run `newsletter enrich` to fill it "
        "from arXiv",
        "issues/009.yaml:8:7: sections.featured[1]: 'url' is required; run `newsletter enrich` to fill it "
        "from the paper's arXiv id",
        "issues/009.yaml:8:7: sections.featured[1].paper: 'title' is required; run `newsletter enrich` to "
        "fill it from arXiv",
        "issues/009.yaml:10:7: sections.featured[2]: 'title' is required",
        "issues/009.yaml:10:7: sections.featured[2]: 'url' is required",
    ]
