"""The command line end to end: click's runner for speed, a real subprocess for exit
codes and the absence of tracebacks."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from bs4 import BeautifulSoup

from support import REPO

BROKEN = REPO / "tests" / "data" / "broken"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_check_ok_and_warnings_exit_0(ws) -> None:
    ws.issue(preheader="x" * 200)
    result = ws.run("check", "issues/001.yaml")
    assert result.exit_code == 0
    assert "issues/001.yaml: ok (1 warning(s))" in result.stdout
    assert "issues/001.yaml:4:12: warning: preheader: is 200 characters" in result.stderr


def test_check_several_files_reports_each_and_exits_1(ws) -> None:
    ws.issue()
    ws.write("002.yaml", "number: 2\ndate: 2021-10-10\ntitle: x\nsections: {}\n")
    result = ws.run("check", "issues/001.yaml", "issues/002.yaml")
    assert result.exit_code == 1
    assert "issues/001.yaml: ok" in result.stdout
    assert "issues/002.yaml:4:11: sections: has no items" in result.stderr


def test_check_as_a_subprocess_gives_file_line_col_and_no_traceback(tmp_path: Path) -> None:
    shutil.copy(REPO / "newsletter.yaml", tmp_path)
    (tmp_path / "newsletter.yaml").write_text(
        (REPO / "newsletter.yaml").read_text() + f"layouts: {REPO / 'layouts'}\n")
    (tmp_path / "issues").mkdir()
    shutil.copy(BROKEN / "unknown_key_suggestion.yaml", tmp_path / "issues" / "001.yaml")
    result = run("check", "issues/001.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "issues/001.yaml:9:7: sections.featured[0]: unknown key 'summery'; did you mean 'summary'?\n"
    )
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("args", [["check"], ["build"], ["nonsense"], ["build", "a.yaml", "--bogus"]])
def test_wrong_usage_exits_2(args: list[str]) -> None:
    result = run(*args, cwd=REPO)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_missing_file_and_missing_config_are_plain_sentences(tmp_path: Path) -> None:
    result = run("check", "issues/404.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("no newsletter.yaml in ")
    result = run("check", "issues/404.yaml", cwd=REPO)
    assert result.returncode == 1
    assert result.stderr == "issues/404.yaml: no such file\n"


def test_a_broken_config_is_reported_with_its_line(ws) -> None:
    (ws.root / "newsletter.yaml").write_text("name: X\nsmtp:\n  host: h\n  security: tls\nutm: {enabld: true}\n")
    ws.issue()
    result = ws.run("check", "issues/001.yaml")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "newsletter.yaml:4:13: smtp.security: 'tls' is not one of: starttls, ssl, none"
    assert lines[1] == "newsletter.yaml:5:7: utm: unknown key 'enabld'; did you mean 'enabled'?"


def test_build_writes_three_files_and_the_images(ws) -> None:
    body = ("sections:\n  featured:\n    - title: T\n      url: https://example.com/t\n      summary: S\n"
            "      image: {src: img/figure.png, alt: A figure}\n")
    ws.issue("005.yaml", number=5, body=body)
    result = ws.run("build", "issues/005.yaml", "-o", "out")
    assert result.exit_code == 0, result.output
    folder = ws.root / "out" / "5"
    assert sorted(p.name for p in folder.iterdir()) == ["email.html", "email.txt", "img", "index.html"]
    assert (folder / "img" / "figure.png").read_bytes() == (ws.issues / "img" / "figure.png").read_bytes()
    email = BeautifulSoup((folder / "email.html").read_text(), "html.parser")
    assert email.find("img", alt="A figure")["src"] == "img/figure.png"
    assert result.stdout.splitlines() == [str(Path("out/5") / n) for n in ("email.html", "email.txt", "index.html")]


def test_build_is_deterministic_and_leaves_unchanged_files_alone(ws) -> None:
    ws.issue()
    ws.run("build", "issues/001.yaml")
    first = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (ws.root / "build" / "1").glob("*.*")}
    ws.run("build", "issues/001.yaml")
    second = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (ws.root / "build" / "1").glob("*.*")}
    assert first == second


def test_build_refuses_an_invalid_issue_and_writes_nothing(ws) -> None:
    ws.write("001.yaml", "number: 1\ndate: 2021-10-10\ntitle: T\nsections:\n  featured:\n"
             "    - {title: T, url: 'javascript:alert(1)', summary: S}\n")
    result = ws.run("build", "issues/001.yaml")
    assert result.exit_code == 1
    assert result.stderr == (
        "issues/001.yaml:6:23: sections.featured[0].url: 'javascript:alert(1)' is not an http/https URL\n"
    )
    assert not (ws.root / "build").exists()


def test_new_scaffolds_the_next_issue_that_checks(ws) -> None:
    ws.issue("007.yaml", number=7)
    result = ws.run("new")
    assert result.exit_code == 0
    path = Path(result.stdout.strip())
    assert path.name == "008.yaml"
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../issue.schema.json\n")
    assert f"date: {dt.date.today().isoformat()}" in text
    for key in ("featured:", "use_cases:", "papers:", "articles:", "other:", "more:", "outro:"):
        assert key in text
    assert (ws.root / "issue.schema.json").is_file()
    assert ws.run("check", str(path)).exit_code == 0


def _as_json(value):
    """YAML dates are dates; JSON Schema sees the text the author wrote."""
    return json.loads(json.dumps(value, default=str))


def test_schema_is_valid_and_accepts_the_samples_and_rejects_typos() -> None:
    result = run("schema", cwd=REPO)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for sample in sorted((REPO / "issues").glob("*.yaml")):
        errors = list(validator.iter_errors(_as_json(yaml.safe_load(sample.read_text()))))
        assert errors == [], (sample.name, errors[:1])
    typo = _as_json(yaml.safe_load((BROKEN / "unknown_key_suggestion.yaml").read_text()))
    assert any("summery" in e.message for e in validator.iter_errors(typo))
    bad_arxiv = _as_json(yaml.safe_load((BROKEN / "bad_arxiv.yaml").read_text()))
    assert list(validator.iter_errors(bad_arxiv))


def test_committed_schema_file_matches_the_checker() -> None:
    assert (REPO / "issue.schema.json").read_text() == run("schema", cwd=REPO).stdout


def test_sample_issues_check_clean() -> None:
    samples = sorted(str(p.relative_to(REPO)) for p in (REPO / "issues").glob("*.yaml"))
    assert len(samples) >= 2
    result = run("check", *samples, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_every_command_has_help_and_is_in_the_readme() -> None:
    from newsletter.cli import main

    readme = (REPO / "README.md").read_text()
    for name, command in main.commands.items():
        assert command.help, name
        assert f"newsletter {name}" in readme, name
