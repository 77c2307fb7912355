# SPDX-License-Identifier: Apache-2.0
"""The mixin refuses nova's in-tree Hyper-V driver at ``init_host``.

nova's own ``nova.virt.hyperv`` driver (nova 28 and older) starts the VM in
``spawn`` whatever ``power_on`` says, so the vTPM could never be attached to
a VM that is off. nova-compute must not start with it: ``init_host`` raises
before the driver's own runs. The real driver is composed where nova still
ships it (the nova27 tox environment); a class of that module stands in for
it elsewhere.
"""

import importlib.util

from nova.virt import driver as nova_driver
import pytest

from vtpm_core import exception
from vtpm_hyperv.nova import driver
from vtpm_hyperv.nova import exception as nova_vtpm_exc

IN_TREE = 'nova.virt.hyperv.driver'


class OtherDriver(nova_driver.ComputeDriver):
    """Any other driver: records that its init_host ran."""

    def __init__(self):
        super().__init__(virtapi=None)
        self.started = []

    def init_host(self, host):
        self.started.append(host)


def _refused(cls):
    # not constructed: the in-tree driver's constructor needs Windows, and
    # init_host must refuse before anything of the driver runs
    drv = cls.__new__(cls)
    with pytest.raises(nova_vtpm_exc.UnsupportedComputeDriver) as caught:
        drv.init_host('hv1')
    assert drv.vtpm is None and drv.vtpm_host is None
    return str(caught.value)


@pytest.mark.skipif(importlib.util.find_spec('nova.virt.hyperv') is None,
                    reason='nova 29 and later ship no Hyper-V driver')
def test_nova_s_own_hyperv_driver_is_refused_with_the_reason():
    from nova.virt.hyperv import driver as hyperv_driver

    class Composed(driver.VTPMDriverMixin, hyperv_driver.HyperVDriver):
        pass

    message = _refused(Composed)
    assert message.startswith(
        'compute_driver nova.virt.hyperv.driver.HyperVDriver cannot have a '
        'vTPM: ')
    assert 'power_on=False' in message and '32775' in message
    assert 'compute-hyperv 16.0.0' in message


def test_a_driver_of_that_module_is_refused_before_it_starts():
    in_tree = type('HyperVDriver', (OtherDriver,), {'__module__': IN_TREE})

    class Composed(driver.VTPMDriverMixin, in_tree):
        pass

    assert issubclass(nova_vtpm_exc.UnsupportedComputeDriver,
                      exception.VTPMError)
    assert IN_TREE + '.HyperVDriver' in _refused(Composed)


def test_any_other_driver_starts():
    class Composed(driver.VTPMDriverMixin, OtherDriver):
        def vtpm_compute(self):
            return 'the host vTPM side'

    drv = Composed()
    drv.init_host('hv1')
    assert drv.started == ['hv1'] and drv.vtpm == 'the host vTPM side'
