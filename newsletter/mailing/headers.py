"""Header fields every relay and mail reader accepts, whatever the values: lines folded
at 78 characters and never past 998 (RFC 5322), text that plain ASCII cannot carry as
RFC 2047 encoded words, non-ASCII domains in IDNA.

Values are whitespace-normalized (a run of white space reads as one space anyway), so a
fold point is any space between words. An ASCII word too long for a line stays whole on
a line of its own, like a long address or URL: encoding it only to fold it would hide it
from filters and, in a display name, from Python's parser (see encoded_words). Only a
word too long for 998 characters is encoded for its length. Non-ASCII text is encoded
anyway, and encoded words can be cut anywhere.
"""

from __future__ import annotations

import base64
import re
from email.utils import getaddresses
from functools import lru_cache
from itertools import groupby
from string import ascii_letters, digits

import idna

LINE = 78  # RFC 5322: a line SHOULD be at most 78 characters...
MAX = 998  # ...and MUST be at most 998
WORD = 75  # RFC 2047: an encoded word is at most 75 characters
_WRAP = len("=?utf-8?q??=")
# RFC 2047 5(3): the only characters a "Q" word in a phrase may carry as they are
_Q = [chr(b) if chr(b) in ascii_letters + digits + "!*+-/" else f"={b:02X}" for b in range(256)]
_Q[32] = "_"
_Q_SAFE = bytes(b for b in range(256) if len(_Q[b]) == 1)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def unstructured(field: str, value: str) -> str:
    """``Subject: value``: words as they are, encoded words for the ones that need it."""
    return fold(field, _tokens(field, value.split(), quote=False))


def mailbox(field: str, name: str, addr: str) -> str:
    """``To: "Name" <address>``, ``name`` whitespace-normalized. A short name is one
    f-string: this runs for every recipient."""
    if not (addr.isascii() and addr.isprintable()):
        addr = address(addr)
        if not addr.isascii():  # raw UTF-8, measured in octets by fold
            return fold(field, [*phrase(field, name), f"<{addr}>"] if name else [addr])
    if not name:
        return f"{field}: {addr}\r\n"  # nothing to fold
    if name.isascii():
        if name.isprintable() and "=?" not in name:
            line = f"{field}: {_quote(name)} <{addr}>"
            if len(line) <= LINE:
                return line + "\r\n"
    elif len(name) < 30:  # one encoded word (a longer name would not fit a line with it)
        line = f"{field}: =?utf-8?b?{base64.b64encode(name.encode()).decode()}?= <{addr}>"
        if len(line) <= LINE:
            return line + "\r\n"
    return fold(field, [*phrase(field, name), f"<{addr}>"])


def mailboxes(field: str, value: str) -> str:
    """``From: Name <address>, ...`` from a configured value: each mailbox re-encoded."""
    tokens: list[str] = []
    for name, addr in getaddresses([value]):
        if tokens:
            tokens[-1] += ","
        tokens += [*phrase(field, name), f"<{address(addr)}>"] if name.strip() else [address(addr)]
    return fold(field, tokens)


def phrase(field: str, name: str) -> list[str]:
    """A display name as tokens: ASCII words in quoted strings, each within a line (no
    parser has to unfold inside one), the other words as encoded words."""
    return _tokens(field, name.split(), quote=True)


def address(addr: str) -> str:
    """The address with its domain in IDNA. A non-ASCII local part stays raw UTF-8, which
    only SMTPUTF8 (RFC 6531/6532) carries: whether the relay does is the sender's call."""
    if _CONTROL.search(addr):  # a line break would forge headers
        raise ValueError(f"control character in address {addr!r}")
    local, at, domain = addr.rpartition("@")
    return f"{local}{at}{domain if domain.isascii() else _idna(domain)}"


def ascii_domain(domain: str) -> str:
    """The domain as ASCII (IDNA, ``xn--``), as SMTP and headers write it."""
    return domain if domain.isascii() else _idna(domain)


@lru_cache(maxsize=4096)  # subscribers share a few domains, and the encoding is slow
def _idna(domain: str) -> str:
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:  # checked at import, so unlikely; raw UTF-8 is valid SMTPUTF8
        return domain


def fold(field: str, tokens: list[str]) -> str:
    """``field: tokens``, a space between tokens and a fold before any token that would
    take its line past 78 characters (octets, for raw UTF-8)."""
    out, size = [field, ":"], len(field) + 1
    for n, token in enumerate(tokens):
        length = len(token) if token.isascii() else len(token.encode())
        if n and size + 1 + length > LINE:
            out.append("\r\n")
            size = 0
        out += (" ", token)
        size += 1 + length
    out.append("\r\n")
    return "".join(out)


def _room(field: str) -> int:
    return LINE - len(field) - 2


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tokens(field: str, words: list[str], quote: bool) -> list[str]:
    """Runs of plain words (quoted if ``quote``) and runs of the others as encoded words,
    the first token short enough for the first line. Plain: printable ASCII without "=?"
    (which a reader would try to decode) and, as a token, short enough for 998."""
    if not words:
        return []
    limit = MAX - len(field) - 2

    def plain(word: str) -> bool:
        size = len(_quote(word)) if quote else len(word)
        return word.isascii() and word.isprintable() and "=?" not in word and size <= limit

    text = " ".join(words)
    runs = [(True, words)] if plain(text) else [(p, list(run)) for p, run in groupby(words, plain)]
    out: list[str] = []
    for is_plain, run in runs:
        first = LINE - 1 if out else _room(field)
        if not is_plain:
            out += encoded_words(" ".join(run), min(first, WORD))
        elif quote:
            out += _quoted(" ".join(run), first)
        else:
            out += run
    return out


def _quoted(text: str, first: int) -> list[str]:
    """Words in quoted strings that each fit a line (``first`` for the first), a word
    alone if it cannot: the space between two quoted strings reads as one space."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')  # escapes hold no space: cuts are safe
    out, room = [], first - 2
    while len(text) > room:
        cut = text.rfind(" ", 0, room + 1)
        if cut < 0:
            cut = text.find(" ")
            if cut < 0:
                break
        out.append(f'"{text[:cut]}"')
        text, room = text[cut + 1:], LINE - 3
    out.append(f'"{text}"')
    return out


def encoded_words(text: str, first: int = WORD) -> list[str]:
    """``text`` as UTF-8 encoded words of at most 75 characters (``first`` for the first),
    Q or B, whichever is shorter. Readers ignore the white space between encoded words, so
    the text's own spaces travel inside them; cuts fall after a space where they can (in a
    display name, Python's parser wrongly reads a space at every cut: CPython gh-128110)."""
    data = text.encode()
    q = len(data) + 2 * len(data.translate(None, _Q_SAFE)) <= (len(data) + 2) // 3 * 4

    def cost(s: str) -> int:
        b = s.encode()
        return len(b) + 2 * len(b.translate(None, _Q_SAFE)) if q else len(b)

    def capacity(chars: int) -> int:  # in cost units: Q characters, or bytes for B
        return chars - _WRAP if q else (chars - _WRAP) // 4 * 3

    chunks: list[str] = []
    current, used, cap = "", 0, capacity(first)
    words = text.split(" ")
    for n, word in enumerate(words):
        piece = word if n == len(words) - 1 else word + " "
        size = cost(piece)
        if current and used + size > cap:
            chunks.append(current)
            current, used, cap = "", 0, capacity(WORD)
        if used + size <= cap:
            current, used = current + piece, used + size
            continue
        for ch in piece:  # a word longer than an encoded word: cut between characters
            size = cost(ch)
            if used + size > cap:
                chunks.append(current)
                current, used, cap = "", 0, capacity(WORD)
            current, used = current + ch, used + size
    chunks.append(current)
    if q:
        return ["=?utf-8?q?" + "".join(_Q[b] for b in c.encode()) + "?=" for c in chunks]
    return ["=?utf-8?b?" + base64.b64encode(c.encode()).decode() + "?=" for c in chunks]
