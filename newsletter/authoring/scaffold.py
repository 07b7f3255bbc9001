"""``newsletter new`` and ``newsletter schema``: a next issue to fill in, and the issue
format as JSON Schema so editors complete and flag fields while the author types."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from newsletter.authoring.check import issue_format
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.shapes import describe

SCHEMA_FILE = "issue.schema.json"
_NUMBER = re.compile(r"^number:\s*(\d+)", re.M)

_TEMPLATE = """\
# yaml-language-server: $schema=../{schema}
number: {number}
date: {date}
title: "TODO: the issue's title"
# subject: ""            # default: "{name} #{number}: <title>"
# preheader: ""          # inbox preview text, at most 150 characters
intro: |
  TODO: a few words to open the issue.
highlights:
  - "TODO: one line per highlight, Markdown [links](https://example.com) welcome"
sections:
  featured:
    - title: "TODO: the linked headline"
      url: https://example.com/
      summary: |
        TODO: why it matters, in two or three sentences.
      # source: example.com     # default: the URL's host
      # image:
      #   src: img/figure.png   # a path relative to this file, or an https URL
      #   alt: What the figure shows
      #   caption: Figure from the paper
      # paper:
      #   arxiv: "2109.10686"
      #   title: The paper's title
      # card:
      #   title: The linked page's title
      #   description: One line from the page
  # use_cases:
  #   - title: ...
  #     url: https://...
  #     summary: ...
  # papers:
  #   - title: ...
  #     url: https://arxiv.org/abs/...
  #     summary: ...
  #     paper: {{arxiv: "...", title: ...}}
  # articles:
  #   - title: ...
  #     url: https://...
  #     summary: ...
  # other:
  #   - title: ...
  #     url: https://...
  #     summary: ...
# more:
#   - title: ...
#     url: https://...
#     description: ...
# outro: |
#   Thanks for reading.
"""


def issue_schema() -> dict:
    """The issue format as a JSON Schema document."""
    schema = describe(issue_format(Path(".")))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "newsletter issue",
        "description": "One issue of a curated newsletter, as checked by `newsletter check`.",
        **schema,
    }


def schema_text() -> str:
    return json.dumps(issue_schema(), indent=2, ensure_ascii=False) + "\n"


def issue_files(folder: Path) -> dict[int, Path]:
    """The issue files of ``folder`` by the number on their ``number:`` line."""
    found: dict[int, Path] = {}
    for f in sorted(folder.glob("*.y*ml")):
        m = _NUMBER.search(f.read_text("utf-8", errors="replace"))
        if m:
            found.setdefault(int(m.group(1)), f)
    return found


def new_issue(settings: Settings, today: dt.date, sections: str | None = None) -> Path:
    """Write the next issue file in issues/ and return its path. ``sections``: the YAML of
    a ``sections:`` block to use instead of the template's examples (a draft from links)."""
    folder = settings.root / "issues"
    folder.mkdir(exist_ok=True)
    number = max(issue_files(folder), default=0) + 1
    path = folder / f"{number:03d}.yaml"
    if path.exists():
        raise NewsletterError(f"{path}: already exists; it holds no 'number:' line, so fix or move it")
    (settings.root / SCHEMA_FILE).write_text(schema_text(), "utf-8")
    text = _TEMPLATE.format(schema=SCHEMA_FILE, number=number, date=today.isoformat(), name=settings.name)
    if sections is not None:
        text = text[: text.index("sections:\n")] + sections + text[text.index("# more:\n"):]
    path.write_text(text, "utf-8")
    return path
