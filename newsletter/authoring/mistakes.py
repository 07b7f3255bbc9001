"""Slips the checker sees in one file, without the network: a paper's arXiv id that
contradicts the arXiv link of its own item (2102.05059 linked, 2102.05095 named), and
the placeholders ``newsletter new`` writes (TODO, example.com and example.org
addresses), which ``check`` warns about and ``send`` refuses."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from newsletter.authoring.arxivid import arxiv_id, split_version, valid_id
from newsletter.authoring.model import raw_picks
from newsletter.shapes import Context
from newsletter.source import Path_, Source

PLACEHOLDER_HOSTS = ("example.com", "example.org")
_TODO = re.compile(r"\bTODO\b")
_URL = re.compile(r"https?://[^\s<>()\[\]\"'`]+", re.I)


def check_mistakes(source: Source, ctx: Context) -> None:
    """Errors for contradicting arXiv ids, warnings for placeholders."""
    _check_arxiv_links(source, ctx)
    for path, message in placeholders(source.data):
        ctx.warn(path, message)


def placeholders(data: Any, path: Path_ = ()) -> list[tuple[Path_, str]]:
    """Every value that still holds a placeholder of ``newsletter new``, and what it is."""
    found: list[tuple[Path_, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            found += placeholders(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += placeholders(value, (*path, i))
    elif isinstance(data, str):
        if _TODO.search(data):
            found.append((path, "still says TODO, a placeholder from `newsletter new`"))
        hosts = sorted({host for host in map(_host, _URL.findall(data)) if is_placeholder_host(host)})
        if hosts:
            found.append((path, f"links to {hosts[0]}, a placeholder address from `newsletter new`"))
    return found


def is_placeholder_host(host: str) -> bool:
    """example.com, example.org and their subdomains: reserved for examples, never a real page."""
    return any(host == h or host.endswith("." + h) for h in PLACEHOLDER_HOSTS)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def _check_arxiv_links(source: Source, ctx: Context) -> None:
    for path, item in raw_picks(source.data):
        paper = item.get("paper") if path[0] == "sections" else None
        url, named = item.get("url") if paper else None, paper.get("arxiv") if isinstance(paper, dict) else None
        if not isinstance(url, str) or not isinstance(named, str):
            continue
        linked, ours = arxiv_id(url), valid_id(named)
        if linked is None or ours is None:
            continue
        (base, version), (linked_base, linked_version) = split_version(ours), split_version(linked)
        if base != linked_base or (version and linked_version and version != linked_version):
            line = source.where((*path, "url")).line
            ctx.error((*path, "paper", "arxiv"),
                      f"{named.strip()} contradicts the item's url, which links arXiv {linked} "
                      f"(line {line}); one of them is wrong")
