# SPDX-License-Identifier: Apache-2.0
"""vtpm-check --audit: find images and flavors that would fail a vTPM boot.

The rules are ``vtpm_core.policy``'s; this module only gathers what a cloud
holds (through openstacksdk, with the usual ``OS_*`` variables or
clouds.yaml) and reports:

* images and flavors whose vTPM properties have invalid values, or key lists
  beyond the limits;
* keyed images whose secrets the caller cannot read (metadata only: no
  payload is fetched);
* image and flavor pairs that conflict.

Exit status: 0 when nothing is wrong, 1 with findings, 2 when the cloud
could not be read at all (the report is then the error).
"""

from __future__ import annotations

import dataclasses
import json

from vtpm_core import constants as c
from vtpm_core import exception
from vtpm_core import policy

# The flavor sides an image may meet; an image is valid on its own when one
# of them accepts it.
_FLAVOR_CHOICES = ({}, {c.FLAVOR_VTPM: c.DISABLED},
                   {c.FLAVOR_VTPM: c.OPTIONAL}, {c.FLAVOR_VTPM: c.REQUIRED})
# An image that accepts every valid os:vtpm value, to check flavors alone.
_PERMISSIVE_IMAGE = {c.IMAGE_VTPM: c.OPTIONAL,
                     c.IMAGE_MACHINE_TYPE: c.MACHINE_TYPE_GEN2}


@dataclasses.dataclass(frozen=True)
class Resource:
    kind: str  # 'image' or 'flavor'
    id: str
    name: str
    properties: dict  # only the keys the policy reads


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str  # 'image', 'flavor', 'secret' or 'pair'
    subject: str
    problem: str


def carriers(kind, resources, keys):
    """Keep the resources that carry at least one of ``keys``."""
    result = []
    for rid, name, props in resources:
        ours = {k: v for k, v in props.items() if k in keys}
        if ours:
            result.append(Resource(kind, rid, name, ours))
    return result


def _label(resource):
    return '%s %s (%s)' % (resource.kind, resource.name, resource.id)


def audit(images, flavors, secret_problem):
    """Return the findings for images and flavors that carry our keys.

    :param images: ``Resource`` objects of kind 'image'.
    :param flavors: ``Resource`` objects of kind 'flavor'.
    :param secret_problem: callable(ref) -> None or a short description of
        why the caller cannot read that Barbican secret.
    """
    findings = []
    valid_images = []
    for image in images:
        error = None
        for flavor in _FLAVOR_CHOICES:
            try:
                policy.build_request(image.properties, flavor)
                break
            except exception.VTPMError as e:
                error = error or e
        else:
            findings.append(Finding('image', _label(image), str(error)))
            continue
        valid_images.append(image)
        raw_keys = image.properties.get(c.IMAGE_VTPM_KEYS)
        for ref in policy.build_request(
                image.properties,
                {c.FLAVOR_VTPM: c.REQUIRED} if raw_keys else {}).key_refs:
            problem = secret_problem(ref)
            if problem:
                findings.append(Finding(
                    'secret', _label(image), 'Barbican secret %s named by '
                    'os_vtpm_keys (image property): %s' % (ref, problem)))

    valid_flavors = []
    for flavor in flavors:
        try:
            policy.build_request(_PERMISSIVE_IMAGE, flavor.properties)
        except exception.VTPMError as e:
            findings.append(Finding('flavor', _label(flavor), str(e)))
        else:
            valid_flavors.append(flavor)

    for image in valid_images:
        for flavor in valid_flavors:
            try:
                policy.build_request(image.properties, flavor.properties)
            except exception.VTPMError as e:
                findings.append(Finding(
                    'pair', '%s with %s' % (_label(image), _label(flavor)),
                    str(e)))
    return findings


def render(images, flavors, findings, fmt):
    """Return the report as text ('human') or JSON ('json')."""
    if fmt == 'json':
        return json.dumps({
            'images': [dataclasses.asdict(r) for r in images],
            'flavors': [dataclasses.asdict(r) for r in flavors],
            'findings': [dataclasses.asdict(f) for f in findings],
        }, indent=2, sort_keys=True)
    lines = ['%d image(s) and %d flavor(s) carry vTPM properties'
             % (len(images), len(flavors))]
    for resource in list(images) + list(flavors):
        lines.append('  %s: %s' % (_label(resource), ', '.join(
            '%s=%s' % kv for kv in sorted(resource.properties.items()))))
    if not findings:
        lines.append('no problems found')
    else:
        lines.append('%d problem(s):' % len(findings))
        lines.extend('  [%s] %s: %s' % (f.kind, f.subject, f.problem)
                     for f in findings)
    return '\n'.join(lines)


# --- the cloud, through openstacksdk ----------------------------------------

def gather(conn):
    """Read images and flavors (with extra specs) the caller can see."""
    images = []
    for image in conn.image.images():
        props = dict(image.properties or {})
        # openstacksdk models hw_machine_type as an attribute.
        if getattr(image, 'hw_machine_type', None):
            props[c.IMAGE_MACHINE_TYPE] = image.hw_machine_type
        images.append((image.id, image.name, props))
    flavors = [(f.id, f.name, dict(f.extra_specs or {}))
               for f in conn.compute.flavors(get_extra_specs=True)]
    return (carriers('image', images, c.IMAGE_KEYS),
            carriers('flavor', flavors, c.FLAVOR_KEYS))


def _client_errors():
    """What openstacksdk and keystoneauth raise for an unreadable cloud."""
    from keystoneauth1 import exceptions as ks_exceptions
    from openstack import exceptions as sdk_exceptions
    return (ks_exceptions.ClientException, sdk_exceptions.SDKException)


def secret_checker(conn):
    """Return secret_problem(ref) that reads a secret's metadata only."""
    errors = _client_errors()

    def secret_problem(ref):
        try:
            # Barbican answers a secret's URL with its payload when asked
            # for anything but JSON: ask for JSON, always
            response = conn.key_manager.get(
                '/secrets/%s' % ref, raise_exc=False,
                headers={'Accept': 'application/json'})
        except errors as e:
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


def run(cloud, fmt):
    """Audit the cloud; return (report text, exit status)."""
    import openstack

    try:
        conn = openstack.connect(cloud=cloud)
        images, flavors = gather(conn)
    except _client_errors() as e:
        error = ('could not read images and flavors from the cloud %s: %s'
                 % (cloud or '(OS_* environment)', _describe(e)))
        if fmt == 'json':
            return json.dumps({'error': error}, indent=2), 2
        return 'error: %s' % error, 2
    findings = audit(images, flavors, secret_checker(conn))
    return render(images, flavors, findings, fmt), 1 if findings else 0
