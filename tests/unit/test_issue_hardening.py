"""What an author sees when an issue file holds something YAML or a browser reads
differently from them: numbers in other notations, control characters, image paths that
leave the folder, URLs that open another host, odd documents, deep nesting, common slips."""

from __future__ import annotations

import pytest

from newsletter.authoring.check import check_issue
from newsletter.errors import NewsletterError

ITEM = "sections:\n  featured:\n    - title: An item\n      url: https://news.example.org/a\n      summary: Fine.\n"


def errors_of(path, display: str = "issues/001.yaml") -> list[str]:
    with pytest.raises(NewsletterError) as caught:
        check_issue(path, display=display)
    return [line for line in caught.value.lines() if ": warning: " not in line]


@pytest.mark.parametrize("written, message", [
    ("034", "'034' is not a plain decimal number (YAML reads it as 28); write 34"),
    ("0x22", "'0x22' is not a plain decimal number; write 34"),
    ("1_000", "'1_000' is not a plain decimal number; write 1000"),
    ("+5", "'+5' is not a plain decimal number; write 5"),
    ("0o7", "'0o7' is not a plain decimal number; write 7"),
    ("34.0", "'34.0' is not a plain decimal number; write 34"),
    ("0b11", "'0b11' is not a plain decimal number; write 3"),
    ("1:20", "'1:20' is not a plain decimal number (YAML reads it as 80)"),
    ('"34"', "expected a whole number, got text; write 34 without quotes"),
])
def test_a_number_is_written_in_plain_decimal(ws, written: str, message: str) -> None:
    path = ws.write("001.yaml", f"number: {written}\ndate: 2021-10-10\ntitle: T\n" + ITEM)
    assert errors_of(path) == [f"issues/001.yaml:1:9: number: {message}"]


@pytest.mark.parametrize("other", ["034", "0x22", '"34"'])
def test_the_duplicate_number_check_reads_numbers_as_the_author_meant(ws, other: str) -> None:
    ws.write("034.yaml", f"number: {other}\ndate: 2021-10-10\ntitle: T\n" + ITEM)
    path = ws.issue("035.yaml", number=34)
    assert errors_of(path, "issues/035.yaml") == [
        "issues/035.yaml:1:9: number: 34 is already the number of issues/034.yaml"]


CONTROLS = ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"]


FIELDS = {  # field -> (where it goes, its name in the message)
    "title": ("title: {bad}\n", "title"),
    "subject": ("subject: {bad}\n", "subject"),
    "preheader": ("preheader: {bad}\n", "preheader"),
    "source": ("      source: {bad}\n", "sections.featured[0].source"),
    "alt": ("      image: {{src: img/figure.png, alt: {bad}}}\n", "sections.featured[0].image.alt"),
    "caption": ("      image:\n        src: img/figure.png\n        alt: A\n        caption: {bad}\n",
                "sections.featured[0].image.caption"),
    "card title": ("      card: {{title: {bad}}}\n", "sections.featured[0].card.title"),
    "paper title": ("      paper: {{arxiv: '2109.10686', title: {bad}}}\n", "sections.featured[0].paper.title"),
    "more title": ("more:\n  - {{title: {bad}, url: 'https://news.example.org/b'}}\n", "more[0].title"),
}


@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize("field", FIELDS)
def test_control_characters_in_one_line_fields_are_refused_at_the_field(ws, char: str, field: str) -> None:
    template, name = FIELDS[field]
    top = field in ("title", "subject", "preheader")
    for bad in (f"A{char}B", f'"A\\u{ord(char):04x}B"'):  # raw in the file, and as a YAML escape
        line = template.format(bad=bad)
        text = ("number: 1\ndate: 2021-10-10\n" + ("" if field == "title" else "title: T\n") + (line if top else "")
                + ITEM.replace("news.example.org/a", "arxiv.org/abs/2109.10686") + ("" if top else line))
        path = ws.issues / "001.yaml"
        path.write_text(text, "utf-8")
        # Where the value starts; the raw separators are line breaks to Python, not to YAML here.
        number, at = next((n, ln.index(bad)) for n, ln in enumerate(text.split("\n"), 1) if bad in ln)
        assert errors_of(path) == [f"issues/001.yaml:{number}:{at + 1}: {name}: holds a control character "
                                   f"(U+{ord(char):04X}); remove it"]


def test_markdown_fields_keep_tabs_and_line_breaks_and_refuse_other_controls(ws) -> None:
    fine = ws.issue(intro='"Two\\tcolumns\\nand a second line"')
    assert check_issue(fine).issue.intro == "Two\tcolumns\nand a second line"
    for char in CONTROLS:
        path = ws.issue(intro=f'"Text\\u{ord(char):04x}here"')
        assert errors_of(path) == [f"issues/001.yaml:4:8: intro: holds a control character (U+{ord(char):04X}); "
                                   "remove it"]


def test_check_names_the_field_instead_of_failing_in_the_layout(ws) -> None:
    ws.issue(title='"Scaling\\x1b[2J laws"')
    result = ws.run("check", "issues/001.yaml")
    assert result.exit_code == 1
    assert result.stderr == "issues/001.yaml:3:8: title: holds a control character (U+001B); remove it\n"
    assert "mjml" not in result.output.lower() and "Traceback" not in result.output


def test_raw_line_separators_do_not_shift_the_lines_reported(ws) -> None:
    path = ws.issues / "001.yaml"
    path.write_text("number: 1\ndate: 2021-10-10\ntitle: T\u2028\x85U\n" + ITEM.replace("summary: Fine.", "summery: x"))
    lines = errors_of(path)
    assert lines[0] == "issues/001.yaml:3:8: title: holds a control character (U+2028); remove it"
    assert lines[1].startswith("issues/001.yaml:8:7: sections.featured[0]: unknown key 'summery'")


@pytest.mark.parametrize("src, message", [
    ("img/../../issues/img/figure.png", "must be a path inside issues/"),
    ("../issues/img/figure.png", "must be a path inside issues/"),
    ("/etc/hostname", "must be a path inside issues/"),
    ("C:/img/figure.png", "must be a path inside issues/"),
    ("img\\\\figure.png", "holds a backslash; separate folders with '/'"),
    ("https://user:pw@images.example.org/a.png", "holds a user name or password before '@'"),
])
def test_image_paths_that_leave_the_issue_folder_are_refused(ws, src: str, message: str) -> None:
    path = ws.issue(body=ITEM + f'      image: {{src: "{src}", alt: A}}\n')
    (error,) = errors_of(path)
    assert error.startswith("issues/001.yaml:9:20: sections.featured[0].image.src: ") and message in error, error


def test_build_refuses_to_write_outside_its_folder_even_past_the_checker(ws, tmp_path) -> None:
    from newsletter.authoring.build import review_issue, write_issue

    path = ws.issue(body=ITEM + "      image: {src: img/figure.png, alt: A}\n")
    reviewed = review_issue(path, ws.settings)
    item = reviewed.rendered.issue.sections[0].items[0]
    forged = item._replace(image=item.image._replace(src="img/../../../escaped.png"))
    issue = reviewed.rendered.issue._replace(sections=(reviewed.rendered.issue.sections[0]._replace(items=(forged,)),))
    reviewed = reviewed._replace(rendered=reviewed.rendered._replace(issue=issue))
    out = tmp_path / "out"
    with pytest.raises(NewsletterError, match="would be written outside"):
        write_issue(reviewed, ws.settings, out)
    assert not (tmp_path / "escaped.png").exists()
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("url, message", [
    ("https://example.com\\@evil.example/", "holds a backslash, which browsers read as '/'"),
    ("https://evil.example\\.news.example.org/", "holds a backslash, which browsers read as '/'"),
    ("https://paypal.com:login@evil.example/", "holds a user name or password before '@'"),
    ("https://ada@news.example.org/", "holds a user name or password before '@'"),
])
def test_urls_that_open_another_host_than_they_show_are_errors(ws, url: str, message: str) -> None:
    path = ws.issue(body=ITEM.replace("https://news.example.org/a", url))
    (error,) = errors_of(path)
    assert error.startswith("issues/001.yaml:7:12: sections.featured[0].url: ") and message in error, error


def test_an_at_sign_in_the_path_is_fine(ws) -> None:
    path = ws.issue(body=ITEM.replace("https://news.example.org/a", "https://medium.com/@ada/notes"))
    assert check_issue(path).issue.items[0].source == "medium.com"


def test_a_host_mixing_scripts_is_a_warning_that_shows_its_punycode(ws) -> None:
    path = ws.issue(body=ITEM.replace("https://news.example.org/a", "https://www.p\u0430ypal.com/login"))
    checked = check_issue(path, display="issues/001.yaml")
    assert [str(w) for w in checked.warnings] == [
        "issues/001.yaml:7:12: warning: sections.featured[0].url: the host www.p\u0430ypal.com mixes Cyrillic and "
        "Latin letters; it is www.xn--pypal-4ve.com, not the site it looks like"]
    assert checked.issue.items[0].source == "xn--pypal-4ve.com"  # as the browser's address bar shows it


# What browsers (WHATWG URL, as in Chromium and Node's URL) open for each, without "www.".
BROWSER_HOSTS = [
    ("https://www.Example.COM:8443/a", "example.com"),
    ("https://ex%61mple.org/", "example.org"),
    ("https://news.example\u3002org/", "news.example.org"),
    ("https://www.b\u00fccher.de/", "b\u00fccher.de"),
    ("https://\u4f8b\u3048.jp/", "\u4f8b\u3048.jp"),
    ("https://\u30c6\u30b9\u30c8.\u4f8b\u3048.jp/", "\u30c6\u30b9\u30c8.\u4f8b\u3048.jp"),
    ("http://[2001:db8::1]:8080/", "[2001:db8::1]"),
]


@pytest.mark.parametrize("url, host", BROWSER_HOSTS)
def test_the_default_source_is_the_host_the_browser_opens(ws, url: str, host: str) -> None:
    path = ws.issue(body=ITEM.replace("https://news.example.org/a", url))
    checked = check_issue(path)
    assert checked.issue.items[0].source == host
    assert not [w for w in checked.warnings if "mixes" in w.message]


def test_nesting_past_fifty_levels_is_an_error_not_a_traceback(ws) -> None:
    flow = ws.issue(intro="[" * 100_000 + "]" * 100_000)  # crashed the process in libyaml's composer
    assert errors_of(flow) == ["issues/001.yaml:4:57: the file nests too deeply (more than 50 levels)"]
    block = ws.issues / "002.yaml"
    block.write_text("number: 2\n" + "".join("  " * i + f"k{i}:\n" for i in range(600)) + "  " * 600 + "v\n")
    assert errors_of(block, "issues/002.yaml") == [
        "issues/002.yaml:52:101: the file nests too deeply (more than 50 levels)"]
    result = ws.run("check", "issues/002.yaml")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr == "issues/002.yaml:52:101: the file nests too deeply (more than 50 levels)\n"


def test_aliases_cannot_nest_past_the_limit_either(ws) -> None:
    deep = "[" * 40 + "x" + "]" * 40
    path = ws.issue(intro=f"&a {deep}", outro="[" * 20 + "*a" + "]" * 20)
    (error,) = errors_of(path)
    assert error.endswith("the file nests too deeply (more than 50 levels)")


@pytest.mark.parametrize("content, message", [
    ("- a\n- b\n", "1:1: the issue must be a mapping of keys to values (key: value), not a list"),
    ("number\n", "1:1: the issue must be a mapping of keys to values (key: value), not a single value"),
    ("\n\n  [1, 2]\n", "3:3: the issue must be a mapping of keys to values (key: value), not a list"),
])
def test_a_document_that_is_not_a_mapping_is_reported_at_its_line(ws, content: str, message: str) -> None:
    path = ws.issues / "001.yaml"
    path.write_text(content)
    assert errors_of(path) == [f"issues/001.yaml:{message}"]
    result = ws.run("check", "issues/001.yaml")
    assert (result.exit_code, result.stderr) == (1, f"issues/001.yaml:{message}\n")


@pytest.mark.parametrize("title, shown", [
    ("Scaling: a study", 'title: "Scaling: a study"'),
    ('Why "scale": a study', "title: 'Why \"scale\": a study'"),
])
def test_an_unquoted_colon_in_a_value_gets_a_hint_at_its_line(ws, title: str, shown: str) -> None:
    path = ws.issue(title=title)
    assert errors_of(path) == [f"issues/001.yaml:3:8: invalid YAML: quote a value that contains ': ' (like {shown})"]


@pytest.mark.parametrize("indent", [0, 2, 4, 6])
def test_a_summary_line_indented_too_little_is_reported_at_that_line(ws, indent: int) -> None:
    body = ITEM.replace("summary: Fine.\n", "summary: Upstream and downstream quality\n"
                        + " " * indent + "part ways as models grow.\n      image: {src: img/figure.png, alt: A}\n")
    (error,) = errors_of(ws.issue(body=body))
    assert error.startswith(f"issues/001.yaml:9:{indent + 1}: invalid YAML: this line is indented too little"), error
    assert "indent it past 'summary:' (column 7)" in error


def test_a_line_that_lines_up_with_nothing_gets_an_indentation_hint(ws) -> None:
    body = ITEM.replace("summary: Fine.\n", "summary: |\n        Upstream and downstream quality\n"
                        "       part ways as models grow.\n")
    (error,) = errors_of(ws.issue(body=body))
    assert error.startswith("issues/001.yaml:10:8: invalid YAML: this line's indentation (column 8) lines up "
                            "with nothing above it"), error
