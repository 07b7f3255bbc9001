"""The checker on a corpus of broken files (one problem each) and on whole workspaces."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from newsletter.authoring.check import check_issue
from newsletter.errors import Invalid, NewsletterError

BROKEN = Path(__file__).resolve().parent.parent / "data" / "broken"
CASES = sorted(BROKEN.glob("*.yaml"))


def expectation(path: Path) -> tuple[int, int, str]:
    first = path.read_text("utf-8").splitlines()[0]
    m = re.fullmatch(r"# expect: (\d+):(\d+) (.+)", first)
    assert m, f"{path.name} lacks an '# expect: LINE:COL message' first line"
    return int(m[1]), int(m[2]), m[3]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_check_reports_each_broken_file_at_its_line(path: Path, tmp_path: Path) -> None:
    line, col, words = expectation(path)
    shutil.copytree(BROKEN, tmp_path / "issues")
    target = tmp_path / "issues" / path.name
    # Keep the file alone in its folder so no other file's number collides with it.
    for other in (tmp_path / "issues").glob("*.yaml"):
        if other != target:
            other.unlink()
    with pytest.raises((Invalid, NewsletterError)) as caught:
        check_issue(target, display=f"issues/{path.name}")
    lines = caught.value.lines()
    errors = [ln for ln in lines if ": warning: " not in ln]
    assert len(errors) == 1, lines
    assert errors[0].startswith(f"issues/{path.name}:{line}:{col}: "), errors[0]
    assert words in errors[0]


def test_corpus_covers_the_contract() -> None:
    names = {p.stem for p in CASES}
    for needed in ("unknown_key_suggestion", "duplicate_key", "impossible_date", "bad_arxiv",
                   "javascript_url", "missing_image", "image_without_alt", "empty_sections",
                   "number_text", "missing_title", "python_tag", "alias_bomb"):
        assert needed in names


def test_check_reports_every_problem_of_a_file_at_once(ws) -> None:
    path = ws.write("009.yaml", """\
        number: -3
        date: 2021-13-01
        titel: Typo
        sections:
          featured:
            - title: An item
              url: ftp://example.com
              summery: Fine.
              paper: {arxiv: "12345", title: A paper}
        """)
    with pytest.raises(Invalid) as caught:
        check_issue(path, display="issues/009.yaml")
    lines = caught.value.lines()
    assert len(lines) == 6, lines
    expected = [
        ("issues/009.yaml:1:9:", "must be 1 or more"),
        ("issues/009.yaml:2:7:", "is not a real date"),
        ("issues/009.yaml:3:1:", "did you mean 'title'"),
        ("issues/009.yaml:7:12:", "is not an http/https URL"),
        ("issues/009.yaml:8:7:", "did you mean 'summary'"),
        ("issues/009.yaml:9:22:", "is not an arXiv id"),
    ]
    for start, words in expected:
        assert any(ln.startswith(start) and words in ln for ln in lines), (start, words, lines)


def test_duplicate_number_across_issues_is_an_error(ws) -> None:
    ws.issue("033.yaml", number=33)
    second = ws.issue("033-draft.yaml", number=33)
    with pytest.raises(Invalid) as caught:
        check_issue(second, display="issues/033-draft.yaml")
    (line,) = caught.value.lines()
    assert line == "issues/033-draft.yaml:1:9: number: 33 is already the number of issues/033.yaml"


def test_repeated_url_and_long_preheader_are_warnings(ws) -> None:
    body = "sections:\n  featured:\n" + "".join(
        f"    - title: Item {i}\n      url: https://example.com/same\n      summary: Text.\n" for i in range(2)
    )
    path = ws.issue(body=body, preheader="x" * 151)
    checked = check_issue(path, display="issues/001.yaml")
    shown = [str(w) for w in checked.warnings]
    assert "issues/001.yaml:4:12: warning: preheader: is 151 characters; inboxes show about 150" in shown
    assert "issues/001.yaml:11:12: warning: sections.featured[1].url: the same URL is already linked on line 8" in shown


NOT_MAPPING = "issues/001.yaml:{}: the issue must be a mapping of keys to values (key: value)"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "issues/001.yaml:1:1: the issue is empty"),
        (b"# only a comment\n", "issues/001.yaml:1:1: the issue is empty"),
        (b"- a\n- b\n", NOT_MAPPING.format("1:1") + ", not a list"),
        (b"just words\n", NOT_MAPPING.format("1:1") + ", not a single value"),
        (b"# yaml-language-server: $schema=../issue.schema.json\n- a\n", NOT_MAPPING.format("2:1") + ", not a list"),
        ("title: caf\u00e9\n".encode("latin-1"), "issues/001.yaml:1:11: is not UTF-8 text (invalid byte at offset 10)"),
        (b"title: ok\nintro: \xe5\x9b\xbe \xff\n",
         "issues/001.yaml:2:10: is not UTF-8 text (invalid byte at offset 21)"),
    ],
    ids=["empty", "comment-only", "list", "scalar", "list-after-comment", "latin-1", "latin-1-line-2"],
)
def test_unusable_files_get_a_plain_sentence(ws, content: bytes, message: str) -> None:
    path = ws.issues / "001.yaml"
    path.write_bytes(content)
    with pytest.raises(NewsletterError) as caught:
        check_issue(path, display="issues/001.yaml")
    assert caught.value.lines()[0].startswith(message)


def test_a_utf8_bom_is_accepted(ws) -> None:
    path = ws.issue()
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert check_issue(path).issue.title == "Test issue"


def test_defaults_fill_source_lang_and_subject_free_fields(ws) -> None:
    body = (
        "sections:\n  papers:\n    - title: T\n      url: https://www.arxiv.org/abs/cs/0112017v2\n"
        "      summary: S\n      paper: {arxiv: cs/0112017v2, title: Old style id}\n"
    )
    issue = check_issue(ws.issue(body=body)).issue
    (item,) = issue.items
    assert item.source == "arxiv.org"
    assert item.paper.arxiv == "cs/0112017v2"
    assert issue.lang == "en"
    assert [s.key for s in issue.sections] == ["papers"]
