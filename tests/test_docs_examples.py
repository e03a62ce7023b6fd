"""The examples of README.md and docs/*.md run as written against `make run`, and answer what they say.

The convention (keep to it when writing docs):

- A fenced block opened with exactly ```` ```bash ```` is a checked example; ```` ```sh ```` and
  unlabelled blocks are illustrations and are never run (commands that need real servers, or that
  would change the machine).
- A checked block runs as one bash script (``set -eo pipefail``) from the repository root, so a
  later line may use a shell variable an earlier one captured (``id=$(curl ... | python3 -c ...)``).
  Any command that fails fails the example.
- Every ``curl`` command (a line with ``curl``, with its continuation lines: a trailing ``\\`` or a
  ``'...'`` argument over several lines) is followed by a
  comment line that starts with its documented HTTP status: ``# 202 {"report_id": ...}``. A curl
  inside a loop must answer that status every time.
- ``http://localhost:8000`` is the `make run` server; the test replaces it by its own.

Files run in this order: README.md, then docs/api.md, then the other docs/*.md by name; the
server is one fresh ``manage.py serve_demo`` (what `make run` starts: sample data, in-memory store
and worker) shared by all of them, so a file's examples may rely on the ones before them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port, stop_process, wait_for_health

ROOT = Path(__file__).resolve().parent.parent
DOC_BASE_URL = "http://localhost:8000"
DOC_FILES = [ROOT / "README.md", ROOT / "docs" / "api.md"] + sorted(
    p for p in (ROOT / "docs").glob("*.md") if p.name != "api.md"
)
STATUS_COMMENT = re.compile(r"^\s*#\s*(\d{3})\b")
CURL = re.compile(r"(^|[\s($|;&])curl\s")
# Each curl reports the script line it was called from and its status on a side channel (stderr),
# leaving its output where the example sends it.
CURL_SPY = """\
curl() { local line=${BASH_LINENO[0]}; command curl -w "%{stderr}@@status $line %{http_code}\\n" "$@"; }
trap 'echo "@@failed $LINENO" >&2' ERR
set -eo pipefail
"""
RECORDED_STATUS = re.compile(r"^@@status (\d+) (\d{3})$", re.M)
FAILED_LINE = re.compile(r"^@@failed (\d+)$", re.M)
BLOCK_TIMEOUT_S = 120


@dataclass
class CurlCall:
    first: int  # 1-based lines within the block, the command's first and last (continuations)
    last: int
    status: str | None  # the documented one, from the comment line after it


@dataclass
class Example:
    path: Path
    start: int  # the file's line of the block's first script line
    script: str
    calls: list[CurlCall]

    def where(self, block_line: int) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.start + block_line - 1}"


def examples_in(path: Path) -> list[Example]:
    lines = path.read_text().splitlines()
    found, index = [], 0
    while index < len(lines):
        if lines[index].strip() == "```bash":
            end = next(j for j in range(index + 1, len(lines)) if lines[j].strip() == "```")
            body = lines[index + 1 : end]
            found.append(Example(path, index + 2, "\n".join(body) + "\n", curl_calls(body)))
            index = end
        index += 1
    return found


def curl_calls(body: list[str]) -> list[CurlCall]:
    calls, index = [], 0
    while index < len(body):
        line = body[index]
        if not line.lstrip().startswith("#") and CURL.search(line):
            last = index
            # continued by a trailing backslash, or inside a '...' string that spans lines
            while body[last].rstrip().endswith("\\") or "\n".join(body[index : last + 1]).count("'") % 2:
                last += 1
            after = body[last + 1] if last + 1 < len(body) else ""
            match = STATUS_COMMENT.match(after)
            calls.append(CurlCall(index + 1, last + 1, match.group(1) if match else None))
            index = last
        index += 1
    return calls


ALL_EXAMPLES = [example for path in DOC_FILES for example in examples_in(path)]


def test_the_docs_have_checked_examples_and_each_curl_documents_its_status() -> None:
    assert {e.path.name for e in ALL_EXAMPLES} >= {"README.md", "api.md"}
    missing = [e.where(c.first) for e in ALL_EXAMPLES for c in e.calls if c.status is None]
    assert missing == [], f"curl examples without a `# NNN` status comment on the next line: {missing}"
    assert sum(len(e.calls) for e in ALL_EXAMPLES) >= 30


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make run`: manage.py serve_demo on embedded defaults, on a free port."""
    port = free_port()
    log = tmp_path_factory.mktemp("docs-demo") / "serve_demo.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("API_TOKEN", "API_READ_TOKEN", "AUTH_REQUIRED", "DEBUG", "SECRET_KEY")
    }
    env.update(
        MONGO_URL="mongomock://",
        CELERY_BROKER_URL="memory://",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SQLITE_PATH=str(log.parent / "db.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve_demo", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc, log, timeout=120)
        yield url
    finally:
        stop_process(proc)


def run_example(example: Example, base_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    spy = Path(os.environ.get("TMPDIR", "/tmp")) / f"docs-examples-curl-spy-{os.getpid()}.sh"
    spy.write_text(CURL_SPY)
    env["BASH_ENV"] = str(spy)  # read by bash before the script: the script's lines stay the block's
    try:
        return subprocess.run(
            ["bash", "-c", example.script.replace(DOC_BASE_URL, base_url), "example"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.where(1)}: the example block did not finish in {BLOCK_TIMEOUT_S} s\n{exc.stderr!r}")
    finally:
        spy.unlink(missing_ok=True)


def test_every_example_answers_what_the_docs_say(demo: str) -> None:
    for example in ALL_EXAMPLES:
        done = run_example(example, demo)
        output = f"--- stdout\n{done.stdout[-2000:]}\n--- stderr\n{done.stderr[-2000:]}"
        failed = FAILED_LINE.search(done.stderr)
        if done.returncode != 0:
            where = example.where(int(failed.group(1))) if failed else f"the block starting at {example.where(1)}"
            pytest.fail(f"{where}: the example failed (exit {done.returncode})\n{output}")
        seen: dict[int, list[str]] = {}
        for line, status in RECORDED_STATUS.findall(done.stderr):
            seen.setdefault(int(line), []).append(status)
        for call in example.calls:
            got = [s for line, statuses in seen.items() if call.first <= line <= call.last for s in statuses]
            if not got or set(got) != {call.status}:
                pytest.fail(f"{example.where(call.first)}: documented {call.status}, got {got or 'no call'}\n{output}")
