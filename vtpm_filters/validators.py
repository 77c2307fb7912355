# SPDX-License-Identifier: Apache-2.0
"""nova-api validation of the ``os:vtpm`` flavor extra spec.

nova loads ``register()`` through the ``nova.api.extra_spec_validators``
entry point when ``nova.api.validation.extra_specs.validators`` is imported.
From microversion 2.86 nova validates extra specs, and it knows the ``os``
namespace (``os:secure_boot``), so without this module it refuses
``os:vtpm`` altogether. ``register()`` must stay trivial: an exception
raised in it breaks nova-api's start.
"""

import dataclasses

from nova.api.validation.extra_specs import base
from nova import exception as nova_exception

from vtpm_core import constants
from vtpm_core import exception


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


def register():
    return EXTRA_SPEC_VALIDATORS
