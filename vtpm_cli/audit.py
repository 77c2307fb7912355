# SPDX-License-Identifier: Apache-2.0
"""Find the images and flavors that would fail a vTPM boot, from plain data.

The rules are ``vtpm_core.policy``'s; ``audit`` applies them to what a cloud
holds and finds:

* images and flavors whose vTPM properties have invalid values, or key lists
  beyond the limits;
* keyed images whose secrets the caller cannot read (the caller says which,
  through ``secret_problem``);
* image and flavor pairs that conflict, nova's own ``hw:tpm_*`` among
  them: a TPM 1.2, a TIS model (given, or assumed for a version alone) or
  a ``deployment`` secret security asks for what no Hyper-V host gives;
* with the hosts' reports (nova's databases), valid requests that no
  host's report can serve;
* instances whose KeyProtector names only fabrics that no host reports as
  its primary identity: during an HGS certificate renewal, those that name
  only the previous certificates (they move while the hosts still answer
  for them), and after it, those that no host answers for at all
  (``fabric_findings``).

It also warns (``key_warnings``) of keys that would not be read as given,
as ``vtpm-check`` does (``vtpm_cli.lint``): a key of ours in another case
(``OS_VTPM``), on the wrong side, or misspelt.

Reading a cloud is ``vtpm_cli.cloud``'s job (``vtpm-check --audit``), and
reading nova's databases ``vtpm_cli.novadb``'s.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

from vtpm_cli import lint
from vtpm_core import capabilities
from vtpm_core import constants as c
from vtpm_core import exception
from vtpm_core import policy
from vtpm_core import sysmeta

# The flavor sides an image may meet; an image is valid on its own when one
# of them accepts it: every os:vtpm, with nova's model (which a flavor may
# give an image's hw_tpm_version) and secret security or without.
_FLAVOR_CHOICES = tuple(
    {k: v for k, v in zip(
        (c.FLAVOR_VTPM, c.FLAVOR_TPM_MODEL, c.FLAVOR_TPM_SECRET_SECURITY),
        choice) if v is not None}
    for choice in itertools.product(
        (None,) + c.VTPM_POLICIES, (None, c.TPM_MODEL),
        (None,) + c.SECRET_SECURITIES))
# The image sides a flavor may meet: one that allows a vTPM, with keys (a
# placeholder UUID) or without, for nova's 'user' and 'host'.
_IMAGE_CHOICES = (policy.PERMISSIVE_IMAGE, dict(
    policy.PERMISSIVE_IMAGE,
    **{c.IMAGE_VTPM_KEYS: '00000000-0000-4000-8000-000000000000'}))


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


def key_warnings(kind, resources):
    """Findings of kind 'key': keys that would not be read as given.

    :param kind: 'image' or 'flavor'.
    :param resources: (id, name, every property) of each image or flavor.
    """
    found = []
    for rid, name, props in resources:
        items = list(props.items())
        messages = lint.warnings(items, []) if kind == 'image' else \
            lint.warnings([], items)
        found.extend(Finding('key', _label(Resource(kind, rid, name, {})),
                             message) for message in messages)
    return found


# A report's age is not held against a host here (about a century).
_ANY_AGE = 100 * 365 * 24 * 3600


def _unserved(request, reports):
    """Why no host's report serves ``request``, or None."""
    if reports is None or not request.enabled:
        return None
    verdicts = [capabilities.satisfies(request, caps,
                                       max_report_age=_ANY_AGE)
                for caps in reports]
    if any(verdicts):
        return None
    reasons = sorted({v.reason for v in verdicts})
    return 'no host can serve it: %s' % ('; '.join(reasons) or
                                         'no host reports anything')


def audit(images, flavors, secret_problem, reports=None):
    """Return the findings for images and flavors that carry our keys.

    :param images: ``Resource`` objects of kind 'image'.
    :param flavors: ``Resource`` objects of kind 'flavor'.
    :param secret_problem: callable(ref) -> None or a short description of
        why the caller cannot read that Barbican secret.
    :param reports: every compute host's ``HostCapabilities`` (None where
        unreadable), or None when they were not read: with them, a valid
        image and flavor pair that no host serves is a finding (a report's
        age is not held against it: the audit asks what hosts can do).
    """
    findings = []
    valid_images = []
    for image in images:
        error = None
        for flavor in _FLAVOR_CHOICES:
            try:
                accepted = policy.build_request(image.properties, flavor)
                break
            except exception.VTPMError as e:
                error = error or e
        else:
            findings.append(Finding('image', _label(image), str(error)))
            continue
        valid_images.append(image)
        # keys are accepted only with the vTPM on: these are all of them
        for ref in accepted.key_refs:
            problem = secret_problem(ref)
            if problem:
                findings.append(Finding(
                    'secret', _label(image), 'Barbican secret %s named by '
                    '%s: %s' % (ref, exception.named(c.IMAGE_VTPM_KEYS,
                                                     c.IMAGE), problem)))

    valid_flavors = []
    for flavor in flavors:
        error = None
        for image in _IMAGE_CHOICES:
            try:
                policy.build_request(image, flavor.properties)
                break
            except exception.VTPMError as e:
                error = error or e
        else:
            findings.append(Finding('flavor', _label(flavor), str(error)))
            continue
        valid_flavors.append(flavor)

    for image in valid_images:
        for flavor in valid_flavors:
            subject = '%s with %s' % (_label(image), _label(flavor))
            try:
                request = policy.build_request(image.properties,
                                               flavor.properties)
            except exception.VTPMError as e:
                findings.append(Finding('pair', subject, str(e)))
                continue
            problem = _unserved(request, reports)
            if problem:
                findings.append(Finding('pair', subject, problem))
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


def render(images, flavors, findings, fmt, instances=None, warnings=()):
    """Return the report as text ('human') or JSON ('json').

    :param instances: the instances read from nova's databases, or None
        when they were not read (the report then has no instance list).
    :param warnings: ``key_warnings``' findings (a JSON report lists them
        under 'warnings' when there are any).
    """
    if fmt == 'json':
        report = {
            'images': [dataclasses.asdict(r) for r in images],
            'flavors': [dataclasses.asdict(r) for r in flavors],
            'findings': [dataclasses.asdict(f) for f in findings],
        }
        if instances is not None:
            report['instances'] = [dataclasses.asdict(r) for r in instances]
        if warnings:
            report['warnings'] = [dataclasses.asdict(f) for f in warnings]
        return json.dumps(report, indent=2, sort_keys=True)
    lines = ['%d image(s) and %d flavor(s) carry vTPM properties'
             % (len(images), len(flavors))]
    if instances is not None:
        lines.append('%d instance(s) have a KeyProtector that names fabrics'
                     % len(instances))
    for resource in list(images) + list(flavors) + list(instances or ()):
        lines.append('  %s: %s' % (_label(resource), ', '.join(
            '%s=%s' % kv for kv in sorted(resource.properties.items()))))
    if warnings:
        lines.append('%d warning(s):' % len(warnings))
        lines.extend('  [%s] %s: %s' % (f.kind, f.subject, f.problem)
                     for f in warnings)
    if not findings:
        lines.append('no problems found')
    else:
        lines.append('%d problem(s):' % len(findings))
        lines.extend('  [%s] %s: %s' % (f.kind, f.subject, f.problem)
                     for f in findings)
    return '\n'.join(lines)
