"""The checks `check` makes without the network: an arXiv id against its item's link,
placeholders of `newsletter new`, dates out of order and URLs linked in earlier issues;
and the index in .cache/newsletter/ that answers the checks across issues."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from newsletter.authoring import catalog
from newsletter.authoring.check import check_issue
from newsletter.errors import Invalid

LONG_AGO = time.time_ns() - 86_400 * 10**9


def item(url: str, extra: str = "") -> str:
    return f"    - title: T\n      url: {url}\n      summary: S.\n{extra}"


def issue_text(number: int, date: str = "2021-10-10", urls: tuple[str, ...] = ("https://ml.test/a",)) -> str:
    return (f"number: {number}\ndate: {date}\ntitle: Issue {number}\nsections:\n  featured:\n"
            + "".join(item(u) for u in urls))


def age(*paths: Path, ns: int = LONG_AGO) -> None:
    """Make files look written long ago (not within the index's racy window)."""
    for path in paths:
        os.utime(path, ns=(ns, ns))


def warnings_of(path: Path) -> list[str]:
    return [str(w) for w in check_issue(path, display=f"issues/{path.name}").warnings]


def errors_of(path: Path) -> list[str]:
    with pytest.raises(Invalid) as caught:
        check_issue(path, display=f"issues/{path.name}")
    return [line for line in caught.value.lines() if ": warning: " not in line]


def test_an_arxiv_id_that_contradicts_the_items_arxiv_url_is_an_error(ws) -> None:
    body = ("sections:\n  papers:\n"
            + item("https://arxiv.org/abs/2102.05059", '      paper: {arxiv: "2102.05095", title: P}\n')
            + item("https://arxiv.org/pdf/2109.10686v2.pdf", '      paper: {arxiv: "2109.10686", title: P}\n')
            + item("https://ml.test/not-arxiv", '      paper: {arxiv: "2110.04544", title: P}\n'))
    path = ws.issue(body=body)
    assert errors_of(path) == [
        "issues/001.yaml:9:22: sections.papers[0].paper.arxiv: 2102.05095 contradicts the item's url, "
        "which links arXiv 2102.05059 (line 7); one of them is wrong"]


def test_placeholders_of_newsletter_new_are_warnings(ws) -> None:
    path = ws.write("001.yaml", """\
        number: 1
        date: 2021-10-10
        title: "TODO: the issue's title"
        highlights:
          - "See [this](https://www.example.org/page)"
        sections:
          featured:
            - title: Fine
              url: https://example.com/
              summary: Not a TODOlist, but TODO.
        """)
    assert warnings_of(path) == [
        "issues/001.yaml:3:8: warning: title: still says TODO, a placeholder from `newsletter new`",
        "issues/001.yaml:5:5: warning: highlights[0]: links to www.example.org, a placeholder address from "
        "`newsletter new`",
        "issues/001.yaml:9:12: warning: sections.featured[0].url: links to example.com, a placeholder address "
        "from `newsletter new`",
        "issues/001.yaml:10:16: warning: sections.featured[0].summary: still says TODO, a placeholder from "
        "`newsletter new`",
    ]


def test_a_fresh_newsletter_new_file_warns_at_its_placeholders(ws) -> None:
    result = ws.run("new")
    path = Path(result.stdout.strip())
    shown = [w.split(": warning: ")[1] for w in warnings_of(path)]
    assert "title: still says TODO, a placeholder from `newsletter new`" in shown
    assert any(w.startswith("sections.featured[0].url: links to example.com") for w in shown)


def test_an_issue_dated_before_the_previous_numbers_is_a_warning(ws) -> None:
    ws.write("031.yaml", issue_text(31, "2021-10-03", ("https://ml.test/31",)))
    ws.write("032.yaml", issue_text(32, "2021-10-17", ("https://ml.test/32",)))
    path = ws.write("033.yaml", issue_text(33, "2021-10-10", ("https://ml.test/33",)))
    assert warnings_of(path) == [
        "issues/033.yaml:2:7: warning: date: 2021-10-10 is before 2021-10-17, the date of issue 32 (issues/032.yaml)"]
    assert warnings_of(ws.issues / "032.yaml") == []  # a later date than its predecessor's is fine


def test_a_url_linked_in_an_earlier_issue_is_a_warning_naming_it(ws) -> None:
    ws.write("030.yaml", issue_text(30, urls=("https://ml.test/x",)))
    ws.write("031.yaml", issue_text(31, urls=("https://ml.test/other", "https://ml.test/x")))
    path = ws.write("033.yaml", issue_text(33, urls=("http://www.ml.test/x/", "https://ml.test/new")) + (
        "more:\n  - title: Again\n    url: https://ml.test/other#part\n"))
    assert warnings_of(path) == [
        "issues/033.yaml:7:12: warning: sections.featured[0].url: already linked in issue 31 (issues/031.yaml:10)",
        "issues/033.yaml:14:10: warning: more[0].url: already linked in issue 31 (issues/031.yaml:7)",
    ]
    assert warnings_of(ws.issues / "030.yaml") == []  # only earlier issues count


def test_the_index_follows_changed_removed_and_added_files(ws) -> None:
    first = ws.write("001.yaml", issue_text(1, urls=("https://ml.test/one",)))
    second = ws.write("002.yaml", issue_text(2, urls=("https://ml.test/two",)))
    age(first, second, ws.issues)
    assert warnings_of(second) == []

    first.write_text(issue_text(2, urls=("https://ml.test/one",)))  # changed: now number 2 as well
    age(first, ns=LONG_AGO + 10**9)
    assert errors_of(second) == ["issues/002.yaml:1:9: number: 2 is already the number of issues/001.yaml"]

    first.unlink()  # removed
    assert warnings_of(second) == []

    third = ws.write("003.yaml", issue_text(3, urls=("https://ml.test/two",)))  # added
    assert warnings_of(third) == [
        "issues/003.yaml:7:12: warning: sections.featured[0].url: already linked in issue 2 (issues/002.yaml:7)"]


def test_a_same_size_rewrite_within_the_timestamp_granularity_is_seen(ws) -> None:
    """Two writes in the same clock tick leave the same (mtime, size): such fresh files are
    read again by the next check, as git does with its racy entries."""
    other = ws.write("001.yaml", issue_text(1, urls=("https://ml.test/aaa",)))
    path = ws.write("002.yaml", issue_text(2, urls=("https://ml.test/aaa",)))
    assert len(warnings_of(path)) == 1
    stamp = other.stat().st_mtime_ns
    other.write_text(issue_text(1, urls=("https://ml.test/bbb",)))  # same size
    os.utime(other, ns=(stamp, stamp))
    assert warnings_of(path) == []


def test_a_second_check_reads_no_unchanged_file(ws, monkeypatch) -> None:
    paths = [ws.write(f"{n:03d}.yaml", issue_text(n, urls=(f"https://ml.test/{n}",))) for n in range(1, 21)]
    age(*paths, ws.issues)
    reads: list[Path] = []
    real = catalog.load_yaml
    monkeypatch.setattr(catalog, "load_yaml", lambda path, *a, **k: reads.append(path) or real(path, *a, **k))

    assert warnings_of(paths[-1]) == []
    assert len(reads) == 19  # the first check builds the index: every other file once
    assert (ws.root / ".cache" / "newsletter" / "index.sqlite").is_file()
    reads.clear()
    assert warnings_of(paths[-1]) == [] and warnings_of(paths[4]) == []
    assert reads == []

    paths[2].write_text(issue_text(3, urls=("https://ml.test/20",)))
    age(paths[2], ns=LONG_AGO + 10**9)
    assert warnings_of(paths[-1]) == [
        "issues/020.yaml:7:12: warning: sections.featured[0].url: already linked in issue 3 (issues/003.yaml:7)"]
    assert reads == [paths[2]]


def test_a_broken_index_file_is_rebuilt(ws) -> None:
    ws.write("001.yaml", issue_text(1))
    path = ws.write("002.yaml", issue_text(1))
    index = ws.root / ".cache" / "newsletter" / "index.sqlite"
    index.parent.mkdir(parents=True)
    index.write_bytes(b"not a database at all" * 100)
    assert errors_of(path) == ["issues/002.yaml:1:9: number: 1 is already the number of issues/001.yaml"]
    assert index.read_bytes().startswith(b"SQLite format 3")


def test_outside_a_workspace_the_index_lives_in_memory(tmp_path) -> None:
    folder = tmp_path / "loose"
    folder.mkdir()
    (folder / "a.yaml").write_text(issue_text(4))
    path = folder / "b.yaml"
    path.write_text(issue_text(4))
    assert errors_of(path) == ["issues/b.yaml:1:9: number: 4 is already the number of loose/a.yaml"]
    assert not (tmp_path / ".cache").exists()


def test_a_file_that_is_not_yaml_still_counts_by_its_number_line(ws) -> None:
    ws.write("001.yaml", "number: 7\ntitle: [unclosed\n")
    assert errors_of(ws.write("002.yaml", issue_text(7))) == [
        "issues/002.yaml:1:9: number: 7 is already the number of issues/001.yaml"]


def test_same_url_meets_the_variants_of_one_page() -> None:
    key = catalog.same_url("https://ml.test/x")
    for variant in ("http://ml.test/x", "https://www.ml.test/x/", "https://ML.test/x#top"):
        assert catalog.same_url(variant) == key
    assert catalog.same_url("https://ml.test/x?page=2") != key
    assert catalog.same_url("https://ml.test/X") != key


def test_archive_numbers_use_one_index_for_every_issue(ws, monkeypatch) -> None:
    from newsletter.web.archive import load_issues

    for n in range(1, 6):
        age(ws.write(f"{n:03d}.yaml", issue_text(n, urls=(f"https://ml.test/{n}",))))
    age(ws.issues)
    opened = []
    real = catalog.Catalog.__init__
    monkeypatch.setattr(catalog.Catalog, "__init__", lambda self, *a, **k: opened.append(a) or real(self, *a, **k))
    issues = load_issues(ws.settings)
    assert [i.number for i in issues] == [5, 4, 3, 2, 1] and len(opened) == 1
    assert all(isinstance(i.date, dt.date) for i in issues)
