"""``newsletter archive``: the static web archive. An index of every issue (newest first),
each issue's web page with its images, and an Atom feed with the full content.

Pages link to each other relatively, so the site works opened from disk and behind any
static host; the feed uses ``base_url`` for absolute links. Files are rewritten only
when their content changes, and nothing in them depends on the time of the build, so
adding an issue changes that issue's files, the index and the feed, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from markupsafe import Markup

from newsletter.authoring.build import inside, write_file
from newsletter.authoring.catalog import Catalog
from newsletter.authoring.check import check_issue
from newsletter.authoring.labels import format_date, labels_for
from newsletter.authoring.model import Issue
from newsletter.authoring.render import Renderer
from newsletter.config import Settings
from newsletter.errors import Invalid, NewsletterError, Problem


class Entry(NamedTuple):
    issue: Issue
    issue_line: str
    highlight: Markup | None
    summary: str | None
    content: Markup


def load_issues(settings: Settings) -> list[Issue]:
    """Every issue in issues/, checked; all problems of all files at once."""
    folder = settings.root / "issues"
    issues, problems = [], []
    catalog = Catalog(folder) if folder.is_dir() else None  # the index, refreshed once for every check
    for path in sorted(folder.glob("*.yaml")):
        shown = f"issues/{path.name}"
        try:
            issues.append(check_issue(path, settings.lang, shown, catalog).issue)
        except Invalid as e:
            problems += [p for p in e.problems if not p.warning]
        except NewsletterError as e:
            problems.append(Problem(None, "\n".join(e.lines())))
    if catalog is not None:
        catalog.close()
    if problems:
        raise Invalid(problems)
    return sorted(issues, key=lambda i: (i.date, i.number), reverse=True)


def build_archive(settings: Settings, out_dir: Path) -> list[Path]:
    """Write the archive into ``out_dir``; returns the files whose content changed."""
    issues = load_issues(settings)
    renderer = Renderer(settings)
    changed: list[Path] = []
    entries = []
    for issue in issues:
        folder = out_dir / str(issue.number)
        rendered = renderer.render(issue, site_root="../")
        changed += write_file(folder / "index.html", rendered.web)
        for image in rendered.issue.images:  # the rendered issue's: the brand's logo too
            if image.file is not None:
                changed += write_file(inside(folder, image.src), image.file.read_bytes())
        entries.append(_entry(renderer, settings, issue))
    site = renderer.site_context()
    feed_url = f"{settings.base_url}/feed.xml" if settings.base_url else None
    index = renderer.template("archive.html", {**site, "entries": entries, "feed_url": feed_url})
    changed += write_file(out_dir / "index.html", index)
    if settings.base_url:
        updated = f"{entries[0].issue.date.isoformat()}T00:00:00Z" if entries else "1970-01-01T00:00:00Z"
        author = (settings.sender or settings.name).split("<")[0].strip().strip('"') or settings.name
        feed = renderer.template("feed.xml", {**site, "entries": entries, "updated": updated, "author": author})
        changed += write_file(out_dir / "feed.xml", feed)
    return changed


def _entry(renderer: Renderer, settings: Settings, issue: Issue) -> Entry:
    labels = labels_for(issue.lang, settings.labels)
    line = f"{labels['issue'].format(number=issue.number)} · {format_date(issue.date, issue.lang)}"
    context = renderer.context(issue, "NLfeed", _absolute_images(settings, issue))
    first = issue.highlights[0] if issue.highlights else None
    highlight = context["md_inline"](first) if first else None
    summary = issue.preheader or (context["md_text"](first, True) if first else None)
    content = Markup(renderer.template("entry.html", context)) if settings.base_url else Markup("")
    return Entry(issue, line, highlight, summary, content)


def _absolute_images(settings: Settings, issue: Issue):
    if not settings.base_url:
        return None
    return lambda src: f"{settings.base_url}/{issue.number}/{src}"
