# SPDX-License-Identifier: Apache-2.0
"""Field types of the vTPM objects."""

from oslo_versionedobjects import fields

from vtpm_core import constants


class VTPMPolicy(fields.Enum):
    """What one side (image or flavor) asks of the vTPM."""

    DISABLED = constants.DISABLED
    OPTIONAL = constants.OPTIONAL
    REQUIRED = constants.REQUIRED
    ALL = constants.VTPM_POLICIES

    def __init__(self):
        super().__init__(valid_values=VTPMPolicy.ALL)


class VTPMPolicyField(fields.BaseEnumField):
    AUTO_TYPE = VTPMPolicy()
