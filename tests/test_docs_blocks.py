"""Docs are tests: every fenced block of README.md and docs/**/*.md runs as a reader would run it.

The convention below says how a page's blocks run and how a page marks the exceptions. Pages are
found by globbing, so a page added later (docs/scheduler.md, docs/ui.md, ...) runs with no change
here. Run one page: ``.venv/bin/pytest tests/test_docs_blocks.py -k scheduler``.

Per page, in order, in one fresh temporary directory (the page's working directory, also ``HOME``):

- ```` ```python ```` blocks run in a **fresh interpreter** each, as if pasted into a new file and
  run with ``python`` (``__name__ == "__main__"``; top-level ``await`` works, as in
  ``python -m asyncio``). They must not raise and must not emit a warning.
- A Python block whose first line is ``# name.py`` is also **saved as that file** in the page's
  directory (for later ``$ python name.py`` commands) and run as the module ``name`` (so its
  ``if __name__ == "__main__":`` part does not run).
- ```` ```console ```` blocks: each ``$ command`` runs with ``bash`` in the page's directory, with
  the test interpreter's ``python`` and ``kaygraph`` first on ``PATH``; the lines after it, up to
  the next ``$``, are its expected output (stdout and stderr together). ``...`` matches anything
  (doctest's ELLIPSIS), trailing spaces are ignored; a command with no lines after it must print
  nothing. It must exit 0, or be killed by a signal, which is shown as the shell does (``Killed``).
- ```` ```bash ```` / ``sh`` / ``shell`` blocks run as one ``bash -e`` script (output not checked).
- ```` ```json ```` blocks must parse. Other languages (``text``, ``toml``, ``yaml``, ``promql``,
  ...) are not run, but every block must name its language: a bare ```` ``` ```` is an error.

Markers are HTML comments on the lines right before a block (invisible on GitHub):

- ``<!-- docs-test: skip (why) -->``: not run (a Python block is still compiled); the reason is
  required. For servers that block forever, clusters, installs from PyPI, ...
- ``<!-- docs-test: continue -->``: this Python block runs in the same interpreter and namespace
  as the previous Python block of the page (a tutorial that builds on its last step).
- ``<!-- docs-test: setup ... -->`` (multi-line): code run before the block, in its namespace,
  to define what the block takes as given (``build_graph``, ``shared``). Prefer visible stubs.
- ``<!-- docs-test: output -->`` before a block (``text`` usually): that block is the expected
  output of the previous Python block, compared like console output.

Runs see a clean environment: no ``KAYGRAPH_*`` variables except
``KAYGRAPH_OBSERVABILITY_METRICS_PORT=0`` (blocks that serve metrics get a free port),
``PYTHONUNBUFFERED=1`` (output order as on a terminal).
"""

from __future__ import annotations

import dataclasses
import doctest
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180  # seconds per block: a hung block fails instead of eating the CI budget

PYTHON = {"python", "py", "python3"}
CONSOLE = {"console", "shell-session"}
SHELL = {"bash", "sh", "shell", "zsh"}
JSON = {"json"}
INERT = {
    "text", "toml", "yaml", "yml", "ini", "promql", "mermaid", "sql", "html", "css", "javascript",
    "js", "diff", "dockerfile", "cron", "jsonl", "pycon", "http",
}  # fmt: skip
MARKERS = {"skip", "continue", "setup", "output"}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"<!--\s*(?P<name>docs?[-_ ]?tests?)\s*:\s*(?P<body>.*?)\s*(?:-->|$)", re.DOTALL)
_FILE_LINE = re.compile(r"#\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.py\s*$")


class ConventionError(Exception):
    """A page breaks the docs-blocks convention (named with file and line)."""


@dataclasses.dataclass
class Block:
    """One fenced block: where it is, its language and code, and the markers before it."""

    page: Path
    line: int  # line of the block's first code line (1-based)
    lang: str
    code: str
    skip: str | None = None
    cont: bool = False
    setup: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    is_output: bool = False
    expected_output: str | None = None  # set on a Python block followed by an output block

    @property
    def where(self) -> str:
        try:
            name = self.page.relative_to(ROOT)
        except ValueError:
            name = self.page
        return f"{name}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """``name`` when the block starts with ``# name.py``: saved as that file."""
        first = self.code.split("\n", 1)[0]
        match = _FILE_LINE.fullmatch(first.strip())
        return match.group("name") if match else None


def pages() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _parse_marker(page: Path, line: int, body: str, block: dict[str, Any]) -> None:
    keyword, _, rest = body.partition(" ") if " " in body.split("\n", 1)[0] else body.partition("\n")
    keyword = keyword.strip()
    where = f"{page.name}:{line}"
    if keyword not in MARKERS:
        import difflib

        close = difflib.get_close_matches(keyword, MARKERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConventionError(
            f"{where}: unknown docs-test marker {keyword!r}.{hint} Known: {', '.join(sorted(MARKERS))}."
        )
    rest = rest.strip()
    if keyword == "skip":
        reason = re.fullmatch(r"\((.+)\)", rest, re.DOTALL)
        if reason is None or not reason.group(1).strip():
            raise ConventionError(
                f"{where}: a skip marker needs its reason in parentheses: "
                "<!-- docs-test: skip (why this block cannot run in the tests) -->"
            )
        block["skip"] = reason.group(1).strip()
    elif keyword == "setup":
        code_line = line + 1
        block.setdefault("setup", []).append((code_line, textwrap.dedent(body.partition("\n")[2])))
    elif rest:
        raise ConventionError(f"{where}: the {keyword!r} marker takes nothing after it, got {rest!r}")
    elif keyword == "continue":
        block["cont"] = True
    else:
        block["is_output"] = True


def parse(page: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of ``page`` with their markers; :class:`ConventionError` on a misuse."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).split("\n")
    blocks: list[Block] = []
    pending: dict[str, Any] = {}
    pending_line: int | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith("<!--"):
            start = index
            comment = line
            while "-->" not in comment and index + 1 < len(lines):
                index += 1
                comment += "\n" + lines[index]
            match = _MARKER.search(comment)
            if match is not None:
                if match.group("name") != "docs-test":
                    raise ConventionError(
                        f"{page.name}:{start + 1}: write the marker as '<!-- docs-test: ... -->', "
                        f"not {match.group('name')!r}"
                    )
                _parse_marker(page, start + 1, match.group("body"), pending)
                pending_line = pending_line or start + 1
            index += 1
            continue
        fence = _FENCE.match(line)
        if fence is not None:
            marker, info = fence.group("fence"), fence.group("info").strip()
            lang = info.split()[0].lower() if info else ""
            body: list[str] = []
            fence_line = index + 1  # 1-based line of the opening fence
            index += 1
            while index < len(lines) and not (
                lines[index].strip().startswith(marker[0] * len(marker))
                and not lines[index].strip().strip(marker[0])
            ):
                body.append(lines[index])
                index += 1
            if not lang:
                raise ConventionError(
                    f"{page.name}:{fence_line}: a fenced block without a language; name it "
                    "(```python, ```console, ```text for output, ...) so the docs test knows what to do"
                )
            if lang not in PYTHON | CONSOLE | SHELL | JSON | INERT:
                raise ConventionError(
                    f"{page.name}:{fence_line}: unknown block language {lang!r}; use one the docs "
                    f"test knows ({', '.join(sorted(PYTHON | CONSOLE | SHELL | JSON | INERT))}) or add "
                    "it to INERT in tests/test_docs_blocks.py"
                )
            block = Block(page, fence_line + 1, lang, "\n".join(body) + "\n", **pending)
            if block.is_output:
                previous = next((b for b in reversed(blocks) if not b.is_output), None)
                if previous is None or previous.lang not in PYTHON or previous is not blocks[-1]:
                    raise ConventionError(
                        f"{page.name}:{pending_line}: an output marker must follow a Python block directly"
                    )
                previous.expected_output = block.code
            if (block.cont or block.setup) and lang not in PYTHON:
                raise ConventionError(
                    f"{page.name}:{pending_line}: continue/setup apply to Python blocks only"
                )
            blocks.append(block)
            pending, pending_line = {}, None
            index += 1
            continue
        if stripped and pending:
            raise ConventionError(
                f"{page.name}:{pending_line}: a docs-test marker must come right before a fenced block"
            )
        index += 1
    if pending:
        raise ConventionError(f"{page.name}:{pending_line}: a docs-test marker with no block after it")
    return blocks


# -- comparing output ----------------------------------------------------------------------------


def output_matches(expected: str, actual: str) -> bool:
    """Doctest's comparison with ELLIPSIS; trailing whitespace of every line is ignored."""

    def normal(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")) + "\n"

    want, got = normal(expected), normal(actual)
    if not expected.strip():
        return not actual.strip()
    return doctest.OutputChecker().check_output(want, got, doctest.ELLIPSIS)


def shell_report(returncode: int) -> str:
    """What an interactive shell prints when a command dies from a signal (``Killed``)."""
    if returncode >= 0:
        return ""
    number = -returncode
    names = {signal.SIGKILL: "Killed", signal.SIGTERM: "Terminated"}
    return names.get(number, signal.strsignal(number) or f"signal {number}") + "\n"


def console_commands(block: Block) -> Iterator[tuple[int, str, str]]:
    """``(line, command, expected output)`` of each ``$ command`` of a console block."""
    lines = block.code.rstrip("\n").split("\n")
    index = 0
    if lines and lines[0].strip() and not lines[0].startswith("$ "):
        raise ConventionError(f"{block.where}: a console block starts with a '$ command' line")
    while index < len(lines):
        start = index
        command = lines[index][2:]
        while command.endswith("\\") and index + 1 < len(lines):
            index += 1
            command += "\n" + lines[index]  # bash joins the backslash-newline itself
        index += 1
        expected = []
        while index < len(lines) and not lines[index].startswith("$ "):
            expected.append(lines[index])
            index += 1
        yield block.line + start, command, "\n".join(expected)


# -- running -------------------------------------------------------------------------------------

_DRIVER = r"""
import ast, asyncio, json, os, sys, traceback, types, warnings
results = os.fdopen(int(sys.argv[1]), "w")
module = types.ModuleType(sys.argv[2])
module.__file__ = sys.argv[3] if len(sys.argv) > 3 else None
module.__builtins__ = __builtins__
sys.modules[sys.argv[2]] = module
for request in sys.stdin:
    request = json.loads(request)
    outcome = {"error": None, "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for line, code in request["parts"]:
                source = "\n" * (line - 1) + code
                compiled = compile(source, request["path"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                                   dont_inherit=True)
                result = eval(compiled, module.__dict__)
                if asyncio.iscoroutine(result):
                    asyncio.run(result)
        except BaseException as exc:  # the block's frames only, not this driver's
            tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
            outcome["error"] = "".join(traceback.format_exception(type(exc), exc, tb))
        outcome["warnings"] = [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught]
    sys.stdout.flush()
    sys.stderr.flush()
    results.write(json.dumps(outcome) + "\n")
    results.flush()
"""


def _environment(directory: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}
    env.update(
        HOME=str(directory),
        PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
        PYTHONUNBUFFERED="1",
        KAYGRAPH_OBSERVABILITY_METRICS_PORT="0",
    )
    return env


class Interpreter:
    """A Python process that runs blocks on request, keeping one namespace (for ``continue``)."""

    def __init__(self, directory: Path, module_name: str, file: str | None) -> None:
        self.log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 (closed in close())
        read_end, write_end = os.pipe()
        args = [sys.executable, "-c", _DRIVER, str(write_end), module_name, *([file] if file else [])]
        self.process = subprocess.Popen(
            args, cwd=directory, env=_environment(directory), stdin=subprocess.PIPE, stdout=self.log,
            stderr=subprocess.STDOUT, text=True, pass_fds=(write_end,),
        )  # fmt: skip
        os.close(write_end)
        self.results = os.fdopen(read_end, "r", encoding="utf-8")
        self.offset = 0

    def run(self, block: Block) -> tuple[dict[str, Any], str]:
        """Runs the block's setup and code; returns the outcome and what it printed."""
        import select

        request = {"path": str(block.page), "parts": [*block.setup, (block.line, block.code)]}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.results], [], [], TIMEOUT)
        line = self.results.readline() if ready else ""
        if not line:
            self.close()
            outcome = {
                "error": f"no answer within {TIMEOUT} s (hung, or the interpreter died)",
                "warnings": [],
            }
        else:
            outcome = json.loads(line)
        self.log.seek(self.offset)
        printed = self.log.read()
        self.offset = self.log.tell()
        return outcome, printed

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.results.close()
        self.log.close()


def _compile_only(block: Block) -> None:
    import ast

    compile(
        "\n" * (block.line - 1) + block.code, str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )


def run_page(page: Path, directory: Path, blocks: list[Block] | None = None) -> list[str]:
    """Runs every block of ``page`` in ``directory``; returns the failures (empty: all ran)."""
    failures: list[str] = []
    interpreter: Interpreter | None = None
    try:
        for block in parse(page) if blocks is None else blocks:
            if block.skip is not None:
                if block.lang in PYTHON:
                    _compile_only(block)
                continue
            if block.lang in PYTHON:
                file_name = block.file_name
                if file_name is not None:
                    (directory / f"{file_name}.py").write_text(block.code, encoding="utf-8")
                if not block.cont or interpreter is None:
                    if interpreter is not None:
                        interpreter.close()
                    module = file_name or "__main__"
                    interpreter = Interpreter(directory, module, f"{file_name}.py" if file_name else None)
                outcome, printed = interpreter.run(block)
                if outcome["error"]:
                    failures.append(f"{block.where}: the Python block failed:\n{outcome['error']}{printed}")
                elif outcome["warnings"]:
                    failures.append(
                        f"{block.where}: the Python block warned:\n" + "\n".join(outcome["warnings"])
                    )
                elif block.expected_output is not None and not output_matches(block.expected_output, printed):
                    failures.append(
                        f"{block.where}: the Python block printed\n{printed}\nbut the page shows\n"
                        f"{block.expected_output}"
                    )
            elif block.lang in CONSOLE:
                for line, command, expected in console_commands(block):
                    failure = _run_command(page, directory, line, command, expected)
                    if failure:
                        failures.append(failure)
            elif block.lang in SHELL:
                done = subprocess.run(
                    ["bash", "-e", "-c", block.code], cwd=directory, env=_environment(directory),
                    capture_output=True, text=True, timeout=TIMEOUT,
                )  # fmt: skip
                if done.returncode != 0:
                    failures.append(
                        f"{block.where}: the shell block exited {done.returncode}:\n"
                        f"{done.stdout}{done.stderr}"
                    )
            elif block.lang in JSON:
                try:
                    json.loads(block.code)
                except ValueError as exc:
                    failures.append(f"{block.where}: the JSON block does not parse: {exc}")
    finally:
        if interpreter is not None:
            interpreter.close()
    return failures


def _run_command(page: Path, directory: Path, line: int, command: str, expected: str) -> str | None:
    where = f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}:{line}"
    try:
        done = subprocess.run(
            ["bash", "-c", command], cwd=directory, env=_environment(directory), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"{where}: `{command}` did not finish within {TIMEOUT} s"
    printed = done.stdout + shell_report(done.returncode)
    if done.returncode > 0:
        return f"{where}: `{command}` exited {done.returncode}:\n{printed}"
    if not output_matches(expected, printed):
        return f"{where}: `{command}` printed\n{printed}\nbut the page shows\n{expected}\n"
    return None


# -- the tests -----------------------------------------------------------------------------------


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", pages(), ids=_page_id)
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    failures = run_page(page, tmp_path)
    assert not failures, "\n\n".join(failures)


def test_every_page_is_found_and_has_runnable_blocks() -> None:
    found = {_page_id(page) for page in pages()}
    assert {"README.md", "docs/persistence.md", "docs/observability.md"} <= found
    for page in pages():
        blocks = parse(page)
        assert all(block.skip != "" for block in blocks)
    readme = parse(ROOT / "README.md")
    assert sum(1 for block in readme if block.lang in PYTHON and block.skip is None) >= 3


def test_skipped_blocks_say_why() -> None:
    """Every opt-out names its reason; listed here so a reviewer sees them all in one place."""
    skipped = [(block.where, block.skip) for page in pages() for block in parse(page) if block.skip]
    for where, reason in skipped:
        print(f"{where}: skipped ({reason})")
        assert reason and len(reason) >= 8, f"{where}: give a real reason, not {reason!r}"


# -- the convention's own behaviour --------------------------------------------------------------


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(text), encoding="utf-8")
    return page


def test_a_failing_block_is_reported_with_its_markdown_line(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        """\
        # Title

        ```python
        x = 1
        undefined_name
        ```
        """,
    )
    (failure,) = run_page(page, tmp_path)
    assert failure.startswith(f"{page}:4: the Python block failed:")
    assert f'File "{page}", line 5' in failure and "NameError: name 'undefined_name'" in failure


def test_blocks_are_fresh_unless_continued_and_setup_runs_first(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        """\
        ```python
        value = 41
        ```

        <!-- docs-test: continue -->
        ```python
        print(value + 1)
        ```
        <!-- docs-test: output -->
        ```text
        42
        ```

        <!-- docs-test: setup
        def call_llm(prompt):
            return "stub"
        -->
        ```python
        assert "value" not in globals()
        print(call_llm("hi"))
        ```
        <!-- docs-test: output -->
        ```text
        stub
        ```
        """,
    )
    assert run_page(page, tmp_path) == []


def test_wrong_output_warnings_and_top_level_await(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        """\
        ```python
        import asyncio
        await asyncio.sleep(0)
        print("a")
        ```
        <!-- docs-test: output -->
        ```text
        b
        ```

        ```python
        import warnings
        warnings.warn("careful")
        ```
        """,
    )
    first, second = run_page(page, tmp_path)
    assert "printed\na\n\nbut the page shows\nb" in first
    assert "the Python block warned" in second and "UserWarning: careful" in second


def test_console_blocks_compare_output_with_ellipsis_and_show_kills(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        """\
        ```python
        # tool.py
        import os, sys
        if __name__ == "__main__":
            print("start", sys.argv[1:])
            if "--die" in sys.argv:
                os.kill(os.getpid(), 9)
        ```

        ```console
        $ python tool.py one
        start ['one']
        $ python tool.py --die
        start ...
        Killed
        $ echo quiet
        $ printf 'a\\nb\\nc\\n' \\
            | cat
        a
        ...
        c
        $ false
        ```
        """,
    )
    quiet, failed = run_page(page, tmp_path)
    assert "page.md:16: `echo quiet` printed\nquiet" in quiet  # no lines shown: must print nothing
    assert "`false` exited 1" in failed
    assert (tmp_path / "tool.py").is_file()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- docs-test: skip -->\n```python\npass\n```\n", "needs its reason in parentheses"),
        ("<!-- docs-test: skip () -->\n```python\npass\n```\n", "needs its reason in parentheses"),
        ("<!-- docs-test: skp (x) -->\n```python\npass\n```\n", "marker 'skp'. Did you mean 'skip'?"),
        ("<!-- doc-test: skip (x) -->\n```python\npass\n```\n", "write the marker as '<!-- docs-test:"),
        ("<!-- docs-test: continue -->\nprose\n```python\npass\n```\n", "must come right before a fenced"),
        ("text\n<!-- docs-test: continue -->\n", "with no block after it"),
        ("```\nplain\n```\n", "a fenced block without a language"),
        ("```rust\nfn main() {}\n```\n", "unknown block language 'rust'"),
        ("<!-- docs-test: output -->\n```text\nx\n```\n", "must follow a Python block directly"),
    ],
    ids=["no-reason", "empty-reason", "typo", "wrong-name", "not-before-block", "orphan", "no-lang",
         "unknown-lang", "output-alone"],
)  # fmt: skip
def test_convention_mistakes_are_errors(tmp_path: Path, text: str, message: str) -> None:
    page = _page(tmp_path, text)
    with pytest.raises(ConventionError, match=re.escape(message)):
        parse(page)


def test_skipped_python_blocks_are_still_compiled(tmp_path: Path) -> None:
    page = _page(tmp_path, "<!-- docs-test: skip (needs a cluster) -->\n```python\ndef broken(:\n```\n")
    with pytest.raises(SyntaxError):
        run_page(page, tmp_path)
