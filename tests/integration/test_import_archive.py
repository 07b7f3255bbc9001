"""`newsletter import-archive`: past issues written in Markdown become issue files that
pass `newsletter check`, or, when one file is wrong, nothing is written and the CLI
says where. Run through the CLI on real files, in the shape of the seed newsletters."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from bs4 import BeautifulSoup

from support import REPO

ARCHIVE = REPO / "tests" / "data" / "markdown-archive"


def archive(ws, extra: dict[str, str] | None = None) -> Path:
    """The fixture archive copied into the workspace as archive/, plus ``extra`` files (name: text)."""
    folder = ws.root / "archive"
    shutil.copytree(ARCHIVE, folder)
    for name, text in (extra or {}).items():
        (folder / name).write_text(textwrap.dedent(text), "utf-8")
    return folder


def only(ws, name: str, text: str) -> Path:
    """An archive of one Markdown file."""
    folder = ws.root / "archive"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text), "utf-8")
    return folder


def issue(ws, number: int) -> dict:
    return yaml.safe_load((ws.issues / f"{number:03d}.yaml").read_text("utf-8"))


def issue_files(ws) -> list[str]:
    return sorted(p.name for p in ws.issues.glob("*.yaml"))


def test_an_archive_becomes_issue_files_that_pass_check(ws) -> None:
    archive(ws)
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["issues/033.yaml", "issues/034.yaml", "issues/035.yaml"]
    assert result.stderr.splitlines()[-1] == (
        "3 issue(s) written to issues/, 2 image(s) copied; 2 arXiv item(s) have no paper title: "
        "`newsletter enrich` on their issues fills the papers")
    check = ws.run("check", "issues/033.yaml", "issues/034.yaml", "issues/035.yaml")
    assert check.exit_code == 0, check.stderr
    assert "issues/033.yaml: ok" in check.stdout and "issues/035.yaml: ok" in check.stdout
    assert (ws.root / "issue.schema.json").is_file()  # the files' first line points editors at it


def test_number_date_and_language_come_from_front_matter_title_or_file_name(ws) -> None:
    archive(ws)
    ws.run("import-archive", "archive")
    zh, en, links = issue(ws, 33), issue(ws, 34), issue(ws, 35)
    # 第 33 期 in the title, the date in front matter, Chinese by its .zh name
    assert (zh["title"], str(zh["date"]), zh["lang"]) == ("Akira 的机器学习新闻—第 33 期", "2021-10-10", "zh")
    # issue-34.md, "October 17, 2021" in the title; English like the workspace, so no lang: line
    assert (en["title"], str(en["date"]), "lang" in en) == ("Slow down and read deep — October 17, 2021",
                                                           "2021-10-17", False)
    # 2021-10-24.md has no number: the next one after the others
    assert (links["number"], str(links["date"])) == (35, "2021-10-24")


def test_headings_name_sections_in_english_and_chinese(ws) -> None:
    archive(ws)
    result = ws.run("import-archive", "archive")
    zh, en = issue(ws, 33)["sections"], issue(ws, 34)["sections"]
    assert list(zh) == ["featured", "use_cases", "papers", "articles", "other"]  # 1.本周特稿/新闻 ... 5.其他主题
    assert list(en) == ["featured", "use_cases", "papers", "articles", "other"]  # Featured ... 3. ML papers
    assert en["other"][0]["title"] == "Thinking fast and slow, AI edition"  # under "## Podcasts"
    assert ("archive/issue-34.md:33:1: warning: the heading 'Podcasts' names no section; its items go to 'other'"
            in result.stderr)
    # the table of contents before the first section is not a highlight
    assert [h.split("]")[0] for h in issue(ws, 33)["highlights"]] == ["[一个新的自我监督学习数据集",
                                                                       "[似乎前期训练的精度越高，下游任务的精度也不一定会变得越高"]


def test_an_item_keeps_its_link_source_figure_paper_and_summary(ws) -> None:
    archive(ws)
    ws.run("import-archive", "archive")
    first = issue(ws, 33)["sections"]["featured"][0]
    assert first == {
        "title": "培训前的绩效不一定与下游任务的绩效相匹配。",
        "url": "https://arxiv.org/abs/2109.10686",  # the old platform's utm_* parameters are gone
        "source": "arxiv.org",
        "image": {"src": "img/scaling-curves.png", "alt": "两条精度曲线"},
        "paper": {"arxiv": "2109.10686", "title": "高效扩展:来自预训练和微调变压器的见解"},
        "summary": "这是一项关于模型规模和下游任务准确性之间关系的研究。随着模型变大，预训练性能变得更好，"
                   "但它不一定与下游任务的性能相匹配。\n",
    }
    copied = ws.issues / "img" / "scaling-curves.png"
    assert copied.read_bytes() == (ARCHIVE / "img" / "scaling-curves.png").read_bytes()
    paper = issue(ws, 34)["sections"]["papers"][0]
    assert paper["paper"] == {"arxiv": "2109.10686v2",
                              "title": "Scale Efficiently: Insights from Pre-training and Fine-tuning Transformers"}
    featured = issue(ws, 34)["sections"]["featured"][0]
    assert featured["source"] == "Towards Data Science"  # "(Towards Data Science)" after the link
    assert featured["summary"].startswith("After the basics, Peggy Chang moves on to large models and small data "
                                          "sets: *layer-wise learning-rate decay*")


def test_the_figure_is_in_the_built_page(ws) -> None:
    archive(ws)
    ws.run("import-archive", "archive")
    assert ws.run("build", "issues/033.yaml", "-o", "build").exit_code == 0
    page = BeautifulSoup((ws.root / "build" / "33" / "index.html").read_text("utf-8"), "html.parser")
    image = page.find("img", alt="PASS 数据集的样本图块")
    assert image is not None and image["src"].endswith("pass-tiles.png")
    assert "PASS 中的样本" in page.get_text()  # the Markdown image's title is the caption
    link = page.find("a", string="可持续人工智能系统")
    assert link is not None and link["href"].startswith("https://thegradient.pub/sustainable-ai/")


def test_medium_link_cards_become_cards_and_more_posts(ws) -> None:
    archive(ws)
    ws.run("import-archive", "archive")
    zh = issue(ws, 33)
    assert zh["sections"]["use_cases"][0]["card"] == {"title": "可持续人工智能系统的必要性",
                                                      "description": "这件作品赢得了首届渐变奖。"}
    assert zh["sections"]["other"][0]["title"] == "你需要关注的 20 个人工智能影响者——人工智能杂志"
    # the relative link resolves against the page the issue came from ("> 原文：<https://medium.com/...>")
    assert [post["url"] for post in zh["more"]] == [
        "https://towardsdatascience.com/machine-learning-2020-summary-84-interesting-papers-articles-45bd45c0d35b",
        "https://medium.com/analytics-vidhya/reach-and-limits-of-the-supermassive-model-gpt-3-5012a6ddff00"]
    assert zh["outro"] == "制造工程师/机器学习工程师/数据科学家/物理学硕士\n"  # under 关于我


def test_a_missing_image_is_left_out_with_a_warning(ws) -> None:
    archive(ws)
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 0
    assert "archive/akira-ml-news-33.zh.md:47:1: warning: the image 'img/7ad757e2fb0a05b1aeee6456ba4f4a3a.png' is " \
           "not in " in result.stderr
    assert "image" not in issue(ws, 33)["sections"]["papers"][0]


def test_a_plain_list_of_links_becomes_featured_items(ws) -> None:
    archive(ws)
    ws.run("import-archive", "archive")
    items = issue(ws, 35)["sections"]["featured"]
    assert [(i["title"], i["summary"]) for i in items] == [
        ("Measure theory in probability", "why sigma-algebras matter once distributions get strange.\n"),
        ("Feedback alignment methods",
         "learning without symmetric weights, and how close it gets to backpropagation.\n")]
    assert "highlights" not in issue(ws, 35)


def test_raw_html_stays_text_in_the_issue_and_the_page(ws) -> None:
    only(ws, "2021-11-01.md", """\
        # Hostile <b>markup</b>

        ## Featured

        - [A <i>post</i>](https://ml.test/post) — ml.test
          It says <script>alert(1)</script> and <img src=x onerror=alert(2)> in its text.
        """)
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 0, result.stderr
    item = issue(ws, 1)["sections"]["featured"][0]
    assert item["title"] == "A <i>post</i>"
    assert ws.run("build", "issues/001.yaml", "-o", "build").exit_code == 0
    page = BeautifulSoup((ws.root / "build" / "1" / "index.html").read_text("utf-8"), "html.parser")
    main = page.find("main") or page
    assert main.find("script") is None and main.find("b") is None and main.find("i") is None
    assert main.find("img", src="x") is None
    text = main.get_text()
    assert "It says <script>alert(1)</script> and <img src=x onerror=alert(2)> in its text." in text
    assert "Hostile <b>markup</b>" in page.get_text()


def test_a_bad_file_writes_nothing_and_says_where(ws) -> None:
    archive(ws, {"issue-36.md": """\
        # Issue 36 — 2021-10-31

        ## Papers

        [A relative link](/posts/relative)

        It came from somewhere.

        [Nothing to say](https://ml.test/quiet)
        """})
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-3:] == [
        "archive/issue-36.md:5:19: '/posts/relative' is not an http(s) link; it is relative: give the page it came "
        "from as 'url:' in front matter",
        "archive/issue-36.md:9:1: the item 'Nothing to say' has no summary; write a sentence or two after its link",
        "nothing was written; fix the errors above and run it again",
    ]
    assert issue_files(ws) == [] and sorted(p.name for p in (ws.issues / "img").iterdir()) == ["figure.png"]
    assert "Traceback" not in result.stderr


def test_errors_of_the_issue_format_are_reported_at_the_markdown_line(ws) -> None:
    only(ws, "issue-7.md", """\
        ---
        date: 2021-10-31
        ---
        # Ten papers

        ## Papers

        - [A paper](https://arxiv.org/abs/2102.05059)
          [2102.05095] The paper's title
          The id above is not the one linked.
        - [A login](https://user:secret@ml.test/)
          A URL with a password in it.
        """)
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 1
    assert ("archive/issue-7.md:9:3: sections.papers[0].paper.arxiv: 2102.05095 contradicts the item's url, which "
            "links arXiv 2102.05059 (line 8); one of them is wrong") in result.stderr
    assert ("archive/issue-7.md:11:13: sections.papers[1].url: 'https://user:secret@ml.test/' holds a user name or "
            "password before '@'") in result.stderr
    assert issue_files(ws) == []


def test_an_existing_issue_is_never_overwritten(ws) -> None:
    mine = ws.issue("033.yaml", number=33, title="My own issue 33")
    before = mine.read_bytes()
    archive(ws)
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 0, result.stderr
    assert "archive/akira-ml-news-33.zh.md: issue 33 is already issues/033.yaml; left as it is" in result.stderr
    assert mine.read_bytes() == before
    assert result.stdout.splitlines() == ["issues/034.yaml", "issues/035.yaml"]
    assert "2 issue(s) written to issues/, 0 image(s) copied, 1 file(s) skipped" in result.stderr


def test_importing_again_writes_nothing_new(ws) -> None:
    archive(ws)
    ws.run("import-archive", "archive")
    files = {p.name: p.read_bytes() for p in ws.issues.glob("*.yaml")}
    again = ws.run("import-archive", "archive")
    assert again.exit_code == 0
    assert again.stdout == ""
    assert "archive/2021-10-24.md: already imported as issues/035.yaml; left as it is" in again.stderr
    assert "0 issue(s) written to issues/, 0 image(s) copied, 3 file(s) skipped" in again.stderr
    assert {p.name: p.read_bytes() for p in ws.issues.glob("*.yaml")} == files


def test_numbers_given_twice_and_missing_dates_are_errors(ws) -> None:
    only(ws, "issue-3.md", "# Issue 3: first\n\n## Featured\n\n- [A](https://ml.test/a) — a summary, at length.\n")
    only(ws, "third.md", "---\ndate: 2021-10-10\nnumber: 3\n---\n# Also three\n\n- [B](https://ml.test/b)\n  B.\n")
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert ("archive/issue-3.md: no date: give 'date: YYYY-MM-DD' in front matter, a date in the title, or name the "
            "file like 2021-10-17.md") in lines
    assert ("archive/third.md:3:9: issue 3 is also the number of archive/issue-3.md; give one of them another "
            "'number:' in front matter") in lines
    assert issue_files(ws) == []


def test_front_matter_mistakes_are_reported_at_their_line(ws) -> None:
    only(ws, "x.md", "---\ntitle: Fine\ndate: 2021-13-45\nlang: Chinese\ncolour: red\n---\n- [A](https://ml.test/a)\n")
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[:3] == [
        "archive/x.md:3:7: front matter: date: '2021-13-45' is not a date like 2021-10-17",
        "archive/x.md:4:7: front matter: lang: 'Chinese' is not a language code like en or zh",
        "archive/x.md:5:9: warning: front matter: 'colour' is not used (known: number, date, title, subject, "
        "preheader, lang, url)",
    ]


def test_a_file_with_no_items_says_how_to_write_them(ws) -> None:
    only(ws, "2021-10-10.md", "# Just words\n\nNo links at all here.\n")
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 1
    assert ("archive/2021-10-10.md: no items found: start each item's paragraph or bullet with its link, under a "
            "section heading like '## Papers' or '## 论文'") in result.stderr


def test_usage_mistakes_are_plain_sentences(ws) -> None:
    assert ws.run("import-archive", "nowhere").stderr == "nowhere: no such folder\n"
    (ws.root / "empty").mkdir()
    result = ws.run("import-archive", "empty")
    assert (result.exit_code, result.stderr) == (1, "empty: no Markdown files (*.md) in it\n")


def test_as_a_subprocess_a_bad_file_exits_1_without_a_traceback(ws) -> None:
    only(ws, "2021-10-10.md", "# T\n\n## Papers\n\n- [Bad](ftp://ml.test/file)\n  A file.\n")
    result = subprocess.run([sys.executable, "-m", "newsletter", "import-archive", "archive"], cwd=ws.root,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "archive/2021-10-10.md:5:9: 'ftp://ml.test/file' is not an http(s) link",
        "nothing was written; fix the errors above and run it again",
    ]


def test_an_image_never_replaces_another_of_the_same_name(ws) -> None:
    folder = only(ws, "2021-10-10.md", """\
        # Figures

        ## Papers

        [Scaling curves](https://ml.test/curves)

        ![Two curves](img/figure.png)

        Two accuracy curves against model size.

        [Tiles](https://ml.test/tiles)

        ![Tiles](same/figure.png)

        The same picture as the workspace's own.
        """)
    (folder / "img").mkdir()
    (folder / "img" / "figure.png").write_bytes((ARCHIVE / "img" / "scaling-curves.png").read_bytes())
    (folder / "same").mkdir()
    (folder / "same" / "figure.png").write_bytes((ws.issues / "img" / "figure.png").read_bytes())
    before = (ws.issues / "img" / "figure.png").read_bytes()
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 0, result.stderr
    papers = issue(ws, 1)["sections"]["papers"]
    assert [p["image"]["src"] for p in papers] == ["img/001-figure.png", "img/figure.png"]
    assert (ws.issues / "img" / "figure.png").read_bytes() == before
    assert (ws.issues / "img" / "001-figure.png").read_bytes() == (ARCHIVE / "img" / "scaling-curves.png").read_bytes()
    assert "1 issue(s) written to issues/, 1 image(s) copied" in result.stderr
    assert ws.run("check", "issues/001.yaml").exit_code == 0


def test_one_file_can_be_imported_and_a_file_that_is_not_utf8_is_named(ws) -> None:
    archive(ws)
    result = ws.run("import-archive", "archive/issue-34.md")
    assert (result.exit_code, result.stdout) == (0, "issues/034.yaml\n")
    (ws.root / "archive" / "latin1.md").write_bytes("# Caf\xe9\n".encode("latin-1"))
    result = ws.run("import-archive", "archive")
    assert result.exit_code == 1
    assert "archive/latin1.md:1:6: is not UTF-8 text (invalid byte at offset 5); save it as UTF-8" in result.stderr
    assert issue_files(ws) == ["034.yaml"]
