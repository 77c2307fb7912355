# SPDX-License-Identifier: Apache-2.0
"""What differs between the nova releases the compute side runs on.

The credentials the compute side sends Barbican by default are nova's own
(``nova.service_auth``), whose name changed in nova 33.

The mixin refuses nova's in-tree Hyper-V driver at ``init_host``.

nova's own ``nova.virt.hyperv`` driver (nova 28 and older) starts the VM in
``spawn`` whatever ``power_on`` says, so the vTPM could never be attached to
a VM that is off. nova-compute must not start with it: ``init_host`` raises
before the driver's own runs. The real driver is composed where nova still
ships it (the nova27 tox environment); a class of that module stands in for
it elsewhere.
"""

import importlib.util

import nova.conf
from nova import context as nova_context
from nova.tests.fixtures import conf as nova_conf_fixture
from nova.virt import driver as nova_driver
import pytest

from vtpm_core import exception
from vtpm_hyperv.nova import compute
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
    class HostSide:
        reconciled = False

        def reconcile_host(self):
            self.reconciled = True

    class Composed(driver.VTPMDriverMixin, OtherDriver):
        def vtpm_compute(self):
            return HostSide()

    drv = Composed()
    drv.init_host('hv1')
    assert drv.started == ['hv1'] and drv.vtpm.reconciled


def test_by_default_the_owner_s_token_is_what_nova_sends_other_services():
    # [service_user] send_service_user_token is off by default: nova sends
    # the user's own auth, on nova 27 (get_auth_plugin) as on nova 34
    # (get_service_user_token_auth_plugin)
    owner = object()
    vtpm = compute.VTPMCompute(None, backend=object(), host='hv1')

    with nova_conf_fixture.ConfFixture(nova.conf.CONF):
        context = nova_context.RequestContext(user_auth_plugin=owner)
        assert vtpm._auth_for(context) is owner
