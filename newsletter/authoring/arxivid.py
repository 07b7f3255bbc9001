"""arXiv ids, written once: what an id looks like, the id an arXiv link names, and an id
without its version. The checker, the offline checks and enrich all ask here."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# YYMM.NNNN up to 2014, YYMM.NNNNN from 2015 on; both may carry a version (v2).
_NEW_ARXIV = r"((0[7-9]|1[0-4])(0[1-9]|1[0-2])\.\d{4}|(1[5-9]|[2-9]\d)(0[1-9]|1[0-2])\.\d{5})(v[1-9]\d*)?"
_OLD_ARXIV = r"[a-z]+(-[a-z]+)*(\.[A-Z]{2})?/\d{2}(0[1-9]|1[0-2])\d{3}(v[1-9]\d*)?"
ARXIV_PATTERN = f"{_NEW_ARXIV}|{_OLD_ARXIV}"
_URL_PATH = re.compile(r"/(?:abs|pdf|html)/(?P<id>.+?)(?:\.pdf)?/?")
_VERSION = re.compile(r"v([1-9]\d*)$")
HOSTS = ("arxiv.org", "www.arxiv.org", "export.arxiv.org")


def arxiv_id(url: str) -> str | None:
    """The arXiv id of an abs, pdf or html link (with its version, if it has one)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or (parts.hostname or "").lower() not in HOSTS:
        return None
    m = _URL_PATH.fullmatch(parts.path)
    return m["id"] if m and re.fullmatch(ARXIV_PATTERN, m["id"]) else None


def valid_id(value: object) -> str | None:
    """``value`` as an arXiv id, if it is one."""
    if isinstance(value, str) and re.fullmatch(ARXIV_PATTERN, value.strip()):
        return value.strip()
    return None


def split_version(arxiv: str) -> tuple[str, str | None]:
    """``2109.10686v2`` -> (``2109.10686``, ``2``); no version -> (id, None)."""
    m = _VERSION.search(arxiv)
    return (arxiv[: m.start()], m[1]) if m else (arxiv, None)
