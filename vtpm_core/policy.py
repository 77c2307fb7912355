# SPDX-License-Identifier: Apache-2.0
"""Merge the image properties and flavor extra specs of a boot.

``build_request`` is the only entry point. It reads the keys of
``constants.IMAGE_KEYS`` and ``FLAVOR_KEYS`` (ours, and nova's own vTPM
vocabulary, ``vtpm_core.nova_tpm``), ignores everything else, and returns
a ``VTPMRequest`` or raises an ``InvalidVTPMRequest`` that says what to
change. It is called per request by
the scheduler filter and per spawn by the compute side, so it avoids work a
valid request does not need.

The scheduler reads the image from Glance, the compute side from nova's copy
in the instance's system metadata, which holds ``str(value)`` cut to 255
bytes of UTF-8. Both must decide the same, so every value of these keys is
a string and the free-form ones (``os_vtpm_keys``, ``hw_machine_type``)
take at most ``constants.MAX_VALUE_BYTES``, counted in bytes: nova copies
such a value whole, and the cut copy of a longer one is refused as the
original is (the policy values are short words anyway).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
import re
import types

from vtpm_core import constants as c
from vtpm_core import exception
from vtpm_core import nova_tpm
from vtpm_core import objects

_UUID_TEXT = (r'[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
              r'[0-9a-fA-F]{4}-[0-9a-fA-F]{12}')
_UUID = re.compile(_UUID_TEXT + r'\Z')
# A whole well-formed list in one match: the common case takes no per-item
# regex; anything else is parsed item by item to name the offending one.
# Whitespace around items is ASCII only (re.ASCII, _SPACE): a list that
# build_request accepts is then ASCII, its characters are its bytes, and the
# Glance metadefs (JSON schema, which counts characters) state the same rule.
_UUID_LIST = re.compile(r'\s*%(u)s\s*(?:,\s*%(u)s\s*){0,%(more)d}\Z' % {
    'u': _UUID_TEXT, 'more': c.MAX_KEYS - 1}, re.ASCII)
_SPACE = ' \t\n\r\f\v'

# How the reasons name the keys (built once: build_request runs per request)
_IMAGE_KEYS = exception.named(c.IMAGE_VTPM_KEYS, c.IMAGE)
_IMAGE_SHIELDED = exception.named(c.IMAGE_SHIELDED, c.IMAGE)

# Tells a key that is absent from one whose value is None (refused); shown
# as "absent" in messages.
_ABSENT = exception.ABSENT

# One side of the merge: its policy, and the key and value that decided it
# (for the messages and reasons).
_Side = collections.namedtuple('_Side', ('policy', 'key', 'value'))

# The properties of an image that accepts whatever a valid flavor asks, to
# decide on the flavor alone (the image unknown, or a flavor checked alone):
# os:vtpm=required then turns the vTPM on, anything else leaves it off.
PERMISSIVE_IMAGE = types.MappingProxyType({
    c.IMAGE_VTPM: c.OPTIONAL, c.IMAGE_MACHINE_TYPE: c.MACHINE_TYPE_GEN2})

# (image os_vtpm, flavor os:vtpm or None) -> vTPM on? Cells absent from this
# table are conflicts.
_ON_OFF = {
    (c.DISABLED, None): False,
    (c.DISABLED, c.DISABLED): False,
    (c.DISABLED, c.OPTIONAL): False,
    (c.OPTIONAL, None): False,
    (c.OPTIONAL, c.DISABLED): False,
    (c.OPTIONAL, c.OPTIONAL): False,
    (c.OPTIONAL, c.REQUIRED): True,
    (c.REQUIRED, None): True,
    (c.REQUIRED, c.OPTIONAL): True,
    (c.REQUIRED, c.REQUIRED): True,
}


def build_request(image_properties: Mapping[str, str],
                  extra_specs: Mapping[str, str]) -> objects.VTPMRequest:
    """Return the vTPM request that an image and a flavor make together.

    :param image_properties: the image's properties, flat (Glance v2);
        nova's image dict, with them nested under ``'properties'``, is
        refused.
    :param extra_specs: the flavor's extra specs.
    :raises vtpm_core.exception.InvalidVTPMRequest: for any invalid value or
        combination, including a value that is not a string (``None``
        too: only a missing key is absent) and one that nova would not copy
        whole to the instance; the message names the key, its source, an
        excerpt of the value and what is allowed.
    """
    nested = image_properties.get('properties', _ABSENT)
    if nested is not _ABSENT and not isinstance(nested, str):
        raise exception.NestedImageProperties(
            key='properties', source=c.IMAGE, value=nested)
    image_policy = _policy(image_properties, c.IMAGE_VTPM, c.IMAGE,
                           c.DISABLED)
    flavor_policy = _policy(extra_specs, c.FLAVOR_VTPM, c.FLAVOR, None)
    shielding = _policy(image_properties, c.IMAGE_SHIELDED, c.IMAGE,
                        c.DISABLED, c.SHIELDING_POLICIES)
    raw_keys = image_properties.get(c.IMAGE_VTPM_KEYS, _ABSENT)
    tpm = nova_tpm.read(image_properties, extra_specs)

    image_side = _Side(image_policy, c.IMAGE_VTPM, image_properties.get(
        c.IMAGE_VTPM, _ABSENT))
    flavor_side = _Side(flavor_policy, c.FLAVOR_VTPM, extra_specs.get(
        c.FLAVOR_VTPM, _ABSENT))
    if tpm is not None:
        image_side = _asks(image_side, tpm.image_version, c.IMAGE)
        flavor_side = _asks(flavor_side, tpm.flavor_version, c.FLAVOR)
    enabled = _ON_OFF.get((image_side.policy, flavor_side.policy))
    if enabled is None:
        raise _conflict(image_side, flavor_side)
    reasons = [_why(image_side, flavor_side, enabled)]

    shielded = shielding == c.REQUIRED
    if shielded and not enabled:
        # the vTPM is what is missing, whatever else the image holds
        raise exception.ShieldingNotPossible(
            key=c.IMAGE_SHIELDED, source=c.IMAGE, value=shielding,
            why='the vTPM is off (%s): a shielded VM runs with its vTPM; '
                'set %s=required on the image' % (reasons[0], c.IMAGE_VTPM))

    key_refs = []
    if raw_keys is not _ABSENT:
        key_refs = _key_refs(raw_keys)
        if not enabled:
            raise exception.KeysWithoutVTPM(
                key=c.IMAGE_VTPM_KEYS, source=c.IMAGE, value=raw_keys,
                why=reasons[0])
        reasons.append('%d key(s) from %s' % (len(key_refs), _IMAGE_KEYS))

    machine_type = image_properties.get(c.IMAGE_MACHINE_TYPE, _ABSENT)
    if machine_type != c.MACHINE_TYPE_GEN2:
        if machine_type is _ABSENT:
            machine_type = None
        else:
            _check_copyable(machine_type, c.IMAGE_MACHINE_TYPE)
        if enabled:
            raise exception.MachineTypeNotSupported(
                key=c.IMAGE_MACHINE_TYPE, source=c.IMAGE,
                value=(exception.ABSENT if machine_type is None
                       else machine_type),
                allowed=c.MACHINE_TYPE_GEN2)

    if shielded:
        if not key_refs:
            raise exception.ShieldingNotPossible(
                key=c.IMAGE_SHIELDED, source=c.IMAGE, value=shielding,
                why='%s is absent' % _IMAGE_KEYS)
        reasons.append('shielded: %s is %s' % (_IMAGE_SHIELDED, c.REQUIRED))

    if tpm is not None:
        reasons.extend(nova_tpm.check(tpm, enabled, key_refs, reasons[0]))

    return objects.VTPMRequest.from_validated(
        enabled=enabled, key_refs=key_refs, shielded=shielded,
        machine_type=machine_type, image_policy=image_side.policy,
        flavor_policy=flavor_side.policy, reasons=reasons)


def secret_uuid(value) -> str | None:
    """The one rule of a Barbican secret reference: a UUID.

    Returns the canonical form (lowercase, hyphenated) of a UUID written as
    8-4-4-4-12 hex digits in any case, and None for anything else (no other
    spelling, no URL: secrets are read from this cloud's Barbican only).
    Each item of ``os_vtpm_keys``, the server metadata of a
    re-authorization and every secret the key source reads are checked by
    it.
    """
    if isinstance(value, str) and _UUID.match(value):
        return value.lower()
    return None


def settled_without_image(extra_specs: Mapping[str, str],
                          machine_type: str | None) -> bool:
    """True when the request asks nothing of a host, whatever the image's
    other properties say.

    ``machine_type`` is the image's ``hw_machine_type`` (None when absent),
    which nova keeps in the request spec, unlike os_vtpm, os_vtpm_keys and
    os_shielded_vm. Every ``build_request`` with such a flavor and machine
    type gives no vTPM or an invalid request (which the scheduler lets
    through): a flavor with ``os:vtpm=disabled`` gives no vTPM or a
    conflict, and a vTPM needs a Generation 2 VM, so any other machine type
    gives no vTPM or ``MachineTypeNotSupported``. Only a Generation 2 image
    under any other flavor needs the image read.
    """
    return (extra_specs.get(c.FLAVOR_VTPM) == c.DISABLED
            or machine_type != c.MACHINE_TYPE_GEN2)


def _policy(source_map, key, source, absent, allowed=c.VTPM_POLICIES):
    value = source_map.get(key, _ABSENT)
    if value is _ABSENT:
        return absent
    if value not in allowed:
        raise exception.InvalidPropertyValue(
            key=key, source=source, value=value, allowed=', '.join(allowed))
    return value


def _not_copyable(value):
    """Why nova's copy of image property ``value`` could differ, or None."""
    if not isinstance(value, str):
        return 'not a string'
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode('utf-8'))
        except UnicodeEncodeError:
            return 'not encodable in UTF-8 (a lone surrogate)'
    if size > c.MAX_VALUE_BYTES:
        # nova may cut it, or it may be a copy nova cut (constants)
        return '%d bytes in UTF-8' % size
    return None


def _check_copyable(value, key):
    problem = _not_copyable(value)
    if problem:
        raise exception.PropertyNotCopyable(
            key=key, source=c.IMAGE, value=value, problem=problem,
            max_bytes=c.MAX_VALUE_BYTES)


def _key_refs(raw):
    if (isinstance(raw, str) and len(raw) <= c.MAX_VALUE_BYTES
            and _UUID_LIST.match(raw)):
        refs = [item.strip(_SPACE).lower() for item in raw.split(',')]
        if len(set(refs)) == len(refs):
            return refs

    def invalid(problem):
        return exception.InvalidKeyList(
            key=c.IMAGE_VTPM_KEYS, source=c.IMAGE, value=raw, problem=problem,
            max_keys=c.MAX_KEYS, max_length=c.MAX_VALUE_BYTES)

    if not isinstance(raw, str):
        raise invalid(_not_copyable(raw))
    items = raw.split(',')
    if len(items) > c.MAX_KEYS:
        # the count says what to change, before the length it makes
        raise invalid('%d keys' % len(items))
    problem = _not_copyable(raw)
    if problem:
        raise invalid(problem)
    refs = []
    for position, item in enumerate(items, 1):
        item = item.strip(_SPACE)
        if not item:
            raise invalid('item %d is empty' % position)
        canonical = secret_uuid(item)
        if canonical is None:
            words = item.split()
            if len(words) > 1 and all(map(secret_uuid, words)):
                raise invalid('item %d (%s) holds %d UUIDs separated by '
                              'whitespace, which is one item; separate keys '
                              'with commas' % (position,
                                               exception.excerpt(item),
                                               len(words)))
            raise invalid('item %d (%s) is not a UUID' % (
                position, exception.excerpt(item)))
        item = canonical
        if item in refs:
            raise invalid('item %d (%s) is a duplicate' % (position, item))
        refs.append(item)
    return refs


def _asks(side, version, source):
    """A side whose nova version asks for a vTPM: ``required`` there.

    With our key on the same side absent, optional or required, the side
    requires a vTPM, and nova's key is the one that says so unless ours
    already did; ``disabled`` contradicts it.
    """
    if version is None:
        return side
    if side.policy == c.DISABLED and side.value is not _ABSENT:
        raise exception.TPMPropertyConflict(
            key=version.key, source=source, value=version.value,
            other_key=side.key, other_source=source, other_value=side.value,
            why='the %s asks for a vTPM in nova\'s words and disables it in '
                'hyperv-vtpm\'s; remove one of them' % (
                    'image' if source == c.IMAGE else 'flavor'))
    if side.policy == c.REQUIRED:
        return side
    return _Side(c.REQUIRED, version.key, version.value)


def _conflict(image_side, flavor_side):
    if flavor_side.policy == c.REQUIRED:
        why = ('the flavor requires a vTPM but the image does not declare '
               'support; set %s to %s or %s on the image, or use a flavor '
               'without %s=%s' % (c.IMAGE_VTPM, c.OPTIONAL, c.REQUIRED,
                                  flavor_side.key, flavor_side.value))
    else:
        why = ('the image requires a vTPM but the flavor disables it; use a '
               'flavor whose %s is absent, %s or %s' % (
                   c.FLAVOR_VTPM, c.OPTIONAL, c.REQUIRED))
    if image_side.key == c.IMAGE_VTPM and flavor_side.key == c.FLAVOR_VTPM:
        return exception.PolicyConflict(
            image_value=image_side.value, flavor_value=flavor_side.policy,
            why=why)
    return exception.TPMPropertyConflict(
        key=flavor_side.key, source=c.FLAVOR, value=flavor_side.value,
        other_key=image_side.key, other_source=c.IMAGE,
        other_value=image_side.value, why=why)


def _why(image_side, flavor_side, enabled):
    # an absent key is "absent", as in the errors; the image's default too
    image = image_side.value
    image = 'absent (%s)' % image_side.policy if image is _ABSENT else image
    flavor = flavor_side.value
    flavor = 'absent' if flavor is _ABSENT else flavor
    return 'vTPM %s: %s is %s, %s is %s' % (
        'on' if enabled else 'off', exception.named(image_side.key, c.IMAGE),
        image, exception.named(flavor_side.key, c.FLAVOR), flavor)
