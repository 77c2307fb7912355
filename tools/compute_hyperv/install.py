# SPDX-License-Identifier: Apache-2.0
"""Install compute-hyperv 16.0.0 into a virtual environment, leaving nova's
files alone.

Its wheel carries ``nova/__init__.py`` and ``nova/virt/__init__.py`` of its
own, which ``pip install compute-hyperv`` writes over nova's (after which
nova-compute 34 does not start). So, as the install guide says
(``doc/source/install.rst``, "compute-hyperv on nova 34"): pip installs it
alone into a folder of its own, the folder loses the wheel's ``nova``
package, and a ``.pth`` file puts the folder on the environment's path,
after nova's. Its dependencies come from the ``compute-hyperv`` extra.

Stdlib only: ``run.py`` calls it with the system Python.
"""

import pathlib
import shutil
import subprocess

VERSION = '16.0.0'
FOLDER = 'compute-hyperv-%s' % VERSION
PTH = 'compute_hyperv_16.pth'


class InstallError(RuntimeError):
    """pip could not install compute-hyperv."""


def ensure(venv, log=print):
    """compute-hyperv 16.0.0 in ``venv``, beside (not over) nova; a no-op
    once there. Returns the folder it is in."""
    venv = pathlib.Path(venv).resolve()
    python = venv / 'bin' / 'python'
    site = pathlib.Path(subprocess.run(
        [str(python), '-c',
         'import sysconfig; print(sysconfig.get_path("purelib"))'],
        check=True, capture_output=True, text=True).stdout.strip())
    folder = venv / FOLDER
    pth = site / PTH
    if (folder / 'compute_hyperv').is_dir() and pth.exists():
        return folder
    log('installing compute-hyperv %s into %s, beside nova'
        % (VERSION, folder))
    staging = venv / (FOLDER + '.part')
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [str(python), '-m', 'pip', 'install', '--quiet',
         '--disable-pip-version-check', '--no-deps', '--target',
         str(staging), 'compute-hyperv==%s' % VERSION],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise InstallError('pip install compute-hyperv==%s failed (exit %d):'
                           '\n%s' % (VERSION, result.returncode,
                                     result.stdout[-2000:] +
                                     result.stderr[-2000:]))
    # the wheel's nova/__init__.py and nova/virt/__init__.py (and its
    # nova/virt/compute_hyperv shim) are not installed
    shutil.rmtree(staging / 'nova')
    # and its metadata says so: the distribution provides compute_hyperv
    # alone (importlib.metadata.packages_distributions reads these)
    info = next(staging.glob('compute_hyperv-*.dist-info'))
    (info / 'top_level.txt').write_text('compute_hyperv\n')
    record = info / 'RECORD'
    record.write_text(''.join(
        line for line in record.read_text().splitlines(keepends=True)
        if not line.startswith('nova/')))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    pth.write_text('%s\n' % folder)
    return folder


if __name__ == '__main__':
    import sys
    # python -m tools.compute_hyperv.install VENV (tox's other Pythons)
    ensure(sys.argv[1])
