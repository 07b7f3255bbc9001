"""Segments: tags, `subscribers list --where`, and `send --where` judged by what a real SMTP
server (aiosmtpd on 127.0.0.1) receives: exactly the segment, nobody twice."""

from __future__ import annotations

import csv
import io
import json

import pytest

from support import smtp_config

pytestmark = pytest.mark.backends

PEOPLE = """\
email,name,lang,tags
ada@example.com,Ada Lovelace,en,"ml,papers"
li.wei@example.cn,李伟,zh,ml
mei@example.cn,Mei,zh,
zoe@example.org,Zoë,de,papers
bob@example.net,Bob,zh,ml
"""


@pytest.fixture
def readers(ws, smtp, secret):
    """Five subscribers with languages and tags (bob bounced), an issue, the test server."""
    ws.configure(extra=smtp_config(smtp.port))
    ws.issue("033.yaml", number=33)
    (ws.root / "people.csv").write_text(PEOPLE, "utf-8")
    assert ws.run("subscribers", "import", "people.csv").exit_code == 0
    ws.store().set_status("bob@example.net", "bounced", source="test")
    return ws


def mailed(smtp) -> list[str]:
    return sorted(rcpt for rcpt, _ in smtp.messages)


def listed(ws, *where: str) -> list[str]:
    result = ws.run("subscribers", "list", "--format", "json", *(("--where", where[0]) if where else ()))
    assert result.exit_code == 0, result.output
    return [p["email"] for p in json.loads(result.stdout)]


def test_list_where_prints_exactly_the_segment(readers) -> None:
    assert listed(readers, "lang = 'zh'") == ["li.wei@example.cn", "mei@example.cn", "bob@example.net"]
    assert listed(readers, "'ml' in tags and not bounced") == ["ada@example.com", "li.wei@example.cn"]
    assert listed(readers, "bounced") == ["bob@example.net"]
    rows = list(csv.reader(io.StringIO(readers.run("subscribers", "list", "--where", "lang = 'de'").stdout)))
    assert rows[0] == ["email", "name", "status", "created_at", "updated_at", "tags", "lang"]
    assert [(r[0], r[5], r[6]) for r in rows[1:]] == [("zoe@example.org", "papers", "de")]


def test_a_bad_expression_is_an_error_at_its_column(readers) -> None:
    result = readers.run("subscribers", "list", "--where", "lang = zh")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "--where:1:8: expected a quoted value after '=', found zh (write 'zh')\n"
    result = readers.run("send", "--yes", "issues/033.yaml", "--where", "'ml' in tags and")
    assert (result.exit_code, result.stderr) == (1, "--where:1:17: expected a field, a status or '(', found the end\n")


def test_a_field_nobody_has_is_empty_and_warned_about(readers) -> None:
    result = readers.run("subscribers", "list", "--where", "lnag = 'zh'")
    assert result.exit_code == 0 and result.stdout.count("\n") == 1  # the header row alone
    assert result.stderr == ("--where: warning: no subscriber has a field 'lnag'; it is empty for all"
                             " (fields in use: lang)\n")


def test_what_someone_types_never_reaches_sql(readers) -> None:
    hostile = "name = 'x'' OR 1=1; DROP TABLE subscribers; --'"
    assert listed(readers, hostile) == []
    assert readers.run("subscribers", "tag", "owned", "--where", hostile).stdout == "owned: added to 0 subscriber(s)\n"
    assert len(listed(readers)) == 5


def test_tag_and_untag_by_address_and_by_segment(readers) -> None:
    result = readers.run("subscribers", "tag", "beta", "MEI@example.cn", "--where", "lang = 'de'")
    assert (result.exit_code, result.stdout) == (0, "beta: added to 2 subscriber(s)\n")
    assert listed(readers, "'BETA' in tags") == ["mei@example.cn", "zoe@example.org"]
    result = readers.run("subscribers", "tag", "ml", "--where", "lang = 'zh'")
    assert result.stdout == "ml: added to 1 subscriber(s) (2 had it already)\n"
    result = readers.run("subscribers", "untag", "ml,beta", "--where", "lang = 'zh'")
    assert result.stdout == "ml, beta: taken off 3 subscriber(s)\n"
    store = readers.store()
    assert {p.email: p.tags for p in store.all()} == {
        "ada@example.com": ["ml", "papers"], "li.wei@example.cn": [], "mei@example.cn": [],
        "zoe@example.org": ["papers", "beta"], "bob@example.net": []}
    # An unknown address changes nothing at all, and says which.
    result = readers.run("subscribers", "tag", "vip", "ada@example.com", "nobody@example.com")
    assert (result.exit_code, result.stderr) == (
        1, "not in the subscriber list: nobody@example.com; nothing was changed\n")
    assert store.get("ada@example.com").tags == ["ml", "papers"]
    assert readers.run("subscribers", "tag", "vip").exit_code == 2  # neither addresses nor --where


def test_tags_round_trip_through_list_and_import(readers) -> None:
    exported = readers.run("subscribers", "list").stdout
    (readers.root / "export.csv").write_text(exported, "utf-8")
    new = readers.new_store("new.db")
    readers.configure(extra=f"subscribers: {new}\n")
    assert readers.run("subscribers", "import", "export.csv").exit_code == 0
    assert readers.run("subscribers", "list").stdout == exported
    # An import adds tags and never takes one off: `untag` does.
    (readers.root / "more.csv").write_text("email,tags\nada@example.com,\"vip, ML\"\n", "utf-8")
    assert readers.run("subscribers", "import", "more.csv").stdout == "more.csv: 1 updated\n"
    assert readers.store(new).get("ada@example.com").tags == ["ml", "papers", "vip"]


def test_send_where_mails_exactly_the_segment_and_a_second_segment_nobody_twice(readers, smtp) -> None:
    result = readers.run("send", "--yes", "issues/033.yaml", "--where", "'ml' in tags")
    assert result.exit_code == 0, result.output
    assert "This run: 2 sent, 0 failed." in result.stdout
    assert mailed(smtp) == ["ada@example.com", "li.wei@example.cn"]  # bob is in it, but bounced

    result = readers.run("send", "--yes", "issues/033.yaml", "--where", "lang = 'zh' or 'papers' in tags")
    assert result.exit_code == 0, result.output
    assert "This run: 2 sent, 0 failed. In all: 4 sent" in result.stdout
    assert mailed(smtp) == ["ada@example.com", "li.wei@example.cn", "mei@example.cn", "zoe@example.org"]

    # The audience is fixed: a plain rerun, or the same segment again, mails no one.
    readers.run("subscribers", "add", "new@example.cn", "--name", "New")
    assert "This run: 0 sent" in readers.run("send", "--yes", "issues/033.yaml").stdout
    assert "This run: 0 sent" in readers.run("send", "--yes", "issues/033.yaml", "--where", "'ml' in tags").stdout
    assert len(smtp.messages) == 4

    status = readers.run("status", "issues/033.yaml").stdout.splitlines()
    assert status[0] == "Issue 33: 0 pending, 0 sending, 4 sent, 0 failed, 0 unknown, 0 skipped"
    assert [line.split(" reader(s)")[0] for line in status[1:4]] == [
        "Audience: first run, --where \"'ml' in tags\": 2",
        "Audience: --where \"lang = 'zh' or 'papers' in tags\": 2", "Audience: --where \"'ml' in tags\": 0"]
    assert status[1].endswith(" UTC") and ", 20" in status[1]

    # A newcomer in a later segment gets it; --include-new then adds everyone else, once.
    result = readers.run("send", "--yes", "issues/033.yaml", "--where", "email ends with '.cn'")
    assert "This run: 1 sent" in result.stdout
    assert "This run: 0 sent" in readers.run("send", "--yes", "issues/033.yaml", "--include-new").stdout
    assert mailed(smtp) == ["ada@example.com", "li.wei@example.cn", "mei@example.cn", "new@example.cn",
                            "zoe@example.org"]


def test_the_segment_is_fixed_when_the_run_starts(readers, smtp) -> None:
    assert readers.run("send", "--yes", "issues/033.yaml", "--where", "lang = 'zh'", "--limit", "1").exit_code == 0
    assert mailed(smtp) == ["li.wei@example.cn"]
    # After the start: a new zh reader is not in it, and mei, now de, still is.
    (readers.root / "later.csv").write_text("email,lang\nlate@example.cn,zh\nmei@example.cn,de\n", "utf-8")
    assert readers.run("subscribers", "import", "later.csv").stdout == "later.csv: 1 added, 1 updated\n"
    result = readers.run("send", "--yes", "issues/033.yaml")
    assert "This run: 1 sent" in result.stdout
    assert mailed(smtp) == ["li.wei@example.cn", "mei@example.cn"]


def test_dry_run_where_writes_only_the_segment(readers, smtp) -> None:
    result = readers.run("send", "--yes", "issues/033.yaml", "--dry-run", "out", "--where", "lang in ('de', 'en')")
    assert result.stdout == "Wrote 2 message(s) to out/; nothing was sent.\n"
    assert sorted(p.name.split("-", 1)[1] for p in (readers.root / "out").glob("*.eml")) == [
        "ada@example.com.eml", "zoe@example.org.eml"]
    assert smtp.messages == []


def test_where_does_not_go_with_test_include_new_or_at(readers, smtp) -> None:
    for extra in (("--test", "me@example.com"), ("--include-new",), ("--at", "2030-01-01T09:00+00:00")):
        result = readers.run("send", "--yes", "issues/033.yaml", "--where", "bounced", *extra)
        assert result.exit_code == 2, extra
    assert smtp.messages == []


def test_a_pruned_send_cannot_take_another_segment(readers, smtp) -> None:
    readers.run("send", "--yes", "issues/033.yaml", "--where", "lang = 'de'")
    assert readers.run("journal", "prune", "issues/033.yaml").exit_code == 0
    result = readers.run("send", "--yes", "issues/033.yaml", "--where", "lang = 'zh'")
    assert result.exit_code == 1
    assert "was pruned; --where could mail readers it no longer remembers" in result.stderr
    assert mailed(smtp) == ["zoe@example.org"]


def test_an_older_store_gains_the_audience_column(ws) -> None:
    ws.run("subscribers", "add", "ada@example.com")
    db = ws.store().db
    assert db.version() >= 6
    assert db.execute("SELECT segments FROM sends").fetchall() == []
