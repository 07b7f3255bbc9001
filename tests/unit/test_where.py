"""The --where language: what an expression matches, and where a bad one is wrong."""

from __future__ import annotations

import pytest

from newsletter.errors import NewsletterError
from newsletter.mailing.segments import parse
from newsletter.mailing.store import Subscriber

PEOPLE = [
    Subscriber("Ada@Example.org", "Ada Lovelace", {"lang": "en", "company": "Analytical Engines"}, "subscribed",
               "2019-05-01T08:00:00.000000+00:00", "2024-01-01T00:00:00.000000+00:00", ["ML", "papers"]),
    Subscriber("li.wei@example.cn", "李伟", {"lang": "zh"}, "subscribed",
               "2023-02-01T00:00:00.000000+00:00", "2023-02-01T00:00:00.000000+00:00", ["ml"]),
    Subscriber("bob@example.net", "Bob", {"lang": "zh", "subscribed": "yes"}, "bounced",
               "2021-07-07T00:00:00.000000+00:00", "2022-01-01T00:00:00.000000+00:00", []),
    Subscriber("zoe@example.org", "", {}, "unsubscribed",
               "2024-06-30T23:59:59.000000+00:00", "2024-07-01T00:00:00.000000+00:00", ["vip"]),
]


def who(expression: str) -> list[str]:
    segment = parse(expression)
    return [p.email.split("@")[0].lower() for p in PEOPLE if segment.matches(p)]


@pytest.mark.parametrize(("expression", "expected"), [
    ("lang = 'zh'", ["li.wei", "bob"]),
    ("lang != 'zh'", ["ada", "zoe"]),  # zoe has no lang: it is empty, not 'zh'
    ("lang = ''", ["zoe"]),
    ("'ml' in tags and not bounced", ["ada", "li.wei"]),  # tags ignore case: 'ML' is 'ml'
    ("'ML' not in tags", ["bob", "zoe"]),
    ("bounced", ["bob"]),
    ("subscribed", ["ada", "li.wei"]),
    ("not subscribed", ["bob", "zoe"]),
    ("status = 'unsubscribed'", ["zoe"]),
    ("status in ('bounced', 'unsubscribed')", ["bob", "zoe"]),
    ("subscribed = 'yes'", ["bob"]),  # a personal field that happens to be called subscribed
    ("email = 'ADA@example.ORG'", ["ada"]),
    ("email ends with '@example.org'", ["ada", "zoe"]),
    ("email starts with 'li.'", ["li.wei"]),
    ("email ~ '*@example.?et'", ["bob"]),
    ("name contains 'love'", ["ada"]),
    ("name = '李伟'", ["li.wei"]),
    ("lang in ('en', 'ZH')", ["ada", "li.wei", "bob"]),
    ("lang not in ('en', 'zh')", ["zoe"]),
    ("company ~ 'analytical*'", ["ada"]),
    ("created_at < '2021-01-01'", ["ada"]),
    ("created_at >= '2023-02-01'", ["li.wei", "zoe"]),
    ("created_at > '2024-06-30T23:00:00-02:00'", []),  # 2024-07-01T01:00Z: zoe came an hour before
    ("updated_at <= '2022-01-01T00:00:00Z'", ["bob"]),
    # and binds tighter than or; not tighter than and; parentheses as written
    ("lang = 'zh' or lang = 'en' and bounced", ["li.wei", "bob"]),
    ("(lang = 'zh' or lang = 'en') and bounced", ["bob"]),
    ("not lang = 'zh' and not unsubscribed", ["ada"]),
    ("not (lang = 'zh' and bounced)", ["ada", "li.wei", "zoe"]),
    ("NOT bounced AND 'vip' IN TAGS OR Name = 'bob'", ["bob", "zoe"]),
    ("(" * 50 + "bounced" + ")" * 50, ["bob"]),
    ("not not bounced", ["bob"]),
    ("name = 'O''Brien' or name = \"Bob\"", ["bob"]),  # a quote written twice is one quote
    ("lang = 'x'' OR 1=1 --'", []),  # text is text: never SQL, never Python
    ("__import__ = 'os'", []),  # a field like any other, which no one has
])
def test_what_an_expression_matches(expression: str, expected: list[str]) -> None:
    assert who(expression) == expected


def test_the_segment_knows_the_personal_fields_it_names() -> None:
    assert parse("lang = 'zh' and (company ~ 'a*' or name = 'x') and 'ml' in tags").fields == {"lang", "company"}


@pytest.mark.parametrize(("expression", "error"), [
    ("lang = zh", "--where:1:8: expected a quoted value after '=', found zh (write 'zh')"),
    ("lang = 'zh", "--where:1:8: the quote ' opened here is never closed"),
    ("lang 'zh'", "--where:1:6: expected a comparison after lang (=, !=, ~, in, contains, starts with, ends with),"
                  " found 'zh'"),
    ("'ml' in tag", "--where:1:9: expected 'in tags' after 'ml', found tag"),
    ("tags = 'ml'", "--where:1:1: tags holds several values: ask for one with 'ml' in tags or 'ml' not in tags"),
    ("status = 'bouned'", "--where:1:8: status is subscribed, unsubscribed or bounced, not 'bouned'"),
    ("name < 'b'", "--where:1:6: < compares dates: only created_at and updated_at, not name"),
    ("created_at > 'last week'", "--where:1:14: 'last week' is not a date (like '2024-01-31' or"
                                 " '2024-01-31T09:30:00+09:00')"),
    ("(lang = 'zh' or bounced", "--where:1:24: expected a ')' to close the '(' at column 1, found the end"),
    ("lang = 'zh' bounced", "--where:1:13: expected 'and', 'or' or the end, found bounced"),
    ("lang = 'zh' and", "--where:1:16: expected a field, a status or '(', found the end"),
    ("lang in 'zh'", "--where:1:9: expected a '(' with the values: field in ('a', 'b'), found 'zh'"),
    ("lang in ('zh' 'en')", "--where:1:15: expected ',' or ')', found 'en'"),
    ("lang = 'zh'; DROP TABLE subscribers", "--where:1:12: unexpected ';' (text goes in quotes: lang = 'zh')"),
    ("__import__('os').system('id')", "--where:1:17: unexpected '.' (text goes in quotes: lang = 'zh')"),
    ("email starts 'a'", "--where:1:14: expected 'with' after 'starts'"),
    ("   ", "--where:1:1: the expression is empty (for example: lang = 'zh' and not bounced)"),
    ("(" * 51 + "bounced" + ")" * 51, "--where:1:51: nested more than 50 levels deep"),
    ("not " * 10_000 + "bounced", "--where:1:201: nested more than 50 levels deep"),
])
def test_a_bad_expression_says_where_and_what(expression: str, error: str) -> None:
    with pytest.raises(NewsletterError) as caught:
        parse(expression)
    assert str(caught.value) == error
