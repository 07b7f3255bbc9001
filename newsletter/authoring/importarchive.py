"""``newsletter import-archive DIR``: past issues written in Markdown, one file an issue,
into issue files in issues/, so the archive keeps the author's history.

Each file is read by ``mdarchive``; its number, date, title and language come from
front matter, else the title ("第 33 期", "Issue #12", 2021-10-17), else the file's name
(``2023-05.md``, ``issue-12.md``); files without a number are numbered after the
existing issues, in order of date and name. Everything is checked first, with the
checker's own format, at the Markdown's lines; then the issue files and their images
are written, each to a temporary name and renamed, so an error leaves nothing behind.
An existing issue file is never overwritten: that file is skipped, with a sentence.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import os
import re
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from newsletter.authoring.archivemeta import date_in, detect_lang, front_matter, month_in, number_in_name
from newsletter.authoring.check import LANG_PATTERN, check_issue, issue_format
from newsletter.authoring.issueyaml import issue_yaml
from newsletter.authoring.mdarchive import Parsed, Reader
from newsletter.authoring.mistakes import check_mistakes
from newsletter.authoring.scaffold import SCHEMA_FILE, issue_files, schema_text
from newsletter.config import Settings
from newsletter.errors import Invalid, Location, NewsletterError, Problem
from newsletter.shapes import SECTION_KEYS, Context
from newsletter.source import Source, read_text, write_atomic

_TITLE_NUMBER = re.compile(r"第\s*(\d+)\s*[期号號回]|(?:\bissue|\bno\.?|\bnr\.?|#)\s*#?\s*(\d+)(?!\d)", re.I)


class Imported(NamedTuple):
    written: list[str]  # the issue files written, as shown
    skipped: list[str]  # why a file was left as it was, one sentence each
    warnings: list[Problem]
    images: int  # image files copied
    unnamed: int  # arXiv items without a paper title (`newsletter enrich` fills them)


class _Draft:
    """One Markdown file on its way to an issue file."""

    def __init__(self, path: Path, display: str, meta: dict[str, Any], where: dict[str, Location], parsed: Parsed):
        self.path, self.display, self.meta, self.where, self.parsed = path, display, meta, where, parsed
        self.number: int | None = meta.get("number")
        self.date: dt.date | None = meta.get("date")
        self.skip: str | None = None
        self.data: dict[str, Any] = {}
        self.images: dict[str, Path] = {}  # src in the issue -> the file to copy


def import_archive(settings: Settings, source: Path, shown: str) -> Imported:
    """Read every Markdown file of ``source`` (a folder, or one file), check all, then write."""
    files = [source] if source.is_file() else sorted(source.glob("*.md")) + sorted(source.glob("*.markdown"))
    if not source.exists():
        raise NewsletterError(f"{shown}: no such folder")
    if not files:
        raise NewsletterError(f"{shown}: no Markdown files (*.md) in it")
    folder = settings.root / "issues"
    existing = issue_files(folder) if folder.is_dir() else {}
    problems: list[Problem] = []
    drafts: list[_Draft] = []
    for path in files:
        display = shown if path == source else os.path.join(shown, path.name)
        try:
            drafts.append(_read(path, display, problems))
        except NewsletterError as e:
            problems.append(Problem(e.where, e.message if e.where else f"{display}: {e.message}"))
    _number(drafts, existing, folder, problems)
    todo = sorted((d for d in drafts if d.skip is None), key=lambda d: d.number)
    taken: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "issues"
        (staged / "img").mkdir(parents=True)
        for d in todo:
            if d.data["title"] and d.date:  # else already an error
                _assemble(d, settings, folder, taken, staged)
                problems += _check(d, staged)
        texts = {}
        if not any(not p.warning for p in problems):
            for d in todo:
                texts[d.number] = issue_yaml(d.data)
                (staged / f"{d.number:03d}.yaml").write_text(texts[d.number], "utf-8")
            for d in todo:
                problems += _recheck(d, staged / f"{d.number:03d}.yaml", settings, folder)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise _invalid(problems, "nothing was written; fix the errors above and run it again")
    written, copied = _write(todo, texts, folder, taken)
    if written:
        write_atomic(settings.root / SCHEMA_FILE, schema_text().encode())
    return Imported(written, [d.skip for d in drafts if d.skip], [p for p in problems if p.warning], copied,
                    sum(d.parsed.unnamed for d in todo))


def _read(path: Path, display: str, problems: list[Problem]) -> _Draft:
    text = read_text(path, display)
    meta, where, body = front_matter(text, display, problems)
    parsed = Reader(display, body, path.parent, meta.get("url")).read()
    problems += parsed.problems
    draft = _Draft(path, display, meta, where, parsed)
    title = meta.get("title") or (parsed.title[0] if parsed.title else None)
    if parsed.title and "title" not in meta:
        where["title"] = parsed.title[1]
    name, dot, suffix = path.stem.rpartition(".")  # akira-33.zh.md: the language after the last dot
    name, suffix = (name, suffix) if dot and re.fullmatch(LANG_PATTERN, suffix) else (path.stem, None)
    if title is None:
        problems.append(Problem(Location(display, 1, 1), "no title: start the file with a '# Title' heading, or "
                                                         "give 'title:' in front matter"))
    if draft.number is None and title and (m := _TITLE_NUMBER.search(title)):
        draft.number, where["number"] = int(m[1] or m[2]), where.get("title", Location(display))
    draft.date = draft.date or (date_in(title) if title else None) or date_in(name) or month_in(name)
    draft.number = draft.number or number_in_name(name)
    if draft.date is None and "date" not in where:  # a wrong date in front matter is reported already
        problems.append(Problem(Location(display), "no date: give 'date: YYYY-MM-DD' in front matter, a date in "
                                                   "the title, or name the file like 2021-10-17.md"))
    lang = meta.get("lang") or suffix or detect_lang(body)
    draft.data = {"title": title, "subject": meta.get("subject"), "preheader": meta.get("preheader"), "lang": lang}
    return draft


def _number(drafts: list[_Draft], existing: dict[int, Path], folder: Path, problems: list[Problem]) -> None:
    """Give numberless files the numbers after every other, in order of date and name; skip
    numbers that issues/ already has."""
    seen: dict[int, str] = {}
    for d in drafts:
        if d.number is not None and d.number in seen:
            problems.append(Problem(d.where.get("number", Location(d.display)),
                                    f"issue {d.number} is also the number of {seen[d.number]}; give one of them "
                                    "another 'number:' in front matter"))
        seen.setdefault(d.number, d.display)
    following = max([*existing, *(n for n in seen if n is not None)], default=0) + 1
    known = _dates_and_titles(existing) if any(d.number is None for d in drafts) else {}
    for d in sorted((d for d in drafts if d.number is None), key=lambda d: (d.date or dt.date.max, d.path.name)):
        if (there := known.get((d.date, d.data["title"]))) is not None:
            d.number, d.skip = -1, f"{d.display}: already imported as {_shown(there)}; left as it is"
            continue
        d.number, following = following, following + 1
    for d in (d for d in drafts if d.skip is None):
        target = folder / f"{d.number:03d}.yaml"
        if d.number in existing:
            d.skip = f"{d.display}: issue {d.number} is already {_shown(existing[d.number])}; left as it is"
        elif target.exists():
            d.skip = f"{d.display}: {_shown(target)} already exists; left as it is"


def _dates_and_titles(existing: dict[int, Path]) -> dict[tuple[dt.date, str], Path]:
    """The date and title of each issue file, read from their top-level lines (a rerun of an import)."""
    found = {}
    for path in existing.values():
        lines = {k: v for k, _, v in (line.partition(": ") for line in read_text(path, str(path)).splitlines())}
        try:
            found[(yaml.safe_load(lines.get("date", "")), yaml.safe_load(lines.get("title", "")))] = path
        except (yaml.YAMLError, TypeError):  # not YAML, or a title that is not one value
            continue
    return found


def _assemble(d: _Draft, settings: Settings, folder: Path, taken: dict[str, Path], staged: Path) -> None:
    """The issue's values in the format's order; images given a name in issues/img/."""
    parsed = d.parsed.data
    for path, file in d.parsed.figures.items():
        name = "img/" + file.name.replace("\\", "_")
        for candidate in (name, f"img/{d.number:03d}-{file.name.replace(chr(92), '_')}"):
            there = taken.get(candidate) or (folder / candidate if (folder / candidate).exists() else None)
            if there is None or filecmp.cmp(there, file, shallow=False):
                name = candidate
                break
        taken.setdefault(name, file)
        (staged / name).write_bytes(file.read_bytes())
        image = parsed["sections"][path[1]][path[2]]["image"]
        image["src"] = name
    lang = d.data["lang"] if d.data["lang"] != settings.lang else None
    top = {"number": d.number, "date": d.date, "title": d.data["title"], "subject": d.data["subject"],
           "preheader": d.data["preheader"], "lang": lang, "intro": parsed.get("intro"),
           "highlights": parsed["highlights"] or None,
           "sections": {k: v for k, v in parsed["sections"].items() if v} or dict.fromkeys(SECTION_KEYS[:1], []),
           "more": parsed["more"] or None, "outro": parsed.get("outro")}
    d.data = {k: v for k, v in top.items() if v is not None}
    d.parsed.values.update({(k,): w for k, w in d.where.items()})


def _check(d: _Draft, staged: Path) -> list[Problem]:
    """The checker's format on the values, its errors at the Markdown's lines (one per place;
    its warnings come from the check of the file as written, at that file's lines)."""
    source = Source(d.display, d.data)
    source.values = d.parsed.values
    ctx = Context(source, staged)
    issue_format(staged).check(d.data, (), ctx)
    check_mistakes(source, ctx)
    if not any(d.data["sections"].values()):
        ctx.error((), "no items found: start each item's paragraph or bullet with its link, under a section "
                      "heading like '## Papers' or '## 论文'")
    mine = {p.where for p in d.parsed.problems if not p.warning}
    return [p for p in ctx.problems if not p.warning and p.where not in mine]


def _recheck(d: _Draft, staged: Path, settings: Settings, folder: Path) -> list[Problem]:
    """`newsletter check` of the file as it will be written: its warnings, with its name."""
    shown = _shown(folder / staged.name)
    try:
        return check_issue(staged, settings.lang, display=shown).warnings
    except Invalid as e:
        return [Problem(Location(d.display), f"the issue made from it does not pass `newsletter check`: {p}",
                        p.warning) for p in e.problems]


def _write(todo: list[_Draft], texts: dict[int, str], folder: Path, taken: dict[str, Path]) -> tuple[list[str], int]:
    """Every image and issue file to a temporary name first, then each renamed into place."""
    planned = [(folder / name, file.read_bytes()) for name, file in taken.items() if not (folder / name).exists()]
    copied = len(planned)
    planned += [(folder / f"{d.number:03d}.yaml", texts[d.number].encode()) for d in todo]
    moves: list[tuple[Path, Path]] = []
    try:
        for target, data in planned:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            moves.append((tmp, target))
        if there := [target for _, target in moves if target.suffix == ".yaml" and target.exists()]:
            raise NewsletterError(f"{_shown(there[0])}: appeared while importing; nothing was written")
        for tmp, target in moves:
            os.replace(tmp, target)
    finally:
        for tmp, _ in moves:
            tmp.unlink(missing_ok=True)
    return [_shown(folder / f"{d.number:03d}.yaml") for d in todo], copied


def _invalid(problems: list[Problem], last: str) -> Invalid:
    """Every problem, file by file and in line order within each, then ``last``."""
    error = Invalid(problems)
    error.problems = sorted(problems, key=lambda p: (p.where.file if p.where else "", p.order()))
    error.problems.append(Problem(None, last))
    return error


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
