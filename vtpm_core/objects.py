# SPDX-License-Identifier: Apache-2.0
"""Versioned objects: what an instance asks for, and what a host offers.

Both cross process boundaries (the request is evaluated by the scheduler and
by the compute side; the host report travels through compute-node stats from
every compute to every scheduler), and the two ends upgrade at different
times, so both are oslo.versionedobjects with a version history.
"""

from oslo_utils import versionutils
from oslo_versionedobjects import base
from oslo_versionedobjects import fields

from vtpm_core import fields as vtpm_fields


class VTPMObjectRegistry(base.VersionedObjectRegistry):
    """The registry of every versioned object of ours: these and the
    notifications' (``vtpm_hyperv.nova.notifications``). The class table
    beneath is process-wide; each namespace pins its own fingerprints."""


class VTPMObject(base.VersionedObject):
    OBJ_PROJECT_NAMESPACE = 'vtpm'
    OBJ_SERIAL_NAMESPACE = 'vtpm_object'

    # Equal when the same fields hold the same values. (oslo's
    # ComparableVersionedObject compares primitives, whose list of changed
    # fields follows set iteration order, so equal objects can differ.)
    __hash__ = None

    def __eq__(self, other):
        if type(self) is not type(other):
            return NotImplemented
        return self._set_values() == other._set_values()

    def _set_values(self):
        return {name: getattr(self, name) for name in self.fields
                if self.obj_attr_is_set(name)}

    @classmethod
    def from_validated(cls, **values):
        """Build an object from values that already have the field types.

        ``build_request`` (per scheduling request and per spawn) makes every
        value itself, of its field's type; the per-field coercion of
        ``__init__`` would cost more than the rest of its work. Tests hold
        the result equal to ``cls(**values)``. (Reports from other hosts are
        read by oslo's ``obj_from_primitive``, which coerces.)
        """
        obj = cls()
        for name, value in values.items():
            # oslo.versionedobjects' storage for a field's value (unchanged
            # since its first release; the equality tests catch a change).
            setattr(obj, '_obj_' + name, value)
        obj._changed_fields.update(values)
        return obj

    def obj_load_attr(self, attrname):
        """Read an unset field as its default.

        An object from an older peer lacks the fields added since; their
        defaults say what that peer meant. There is nothing to lazy-load.
        """
        if self.fields[attrname].default is fields.UnspecifiedDefault:
            super().obj_load_attr(attrname)
        self.obj_set_defaults(attrname)


@VTPMObjectRegistry.register
class VTPMRequest(VTPMObject):
    """The merged decision for one instance.

    ``image_policy`` and ``flavor_policy`` keep what each side asked, so a
    reader can explain the decision; ``flavor_policy`` is None when the flavor
    has no ``os:vtpm``.
    """

    # Version 1.0: Initial version
    # Version 1.1: Added 'reasons'
    VERSION = '1.1'

    fields = {
        'enabled': fields.BooleanField(),
        'key_refs': fields.ListOfStringsField(default=[]),
        'shielded': fields.BooleanField(default=False),
        'machine_type': fields.StringField(nullable=True, default=None),
        'image_policy': vtpm_fields.VTPMPolicyField(),
        'flavor_policy': vtpm_fields.VTPMPolicyField(nullable=True,
                                                     default=None),
        # Why the decision is what it is, in words, for logs and vtpm-check.
        'reasons': fields.ListOfStringsField(default=[]),
    }

    @property
    def needs_key_protector(self):
        """True when the host must unwrap an HGS KeyProtector.

        That is, when the vTPM is on with keys or shielding.
        """
        return self.enabled and (bool(self.key_refs) or self.shielded)

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        target = versionutils.convert_version_to_tuple(target_version)
        if target < (1, 1):
            primitive.pop('reasons', None)


@VTPMObjectRegistry.register
class HostCapabilities(VTPMObject):
    """What a compute host can do for vTPM instances.

    ``attestation_status`` keeps HGS's own words (``Passed``, ``Expired``,
    ``NotConfigured``, ...) as a plain string, so a status that a newer HGS
    adds does not make an older scheduler fail to read the report.
    """

    # Version 1.0: Initial version
    # Version 1.1: Added 'os_version'
    # Version 1.2: Added 'local_key_protector'
    # Version 1.3: Added 'fabric_ids'
    VERSION = '1.3'

    fields = {
        'vtpm_supported': fields.BooleanField(),
        'guarded': fields.BooleanField(),
        'attestation_status': fields.StringField(),
        'attestation_mode': fields.StringField(nullable=True, default=None),
        # The identity of the fabric's guardian that HGS uses for this host:
        # its primary one, which new KeyProtectors name.
        'fabric_id': fields.StringField(nullable=True, default=None),
        # Every guardian identity this host's fabric answers for, 'fabric_id'
        # first: while HGS's certificates are renewed, HGS unwraps for the
        # previous ones too. None: not reported (a compute older than 1.3),
        # taken as 'fabric_id' alone.
        'fabric_ids': fields.ListOfStringsField(nullable=True, default=None),
        # Timezone-aware, UTC: when the compute host took these readings.
        'measured_at': fields.DateTimeField(),
        # The host's Windows version (for example '10.0.20348'), for operators.
        'os_version': fields.StringField(nullable=True, default=None),
        # Whether Hyper-V here opens a local key protector (a vTPM without
        # keys): only a host whose HGS client is in local mode does. None:
        # not reported (a compute older than 1.2), taken as "may".
        'local_key_protector': fields.BooleanField(nullable=True,
                                                   default=None),
    }

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        target = versionutils.convert_version_to_tuple(target_version)
        if target < (1, 3):
            primitive.pop('fabric_ids', None)
        if target < (1, 2):
            primitive.pop('local_key_protector', None)
        if target < (1, 1):
            primitive.pop('os_version', None)
