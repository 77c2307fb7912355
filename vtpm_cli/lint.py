# SPDX-License-Identifier: Apache-2.0
"""What ``vtpm-check`` warns about: keys hyperv-vtpm would not read as given.

``build_request`` reads its keys (``constants.IMAGE_KEYS``, ``FLAVOR_KEYS``:
ours and nova's own ``hw:tpm_*``) exactly as written, and ignores every
other, as nova hands it every image property and extra spec. A person
checking a request by hand means each key they type, so ``warnings`` names
each one that would be ignored or overridden, and says what to write
instead:

* a key on the wrong side (``os:vtpm`` as an image property,
  ``os_vtpm_keys`` as a flavor extra spec, nova's flavor-only
  ``hw:tpm_secret_security`` as an image property);
* a key given twice: the last one counts, as with ``openstack image set``;
* a key of ours in another case or with the other separator
  (``OS_VTPM``, ``OS:VTPM``, ``Os_Vtpm``): keys are matched exactly;
* a misspelt key of ours (``os_vtp_keys``), with the closest one.

The audit (``vtpm_cli.audit``) warns of the same in a cloud's images and
flavors.
"""

from __future__ import annotations

from collections.abc import Sequence
import difflib

from vtpm_core import constants as c
from vtpm_core import exception

# The keys of each side, and the other side's.
_SIDES = {c.IMAGE: (c.IMAGE_KEYS, c.FLAVOR, '--image-property/-i'),
          c.FLAVOR: (c.FLAVOR_KEYS, c.IMAGE, '--extra-spec/-e')}
_OPTION = {source: option for source, (_, _, option) in _SIDES.items()}
# The key of the other side that says the same.
_PAIRS = ((c.IMAGE_VTPM, c.FLAVOR_VTPM),
          (c.IMAGE_TPM_VERSION, c.FLAVOR_TPM_VERSION),
          (c.IMAGE_TPM_MODEL, c.FLAVOR_TPM_MODEL))
_COUNTERPART = dict(_PAIRS + tuple((f, i) for i, f in _PAIRS))
# Beginnings of keys that can only be meant as ours.
_OUR_PREFIXES = ('os_vtpm', 'os:vtpm', 'os_shield', 'os:shield')
# How alike a key must be to one of ours to be taken for a misspelling
# (difflib's ratio: os_vtp_keys and os_vtpm_keys are 0.96 alike).
_ALIKE = 0.8


def _folded(key):
    """A key as a person may have meant it: any case, ':' or '_'."""
    return key.lower().replace(':', '_')


# The folded form of each side's keys -> the key.
_FOLDED = {source: {_folded(k): k for k in keys}
           for source, (keys, _, _) in _SIDES.items()}


def warnings(image_items: Sequence[tuple[str, str]],
             flavor_items: Sequence[tuple[str, str]]) -> list[str]:
    """Each key of the request that would not be read as given, in words.

    :param image_items: the image properties, in the order given.
    :param flavor_items: the flavor extra specs, in the order given.
    """
    found = []
    for source, items in ((c.IMAGE, image_items), (c.FLAVOR, flavor_items)):
        found.extend(_repeated(source, items))
        for key in dict(items):
            message = _misplaced(source, key)
            if message:
                found.append(message)
    return found


def _repeated(source, items):
    values = {}
    for key, value in items:
        values.setdefault(key, []).append(value)
    for key, given in values.items():
        if len(given) > 1:
            yield ('%s is given %d times (%s); the last one counts' % (
                exception.named(key, source), len(given),
                ', '.join(exception.excerpt(v) for v in given)))


def _misplaced(source, key):
    own, other, _ = _SIDES[source]
    if key in own:
        return None
    if key in _SIDES[other][0]:
        message = '%s is %s, given as %s: it is ignored there; give it ' \
            'with %s' % (key, _a(other), _a(source), _OPTION[other])
        if key in _COUNTERPART:
            message += ' (as %s the key is %s)' % (
                _a(source), _COUNTERPART[key])
        return message
    folded = _folded(key)
    meant = _FOLDED[source].get(folded)
    if meant is not None:
        return ('%s is not a key hyperv-vtpm reads: keys are matched '
                'exactly, in lowercase with their own separator; did you '
                'mean %s?' % (exception.named(key, source), meant))
    meant = _FOLDED[other].get(folded)
    if meant is not None:
        return ('%s is not a key hyperv-vtpm reads; did you mean %s '
                '(%s)?' % (exception.named(key, source), meant, _a(other)))
    ours = c.IMAGE_KEYS + c.FLAVOR_KEYS
    lower = key.lower()
    alike = difflib.get_close_matches(lower, own, n=1, cutoff=_ALIKE) or \
        difflib.get_close_matches(lower, ours, n=1, cutoff=_ALIKE)
    if not alike and not lower.startswith(_OUR_PREFIXES):
        return None
    if alike:
        (meant,) = alike
        side = '' if meant in own else ' (%s)' % _a(other)
        return '%s is not a key hyperv-vtpm reads; did you mean %s%s?' % (
            exception.named(key, source), meant, side)
    return '%s is not a key hyperv-vtpm reads; it reads %s' % (
        exception.named(key, source), ', '.join(own))


def _a(noun):
    return '%s %s' % ('an' if noun[0] in 'aeiou' else 'a', noun)
