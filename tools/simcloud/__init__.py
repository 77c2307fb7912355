# SPDX-License-Identifier: Apache-2.0
"""An in-process nova cloud on simulated Hyper-V hosts: the demo's and the
functional tests'.

Test support, not product: no distribution ships it (``setup.cfg`` packages
``vtpm_*`` only) and nothing in ``vtpm_*`` imports it. It lives outside
``tests/`` so that the demo runs without the test suite.

* ``nova``: nova's own services in this process (API, conductor,
  scheduler with ``VTPMFilter``, placement), as nova's functional tests run
  them: ``Services`` for a test case, ``running()`` for a program;
* ``driver``: a nova compute driver whose hosts are ``vtpm_hyperv.fake``
  simulated Hyper-V hosts, with the vTPM by ``VTPMDriverMixin`` over the
  real backend (``SimulatedCloud``, ``FakeHyperVDriver``);
* ``guide``: the install guide's nova.conf blocks, which ``nova`` applies.

Importing it changes nothing. A program that runs them first prepares
the process, before anything imports nova, os-win or ``vtpm_core`` (which
imports eventlet through oslo.versionedobjects): ``process.prepare()``, as
``tests/conftest.py`` does when pytest starts and the demo before it loads
nova.
"""
