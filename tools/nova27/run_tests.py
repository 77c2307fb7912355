# SPDX-License-Identifier: Apache-2.0
"""The tests of ``tox -e nova27``: nova 27 on Python 3.10.

The tests that need no real service (``tests/unit``, ``tests/property``)
and, where this checkout has it, the compute-hyperv consumer test
(``tests/functional/test_compute_hyperv*.py``, nova's in-process services
and compute-hyperv 16.0.0 over the simulated Hyper-V host). Arguments, if
any, replace the paths.

Left out: the check that ``etc/hyperv-vtpm.conf.sample`` is current, since
the sample holds keystoneauth's options as ``constraints.txt`` pins it
(2023.1's keystoneauth 5.1.3 has fewer).
"""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PATHS = ['tests/unit', 'tests/property']
CONSUMER = 'tests/functional/test_compute_hyperv*.py'
SAMPLE = 'tests/unit/vtpm_hyperv/test_conf.py::test_sample_is_current'


def main(argv):
    paths = argv or PATHS + sorted(
        p.relative_to(ROOT).as_posix() for p in ROOT.glob(CONSUMER))
    ignored = [] if argv else ['--deselect=' + SAMPLE]
    return pytest.main(['-m', 'not real_services'] + ignored + paths)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
