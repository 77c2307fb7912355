# SPDX-License-Identifier: Apache-2.0
"""The tests of ``tox -e nova27``: nova 27 on Python 3.10.

The tests that need no real service (``tests/unit``, ``tests/property``)
and the compute-hyperv consumer test (``tests/functional/
test_compute_hyperv*.py``: nova's in-process services and compute-hyperv
16.0.0 over the simulated Hyper-V host, and nova-compute's load of the
install guide's driver module), in one process on eventlet, nova 27's only
mode (``tools/simcloud/process.py`` chooses it). Arguments, if any, replace
the paths.

Left out: the check that ``etc/hyperv-vtpm.conf.sample`` is current, since
the sample holds keystoneauth's options as ``constraints.txt`` pins it
(2023.1's keystoneauth 5.1.3 has fewer).
"""

import sys

import pytest

PATHS = ['tests/unit', 'tests/property',
         'tests/functional/test_compute_hyperv.py',
         'tests/functional/test_compute_hyperv_load.py']
SAMPLE = 'tests/unit/vtpm_hyperv/test_conf.py::test_sample_is_current'


def main(argv):
    paths = argv or PATHS
    ignored = [] if argv else ['--deselect=' + SAMPLE]
    return pytest.main(['-m', 'not real_services'] + ignored + paths)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
