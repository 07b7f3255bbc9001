"""``--where``: a small filter language over subscribers, for `subscribers list`, `tag`,
`untag` and `send`. It is parsed (a tokenizer and a recursive-descent parser) and then
evaluated in Python against each subscriber: never run as Python and never pasted into
SQL, so no expression can reach the store, and the store's SQL dialect does not matter.

    expr    := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | atom
    atom    := '(' expr ')' | 'subscribed' | 'unsubscribed' | 'bounced'
             | value ['not'] 'in' 'tags'
             | field ('=' | '!=' | '~' | 'contains' | 'starts with' | 'ends with') value
             | field ['not'] 'in' '(' value (',' value)* ')'
             | ('created_at' | 'updated_at') ('<' | '<=' | '>' | '>=') value
    value   := 'text' | "text" | digits          ('it''s': a quote written twice)
    field   := email | name | status | created_at | updated_at | any personal field

Text comparisons ignore case; `~` is a glob (`*` any run, `?` one character). A
personal field that a subscriber lacks is empty. Errors say where: ``--where:1:COL``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import NamedTuple

from newsletter.errors import Location, NewsletterError
from newsletter.mailing.importing import check_time
from newsletter.mailing.store import STATUSES

CORE = ("email", "name", "status", "created_at", "updated_at")
DATES = ("created_at", "updated_at")
KEYWORDS = frozenset(("and", "or", "not", "in", "contains", "starts", "ends", "with"))
_TOKEN = re.compile(r"""\s*(?:(?P<text>'(?:[^']|'')*'|"(?:[^"]|"")*")|(?P<number>[0-9]+(?:\.[0-9]+)?)"""
                    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>!=|<>|<=|>=|==|[=<>~(),])|(?P<other>\S))""")


class Token(NamedTuple):
    kind: str  # text | number | word | op | end
    value: str
    col: int  # 1-based


Test = Callable[[object], bool]  # a subscriber (email, name, fields, status, tags, ...) -> matches


class Segment(NamedTuple):
    """A parsed --where expression."""

    text: str
    test: Test
    fields: frozenset[str]  # the personal fields it names

    def matches(self, subscriber) -> bool:
        return self.test(subscriber)


def parse(text: str) -> Segment:
    """The segment ``text`` describes, or NewsletterError at its column."""
    parser = _Parser(text)
    test = parser.expr()
    if parser.peek().kind != "end":
        token = parser.peek()
        parser.fail(token, f"expected 'and', 'or' or the end, found {_show(token)}")
    return Segment(text, test, frozenset(parser.fields))


def tokens(text: str) -> list[Token]:
    found, at = [], 0
    while match := _TOKEN.match(text, at):
        kind = match.lastgroup
        col = match.start(kind) + 1
        value = match[kind]
        if kind == "other":
            if value in "'\"":
                raise _error(col, f"the quote {value} opened here is never closed")
            raise _error(col, f"unexpected {value!r}", "text goes in quotes: lang = 'zh'")
        if kind == "text":
            value = value[1:-1].replace(value[0] * 2, value[0])
        found.append(Token(kind, value, col))
        at = match.end()
    found.append(Token("end", "", len(text.rstrip()) + 1))
    return found


class _Parser:
    def __init__(self, text: str):
        if not text.strip():
            raise _error(1, "the expression is empty", "for example: lang = 'zh' and not bounced")
        self.tokens, self.at, self.fields, self.depth = tokens(text), 0, set(), 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.at += 1
        return token

    def keyword(self, *words: str) -> bool:
        """Take the next token if it is one of ``words`` (any case)."""
        token = self.peek()
        if token.kind == "word" and token.value.lower() in words:
            self.at += 1
            return True
        return False

    def fail(self, token: Token, message: str, hint: str | None = None):
        raise _error(token.col, message, hint)

    def expr(self) -> Test:
        tests = [self.conjunction()]
        while self.keyword("or"):
            tests.append(self.conjunction())
        return tests[0] if len(tests) == 1 else lambda s: any(t(s) for t in tests)

    def conjunction(self) -> Test:
        tests = [self.negation()]
        while self.keyword("and"):
            tests.append(self.negation())
        return tests[0] if len(tests) == 1 else lambda s: all(t(s) for t in tests)

    def negation(self) -> Test:
        token = self.peek()
        if self.keyword("not"):
            inner = self.nested(token, self.negation)
            return lambda s: not inner(s)
        return self.atom()

    def nested(self, token: Token, parse: Callable[[], Test]) -> Test:
        """``parse()`` one level deeper: Python's stack, not the expression, sets the limit otherwise."""
        self.depth += 1
        if self.depth > 50:
            self.fail(token, "nested more than 50 levels deep")
        try:
            return parse()
        finally:
            self.depth -= 1

    def atom(self) -> Test:
        token = self.peek()
        if token.kind == "op" and token.value == "(":
            self.take()
            inner = self.nested(token, self.expr)
            self.expect(")", f"a ')' to close the '(' at column {token.col}")
            return inner
        if token.kind in ("text", "number"):  # 'ml' in tags
            value = self.take().value.casefold()
            negate = self.keyword("not")
            if not self.keyword("in") or not self.keyword("tags"):
                self.fail(self.peek(), f"expected 'in tags' after {_show(token)}, found {_show(self.peek())}")
            return (lambda s: value not in _folded(s.tags)) if negate else (lambda s: value in _folded(s.tags))
        if token.kind != "word" or token.value.lower() in KEYWORDS:
            self.fail(token, f"expected a field, a status or '(', found {_show(token)}")
        self.take()
        name = token.value.lower() if token.value.lower() in (*CORE, "tags") else token.value
        following = self.peek()
        status = token.value.lower()
        if status in STATUSES and (following.kind == "end" or following.kind == "word" and following.value.lower()
                                   in ("and", "or") or following.value == ")"):
            return lambda s: s.status == status  # `bounced`, as short for status = 'bounced'
        if name == "tags":
            self.fail(token, "tags holds several values: ask for one with 'ml' in tags or 'ml' not in tags")
        return self.comparison(token, name)

    def comparison(self, token: Token, name: str) -> Test:
        get = _getter(name)
        if name not in CORE:
            self.fields.add(name)
        op = self.peek()
        if self.keyword("contains"):
            value = self.value(op)
            return lambda s: value in get(s)
        if self.keyword("starts", "ends"):
            start = op.value.lower() == "starts"
            if not self.keyword("with"):
                self.fail(self.peek(), f"expected 'with' after '{op.value}'")
            value = self.value(op)
            return (lambda s: get(s).startswith(value)) if start else (lambda s: get(s).endswith(value))
        negate = self.keyword("not")
        if negate or self.keyword("in"):
            if negate and not self.keyword("in"):
                self.fail(self.peek(), f"expected 'in' after 'not', found {_show(self.peek())}")
            values = self.values()
            self.check_status(name, op, values)
            return (lambda s: get(s) not in values) if negate else (lambda s: get(s) in values)
        if op.kind != "op" or op.value in "(),":
            self.fail(op, f"expected a comparison after {token.value} (=, !=, ~, in, contains, starts with,"
                      f" ends with), found {_show(op)}")
        self.take()
        if op.value in ("<", "<=", ">", ">="):
            return self.date(token, name, op)
        value = self.value(op)
        self.check_status(name, op, {value})
        if op.value == "~":
            return lambda s: fnmatchcase(get(s), value)
        if op.value in ("!=", "<>"):
            return lambda s: get(s) != value
        return lambda s: get(s) == value

    def date(self, token: Token, name: str, op: Token) -> Test:
        """created_at < '2024-01-01': both as the store writes times (UTC ISO 8601), which
        sort as text."""
        if name not in DATES:
            self.fail(op, f"{op.value} compares dates: only created_at and updated_at, not {token.value}")
        at = self.peek()
        try:
            when = check_time(self.value(op, fold=False), name)
        except NewsletterError:
            self.fail(at, f"{_show(at)} is not a date (like '2024-01-31' or '2024-01-31T09:30:00+09:00')")
        if when is None:
            self.fail(at, "an empty date compares with nothing")
        return {"<": lambda s: getattr(s, name) < when, "<=": lambda s: getattr(s, name) <= when,
                ">": lambda s: getattr(s, name) > when, ">=": lambda s: getattr(s, name) >= when}[op.value]

    def value(self, after: Token, fold: bool = True) -> str:
        token = self.peek()
        if token.kind in ("text", "number"):
            value = self.take().value
            return value.casefold() if fold else value
        hint = f"write '{token.value}'" if token.kind == "word" else None
        self.fail(token, f"expected a quoted value after '{after.value}', found {_show(token)}", hint)

    def values(self) -> set[str]:
        self.expect("(", "a '(' with the values: field in ('a', 'b')")
        values = {self.value(self.tokens[self.at - 1])}
        while self.peek().value == "," and self.peek().kind == "op":
            self.take()
            values.add(self.value(self.tokens[self.at - 1]))
        self.expect(")", "',' or ')'")
        return values

    def expect(self, op: str, what: str) -> None:
        token = self.peek()
        if token.kind != "op" or token.value != op:
            self.fail(token, f"expected {what}, found {_show(token)}")
        self.take()

    def check_status(self, name: str, op: Token, values: set[str]) -> None:
        """status = 'bouned' would match nobody, silently: say so instead."""
        wrong = sorted(v for v in values if v not in STATUSES) if name == "status" and op.value != "~" else []
        if wrong:
            self.fail(op, f"status is subscribed, unsubscribed or bounced, not {wrong[0]!r}")


def _getter(name: str) -> Callable[[object], str]:
    if name in CORE:
        return lambda s: getattr(s, name).casefold()
    return lambda s: s.fields.get(name, "").casefold()


def _folded(tags: list[str]) -> set[str]:
    return {t.casefold() for t in tags}


def _show(token: Token) -> str:
    if token.kind == "end":
        return "the end"
    return repr(token.value) if token.kind in ("text", "op") else token.value


def _error(col: int, message: str, hint: str | None = None) -> NewsletterError:
    return NewsletterError(message, Location("--where", 1, col), hint)
