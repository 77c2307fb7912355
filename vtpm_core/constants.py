# SPDX-License-Identifier: Apache-2.0
"""Property and extra-spec names, allowed values and limits."""

# Where a value came from; used verbatim in error messages
# (vtpm_core.exception.named: "os_vtpm (image property)").
IMAGE = 'image property'
FLAVOR = 'flavor extra spec'
SERVER_METADATA = 'server metadata'

# Image properties (flat, as Glance's v2 API returns them).
IMAGE_VTPM = 'os_vtpm'
IMAGE_VTPM_KEYS = 'os_vtpm_keys'
IMAGE_MACHINE_TYPE = 'hw_machine_type'
IMAGE_SHIELDED = 'os_shielded_vm'

# Flavor extra spec.
FLAVOR_VTPM = 'os:vtpm'

# The five keys build_request reads; everything else is ignored.
IMAGE_KEYS = (IMAGE_VTPM, IMAGE_VTPM_KEYS, IMAGE_MACHINE_TYPE, IMAGE_SHIELDED)
FLAVOR_KEYS = (FLAVOR_VTPM,)

DISABLED = 'disabled'
OPTIONAL = 'optional'
REQUIRED = 'required'
VTPM_POLICIES = (DISABLED, OPTIONAL, REQUIRED)
SHIELDING_POLICIES = (DISABLED, REQUIRED)

# A vTPM needs a Generation 2 VM; this is the Hyper-V driver's name for it.
MACHINE_TYPE_GEN2 = 'hyperv-gen2'

MAX_KEYS = 6
# An owner bundle and the guardian files it comes with, in os_vtpm_keys:
# the owner takes one of the MAX_KEYS.
MAX_GUARDIANS = MAX_KEYS - 1

# nova copies every image property into the instance's system metadata cut
# to 255 bytes of UTF-8, dropping a character that the cut splits
# (nova.utils.get_system_metadata_from_image and safe_truncate), and the
# compute side reads the image's keys from that copy. A cut copy therefore
# keeps 252 to 255 bytes. build_request accepts at most 251: a value it
# accepts is copied whole, and the cut copy of a longer one is still too
# long, so the compute host refuses it as the scheduler did, instead of
# reading a shortened value (a key list without its last key). Six
# hyphenated UUIDs joined by commas take 221 bytes.
NOVA_SYSTEM_METADATA_BYTES = 255
MAX_VALUE_BYTES = NOVA_SYSTEM_METADATA_BYTES - 4

# Instance system metadata of ours (read and written by vtpm_core.sysmeta
# alone): the fabrics whose guardians the instance's KeyProtector names,
# which the scheduler filter reads on a move; the Barbican secret of the
# last re-authorization handled.
SYSMETA_FABRICS = 'vtpm_fabrics'
SYSMETA_HANDLED_KEYPROTECTOR = 'vtpm_keyprotector'

# Server metadata of a vTPM instance (vtpm_hyperv.nova.reauthorize): the
# owner names the Barbican secret (a UUID) of a new KeyProtector, and the
# compute host answers with the outcome.
METADATA_KEYPROTECTOR = 'os_vtpm_keyprotector'
METADATA_KEYPROTECTOR_STATUS = 'os_vtpm_keyprotector_status'

# HGS attestation status that allows a host to unwrap KeyProtectors.
ATTESTATION_PASSED = 'Passed'
