"""The index of an issues folder, and the checks across issues that it makes cheap: a
number used twice, an issue dated before the previous number's, a URL linked before.

Each issue file's number, date and links (the items' and more posts' URLs, with their
line and column) are kept in ``<workspace>/.cache/newsletter/index.sqlite`` under the
file's name, with its stamp (mtime_ns, size). A refresh stats the folder's files and
re-reads only those whose stamp changed; a removed file drops out. With 1,000 issues a
check costs a thousand stat() calls and a few indexed queries, not a thousand parses.

A file modified less than ``RACY_NS`` before it was read may change again within the
filesystem's timestamp granularity without its stamp changing, so it is read again next
time (git calls such entries racy). A cache that cannot be written (a read-only
workspace, a file outside one) is built in memory for the one run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import marshal
import os
import re
import sqlite3
import stat
import time
from array import array
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from newsletter.authoring.model import raw_picks
from newsletter.errors import NewsletterError
from newsletter.shapes import Context
from newsletter.source import Path_, Source, intended_number, load_yaml, read_text

SUFFIXES = (".yaml", ".yml")
INDEX = Path(".cache") / "newsletter" / "index.sqlite"
RACY_NS = 2_000_000_000  # FAT and HFS+ keep 1-2 s; Linux's clock ticks in milliseconds
_SCHEMA = 1
_TABLES = (
    "CREATE TABLE folders (name TEXT PRIMARY KEY, mtime_ns INTEGER, stamps BLOB)",
    "CREATE TABLE files (folder TEXT, name TEXT, number INTEGER, date TEXT, PRIMARY KEY (folder, name))",
    "CREATE INDEX files_number ON files (folder, number)",
    "CREATE TABLE links (folder TEXT, name TEXT, url TEXT, line INTEGER, col INTEGER)",
    "CREATE INDEX links_url ON links (folder, url)",
    "CREATE INDEX links_file ON links (folder, name)",
)
_NUMBER_LINE = re.compile(r"^number:[ \t]*[\"']?([^\s#\"']+)", re.M)  # for files that are not valid YAML


class Facts(NamedTuple):
    """What the index keeps of one issue file."""

    number: int | None
    date: str | None  # YYYY-MM-DD
    links: list[tuple[str, int, int]]  # (same_url key, line, col)


def same_url(url: str) -> str:
    """A key under which the same page's URLs meet: http or https, with or without www.,
    a trailing slash or a #fragment."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # a broken [IPv6] host
        return url.strip()
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.netloc.lower().removeprefix('www.')}{parts.path.rstrip('/')}{query}"


def linked(data: Any) -> list[tuple[str, Path_]]:
    """The URLs an issue links as its picks (items and more posts), with their key paths."""
    return [(pick["url"], (*path, "url")) for path, pick in raw_picks(data) if isinstance(pick.get("url"), str)]


def facts_of(source: Source) -> Facts:
    data = source.data if isinstance(source.data, dict) else {}
    value = data.get("number")
    text = source.texts.get(("number",), value if isinstance(value, str) else None)
    number = intended_number(text) if text is not None else value if type(value) is int else None
    day = data.get("date")
    day = day.date() if isinstance(day, dt.datetime) else day
    links = [(same_url(url), *source.where(path)[1:]) for url, path in linked(data)]
    return Facts(number, day.isoformat() if isinstance(day, dt.date) else None, links)


def _read(path: Path) -> Facts:
    try:
        return facts_of(load_yaml(path, what="issue"))
    except NewsletterError:  # not YAML: its `number:` line still counts, as the author meant it
        try:
            match = _NUMBER_LINE.search(read_text(path, str(path)))
        except NewsletterError:
            return Facts(None, None, [])
        return Facts(intended_number(match[1]) if match else None, None, [])


class Catalog:
    """The index of one folder of issues, refreshed when opened: ``with Catalog(folder) as c``."""

    def __init__(self, folder: Path, checked: tuple[str, Source] | None = None):
        self.folder = folder.resolve()
        root = next((f for f in (self.folder.parent, self.folder) if (f / "newsletter.yaml").is_file()), None)
        self.key = self.folder.relative_to(root).as_posix() if root else self.folder.name
        self.db = _connect(root / INDEX if root else None)
        self.read = 0  # files (re)read by the refresh
        try:
            self.refresh(checked)
        except sqlite3.Error:  # a locked, full or broken cache file: this run builds one in memory
            self.db.close()
            self.db = _connect(None)
            self.refresh(checked)

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def refresh(self, checked: tuple[str, Source] | None = None) -> None:
        """Bring the index up to date with the folder. ``checked``: a file's name and its
        source as just loaded, used instead of reading that file again."""
        row = self.db.execute("SELECT mtime_ns, stamps FROM folders WHERE name = ?", (self.key,)).fetchone()
        seen, (names, mtimes, sizes) = (row[0], _stamps(row[1])) if row else (None, ([], array("q"), array("q")))
        folder_mtime = os.stat(self.folder).st_mtime_ns
        if folder_mtime == seen:  # no file added, removed or renamed since: stat the known ones
            stats = _stat_names(self.folder, names)
            if (stats is not None and array("q", [s.st_mtime_ns for s in stats]) == mtimes
                    and array("q", [s.st_size for s in stats]) == sizes):
                return
        stored = dict(zip(names, zip(mtimes, sizes, strict=True), strict=True))
        listed = sorted(n for n in os.listdir(self.folder) if n.endswith(SUFFIXES) and "\n" not in n)
        current = _stat_all(self.folder, listed)
        changed = [n for n, stamp in current.items() if stored.get(n) != stamp]
        gone = [n for n in stored if n not in current]
        facts = {n: facts_of(checked[1]) if checked and checked[0] == n else _read(self.folder / n)
                 for n in changed}
        self.read = len(changed) - (1 if checked and checked[0] in facts else 0)
        now = time.time_ns()
        stamps = ("\n".join(current), array("q", [m if now - m > RACY_NS else -1 for m, _ in current.values()]),
                  array("q", [size for _, size in current.values()]))
        db, key = self.db, self.key
        db.execute("BEGIN IMMEDIATE")
        with db:  # commits, or rolls back on an error
            for name in changed + gone:
                db.execute("DELETE FROM files WHERE folder = ? AND name = ?", (key, name))
                db.execute("DELETE FROM links WHERE folder = ? AND name = ?", (key, name))
            db.executemany("INSERT INTO files VALUES (?, ?, ?, ?)",
                           [(key, n, f.number, f.date) for n, f in facts.items()])
            db.executemany("INSERT INTO links VALUES (?, ?, ?, ?, ?)",
                           [(key, n, *link) for n, f in facts.items() for link in f.links])
            db.execute("INSERT OR REPLACE INTO folders VALUES (?, ?, ?)",
                       (key, folder_mtime if now - folder_mtime > RACY_NS else -1,
                        marshal.dumps((stamps[0], stamps[1].tobytes(), stamps[2].tobytes()))))

    def numbered(self, number: int, besides: str) -> list[str]:
        """The other files that carry ``number``."""
        rows = self.db.execute("SELECT name FROM files WHERE folder = ? AND number = ?", (self.key, number))
        return sorted(name for (name,) in rows if name != besides)

    def previous(self, number: int, besides: str) -> tuple[int, str, str] | None:
        """The issue with the highest number below ``number``: (number, date, file name)."""
        return self.db.execute(
            "SELECT number, date, name FROM files WHERE folder = ? AND number < ? AND name <> ?"
            " ORDER BY number DESC, name LIMIT 1", (self.key, number, besides)).fetchone()

    def earlier_links(self, urls: list[str], number: int, besides: str) -> dict[str, tuple[int, str, int]]:
        """For each of ``urls`` (same_url keys) linked by an issue numbered below ``number``,
        the latest such: (its number, file name, line)."""
        found: dict[str, tuple[int, str, int]] = {}
        for start in range(0, len(urls), 500):
            chunk = urls[start:start + 500]
            rows = self.db.execute(  # CROSS JOIN: look the few URLs up first, then their files
                "SELECT l.url, f.number, l.name, l.line FROM links l CROSS JOIN files f"
                " ON f.folder = l.folder AND f.name = l.name WHERE l.folder = ? AND f.number < ? AND l.name <> ?"
                f" AND l.url IN ({','.join('?' * len(chunk))}) ORDER BY f.number DESC, l.name, l.line",
                (self.key, number, besides, *chunk))
            for url, *where in rows:
                found.setdefault(url, tuple(where))
        return found


def _stat_names(folder: Path, names: list[str]) -> list[os.stat_result] | None:
    """The stat of each of ``names`` (None if one is gone): the hot loop of every check."""
    stat_, fd = os.stat, os.open(folder, os.O_RDONLY) if os.stat in os.supports_dir_fd else None
    try:
        if fd is None:
            return [stat_(folder / name) for name in names]
        return [stat_(name, dir_fd=fd) for name in names]
    except OSError:
        return None
    finally:
        if fd is not None:
            os.close(fd)


def _stat_all(folder: Path, names: list[str]) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of each of ``names`` that is a regular file."""
    stats = _stat_names(folder, names)
    if stats is None:  # one went away meanwhile: one at a time
        pairs = [(n, one[0]) for n in names if (one := _stat_names(folder, [n]))]
    else:
        pairs = list(zip(names, stats, strict=True))
    return {n: (s.st_mtime_ns, s.st_size) for n, s in pairs if stat.S_ISREG(s.st_mode)}


def _stamps(blob: bytes) -> tuple[list[str], array, array]:
    """The stored names, mtimes and sizes of a folder's files; none if unreadable."""
    try:
        text, mtimes, sizes = marshal.loads(blob)
        names, mtimes, sizes = text.split("\n") if text else [], array("q", mtimes), array("q", sizes)
    except (EOFError, ValueError, TypeError):
        return [], array("q"), array("q")
    return (names, mtimes, sizes) if len(names) == len(mtimes) == len(sizes) else ([], array("q"), array("q"))


def _connect(file: Path | None) -> sqlite3.Connection:
    """The index at ``file`` (a damaged one is replaced), or in memory if it cannot be had."""
    for attempt in range(2 if file is not None else 0):
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            return _prepare(sqlite3.connect(file, timeout=10, isolation_level=None))
        except sqlite3.DatabaseError as e:
            if attempt or isinstance(e, sqlite3.OperationalError):  # locked for long, or read-only
                break
            with contextlib.suppress(OSError):  # not a database (a torn or foreign file): start over
                file.unlink()
        except OSError:
            break
    return _prepare(sqlite3.connect(":memory:", isolation_level=None))


def _prepare(db: sqlite3.Connection) -> sqlite3.Connection:
    try:
        db.execute("PRAGMA synchronous = OFF")  # a cache: a torn file is rebuilt, never trusted
        if db.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA:
            db.execute("BEGIN IMMEDIATE")
            with db:  # commits, or rolls back on an error
                if db.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA:  # another process may have
                    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                        db.execute(f'DROP TABLE IF EXISTS "{name}"')
                    for statement in _TABLES:
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {_SCHEMA}")
    except BaseException:
        db.close()
        raise
    return db


def check_across(data: dict[str, Any], source: Source, ctx: Context, path: Path,
                 catalog: Catalog | None = None) -> None:
    """The rules across the issues of ``path``'s folder: a number used twice (error), an
    issue dated before the previous number's, a URL linked in an earlier issue (warnings).
    ``catalog``: an index of that folder already refreshed (``archive`` checks every issue)."""
    number = data.get("number")
    if not isinstance(number, int):
        return
    own = catalog is None or catalog.folder != path.parent.resolve()
    if own:
        try:
            catalog = Catalog(path.parent, (path.name, source))
        except OSError:  # a folder that cannot be listed: nothing to compare with
            return
    assert catalog is not None
    try:
        shown = catalog.folder.name
        for other in catalog.numbered(number, path.name):
            ctx.error(("number",), f"{number} is already the number of {shown}/{other}")
        before = catalog.previous(number, path.name)
        date = data.get("date")
        if before and before[1] and isinstance(date, dt.date) and date < dt.date.fromisoformat(before[1]):
            ctx.warn(("date",), f"{date.isoformat()} is before {before[1]}, the date of issue {before[0]} "
                                f"({shown}/{before[2]})")
        urls = linked(source.data)
        earlier = catalog.earlier_links(sorted({same_url(url) for url, _ in urls}), number, path.name)
        for url, where in urls:
            if (hit := earlier.get(same_url(url))) is not None:
                ctx.warn(where, f"already linked in issue {hit[0]} ({shown}/{hit[1]}:{hit[2]})")
    finally:
        if own:
            catalog.close()
