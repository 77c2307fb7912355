# SPDX-License-Identifier: Apache-2.0
"""The install guide's nova 2023.1 steps, run as written:
``python -m tools.nova27.install_check``.

In a new virtual environment of the Python that runs it (3.10 in ``tox -e
nova27``): nova 27.5.1 at 2023.1's pins (``tools/nova27/constraints.txt``),
as a nova 27 compute host has it; then each command of the guide's block
``install-nova27`` (``doc/source/install.rst``), with ``python3`` that
environment's Python and ``hyperv-vtpm`` this checkout. Exits non-zero
unless every command succeeds and prints the output the guide shows.

Standard library only.
"""

import os
import pathlib
import shlex
import subprocess
import sys
import tempfile

from tools.simcloud import blocks

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCK = 'install-nova27'
NOVA = 'nova==27.5.1'
CONSTRAINTS = ROOT / 'tools' / 'nova27' / 'constraints.txt'


def main():
    code, line = blocks.snippet(BLOCK)
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        # the guide's paths, literally: the checkout is ./hyperv-vtpm
        (work / 'hyperv-vtpm').symlink_to(ROOT, target_is_directory=True)
        python = work / 'venv' / 'bin' / 'python'
        subprocess.run([sys.executable, '-m', 'venv', work / 'venv'],
                       check=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
        prepare = [python, '-m', 'pip', 'install', '-q', '-c', CONSTRAINTS,
                   NOVA]
        print('$ %s' % shlex.join(map(str, prepare)), flush=True)
        subprocess.run(prepare, cwd=work, env=env, check=True)
        for argv, expected in blocks.console(code):
            if argv[0] == 'python3':
                argv = [str(python)] + argv[1:]
            print('$ %s   (install.rst, the block at line %d)' % (
                shlex.join(argv), line), flush=True)
            run = subprocess.run(argv, cwd=work, env=env, text=True,
                                 capture_output=True)
            print(run.stdout[-2000:] + run.stderr[-2000:], end='',
                  flush=True)
            missing = [e for e in expected if e not in run.stdout]
            if run.returncode != 0 or missing:
                sys.exit('install_check: %s exited %d%s' % (
                    shlex.join(argv), run.returncode,
                    ', without %r' % missing if missing else ''))
    print('install_check: the guide\'s %s steps passed' % BLOCK)


if __name__ == '__main__':
    main()
