# SPDX-License-Identifier: Apache-2.0
"""The install guide's Glance metadefs commands, against the real Glance.

The commands are the guide's own (its ``glance-metadefs-import`` and
``glance-metadefs-reimport`` blocks), run by python-glanceclient's
``glance`` as Keystone's administrator, against the Glance that
``tools.services`` runs; the namespaces are held against the ones that
Glance itself ships, which must not be defined again.
"""

import json
import os
import pathlib
import shlex
import subprocess
import sys

import pytest

from tests import realservices
from tools.services import common
from tools.services import install
from tools.simcloud import guide

pytestmark = pytest.mark.usefixtures('real_services')
ROOT = pathlib.Path(__file__).resolve().parents[2]
OURS = [json.loads(p.read_text())
        for p in sorted((ROOT / 'etc' / 'metadefs').glob('*.json'))]
IMAGE_NS = 'OS::Compute::HyperVvTPM'
FLAVOR_NS = 'OS::Compute::HyperVvTPMFlavor'


@pytest.fixture
def glance(tmp_path):
    """``glance(*argv)`` as Keystone's administrator: (exit code, output)."""
    state_dir = pathlib.Path(realservices.state_dir())
    password = common.read_json(
        state_dir / 'keystone' / 'credentials.json')['admin']
    env = dict(os.environ, OS_AUTH_URL=realservices.keystone_url(),
               OS_USERNAME='admin', OS_PASSWORD=password,
               OS_PROJECT_NAME='admin', OS_USER_DOMAIN_ID='default',
               OS_PROJECT_DOMAIN_ID='default', OS_IDENTITY_API_VERSION='3',
               OS_REGION_NAME=os.environ.get('VTPM_TEST_REGION', ''),
               # glanceclient caches schemas under ~/.glanceclient
               HOME=str(tmp_path))
    executable = pathlib.Path(sys.executable).with_name('glance')

    def run(*argv):
        done = subprocess.run([str(executable), *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout + done.stderr

    yield run
    for namespace in (IMAGE_NS, FLAVOR_NS):
        run('md-namespace-update', namespace, '--protected', 'False')
        run('md-namespace-delete', namespace)


def guide_commands(name):
    """The ``$ glance ...`` lines of the guide's console block ``name``."""
    code, _ = guide.snippet(name)
    commands = [shlex.split(line[2:]) for line in code.splitlines()
                if line.startswith('$ ')]
    assert commands and all(c[0] == 'glance' for c in commands), code
    return commands


def run_all(glance, name):
    for command in guide_commands(name):
        code, output = glance(*command[1:])
        assert code == 0, (command, output)


def shown(glance, namespace):
    code, output = glance('--os-image-api-version', '2',
                          'md-namespace-show', namespace)
    return code, output


def test_import_refuse_a_second_and_reimport_as_the_guide_says(glance):
    run_all(glance, 'glance-metadefs-import')
    code, output = shown(glance, IMAGE_NS)
    assert code == 0, output
    for prop in ('os_vtpm', 'os_vtpm_keys', 'os_shielded_vm'):
        assert prop in output
    assert 'hw_machine_type' not in output.split('properties')[1]

    # what the guide warns of: a second import conflicts, and a protected
    # namespace cannot be deleted
    code, output = glance(*guide_commands('glance-metadefs-import')[0][1:])
    assert code != 0 and '409' in output, output
    code, output = glance('md-namespace-delete', IMAGE_NS)
    assert code != 0 and '403' in output, output

    # the guide's re-import: unprotect, delete, import; protected again
    run_all(glance, 'glance-metadefs-reimport')
    code, output = shown(glance, IMAGE_NS)
    assert code == 0 and '| protected' in output, output
    protected = [line for line in output.splitlines()
                 if line.startswith('| protected')]
    assert protected and 'True' in protected[0], output


def _defined(namespace):
    """(resource type, property name as applied) of a namespace."""
    return {(assoc['name'], assoc.get('prefix', '') + name)
            for assoc in namespace.get('resource_type_associations', [])
            for name in namespace.get('properties', {})}


def test_no_property_of_glances_own_namespaces_is_defined_again():
    shipped_dir = install.VENV / 'etc' / 'glance' / 'metadefs'
    shipped = {p.name: json.loads(p.read_text())
               for p in sorted(shipped_dir.glob('*.json'))}
    assert shipped, shipped_dir
    glances = set().union(*(_defined(ns) for ns in shipped.values()))
    ours = set().union(*(_defined(ns) for ns in OURS))
    assert ours & glances == set()
    # the property the image namespace names instead of defining
    libvirt = shipped['compute-libvirt-image.json']
    assert libvirt['namespace'] == 'OS::Compute::LibvirtImage'
    assert ('OS::Glance::Image', 'hw_machine_type') in _defined(libvirt)


def test_the_guide_removes_glances_libvirt_tpm_namespaces(glance):
    """The two namespaces the guide removes are Glance's libvirt vTPM ones,
    offering what Hyper-V's vTPM is not; the guide's commands remove them
    from a Glance that has them, which is left as it was afterwards (the
    Glance of the test run is shared)."""
    shipped_dir = install.VENV / 'etc' / 'glance' / 'metadefs'
    removed = {}
    for path in sorted(shipped_dir.glob('*.json')):
        namespace = json.loads(path.read_text())
        if namespace['namespace'] in ('OS::Compute::TPM',
                                      'OS::Compute::VTPM'):
            removed[namespace['namespace']] = (path, namespace)
    assert set(removed) == {'OS::Compute::TPM', 'OS::Compute::VTPM'}
    tpm = removed['OS::Compute::TPM'][1]['properties']
    assert tpm['tpm_version']['enum'] == ['1.2', '2.0']
    assert tpm['tpm_model']['default'] == 'tpm-tis'
    # as a cloud that loaded Glance's own definitions has them
    # (glance-manage db_load_metadefs): the test Glance may not
    present = {name for name in removed if shown(glance, name)[0] == 0}
    try:
        for name, (path, _) in removed.items():
            if name not in present:
                code, output = glance('md-namespace-import', '--file',
                                      str(path))
                assert code == 0, output
        run_all(glance, 'glance-metadefs-remove-libvirt')
        for name in removed:
            code, output = shown(glance, name)
            assert code != 0 and '404' in output, output
    finally:
        # the Glance as it was
        for name, (path, _) in removed.items():
            there = shown(glance, name)[0] == 0
            if name in present and not there:
                code, output = glance('md-namespace-import', '--file',
                                      str(path))
                assert code == 0, output
            elif name not in present and there:
                glance('md-namespace-update', name, '--protected', 'False')
                glance('md-namespace-delete', name)
