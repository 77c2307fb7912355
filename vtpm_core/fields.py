# SPDX-License-Identifier: Apache-2.0
"""Field types of our versioned objects.

The values of a versioned field are an oslo ``fields.Enum`` whose class
names each value and lists them in ``ALL`` (``BaseVTPMEnum``, nova's
``BaseNovaEnum``), so the field's valid values are part of the object's
fingerprint. Anything else that takes one of a few values (an operation of
``vtpm_hyperv.nova.lifecycle``, a kind of secret in
``vtpm_hyperv.material``) is a plain module constant: it crosses no
process boundary and needs no version.
"""

from oslo_versionedobjects import fields

from vtpm_core import constants


class BaseVTPMEnum(fields.Enum):
    """An enum whose valid values are its class's ``ALL``."""

    ALL = ()

    def __init__(self):
        super().__init__(valid_values=self.ALL)


class VTPMPolicy(BaseVTPMEnum):
    """What one side (image or flavor) asks of the vTPM."""

    DISABLED = constants.DISABLED
    OPTIONAL = constants.OPTIONAL
    REQUIRED = constants.REQUIRED
    ALL = constants.VTPM_POLICIES


class VTPMPolicyField(fields.BaseEnumField):
    AUTO_TYPE = VTPMPolicy()
