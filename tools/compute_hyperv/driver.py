# SPDX-License-Identifier: Apache-2.0
"""compute-hyperv's driver, through the port, as nova's in-process computes
run it over simulated Hyper-V hosts (``tools.simcloud``).

``ConsumerDriver`` is ``vtpm_hyperv.nova.compute_hyperv.HyperVDriver``
itself, constructed while os-win's utilsfactory answers from its simulated
host (``tools.compute_hyperv.host``); two things differ from a real host,
both because one process runs every simulated host:

* the host's name and node UUID: compute-hyperv names its node
  ``platform.node()`` and nova keeps one node UUID, one of each per process
  here, so each driver answers its host's;
* where the host's ``VTPMCompute`` comes from: a backend over its own
  simulated host, as ``tools.simcloud.driver.FakeHyperVDriver``'s.
"""

from __future__ import annotations

import uuid

from tools.compute_hyperv import host as chv_host
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import compute_hyperv


class ConsumerDriver(compute_hyperv.HyperVDriver):
    """The port's driver over ``cloud.hosts[host]``.

    Its os-win calls (``'<utils>.<method>'``) go to the simulated host's own
    log of WMI methods (``FakeHyperVHost.calls``: ``'<class>.<method>'``), so
    one list gives the order of both.
    """

    def __init__(self, virtapi, cloud, host):
        self.cloud = cloud
        self.hv = cloud.hosts[host]
        with chv_host.installed(self.hv, self.hv.calls):
            super().__init__(virtapi)
        # compute-hyperv's node is platform.node(): per host here
        self._hostops.get_hostname = lambda: host
        cloud.drivers[host] = self

    def get_available_nodes(self, refresh=False):
        return [self.hv.name]

    def get_nodenames_by_uuid(self, refresh=False):
        # nova keeps one node UUID per process (compute_id); one per host
        return {self._node_uuid(): self.hv.name}

    def get_available_resource(self, nodename):
        return dict(super().get_available_resource(nodename),
                    uuid=self._node_uuid())

    def _node_uuid(self):
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, self.hv.name))

    def vtpm_compute(self):
        return compute.VTPMCompute(
            self.cloud.conf, backend=self.cloud.make_backend(self.cloud.conf,
                                                             self.hv),
            auth_for=lambda context: None, host=self.vtpm_host)
