# SPDX-License-Identifier: Apache-2.0
"""Find the images and flavors that would fail a vTPM boot, from plain data.

The rules are ``vtpm_core.policy``'s; ``audit`` applies them to what a cloud
holds and finds:

* images and flavors whose vTPM properties have invalid values, or key lists
  beyond the limits;
* keyed images whose secrets the caller cannot read (the caller says which,
  through ``secret_problem``);
* image and flavor pairs that conflict;
* instances whose KeyProtector names only fabrics that no host reports as
  its primary identity: during an HGS certificate renewal, those that name
  only the previous certificates (they move while the hosts still answer
  for them), and after it, those that no host answers for at all
  (``fabric_findings``).

Reading a cloud is ``vtpm_cli.cloud``'s job (``vtpm-check --audit``), and
reading nova's databases ``vtpm_cli.novadb``'s.
"""

from __future__ import annotations

import dataclasses
import json

from vtpm_core import capabilities
from vtpm_core import constants as c
from vtpm_core import exception
from vtpm_core import policy
from vtpm_core import sysmeta

# The flavor sides an image may meet; an image is valid on its own when one
# of them accepts it.
_FLAVOR_CHOICES = ({}, {c.FLAVOR_VTPM: c.DISABLED},
                   {c.FLAVOR_VTPM: c.OPTIONAL}, {c.FLAVOR_VTPM: c.REQUIRED})


@dataclasses.dataclass(frozen=True)
class Resource:
    kind: str  # 'image', 'flavor' or 'instance'
    id: str
    name: str
    properties: dict  # only the keys the policy reads


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str  # 'image', 'flavor', 'secret', 'pair' or 'instance'
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
                    '%s: %s' % (ref, exception.named(c.IMAGE_VTPM_KEYS,
                                                     c.IMAGE), problem)))

    valid_flavors = []
    for flavor in flavors:
        try:
            policy.build_request(policy.PERMISSIVE_IMAGE, flavor.properties)
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


def fabric_findings(instances, reports):
    """Return a finding per instance that names no host's primary fabric.

    :param instances: ``Resource`` objects of kind 'instance', with the
        instance's system metadata ``vtpm_fabrics`` as their property.
    :param reports: every compute host's ``HostCapabilities`` (None for a
        host without a readable report).

    An instance whose fabrics meet some host's identities
    (``capabilities.fabric_identities``, the filter's rule) still moves;
    when none is a host's primary one, it names only certificates that HGS
    is retiring, and will be stranded when HGS retires them.
    """
    primary, answered = set(), set()
    for caps in reports:
        if caps is not None and caps.fabric_id:
            primary.add(caps.fabric_id)
            answered.update(capabilities.fabric_identities(caps))
    findings = []
    for instance in instances:
        # as nova recorded them: the scheduler filter reads the same
        fabrics = frozenset(sysmeta.fabrics(instance.properties))
        if not fabrics or not fabrics.isdisjoint(primary):
            continue
        named = ', '.join(sorted(fabrics))
        if fabrics.isdisjoint(answered):
            problem = ('its KeyProtector names fabrics %s, none of which a '
                       'host answers for: it can neither move nor start on '
                       'another host' % named)
        else:
            problem = ('its KeyProtector names only fabrics %s, which hosts '
                       'answer for only while HGS renews its certificates: '
                       'it is stranded when HGS retires them' % named)
        findings.append(Finding('instance', _label(instance), problem + (
            '; its owner grants the fabric\'s new guardian '
            '(Grant-HgsKeyProtectorAccess)')))
    return findings


def render(images, flavors, findings, fmt, instances=None):
    """Return the report as text ('human') or JSON ('json').

    :param instances: the instances read from nova's databases, or None
        when they were not read (the report then has no instance list).
    """
    if fmt == 'json':
        report = {
            'images': [dataclasses.asdict(r) for r in images],
            'flavors': [dataclasses.asdict(r) for r in flavors],
            'findings': [dataclasses.asdict(f) for f in findings],
        }
        if instances is not None:
            report['instances'] = [dataclasses.asdict(r) for r in instances]
        return json.dumps(report, indent=2, sort_keys=True)
    lines = ['%d image(s) and %d flavor(s) carry vTPM properties'
             % (len(images), len(flavors))]
    if instances is not None:
        lines.append('%d instance(s) have a KeyProtector that names fabrics'
                     % len(instances))
    for resource in list(images) + list(flavors) + list(instances or ()):
        lines.append('  %s: %s' % (_label(resource), ', '.join(
            '%s=%s' % kv for kv in sorted(resource.properties.items()))))
    if not findings:
        lines.append('no problems found')
    else:
        lines.append('%d problem(s):' % len(findings))
        lines.extend('  [%s] %s: %s' % (f.kind, f.subject, f.problem)
                     for f in findings)
    return '\n'.join(lines)
