# SPDX-License-Identifier: Apache-2.0
"""The one reader and writer of our keys in an instance's system metadata.

nova keeps an instance's system metadata as strings, in its cell database,
and shows it to no API user. Ours, each written by the compute side:

* ``vtpm_fabrics`` (``constants.SYSMETA_FABRICS``): the fabrics whose
  guardians the instance's KeyProtector names, as fabric ids joined by
  ``,`` in the KeyProtector's order; empty for a local key protector,
  absent for an instance without a vTPM. Written at spawn and at a
  re-authorization; read by the scheduler filter on a move, by the compute
  side's lifecycle checks and by ``vtpm-check --audit``.
* ``vtpm_keyprotector`` (``constants.SYSMETA_HANDLED_KEYPROTECTOR``): the
  Barbican secret of the last re-authorization handled
  (``vtpm_hyperv.nova.reauthorize``), so that one secret is tried once.
* ``vtpm_keys`` (``constants.SYSMETA_KEYS``): the Barbican secrets the
  instance's KeyProtector was sealed from (``VTPMRequest.key_refs``, joined
  by ``,`` in the request's order), written at spawn and at a
  re-authorization; read by ``vtpm-check --audit``, so that an instance
  whose secret is gone is reported even when its image is gone.

* ``vtpm_missing`` (``constants.SYSMETA_MISSING``): what the instance's VM
  lacks of the vTPM its request asks for (``TPM off, no key protector``),
  written by a restarted compute that found it so, removed once the VM has
  it; read by ``vtpm-check --audit``. Every start checks the VM itself, so
  the mark reports, it does not decide.

Readers take any mapping (nova's ``Instance.system_metadata``, or a dict
read from nova's database), writers a mutable one; neither saves the
instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import MutableMapping

from vtpm_core import constants

_SEPARATOR = ','


def fabrics(system_metadata: Mapping[str, str | None]) -> tuple[str, ...]:
    """The fabrics recorded for an instance, in order, each once.

    ``()`` when none are recorded. Whitespace around an id and empty items
    are dropped, so a value an operator edited by hand reads as meant.
    """
    raw = system_metadata.get(constants.SYSMETA_FABRICS) or ''
    return tuple(dict.fromkeys(
        f for f in (item.strip() for item in raw.split(_SEPARATOR)) if f))


def set_fabrics(system_metadata: MutableMapping[str, str],
                fabric_ids: Iterable[str]) -> None:
    """Record the fabrics the instance's KeyProtector names (in order).

    Fabric ids are SHA-256 hex digests (``vtpm_hyperv.keyprotector
    .fabric_id``): none holds the separator or spaces.
    """
    system_metadata[constants.SYSMETA_FABRICS] = _SEPARATOR.join(fabric_ids)


def handled_keyprotector(system_metadata: Mapping[str, str | None]
                         ) -> str | None:
    """The secret of the last re-authorization handled, if any."""
    return system_metadata.get(constants.SYSMETA_HANDLED_KEYPROTECTOR) or None


def set_handled_keyprotector(system_metadata: MutableMapping[str, str],
                             ref: str) -> None:
    """Record that the re-authorization with secret ``ref`` was handled."""
    system_metadata[constants.SYSMETA_HANDLED_KEYPROTECTOR] = ref


def keys(system_metadata: Mapping[str, str | None]) -> tuple[str, ...]:
    """The secrets recorded for an instance, in order, each once."""
    raw = system_metadata.get(constants.SYSMETA_KEYS) or ''
    return tuple(dict.fromkeys(
        r for r in (item.strip() for item in raw.split(_SEPARATOR)) if r))


def set_keys(system_metadata: MutableMapping[str, str],
             refs: Iterable[str]) -> None:
    """Record the secrets the instance was sealed from (UUIDs, in order)."""
    system_metadata[constants.SYSMETA_KEYS] = _SEPARATOR.join(refs)


def missing(system_metadata: Mapping[str, str | None]) -> str | None:
    """What a restarted compute found the instance's VM lacks, if any."""
    return system_metadata.get(constants.SYSMETA_MISSING) or None


def set_missing(system_metadata: MutableMapping[str, str],
                what: str | None) -> bool:
    """Record what the VM lacks (None: nothing, the mark goes).

    :returns: whether the system metadata changed (the caller saves it).
    """
    if (system_metadata.get(constants.SYSMETA_MISSING) or None) == what:
        return False
    if what is None:
        del system_metadata[constants.SYSMETA_MISSING]
    else:
        system_metadata[constants.SYSMETA_MISSING] = \
            what[:constants.MAX_VALUE_BYTES]
    return True
