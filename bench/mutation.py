"""Mutation score of the core, persistence, and config + plugins, with mutmut (3.8).

    .venv/bin/python bench/mutation.py                      # all three areas (about 25-40 min here)
    .venv/bin/python bench/mutation.py --area core          # one area
    .venv/bin/python bench/mutation.py --area core --sample 300   # a seeded random sample
    .venv/bin/python bench/mutation.py --ref 4405dd4        # the code and tests of a commit

Each area is mutated in its own copy of the work tree (``.mutation/<area>/``) and measured by its
own tests only (AREAS below), so a mutant of ``kaygraph/core`` runs core tests, never the slow
backend suites. Within an area mutmut records, on one instrumented run, which tests call which
function, and then runs each mutant against just those tests (``-x``, in a forked child with a
CPU-time limit): a targeted subset of a few tests per mutant.

The score is ``detected / (mutants - equivalent)``, where detected = killed + timeout (a mutant
that makes the tests hang is caught) and equivalent = surviving mutants listed, with the reason,
in ``bench/mutation_equivalents.txt``. An entry there names the mutated function and a fingerprint
of the change, so it goes stale (and stops counting) when that code changes. The surviving
non-equivalent mutants are written with their diff to ``.mutation/report.md``.

Redis and PostgreSQL come from ``KAYGRAPH_TEST_REDIS_URL`` / ``KAYGRAPH_TEST_POSTGRES_URL`` as
for the test suite. The script lowers its own priority (nice 19): the machine is shared.
``--sample N`` picks N mutants per area at random (seed ``--seed`` or ``KAYGRAPH_MUTATION_SEED``,
printed); the score is then an estimate of the full one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
EQUIVALENTS = Path(__file__).resolve().parent / "mutation_equivalents.txt"
COPIED = ["kaygraph", "tests", "pyproject.toml", "README.md", "docs", "examples", "scripts"]

# Tests that cannot pass on mutmut's rewritten sources whatever the mutant: every mutated module
# imports mutmut's trampoline, which breaks "the core imports only the stdlib" and import-time checks.
NEVER_UNDER_MUTMUT = [
    "tests/core/test_core_is_stdlib_only.py",
    "tests/test_imports.py",
    "tests/ext/persistence/test_imports.py",
]


@dataclass
class Area:
    """A part of the package, the globs of its files, and the tests that measure it."""

    name: str
    mutate: list[str]
    tests: list[str]
    #: Tests of the area left out of mutation runs (too slow there; the suite still runs them).
    skip: list[str] = field(default_factory=list)


AREAS = {
    # tests/compat runs KayGraph 0.3 programs on the core (node Config, generics, MetricsNode).
    "core": Area("core", ["kaygraph/core/*"], ["tests/core", "tests/compat"]),
    # The SIGKILL and many-writer tests spawn dozens of processes per run: under mutmut on this
    # machine the crash test alone outlasts its timeout, so mutants are judged by the other tests.
    "persistence": Area(
        "persistence",
        ["kaygraph/ext/persistence/*"],
        ["tests/ext/persistence"],
        skip=["tests/ext/persistence/test_crash.py", "tests/ext/persistence/test_concurrency.py"],
    ),
    "config-plugins": Area(
        "config-plugins",
        ["kaygraph/config.py", "kaygraph/plugins/*"],
        [
            "tests/test_config.py",
            "tests/test_config_parsing.py",
            "tests/test_config_messages.py",
            "tests/test_plugins.py",
            "tests/test_extensions.py",
            "tests/test_cli.py",
        ],
    ),
}

DETECTED = {"killed", "timeout", "segfault", "caught by type check"}


@dataclass
class Result:
    """The outcome of one area: mutant name -> status, and the score."""

    area: str
    status: dict[str, str] = field(default_factory=dict)
    equivalent: dict[str, str] = field(default_factory=dict)
    diffs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, *statuses: str) -> int:
        return sum(1 for name, status in self.status.items() if status in statuses)

    @property
    def detected(self) -> int:
        return sum(1 for status in self.status.values() if status in DETECTED)

    @property
    def score(self) -> float:
        relevant = len(self.status) - len(self.equivalent)
        return self.detected / relevant if relevant else 1.0

    def survivors(self) -> list[str]:
        return sorted(
            name
            for name, status in self.status.items()
            if status not in DETECTED and name not in self.equivalent
        )


#: Single tests that cannot pass under mutmut whatever the mutant: where a warning points (a stack
#: level; mutmut's wrappers add frames), and what ``import kaygraph`` loads (its trampoline imports
#: typing and mutmut).
DESELECTED_UNDER_MUTMUT = [
    "tests/core/test_messages.py::test_run_time_warnings_point_at_the_callers_line",
    "tests/compat/test_companion_imports.py::test_import_kaygraph_loads_no_companion_module_nor_their_dependencies",
    "tests/compat/test_generics_and_context.py::test_import_kaygraph_does_not_import_typing_until_an_alias_is_used",
]


def mutmut_config(area: Area, workdir: Path) -> str:
    """The ``[tool.mutmut]`` section for one area (test paths the copy lacks are left out)."""
    deselect: list[str] = []
    for path in [*NEVER_UNDER_MUTMUT, *area.skip]:
        deselect += ["--ignore", path]
    for test in DESELECTED_UNDER_MUTMUT:
        if (workdir / test.split("::")[0]).exists():
            deselect += ["--deselect", test]
    section = {
        "source_paths": ["kaygraph"],
        "only_mutate": area.mutate,
        "pytest_add_cli_args_test_selection": [path for path in area.tests if (workdir / path).exists()],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "--timeout", "120", *deselect],
        "use_git_change_detection": False,
        # Tests read these (the docs' examples run as tests); mutmut copies only code and tests.
        "also_copy": [name for name in COPIED if name not in ("kaygraph", "tests", "pyproject.toml")],
    }
    lines = ["", "[tool.mutmut]"]
    for key, value in section.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def prepare(area: Area, fresh: bool, ref: str | None) -> Path:
    """A copy of the work tree (or of git ``ref``) for ``area``; kept between runs unless ``fresh``
    (mutmut caches its results there)."""
    workdir = WORK / (area.name if ref is None else f"{area.name}@{ref}")
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if ref is not None:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "--", *COPIED], capture_output=True, check=False
        )
        if archive.returncode:
            raise SystemExit(f"cannot read {ref!r} from git: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive.stdout, check=True)
        copied_from_tree: list[str] = []
    else:
        copied_from_tree = COPIED
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.db")
    for name in copied_from_tree:
        source, target = ROOT / name, workdir / name
        if not source.exists():
            continue
        if source.is_dir():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    pyproject = workdir / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + mutmut_config(area, workdir))
    return workdir


SITECUSTOMIZE = """\
# Written by bench/mutation.py. A test's subprocess inherits MUTANT_UNDER_TEST; while mutmut only
# collects which tests call which function ("stats"), a subprocess cannot report that back, so it
# runs the original code instead of failing to find mutmut's configuration.
import os

if os.environ.get("MUTANT_UNDER_TEST") in ("stats", "list_all_tests", "mutant_generation"):
    os.environ["MUTANT_UNDER_TEST"] = ""
"""


def mutmut(workdir: Path, *args: str, log: Path) -> int:
    """Run ``mutmut ARGS`` in ``workdir``, its output appended to ``log``."""
    exe = Path(sys.executable).with_name("mutmut")
    with log.open("a") as out:
        out.write(f"\n$ mutmut {' '.join(args[:5])}{' ...' if len(args) > 5 else ''}\n")
        out.flush()
        # Test subprocesses (the CLI, crash workers) import the mutated package too, and inherit
        # MUTANT_UNDER_TEST from mutmut: they can kill mutants like in-process tests.
        # (sitecustomize below keeps mutmut's bookkeeping modes out of those subprocesses).
        helper = WORK / "_subprocess"
        helper.mkdir(exist_ok=True)
        (helper / "sitecustomize.py").write_text(SITECUSTOMIZE)
        # The directory must exist before mutmut starts: Python caches "nothing here" for a missing
        # sys.path entry, and would then import the unmutated package.
        (workdir / "mutants").mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workdir / "mutants"), str(helper)])}
        return subprocess.run(
            [str(exe), *args], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode


def read_statuses(workdir: Path) -> dict[str, str]:
    """Mutant name -> status, from mutmut's ``.meta`` files."""
    from mutmut.stats import status_by_exit_code

    statuses: dict[str, str] = {}
    for meta in (workdir / "mutants").rglob("*.meta"):
        data = json.loads(meta.read_text())
        for name, exit_code in data.get("exit_code_by_key", {}).items():
            statuses[name] = status_by_exit_code[exit_code]
    return statuses


GENERATE_CODE = """
import os, sys
from mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants
from mutmut.mutation.trampoline import set_mutant_under_test
from mutmut.utils.file_utils import setup_source_paths
os.makedirs("mutants", exist_ok=True)
set_mutant_under_test("mutant_generation")
copy_src_dir()
copy_also_copy_files()
setup_source_paths()
stats = create_mutants(int(sys.argv[1]))
print(f"generated: {stats.mutated} files mutated")
"""

DIFF_CODE = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
names = json.load(sys.stdin)
out = {}
for name in names:
    try:
        out[name] = get_diff_for_mutant(name)
    except Exception as exc:
        out[name] = f"(no diff: {exc!r})"
print(json.dumps(out))
"""


def read_diffs(workdir: Path, names: list[str]) -> dict[str, str]:
    """The unified diff of each named mutant against the original function."""
    if not names:
        return {}
    done = subprocess.run(
        [sys.executable, "-c", DIFF_CODE],
        cwd=workdir,
        input=json.dumps(names),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def function_of(name: str) -> str:
    """``kaygraph.core.graph.xǁGraphǁrun__mutmut_3`` -> ``kaygraph.core.graph.xǁGraphǁrun``."""
    return re.sub(r"__mutmut_\d+$", "", name)


def fingerprint(diff: str) -> str:
    """A short hash of what a mutant changes, independent of its number and line position."""
    changed = [
        re.sub(r"__mutmut_(\d+|orig)", "", line[1:].strip())
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return hashlib.sha1("\n".join(changed).encode()).hexdigest()[:10]


def load_equivalents() -> dict[tuple[str, str], str]:
    """(function, fingerprint) -> why that mutant cannot change behaviour."""
    entries: dict[tuple[str, str], str] = {}
    if not EQUIVALENTS.exists():
        return entries
    for number, line in enumerate(EQUIVALENTS.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise SystemExit(f"{EQUIVALENTS}:{number}: expected 'FUNCTION FINGERPRINT REASON', got {line!r}")
        entries[(parts[0], parts[1])] = parts[2]
    return entries


def sample_names(workdir: Path, count: int, seed: int) -> list[str]:
    """``count`` mutant names picked at random (reproducibly, by ``seed``)."""
    names = sorted(read_statuses(workdir))
    if count >= len(names):
        return names
    return sorted(random.Random(seed).sample(names, count))


def run_area(area: Area, args: argparse.Namespace) -> Result:
    """Mutate one area, run its tests against every (or a sample of the) mutants, and score it."""
    started = time.monotonic()
    if args.report_only:
        workdir = WORK / (area.name if args.ref is None else f"{area.name}@{args.ref}")
        if not (workdir / "mutants").is_dir():
            raise SystemExit(f"no earlier run of {area.name} in {workdir}")
        checked = {name: status for name, status in read_statuses(workdir).items() if status != "not checked"}
        return score(area, workdir, checked, 0.0)
    workdir = prepare(area, fresh=not args.keep, ref=args.ref)
    log = workdir.with_name(workdir.name + ".log")
    log.write_text("")
    print(f"mutating {area.name} ... (progress in {log})", flush=True)
    jobs = ["--max-children", str(args.jobs)]
    if args.sample:
        # The names exist once mutmut generated the mutants: do only that step first (mutmut's own
        # functions, as its `run` calls them), then sample and run the chosen ones.
        done = subprocess.run(
            [sys.executable, "-c", GENERATE_CODE, str(args.jobs)], cwd=workdir, capture_output=True, text=True
        )
        with log.open("a") as out:
            out.write(done.stdout + done.stderr)
        if done.returncode:
            raise SystemExit(f"mutmut could not generate the mutants of {area.name}; see {log}")
        names = sample_names(workdir, args.sample, args.seed)
        code = mutmut(workdir, "run", *jobs, *names, log=log)
        statuses = {name: status for name, status in read_statuses(workdir).items() if name in set(names)}
    else:
        code = mutmut(workdir, "run", *jobs, log=log)
        statuses = read_statuses(workdir)
    if code:
        raise SystemExit(f"mutmut failed on {area.name} (exit {code}); see {log}")
    return score(area, workdir, statuses, time.monotonic() - started)


def score(area: Area, workdir: Path, statuses: dict[str, str], seconds: float) -> Result:
    """The result of ``statuses``, with the survivors' diffs and the equivalent ones set apart."""
    result = Result(area.name, status=statuses, seconds=seconds)
    not_detected = [name for name, status in statuses.items() if status not in DETECTED]
    result.diffs = read_diffs(workdir, not_detected)
    equivalents = load_equivalents()
    for name in not_detected:
        reason = equivalents.get((function_of(name), fingerprint(result.diffs.get(name, ""))))
        if reason:
            result.equivalent[name] = reason
    return result


def report(results: list[Result], args: argparse.Namespace) -> str:
    """The summary table, the equivalent mutants with their reasons, and each survivor's diff."""
    scope = f"a sample of {args.sample} per area, seed {args.seed}" if args.sample else "every mutant"
    lines = [
        f"Mutation score (mutmut 3, {scope})",
        "",
        "| area | mutants | killed | timeout | survived | no tests | other | equivalent | score | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        other = len(result.status) - result.count("killed", "timeout", "survived", "no tests")
        lines.append(
            f"| {result.area} | {len(result.status)} | {result.count('killed')} | {result.count('timeout')} "
            f"| {result.count('survived')} | {result.count('no tests')} | {other} | {len(result.equivalent)} "
            f"| {result.score:.1%} | {result.seconds / 60:.1f} |"
        )
    for result in results:
        if result.equivalent:
            lines += ["", f"## {result.area}: surviving mutants judged equivalent", ""]
            lines += [f"- `{name}`: {reason}" for name, reason in sorted(result.equivalent.items())]
        survivors = result.survivors()
        if survivors:
            lines += ["", f"## {result.area}: {len(survivors)} surviving mutants", ""]
            for name in survivors:
                diff = result.diffs.get(name, "")
                lines += [
                    f"### {name} ({result.status[name]})",
                    f"equivalents entry: `{function_of(name)} {fingerprint(diff)} <why>`",
                    "```diff",
                    diff,
                    "```",
                ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--area", action="append", choices=sorted(AREAS), help="repeatable; default: all")
    parser.add_argument("--sample", type=int, default=0, help="mutants per area, picked at random")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("KAYGRAPH_MUTATION_SEED", "15")))
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--ref", help="measure this git commit's code and tests instead of the work tree")
    parser.add_argument(
        "--report-only", action="store_true", help="score the mutants the last run of each area checked"
    )
    parser.add_argument("--keep", action="store_true", help="reuse mutmut's cached results from the last run")
    args = parser.parse_args()
    try:
        import mutmut  # noqa: F401
    except ImportError:
        raise SystemExit("bench/mutation.py needs mutmut: .venv/bin/pip install -e '.[dev]'")
    os.nice(19)
    WORK.mkdir(exist_ok=True)
    results = [run_area(AREAS[name], args) for name in args.area or list(AREAS)]
    text = report(results, args)
    report_path = WORK / ("report.md" if args.ref is None else f"report@{args.ref}.md")
    report_path.write_text(text)
    print(text.split("\n## ")[0])
    for result in results:
        print(f"{result.area}: {len(result.survivors())} survivors not judged equivalent")
    print(f"full report with every survivor's diff: {report_path}")


if __name__ == "__main__":
    main()
