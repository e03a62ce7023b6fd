"""No merge leaves its conflict markers in a tracked file (docs included, which no other test compiles)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^(<{7}|>{7}) ", re.MULTILINE)
TEXT = {".py", ".md", ".yml", ".yaml", ".txt", ".html", ".js", ".css", ".json", ".conf", ".sh", ".toml"}


def test_no_tracked_file_holds_conflict_markers() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in tracked:
        path = REPO / name
        if path.suffix in TEXT and path.is_file() and MARKER.search(path.read_text(errors="replace")):
            found.append(name)
    assert found == []
