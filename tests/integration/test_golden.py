"""The sample issue's text part and web page against committed output (pelican-style).

A change in them must be on purpose: refresh with `make golden` and review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

GOLDEN = REPO / "tests" / "golden"


@pytest.mark.parametrize("number", ["33", "34"])
def test_sample_build_matches_golden_output(tmp_path: Path, number: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "build", f"issues/0{number}.yaml", "-o", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name in ("email.txt", "index.html"):
        produced = (tmp_path / number / name).read_text("utf-8")
        golden = GOLDEN / number / name
        if os.environ.get("NEWSLETTER_UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(produced, "utf-8")
        assert produced == golden.read_text("utf-8"), f"{name} changed; run `make golden` if on purpose"
