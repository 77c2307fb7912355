# SPDX-License-Identifier: Apache-2.0
"""Find the images and flavors that would fail a vTPM boot, from plain data.

The rules are ``vtpm_core.policy``'s; ``audit`` applies them to what a cloud
holds and finds:

* images and flavors whose vTPM properties have invalid values, or key lists
  beyond the limits;
* keyed images whose secrets the caller cannot read (the caller says which,
  through ``secret_problem``), and instances whose recorded secrets
  (``vtpm_keys``, ``secret_findings``) it cannot: an instance whose secret
  is gone is reported even when its image is gone;
* image and flavor pairs that conflict, nova's own ``hw:tpm_*`` among
  them: a TPM 1.2, a TIS model (given, or assumed for a version alone) or
  a ``deployment`` secret security asks for what no Hyper-V host gives;
* with the hosts' reports (nova's databases), valid requests that no
  host's report can serve;
* instances whose KeyProtector names only fabrics that no host reports as
  its primary identity: during an HGS certificate renewal, those that name
  only the previous certificates (they move while the hosts still answer
  for them), and after it, those that no host answers for at all
  (``fabric_findings``);
* instances a restarted compute found without the vTPM they ask for
  (``vtpm_missing``, ``missing_findings``).

It also warns (``key_warnings``) of keys that would not be read as given,
as ``vtpm-check`` does (``vtpm_cli.lint``): a key of ours in another case
(``OS_VTPM``), on the wrong side, or misspelt.

At cloud scale, each distinct (image properties, flavor extra specs) pair
is evaluated once and each distinct secret read once
(``once_per_secret``), and findings are grouped: one per distinct problem,
with how many resources (or pairs) have it and at most ``EXAMPLES`` of
them.

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


# The subjects a finding names; the others are counted.
EXAMPLES = 5


@dataclasses.dataclass(frozen=True)
class Resource:
    kind: str  # 'image', 'flavor' or 'instance'
    id: str
    name: str
    properties: dict  # only the keys the policy reads


@dataclasses.dataclass(frozen=True)
class Instance:
    """An instance as nova's cell database records it (``vtpm_cli.novadb``).

    ``properties`` holds our system-metadata keys only (``vtpm_fabrics``,
    ``vtpm_keys``, ``vtpm_missing``); ``image`` is the image it was built
    from, which may since have been deleted.
    """

    id: str
    name: str
    project: str
    host: str | None
    image: str | None
    properties: dict
    kind = 'instance'  # a label's word, not a field


@dataclasses.dataclass(frozen=True)
class Finding:
    """One distinct problem and the resources (or pairs) that have it."""

    kind: str  # 'image', 'flavor', 'secret', 'pair', 'instance' or 'key'
    problem: str
    count: int  # how many subjects have it
    subjects: tuple[str, ...]  # the first EXAMPLES of them, by name and id

    @property
    def subject(self):
        """The first subject (the only one when ``count`` is 1)."""
        return self.subjects[0]


class _Findings:
    """Findings grouped by (kind, problem), in the order first seen."""

    def __init__(self):
        self._groups = {}

    def add(self, kind, problem, subjects, count):
        """Count ``count`` subjects under ``problem``, keeping the first
        ``EXAMPLES`` of ``subjects`` (an iterable, read no further)."""
        group = self._groups.setdefault((kind, problem), [0, []])
        group[0] += count
        group[1].extend(itertools.islice(subjects, EXAMPLES - len(group[1])))

    def list(self):
        return [Finding(kind, problem, count, tuple(examples))
                for (kind, problem), (count, examples)
                in self._groups.items()]


def group(findings):
    """Merge findings of the same kind and problem (``Finding`` objects)."""
    merged = _Findings()
    for f in findings:
        merged.add(f.kind, f.problem, f.subjects, f.count)
    return merged.list()


def once_per_secret(secret_problem):
    """``secret_problem`` asked once per distinct secret; ``.reads`` counts
    the secrets asked. Given such a callable, returns it."""
    if hasattr(secret_problem, 'reads'):
        return secret_problem
    answers = {}

    def problem(ref):
        if ref not in answers:
            answers[ref] = secret_problem(ref)
        return answers[ref]

    problem.reads = answers  # the secrets read, with their answers
    return problem


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


def _distinct(resources):
    """The resources in lists of those with the same properties, each list
    in the order first seen."""
    groups = {}
    for resource in resources:
        groups.setdefault(_identity(resource.properties),
                          []).append(resource)
    return list(groups.values())


def key_warnings(kind, resources):
    """Findings of kind 'key': keys that would not be read as given.

    :param kind: 'image' or 'flavor'.
    :param resources: (id, name, every property) of each image or flavor.
    """
    found = _Findings()
    for rid, name, props in resources:
        items = list(props.items())
        messages = lint.warnings(items, []) if kind == 'image' else \
            lint.warnings([], items)
        for message in messages:
            found.add('key', message,
                      [_label(Resource(kind, rid, name, {}))], 1)
    return found.list()


# Where an instance's records live, as messages name a source.
_SYSMETA = 'instance system metadata'

# A report's age is not held against a host here (about a century).
_ANY_AGE = 100 * 365 * 24 * 3600


def _host_kinds(reports):
    """One report per distinct set of facts, time aside (the audit holds
    neither a report's age nor its clock against a host); None stays."""
    kinds = {}
    for caps in reports:
        key = None
        if caps is not None:
            key = json.dumps({
                name: getattr(caps, name) for name in caps.fields
                if name != 'measured_at' and caps.obj_attr_is_set(name)},
                sort_keys=True, default=str)
        kinds.setdefault(key, caps)
    return list(kinds.values())


def _server(reports):
    """unserved(request) -> why no host's report serves it, or None; asked
    once per distinct requirement (``capabilities.requirements``: what
    ``compile_check`` asks of a host), over one report per kind of host."""
    kinds = None if reports is None else _host_kinds(reports)
    answers = {}

    def unserved(request):
        needs = capabilities.requirements(request)
        if kinds is None or needs is None:
            return None
        if needs not in answers:
            check = capabilities.compile_check(
                request, max_report_age=_ANY_AGE, max_clock_skew=_ANY_AGE)
            verdicts = [check(caps) for caps in kinds]
            answers[needs] = None if any(verdicts) else (
                'no host can serve it: %s' % (
                    '; '.join(sorted({v.reason for v in verdicts}))
                    or 'no host reports anything'))
        return answers[needs]
    return unserved


def _identity(properties):
    # sorted, repr'd: a value may be a list (unhashable), and two dicts
    # with the same items in another order make the same request
    return repr(sorted(properties.items()))


def _evaluator():
    """evaluate(image properties, flavor extra specs) -> (request, None)
    or (None, error): ``policy.build_request`` once per distinct pair."""
    verdicts = {}

    def evaluate(image, flavor):
        key = _identity(image), _identity(flavor)
        if key not in verdicts:
            try:
                verdicts[key] = policy.build_request(image, flavor), None
            except exception.VTPMError as e:
                verdicts[key] = None, e
        return verdicts[key]
    return evaluate


def _valid_alone(evaluate, pairs):
    """(the first request ``pairs`` make, None), or (None, the first
    error) when none makes one."""
    error = None
    for image, flavor in pairs:
        request, e = evaluate(image, flavor)
        if request is not None:
            return request, None
        error = error or e
    return None, error


def audit(images, flavors, secret_problem, reports=None):
    """Return the findings for images and flavors that carry our keys.

    Images (and flavors) with the same properties are evaluated once, as
    is each pair of distinct properties, and each secret read once; the
    findings are grouped (``Finding``).

    :param images: ``Resource`` objects of kind 'image'.
    :param flavors: ``Resource`` objects of kind 'flavor'.
    :param secret_problem: callable(ref) -> None or a short description of
        why the caller cannot read that Barbican secret (asked once per
        secret: ``once_per_secret``).
    :param reports: every compute host's ``HostCapabilities`` (None where
        unreadable), or None when they were not read: with them, a valid
        image and flavor pair that no host serves is a finding (a report's
        age is not held against it: the audit asks what hosts can do).
    """
    found = _Findings()
    read = once_per_secret(secret_problem)
    evaluate = _evaluator()
    unserved = _server(reports)
    valid_images = []
    for same in _distinct(images):
        accepted, error = _valid_alone(evaluate, (
            (same[0].properties, flavor) for flavor in _FLAVOR_CHOICES))
        labels = [_label(image) for image in same]
        if error is not None:
            found.add('image', str(error), labels, len(labels))
            continue
        valid_images.append(same)
        # keys are accepted only with the vTPM on: these are all of them
        for ref in accepted.key_refs:
            problem = read(ref)
            if problem:
                found.add('secret', 'Barbican secret %s named by %s: %s' % (
                    ref, exception.named(c.IMAGE_VTPM_KEYS, c.IMAGE),
                    problem), labels, len(labels))

    valid_flavors = []
    for same in _distinct(flavors):
        _, error = _valid_alone(evaluate, (
            (image, same[0].properties) for image in _IMAGE_CHOICES))
        if error is not None:
            found.add('flavor', str(error), [_label(f) for f in same],
                      len(same))
            continue
        valid_flavors.append(same)

    for same_images in valid_images:
        for same_flavors in valid_flavors:
            request, error = evaluate(same_images[0].properties,
                                      same_flavors[0].properties)
            problem = str(error) if error else unserved(request)
            if problem:
                found.add('pair', problem, (
                    '%s with %s' % (_label(image), _label(flavor))
                    for image in same_images for flavor in same_flavors),
                    len(same_images) * len(same_flavors))
    return found.list()


def secret_findings(instances, secret_problem):
    """Findings of kind 'secret' for the secrets instances were sealed from.

    :param instances: ``Instance`` objects; their recorded secrets
        (``vtpm_keys``) are checked, whatever became of their image. An
        instance recorded before ``vtpm_keys`` existed has none: its
        image's findings (``audit``) stand for it, as long as the image
        exists.
    :param secret_problem: as ``audit``'s (each secret asked once).
    """
    found = _Findings()
    read = once_per_secret(secret_problem)
    where = exception.named(c.SYSMETA_KEYS, _SYSMETA)
    for instance in instances:
        for ref in sysmeta.keys(instance.properties):
            problem = read(ref)
            if problem:
                found.add('secret', 'Barbican secret %s, which %s records '
                          'its KeyProtector was sealed from: %s' % (
                              ref, where, problem), [_label(instance)], 1)
    return found.list()


def missing_findings(instances):
    """Findings of kind 'instance' for the instances a restarted compute
    found without the vTPM their request asks for (``vtpm_missing``).

    Such a VM does not start (``vtpm_hyperv.nova.startcheck``) until its
    owner's start completes it; the finding says what it lacks.
    """
    found = _Findings()
    where = exception.named(c.SYSMETA_MISSING, _SYSMETA)
    for instance in instances:
        what = sysmeta.missing(instance.properties)
        if what:
            found.add('instance', 'its VM lacks the vTPM its request asks '
                      'for (%s: %s): it does not start until its owner '
                      'starts it, which completes the vTPM if the VM was '
                      'never started; otherwise delete it and boot a new '
                      'server' % (where, what), [_label(instance)], 1)
    return found.list()


def fabric_findings(instances, reports):
    """Return a finding per instance that names no host's primary fabric
    (``render`` groups those that name the same fabrics).

    :param instances: ``Instance`` objects (or ``Resource`` objects of kind
        'instance'), with the instance's system metadata ``vtpm_fabrics``
        among their properties.
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
    found = []
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
        found.append(Finding('instance', problem + (
            '; its owner grants the fabric\'s new guardian '
            '(Grant-HgsKeyProtectorAccess)'), 1, (_label(instance),)))
    return found


def _subjects(finding):
    if finding.count == 1:
        return finding.subject
    more = finding.count - len(finding.subjects)
    return '%d, e.g. %s%s' % (finding.count, '; '.join(finding.subjects),
                              '; and %d more' % more if more else '')


def render(images, flavors, findings, fmt, instances=None, warnings=()):
    """Return the report as text ('human') or JSON ('json').

    :param findings: ``Finding`` objects; the same problem found apart
        (images and instances, say) is merged (``group``).
    :param instances: the instances read from nova's databases, or None
        when they were not read: JSON lists them; text counts them (its
        findings name the instances they concern).
    :param warnings: ``key_warnings``' findings (a JSON report lists them
        under 'warnings' when there are any).
    """
    findings = group(findings)
    if fmt == 'json':
        report = {
            'images': [dataclasses.asdict(r) for r in images],
            'flavors': [dataclasses.asdict(r) for r in flavors],
            'findings': [dataclasses.asdict(f) for f in findings],
        }
        if instances is not None:
            report['instances'] = [dict(dataclasses.asdict(r), kind=r.kind)
                                   for r in instances]
        if warnings:
            report['warnings'] = [dataclasses.asdict(f) for f in warnings]
        return json.dumps(report, indent=2, sort_keys=True)
    lines = ['%d image(s) and %d flavor(s) carry vTPM properties'
             % (len(images), len(flavors))]
    if instances is not None:
        lines.append('%d instance(s) have a KeyProtector recorded in nova\'s '
                     'databases' % len(instances))
    for resource in list(images) + list(flavors):
        lines.append('  %s: %s' % (_label(resource), ', '.join(
            '%s=%s' % kv for kv in sorted(resource.properties.items()))))
    if warnings:
        lines.append('%d warning(s):' % len(warnings))
        lines.extend('  [%s] %s: %s' % (f.kind, _subjects(f), f.problem)
                     for f in warnings)
    if not findings:
        lines.append('no problems found')
    else:
        lines.append('%d problem(s):' % len(findings))
        lines.extend('  [%s] %s: %s' % (f.kind, _subjects(f), f.problem)
                     for f in findings)
    return '\n'.join(lines)
