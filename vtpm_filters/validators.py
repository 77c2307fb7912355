# SPDX-License-Identifier: Apache-2.0
"""nova-api validation of the flavor extra specs hyperv-vtpm reads.

nova loads ``register()`` through the ``nova.api.extra_spec_validators``
entry point when ``nova.api.validation.extra_specs.validators`` is imported.
From microversion 2.86 nova validates extra specs, and it knows the ``os``
namespace (``os:secure_boot``), so without this module it refuses
``os:vtpm`` altogether. ``register()`` must stay trivial: an exception
raised in it breaks nova-api's start.

nova's own ``hw:tpm_version``, ``hw:tpm_model`` and
``hw:tpm_secret_security`` accept values Hyper-V's virtual TPM is not
(TPM 1.2, TIS, ``deployment``), which nova's scheduler then turns into
placement traits no Hyper-V host reports: a bare "No valid host", before
any filter runs. Refusing them when the flavor is written is the one point
where nova lets a plugin say why, so this module validates those three keys
too (``vtpm_core.nova_tpm``'s rules). nova keeps one validator per name,
the last one registered, and registers the plugins in the order their
distributions are found on disk: ``register()`` therefore returns ours
(they win when loaded after nova's) and puts them in place of nova's in
nova's own list (they win when loaded before). A validator sees one key at
a time: what needs the whole request (a version without a model) is the
scheduler's and the compute side's, and the audit's.
"""

import dataclasses

from nova.api.validation.extra_specs import base
from nova.api.validation.extra_specs import hw as nova_hw
from nova import exception as nova_exception

from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import nova_tpm


@dataclasses.dataclass
class _PolicyValidator(base.ExtraSpecValidator):
    """nova's enum validator, with a message in the project's words."""

    def _validate_str(self, value):
        if value not in self.value['enum']:
            error = exception.InvalidPropertyValue(
                key=self.name, source=constants.FLAVOR, value=value,
                allowed=', '.join(self.value['enum']))
            raise nova_exception.ValidationError(
                'Validation failed; %s' % error)


@dataclasses.dataclass
class _NovaTPMValidator(base.ExtraSpecValidator):
    """One of nova's hw:tpm_* keys, held to what Hyper-V's vTPM is."""

    def _validate_str(self, value):
        try:
            nova_tpm.read({}, {self.name: value})
        except exception.VTPMError as error:
            raise nova_exception.ValidationError(
                'Validation failed; %s' % error) from error


EXTRA_SPEC_VALIDATORS = [
    _PolicyValidator(
        name=constants.FLAVOR_VTPM,
        description=(
            'Whether instances of this flavor get a virtual TPM on Hyper-V '
            '(Generation 2 VMs only). The flavor overrides the image\'s '
            'os_vtpm where the image allows it: required needs an image '
            'whose os_vtpm is optional or required. Enforced by '
            'VTPMFilter and the hyperv-vtpm compute backend.'),
        value={
            'type': str,
            'description': 'vTPM policy',
            'enum': list(constants.VTPM_POLICIES),
        },
    ),
]

_HYPERV = (' On Hyper-V (hyperv-vtpm) the virtual TPM is a TPM 2.0 with a '
           'CRB interface.')

NOVA_TPM_VALIDATORS = [
    _NovaTPMValidator(
        name=constants.FLAVOR_TPM_VERSION,
        description=(
            'The TPM version; asks for a vTPM, which the image must allow '
            '(os_vtpm optional or required).' + _HYPERV),
        value={'type': str, 'description': 'A TPM version.',
               'enum': [constants.TPM_VERSION]},
    ),
    _NovaTPMValidator(
        name=constants.FLAVOR_TPM_MODEL,
        description=(
            'The model of the TPM; needs hw:tpm_version (nova gives no TPM '
            'for a model alone, and assumes tpm-tis for a version '
            'alone).' + _HYPERV),
        value={'type': str, 'description': 'A TPM model',
               'enum': [constants.TPM_MODEL]},
    ),
    _NovaTPMValidator(
        name=constants.FLAVOR_TPM_SECRET_SECURITY,
        description=(
            'Who may open the vTPM\'s state: user, its owner, with the keys '
            'the image names in os_vtpm_keys (nova\'s default); host, the '
            'host that runs it, for an image without keys.'),
        value={'type': str, 'description': 'The TPM secret security policy',
               'enum': list(constants.SECRET_SECURITIES)},
    ),
]


def _in_place_of_novas(ours):
    """Put ``ours`` in place of nova's validators of the same names in
    nova's own lists (``nova.api.validation.extra_specs.hw``)."""
    by_name = {v.name: v for v in ours}
    for candidate in vars(nova_hw).values():
        if isinstance(candidate, list):
            for index, validator in enumerate(candidate):
                if getattr(validator, 'name', None) in by_name:
                    candidate[index] = by_name[validator.name]


def register():
    _in_place_of_novas(NOVA_TPM_VALIDATORS)
    return EXTRA_SPEC_VALIDATORS + NOVA_TPM_VALIDATORS
