"""The parts of `enrich` on their own: arXiv ids and answers, page metadata, thumbnails,
and the in-place YAML editing that must leave the author's lines alone."""

from __future__ import annotations

import difflib
import io

import pytest
import yaml
from PIL import Image

from newsletter.authoring import thumbs
from newsletter.authoring.arxivmeta import arxiv_id, parse_atom, short_authors
from newsletter.authoring.pagemeta import clean, page_meta
from newsletter.authoring.yamledit import Document

from fakeweb import FakeWeb


@pytest.mark.parametrize("url, expected", [
    ("https://arxiv.org/abs/2109.10686", "2109.10686"),
    ("https://arxiv.org/abs/2109.10686v2", "2109.10686v2"),
    ("http://arxiv.org/pdf/2109.10686.pdf", "2109.10686"),
    ("https://arxiv.org/pdf/2109.10686v3", "2109.10686v3"),
    ("https://arxiv.org/html/2109.10686v1", "2109.10686v1"),
    ("https://arxiv.org/html/2109.10686v1/", "2109.10686v1"),
    ("https://www.arxiv.org/abs/2109.10686?context=cs#top", "2109.10686"),
    ("https://export.arxiv.org/abs/cs/0112017v1", "cs/0112017v1"),
    ("https://arxiv.org/abs/0704.0001", "0704.0001"),
    ("https://arxiv.org/list/cs.LG/recent", None),
    ("https://arxiv.org/abs/2109.1068", None),
    ("https://notarxiv.org/abs/2109.10686", None),
    ("ftp://arxiv.org/abs/2109.10686", None),
])
def test_arxiv_ids_from_abs_pdf_and_html_links(url: str, expected: str | None) -> None:
    assert arxiv_id(url) == expected


def test_first_authors_by_family_name() -> None:
    assert short_authors(["Yi Tay", "Mostafa Dehghani", "Jinfeng Rao"]) == "Tay, Dehghani, et al."
    assert short_authors(["Yuki M. Asano", "Christian Rupprecht"]) == "Asano, Rupprecht"
    assert short_authors(["Martin Luther King Jr."]) == "King"
    assert short_authors([]) == ""


def test_the_api_answer_is_read_like_the_real_one() -> None:
    body = FakeWeb.atom({"id_list": ["2109.10686,2109.13228v1"]})
    papers = parse_atom(body)
    assert papers["2109.10686"].title == "Scale Efficiently: Insights from Pre-training and Fine-tuning Transformers"
    assert papers["2109.10686"] is papers["2109.10686v2"]
    assert papers["2109.13228v1"].authors == "Asano, Rupprecht"
    error = b"""<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1</id>
        <title>Error</title><summary>incorrect id format for 1</summary></entry></feed>"""
    assert parse_atom(error) == {}


def html(head: str) -> bytes:
    return f"<html><head>{head}</head><body></body></html>".encode()


def test_opengraph_wins_then_twitter_then_json_ld_then_plain_html() -> None:
    everything = html('<title>Plain</title><meta name="description" content="Plain text.">'
                      '<meta name="twitter:title" content="Twitter"><meta property="og:title" content="OG">'
                      '<script type="application/ld+json">{"@type": "Article", "headline": "LD"}</script>')
    assert page_meta(everything, "https://a.example/").title == "OG"
    no_og = everything.replace(b'<meta property="og:title" content="OG">', b"")
    assert page_meta(no_og, "https://a.example/").title == "Twitter"
    plain = page_meta(html('<title>Plain &amp; simple</title><meta name="Description" content=" A  line. ">'),
                      "https://a.example/")
    assert (plain.title, plain.description, plain.image) == ("Plain & simple", "A line.", None)


def test_images_resolve_against_the_final_url_and_base_href() -> None:
    meta = page_meta(html('<meta property="og:image" content="img/a.png">'), "https://a.example/posts/1")
    assert meta.image == "https://a.example/posts/img/a.png"
    meta = page_meta(html('<base href="https://cdn.example/x/"><meta property="og:image" content="../a.png">'),
                     "https://a.example/posts/1")
    assert meta.image == "https://cdn.example/a.png"
    meta = page_meta(html('<meta property="og:image" content="javascript:alert(1)">'), "https://a.example/")
    assert meta.image is None


def test_json_ld_graphs_publishers_and_image_objects() -> None:
    meta = page_meta(html('<script type="application/ld+json">[{"@context": "https://schema.org", "@graph": ['
                          '{"@type": "Organization", "name": "Org"},'
                          '{"@type": ["BlogPosting"], "headline": "Post", "image": ["/i.jpg"],'
                          ' "publisher": {"name": "The Publisher"}}]}]</script>'), "https://a.example/p")
    assert (meta.title, meta.image, meta.site_name) == ("Post", "https://a.example/i.jpg", "The Publisher")


def test_encodings_from_the_header_the_page_or_utf8() -> None:
    latin = "<html><head><title>Caf\xe9</title></head></html>".encode("latin-1")
    assert page_meta(latin, "https://a.example/", "iso-8859-1").title == "Café"
    assert page_meta("<title>Café</title>".encode(), "https://a.example/").title == "Café"
    assert page_meta(b"", "https://a.example/").title is None


def test_text_is_one_clean_line_cut_at_a_word() -> None:
    assert clean("a\n\tb\x00c  ") == "a b c"
    cut = clean("word " * 100, 40)
    assert len(cut) <= 40 and cut.endswith("word…")


def png(size: tuple[int, int], mode: str = "RGB", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("size, mode, fmt, expected", [
    ((3000, 1000), "RGB", "PNG", ((600, 200), ".png")),
    ((500, 5000), "RGB", "JPEG", ((120, 1200), ".jpg")),  # tall: fits 1200 high too
    ((300, 200), "RGBA", "WEBP", ((300, 200), ".png")),  # transparency stays: PNG
    ((300, 200), "RGB", "WEBP", ((300, 200), ".jpg")),
    ((800, 800), "P", "GIF", ((600, 600), ".png")),
])
def test_thumbnails(size, mode, fmt, expected) -> None:
    data, ext = thumbs.thumbnail(png(size, mode, fmt))
    with Image.open(io.BytesIO(data)) as image:
        assert (image.size, ext) == expected
        assert image.format == {".png": "PNG", ".jpg": "JPEG"}[ext]


def test_thumbnails_refuse_bombs_and_non_images() -> None:
    with pytest.raises(thumbs.ThumbError, match="too many to decode"):
        thumbs.thumbnail(png((10000, 10000), "1"))  # a few KB on the wire, 100 million pixels
    with pytest.raises(thumbs.ThumbError, match="not a PNG, JPEG, GIF or WebP"):
        thumbs.thumbnail(b"<svg xmlns='http://www.w3.org/2000/svg'/>")


def edited(text: str, *edits) -> str:
    doc = Document(text, "t.yaml")
    for path, key, value in edits:
        doc.set(path, key, value, ("title", "url", "source", "card", "summary"))
    return doc.text()


def added_lines(before: str, after: str) -> list[str]:
    ops = difflib.SequenceMatcher(a=before.splitlines(True), b=after.splitlines(True), autojunk=False).get_opcodes()
    assert all(op[0] in ("equal", "insert") for op in ops), after
    return [ln for op in ops if op[0] == "insert" for ln in after.splitlines(True)[op[3]:op[4]]]


@pytest.mark.parametrize("style", [
    "items:\n- url: https://a.example/  # first\n  summary: S\n",  # dashes at the parent's column
    "items:\n    -   url: https://a.example/  # first\n        summary: S\n",  # four and four
    "items:\n  - url: https://a.example/  # first\n    summary: S\n",
])
def test_new_keys_follow_the_files_own_indentation(style: str) -> None:
    out = edited(style, (("items", 0), "title", "T"), (("items", 0), "card", {"title": "C", "description": "D"}))
    assert len(added_lines(style, out)) == 4
    assert yaml.safe_load(out) == {"items": [{"url": "https://a.example/", "title": "T", "summary": "S",
                                              "card": {"title": "C", "description": "D"}}]}


def test_values_yaml_1_1_would_misread_are_quoted() -> None:
    text = "a: {x: 1}\n"
    tricky = ["yes", "No", "on", "null", "~", "2109.10686", "1:20", "2021-10-10", "0x1F", " padded ", "# not"]
    out = edited(text, *((("a",), f"k{i}", v) for i, v in enumerate(tricky)))
    assert yaml.safe_load(out)["a"] == {"x": 1, **{f"k{i}": v for i, v in enumerate(tricky)}}


def test_crlf_bom_and_comments_survive() -> None:
    text = "\ufeff# head\r\nitem:  # note\r\n  url: https://a.example/\r\n  summary: |\r\n    Text.\r\n"
    out = edited(text, (("item",), "title", "T"))
    assert out == text.replace("  url: https://a.example/\r\n", "  url: https://a.example/\r\n  title: T\r\n")


def test_a_file_that_mixes_indentation_is_made_uniform_and_says_so() -> None:
    text = "a:\n- x: 1\nb:\n    - y: 2\n"
    doc = Document(text, "t.yaml")
    assert doc.reformatted
    doc.set(("a", 0), "z", "3")
    assert yaml.safe_load(doc.text()) == {"a": [{"x": 1, "z": "3"}], "b": [{"y": 2}]}
