# SPDX-License-Identifier: Apache-2.0
"""Every test file in a pytest of its own: ``python3 run.py test``.

Stdlib only: ``run.py`` imports it before any virtualenv exists.

A test file that passes only after another file has run (an import, a
registered option, a fixture's leftover) is a defect the project promises
not to have; one pytest per file is how the full run proves it, at no
extra cost on a machine with more than one core. The functional tests
share the real services the caller started and named in ``env`` (one
lists a project's images, another creates some), so they run one after
another; the other files run beside them, ``jobs - 1`` at a time.

Each file prints one line when it ends; a failed file's whole output
follows its line. The lines a file's session summary adds (the WMI
conformance counts, the rollback injections) are summed at the end.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pathlib
import re
import subprocess
import threading
import time

# The files that share the real services, one at a time.
_SHARED = 'tests/functional/'
# The slowest kinds first, so that the last file to start is a short one.
_ORDER = ('tests/tools/', 'tests/property/', 'tests/unit/')
# pytest's last line: "3 passed, 1 warning in 0.51s"
_OUTCOME = re.compile(r'(\d+) (passed|failed|errors?|skipped|xfailed|'
                      r'xpassed|deselected)')
# the session summaries of tests/conftest.py, whose figures add up
_SUMMED = {
    'WMI conformance': re.compile(
        r'WMI conformance: (\d+) tests, (\d+) WMI calls validated .*, (\d+) '
        r'undocumented'),
    'rollback': re.compile(
        r'rollback: (\d+) faults injected .*, (\d+) leftovers'),
}
_SUMMED_TEXT = {
    'WMI conformance': ('WMI conformance: %d tests, %d WMI calls validated '
                        'against vtpm_hyperv.wmi_schema, %d undocumented'),
    'rollback': ('rollback: %d faults injected at every WMI step of every '
                 'attach path, %d leftovers'),
}


@dataclasses.dataclass
class Result:
    path: str
    code: int
    output: str
    seconds: float

    @property
    def counts(self) -> dict[str, int]:
        found = {}
        lines = self.output.strip().splitlines()
        for kind_count, kind in _OUTCOME.findall(lines[-1] if lines else ''):
            kind = 'errors' if kind.startswith('error') else kind
            found[kind] = found.get(kind, 0) + int(kind_count)
        return found

    @property
    def ok(self) -> bool:
        # 5: no test collected, which a file named test_*.py must not be
        return self.code == 0


def test_files(root: pathlib.Path) -> list[str]:
    """Every test file under ``root/tests``, the slowest kinds first."""
    files = sorted(p.relative_to(root).as_posix()
                   for p in (root / 'tests').rglob('test_*.py'))

    def kind(path):
        return next((i for i, prefix in enumerate(_ORDER)
                     if path.startswith(prefix)), len(_ORDER))
    return sorted(files, key=kind)


def run(python, root: pathlib.Path, env: dict, jobs: int, log) -> int:
    """Run every test file alone; 0 when each passed, else 1."""
    files = test_files(root)
    log('%d test files, each in a pytest of its own, %d at a time'
        % (len(files), jobs))
    started = time.monotonic()
    lock = threading.Lock()
    results = []

    def one(path):
        begun = time.monotonic()
        process = subprocess.run(
            [str(python), '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
             path], cwd=root, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, check=False)
        result = Result(path, process.returncode, process.stdout,
                        time.monotonic() - begun)
        with lock:
            results.append(result)
            counts = ', '.join('%d %s' % (n, k) for k, n in
                               sorted(result.counts.items())) or 'no tests'
            status = 'ok  ' if result.ok else 'FAIL'
            print('%s %s (%s, %.0f s)' % (status, path, counts,
                                          result.seconds), flush=True)
            if not result.ok:
                print(result.output, flush=True)
        return result

    shared = [f for f in files if f.startswith(_SHARED)]
    alone = [f for f in files if not f.startswith(_SHARED)]
    with concurrent.futures.ThreadPoolExecutor(max(jobs - 1, 1)) as pool:
        if jobs > 1:
            others = pool.map(one, alone)
            for path in shared:
                one(path)
            list(others)
        else:
            for path in shared + alone:
                one(path)

    failed = sorted(r.path for r in results if not r.ok)
    totals = {}
    for result in results:
        for kind, n in result.counts.items():
            totals[kind] = totals.get(kind, 0) + n
    for name, pattern in _SUMMED.items():
        sums = None
        for result in results:
            for match in pattern.finditer(result.output):
                figures = [int(g) for g in match.groups()]
                sums = figures if sums is None else [
                    a + b for a, b in zip(sums, figures)]
        if sums is not None:
            print(_SUMMED_TEXT[name] % tuple(sums))
    log('%d files: %s in %.0f s%s' % (
        len(results), ', '.join('%d %s' % (n, k)
                                for k, n in sorted(totals.items())),
        time.monotonic() - started,
        '' if not failed else '; failed: ' + ', '.join(failed)))
    return 1 if failed else 0


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 4))
