# SPDX-License-Identifier: Apache-2.0
"""``vtpm-check --audit``: read a cloud's images and flavors, and audit them.

Through openstacksdk, with the usual ``OS_*`` variables or clouds.yaml; the
findings are ``vtpm_cli.audit``'s. Secrets are checked by their metadata
only: no payload is fetched. Importing this module needs openstacksdk (the
``audit`` extra: ``pip install 'hyperv-vtpm[audit]'``).
"""

from __future__ import annotations

from keystoneauth1 import exceptions as ks_exceptions
import openstack
from openstack import exceptions as sdk_exceptions

from vtpm_cli import audit
from vtpm_cli import exception as cli_exception
from vtpm_core import constants as c

# run()'s exit status (vtpm_cli.check documents every code of vtpm-check).
CLEAN = 0
FINDINGS = 1
UNREADABLE = 2

# What openstacksdk and keystoneauth raise for an unreadable cloud.
CLIENT_ERRORS = (ks_exceptions.ClientException, sdk_exceptions.SDKException)


# openstacksdk models these image properties as attributes, not in
# ``properties``.
_IMAGE_ATTRIBUTES = (c.IMAGE_MACHINE_TYPE, c.IMAGE_TPM_VERSION,
                     c.IMAGE_TPM_MODEL)


def gather(conn):
    """Read images and flavors (with extra specs) the caller can see.

    :returns: (image carriers, flavor carriers, key warnings).
    """
    images = []
    for image in conn.image.images():
        props = dict(image.properties or {})
        for name in _IMAGE_ATTRIBUTES:
            if getattr(image, name, None):
                props[name] = getattr(image, name)
        images.append((image.id, image.name, props))
    flavors = [(f.id, f.name, dict(f.extra_specs or {}))
               for f in conn.compute.flavors(get_extra_specs=True)]
    return (audit.carriers('image', images, c.IMAGE_KEYS),
            audit.carriers('flavor', flavors, c.FLAVOR_KEYS),
            audit.key_warnings('image', images) +
            audit.key_warnings('flavor', flavors))


def secret_checker(conn):
    """Return secret_problem(ref) that reads a secret's metadata only."""
    def secret_problem(ref):
        try:
            # Barbican answers a secret's URL with its payload when asked
            # for anything but JSON: ask for JSON, always
            response = conn.key_manager.get(
                '/secrets/%s' % ref, raise_exc=False,
                headers={'Accept': 'application/json'})
        except CLIENT_ERRORS as e:
            return 'could not be checked: %s' % _describe(e)
        if response.status_code == 404:
            return 'does not exist'
        if response.status_code == 403:
            return 'the caller may not read it'
        if response.status_code >= 400:
            return 'Barbican answered HTTP %d' % response.status_code
        return None
    return secret_problem


def _describe(error):
    # keystoneauth's and openstacksdk's messages name the URL and the HTTP
    # status; neither carries a token
    return '%s: %s' % (type(error).__name__, error)


def run(cloud, fmt, fleet=None, strict=False, conn=None):
    """Audit the cloud; return (report text, exit status).

    :param fleet: None, or a callable that returns the instances and the
        hosts' reports (``vtpm_cli.novadb.gather``'s), whose fabrics and
        recorded secrets are audited too, and against which each image and
        flavor pair is held.
    :param strict: a warning (a key not read as given) counts as a
        finding for the exit status.
    :param conn: the openstacksdk connection to read with (the
        ``openstack`` command's); None connects to ``cloud``.
    :raises vtpm_cli.exception.CloudUnreadable: openstacksdk could not
        read the images and flavors (no credentials, an unknown cloud,
        Keystone, Glance or nova refused or unreachable); an unreadable
        secret is a finding.
    """
    try:
        if conn is None:
            conn = openstack.connect(cloud=cloud)
        images, flavors, warnings = gather(conn)
    except CLIENT_ERRORS as e:
        raise cli_exception.CloudUnreadable(
            cloud=cloud or '(OS_* environment)', reason=_describe(e)) from e
    instances = reports = None
    if fleet is not None:
        instances, reports = fleet()
    # one read per distinct secret, for images and instances alike
    secret_problem = audit.once_per_secret(secret_checker(conn))
    findings = audit.audit(images, flavors, secret_problem, reports)
    if fleet is not None:
        findings += audit.secret_findings(instances, secret_problem)
        findings += audit.fabric_findings(instances, reports)
        findings += audit.missing_findings(instances)
    failed = findings or (strict and warnings)
    return (audit.render(images, flavors, findings, fmt, instances,
                         warnings), FINDINGS if failed else CLEAN)
