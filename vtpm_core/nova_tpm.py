# SPDX-License-Identifier: Apache-2.0
"""nova's own vTPM vocabulary, read as what Hyper-V's virtual TPM is.

Tenants of libvirt clouds ask for a TPM with ``hw:tpm_version``,
``hw:tpm_model`` and ``hw:tpm_secret_security`` (flavor) and
``hw_tpm_version``, ``hw_tpm_model`` (image). nova turns a version into
required placement traits for the version, the model (``tpm-tis`` when
none is given) and the secret security (``user`` when none is given)
before any filter runs. Hyper-V's virtual TPM is one thing (a TPM 2.0 with
a CRB interface, ``constants.TPM_VERSION`` and ``TPM_MODEL``), so:

* a version says "a vTPM, please" from its side, as ``required`` in our
  vocabulary; the merge table then applies unchanged (``policy``);
* a value Hyper-V's vTPM is not (TPM 1.2, TIS, a model assumed TIS) is
  refused, and so is a model with nothing that turns the vTPM on (nova
  would give the server no TPM at all);
* the secret security says who may open the vTPM's state, which the keys
  decide here: ``user`` with the owner's keys (``os_vtpm_keys``), ``host``
  without them (a local key protector of the host's, or on a guarded host a
  key protector of the host's guardian for its fabric: the hoster is
  trusted either way).

``read`` parses the keys (None when none is set: the common case costs a
few dict lookups); ``check`` holds them against the merged request.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses

from vtpm_core import constants as c
from vtpm_core import exception

_ABSENT = exception.ABSENT
_NOT_TPM_1_2 = ("Hyper-V's virtual TPM is a TPM 2.0 and offers no TPM 1.2")
_NOT_TIS = "Hyper-V's virtual TPM has a CRB interface, not TIS"
_NOT_DEPLOYMENT = ("no vTPM here is sealed for nova's service user: "
                   "Hyper-V seals it with the owner's keys or for its host")
_SECRET_CHOICES = ('user (sealed with the owner\'s keys, named by '
                   'os_vtpm_keys), host (sealed by the cloud for the hosts '
                   'that run it)')


@dataclasses.dataclass(frozen=True)
class Key:
    """One key as given: its name, where it came from and its value."""

    key: str
    source: str
    value: str


@dataclasses.dataclass(frozen=True)
class NovaTPM:
    """nova's vTPM keys of one request, each valid on its own.

    ``image_version`` and ``flavor_version`` are the sides that ask for a
    TPM (each ``constants.TPM_VERSION``); ``model`` the one model given
    (``constants.TPM_MODEL``); ``secret_security`` the flavor's value.
    """

    image_version: Key | None
    flavor_version: Key | None
    model: Key | None
    secret_security: Key | None

    @property
    def version(self) -> Key | None:
        return self.flavor_version or self.image_version


def read(image_properties: Mapping[str, str],
         extra_specs: Mapping[str, str]) -> NovaTPM | None:
    """Return nova's vTPM keys of a request, or None when none is set.

    :raises vtpm_core.exception.InvalidVTPMRequest: a value that is not
        nova's, or one that Hyper-V's virtual TPM is not.
    """
    image_version = image_properties.get(c.IMAGE_TPM_VERSION, _ABSENT)
    flavor_version = extra_specs.get(c.FLAVOR_TPM_VERSION, _ABSENT)
    image_model = image_properties.get(c.IMAGE_TPM_MODEL, _ABSENT)
    flavor_model = extra_specs.get(c.FLAVOR_TPM_MODEL, _ABSENT)
    secret = extra_specs.get(c.FLAVOR_TPM_SECRET_SECURITY, _ABSENT)
    if (image_version is flavor_version is image_model is flavor_model
            is secret is _ABSENT):
        return None
    image_version = _valid(image_version, c.IMAGE_TPM_VERSION, c.IMAGE,
                           c.NOVA_TPM_VERSIONS, c.TPM_VERSION, _NOT_TPM_1_2)
    flavor_version = _valid(flavor_version, c.FLAVOR_TPM_VERSION, c.FLAVOR,
                            c.NOVA_TPM_VERSIONS, c.TPM_VERSION, _NOT_TPM_1_2)
    image_model = _valid(image_model, c.IMAGE_TPM_MODEL, c.IMAGE,
                         c.NOVA_TPM_MODELS, c.TPM_MODEL, _NOT_TIS)
    flavor_model = _valid(flavor_model, c.FLAVOR_TPM_MODEL, c.FLAVOR,
                          c.NOVA_TPM_MODELS, c.TPM_MODEL, _NOT_TIS)
    if secret is not _ABSENT:
        if secret == c.SECRET_DEPLOYMENT:
            raise exception.TPMNotOffered(
                key=c.FLAVOR_TPM_SECRET_SECURITY, source=c.FLAVOR,
                value=secret, why=_NOT_DEPLOYMENT, allowed=_SECRET_CHOICES)
        if secret not in c.SECRET_SECURITIES:
            raise exception.InvalidPropertyValue(
                key=c.FLAVOR_TPM_SECRET_SECURITY, source=c.FLAVOR,
                value=secret, allowed=', '.join(c.SECRET_SECURITIES))
        secret = Key(c.FLAVOR_TPM_SECRET_SECURITY, c.FLAVOR, secret)
    else:
        secret = None
    # Both sides valid means both hold Hyper-V's one value: they agree, as
    # nova requires (hardware._get_unique_flavor_image_meta).
    return NovaTPM(image_version, flavor_version,
                   flavor_model or image_model, secret)


def _valid(value, key, source, nova_values, ours, why_not):
    """``Key`` for a value that is ``ours``; None for an absent one."""
    if value is _ABSENT:
        return None
    if value == ours:
        return Key(key, source, value)
    if value in nova_values:
        raise exception.TPMNotOffered(key=key, source=source, value=value,
                                      why=why_not, allowed=ours)
    raise exception.InvalidPropertyValue(key=key, source=source, value=value,
                                         allowed=ours)


def check(tpm: NovaTPM, enabled: bool, key_refs, why: str) -> list[str]:
    """Hold nova's keys against the merged request; return the reasons.

    :param enabled: whether the merge turned the vTPM on.
    :param key_refs: the request's keys (os_vtpm_keys).
    :param why: the merge's reason, for a message.
    :raises vtpm_core.exception.InvalidVTPMRequest: a model without a
        vTPM, a version without a model, or a secret security that the keys
        contradict.
    """
    if not enabled:
        if tpm.model is not None:
            raise exception.TPMPropertyWithoutVTPM(
                key=tpm.model.key, source=tpm.model.source,
                value=tpm.model.value, why=why)
        # nova reads the secret security only for a TPM it gives
        return []
    version = tpm.version
    reasons = []
    if version is not None:
        if tpm.model is None:
            raise exception.TPMModelMissing(
                key=version.key, source=version.source, value=version.value)
        reasons.append(
            "nova's words: %s (%s) is %s and %s (%s) is %s: Hyper-V's "
            "virtual TPM (TPM %s, CRB)" % (
                version.key, version.source, version.value, tpm.model.key,
                tpm.model.source, tpm.model.value, c.TPM_VERSION))
    secret = tpm.secret_security
    if secret is None and version is None:
        return reasons  # our vocabulary alone: the keys decide
    value = secret.value if secret else c.NOVA_DEFAULT_SECRET_SECURITY
    default = '' if secret else " (nova's default: %s)" % value
    shown = secret.value if secret else _ABSENT
    if value == c.SECRET_USER and not key_refs:
        raise exception.SecretSecurityNotPossible(
            key=c.FLAVOR_TPM_SECRET_SECURITY, source=c.FLAVOR, value=shown,
            default=default, why=(
                '%s (image property) is absent: a vTPM that only its owner '
                'can open is sealed here with the KeyProtector or guardians '
                'its owner keeps in Barbican, named by %s; without keys '
                'the vTPM is sealed by the cloud for the hosts that run it, '
                "whose administrators can open it, which is nova's '%s'; "
                'add %s to '
                'the image, or set %s=%s on the flavor' % (
                    c.IMAGE_VTPM_KEYS, c.IMAGE_VTPM_KEYS, c.SECRET_HOST,
                    c.IMAGE_VTPM_KEYS, c.FLAVOR_TPM_SECRET_SECURITY,
                    c.SECRET_HOST)))
    if value == c.SECRET_HOST and key_refs:
        raise exception.SecretSecurityNotPossible(
            key=c.FLAVOR_TPM_SECRET_SECURITY, source=c.FLAVOR, value=shown,
            default=default, why=(
                '%s (image property) names %d key(s): a vTPM sealed with '
                "its owner's keys opens for its owner alone, which is "
                "nova's '%s'; set %s=%s or remove it, or use an image without "
                '%s for a vTPM the cloud seals' % (
                    c.IMAGE_VTPM_KEYS, len(key_refs), c.SECRET_USER,
                    c.FLAVOR_TPM_SECRET_SECURITY, c.SECRET_USER,
                    c.IMAGE_VTPM_KEYS)))
    reasons.append('secret security: %s%s, %s' % (value, (
        '' if secret else " (nova's default)"), (
        "sealed with the owner's keys" if value == c.SECRET_USER
        else 'sealed by the cloud for the hosts that run it')))
    return reasons
