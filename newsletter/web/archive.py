"""``newsletter archive``: the static web archive. An index of the published issues
(newest first), each issue's web page with its images, and an Atom feed with the full
content.

An issue is listed (index, feed) only once published (``newsletter.web.published``): a
draft's page and images are written too, unlisted, so the images an email links exist
before its send. Pages link to each other relatively, so the site works opened from disk
and behind any static host; the feed uses ``base_url`` for absolute links.

The build is incremental. A manifest (``.cache/newsletter/archive-<hash>.json`` in the
workspace, one per output folder, so it is never deployed) keeps, per issue file, its stamp
(mtime_ns, size), its images' stamps and what the index and the feed show of it; with
the stamp of the settings and layouts. A rebuild re-renders only the issues whose stamps
changed (all of them when the settings or layouts did), and the index and feed only
when the listed entries changed: an unchanged rebuild is a few thousand stat() calls.
Files are rewritten only when their content changes, and nothing in them depends on the
time of the build.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

from markupsafe import Markup

from newsletter import __version__
from newsletter.authoring.build import inside, write_file
from newsletter.authoring.catalog import RACY_NS, SUFFIXES, Catalog
from newsletter.authoring.check import check_issue
from newsletter.authoring.labels import format_date, labels_for
from newsletter.authoring.model import Issue
from newsletter.authoring.render import Renderer
from newsletter.config import Settings
from newsletter.errors import Invalid, NewsletterError, Problem
from newsletter.web.published import published_issues

MANIFESTS = Path(".cache") / "newsletter"
_FORMAT = 1


class Entry(NamedTuple):
    issue: Issue | SimpleNamespace  # what the layouts use: number, title, date, lang
    issue_line: str
    highlight: Markup | None
    summary: str | None
    content: Markup


class Built(list):
    """The files whose content changed (a list), and the issues written but not listed."""

    unlisted: list[int]


def load_issues(settings: Settings) -> list[Issue]:
    """Every issue in issues/, checked; all problems of all files at once."""
    folder = settings.root / "issues"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(SUFFIXES)) if folder.is_dir() else []
    return sorted(_check(settings, folder, names).values(), key=lambda i: (i.date, i.number), reverse=True)


def _check(settings: Settings, folder: Path, names: list[str]) -> dict[str, Issue]:
    issues, problems = {}, []
    if not names:
        return issues
    catalog = Catalog(folder)  # the index, refreshed once for every check
    try:
        for name in names:
            try:
                issues[name] = check_issue(folder / name, settings.lang, f"issues/{name}", catalog).issue
            except Invalid as e:
                problems += [p for p in e.problems if not p.warning]
            except NewsletterError as e:
                problems.append(Problem(None, "\n".join(e.lines())))
    finally:
        catalog.close()
    if problems:
        raise Invalid(problems)
    return issues


def build_archive(settings: Settings, out_dir: Path, published: set[int] | None = None) -> Built:
    """Write the archive into ``out_dir``; returns the files whose content changed."""
    published = published_issues(settings) if published is None else published
    manifest_file = _manifest_file(settings, out_dir)
    manifest = _read_manifest(manifest_file)
    environment = _environment(settings)
    if manifest.get("environment") != environment:
        manifest = {"issues": {}}
    old: dict[str, dict] = manifest["issues"]
    folder = settings.root / "issues"
    current = _stat_issues(folder)
    stale = [name for name, stamp in current.items()
             if (record := old.get(name)) is None or record["stamp"] != list(stamp) or not _same_files(record)
             or not (out_dir / str(record["entry"]["number"]) / "index.html").is_file()]
    renderer = Renderer(settings) if stale else None
    changed = Built()
    records = {name: old[name] for name in current if name not in stale}
    now = time.time_ns()
    for name, issue in _check(settings, folder, stale).items():
        assert renderer is not None
        files, written = _write_issue(renderer, issue, out_dir / str(issue.number))
        changed += written
        mtime, size = current[name]
        records[name] = {"stamp": [mtime if now - mtime > RACY_NS else -1, size], "files": files,
                         "entry": _entry_record(renderer, settings, issue)}
    listed = sorted((r["entry"] for r in records.values() if r["entry"]["number"] in published),
                    key=lambda e: (e["date"], e["number"]), reverse=True)
    if (listed != manifest.get("listed") or not (out_dir / "index.html").is_file()
            or (settings.base_url and not (out_dir / "feed.xml").is_file())):
        changed += _write_lists(renderer or Renderer(settings), settings, out_dir, [_entry(e) for e in listed])
    changed.unlisted = sorted({r["entry"]["number"] for r in records.values()} - published)
    racy = any(isinstance(stamp, list) and -1 in stamp for stamp in environment)  # may change unseen: redo
    new = {"format": _FORMAT, "environment": None if racy else environment, "issues": records, "listed": listed}
    if new != manifest:
        with contextlib.suppress(OSError):  # a manifest that cannot be written: the next build does it all
            write_file(manifest_file, json.dumps(new, ensure_ascii=False, separators=(",", ":")))
    return changed


def _write_issue(renderer: Renderer, issue: Issue, folder: Path) -> tuple[dict[str, list[int]], list[Path]]:
    """The issue's page and images; returns the stamps of the image files and what changed."""
    rendered = renderer.render(issue, site_root="../")
    changed = write_file(folder / "index.html", rendered.web)
    files = {}
    for image in rendered.issue.images:  # the rendered issue's: the brand's logo too
        if image.file is not None:
            data = image.file.read_bytes()
            changed += write_file(inside(folder, image.src), data)
            files[str(image.file)] = _stamp(image.file)
    return files, changed


def _write_lists(renderer: Renderer, settings: Settings, out_dir: Path, entries: list[Entry]) -> list[Path]:
    site = renderer.site_context()
    feed_url = f"{settings.base_url}/feed.xml" if settings.base_url else None
    index = renderer.template("archive.html", {**site, "entries": entries, "feed_url": feed_url})
    changed = write_file(out_dir / "index.html", index)
    if settings.base_url:
        updated = f"{entries[0].issue.date.isoformat()}T00:00:00Z" if entries else "1970-01-01T00:00:00Z"
        author = (settings.sender or settings.name).split("<")[0].strip().strip('"') or settings.name
        feed = renderer.template("feed.xml", {**site, "entries": entries, "updated": updated, "author": author})
        changed += write_file(out_dir / "feed.xml", feed)
    return changed


def _entry_record(renderer: Renderer, settings: Settings, issue: Issue) -> dict:
    """What the index and the feed show of an issue, as JSON for the manifest."""
    labels = labels_for(issue.lang, settings.labels)
    line = f"{labels['issue'].format(number=issue.number)} · {format_date(issue.date, issue.lang)}"
    context = renderer.context(issue, "NLfeed", _absolute_images(settings, issue))
    first = issue.highlights[0] if issue.highlights else None
    highlight = str(context["md_inline"](first)) if first else None
    summary = issue.preheader or (context["md_text"](first, True) if first else None)
    content = renderer.template("entry.html", context) if settings.base_url else ""
    return {"number": issue.number, "date": issue.date.isoformat(), "title": issue.title, "lang": issue.lang,
            "line": line, "highlight": highlight, "summary": summary, "content": content}


def _entry(record: dict) -> Entry:
    issue = SimpleNamespace(number=record["number"], date=dt.date.fromisoformat(record["date"]),
                            title=record["title"], lang=record["lang"])
    highlight = Markup(record["highlight"]) if record["highlight"] is not None else None
    return Entry(issue, record["line"], highlight, record["summary"], Markup(record["content"]))


def _absolute_images(settings: Settings, issue: Issue):
    if not settings.base_url:
        return None
    return lambda src: f"{settings.base_url}/{issue.number}/{src}"


def _stamp(path: Path) -> list[int]:
    try:
        st = os.stat(path)
    except OSError:
        return [0, -1]
    return [st.st_mtime_ns if time.time_ns() - st.st_mtime_ns > RACY_NS else -1, st.st_size]


def _same_files(record: dict) -> bool:
    return all(stamp[0] != -1 and _stamp(Path(file)) == stamp for file, stamp in record["files"].items())


def _stat_issues(folder: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of each issue file (``*.yaml``, as ``archive`` always took)."""
    if not folder.is_dir():
        return {}
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(SUFFIXES) and entry.is_file():
                st = entry.stat()
                found[entry.name] = (st.st_mtime_ns, st.st_size)
    return dict(sorted(found.items()))


def _environment(settings: Settings) -> list:
    """The stamp of everything besides the issues that the pages depend on: the settings
    file, the layouts, this program's version."""
    stamps = [[str(settings.file), *_stamp(settings.file)], __version__, _FORMAT]
    if settings.layouts.is_dir():
        for path in sorted(settings.layouts.rglob("*")):
            if path.is_file():
                stamps.append([path.name, *_stamp(path)])
    return stamps


def _manifest_file(settings: Settings, out_dir: Path) -> Path:
    key = hashlib.sha1(str(out_dir.resolve()).encode()).hexdigest()[:16]
    return settings.root / MANIFESTS / f"archive-{key}.json"


def _read_manifest(file: Path) -> dict:
    try:
        manifest = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError):
        return {"issues": {}}
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or not isinstance(
            manifest.get("issues"), dict):
        return {"issues": {}}
    return manifest
