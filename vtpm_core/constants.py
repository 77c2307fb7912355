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

# nova's own vTPM vocabulary (nova.virt.hardware.get_vtpm_constraint and
# get_tpm_secret_security_constraint), which nova's scheduler turns into
# required placement traits (nova.scheduler.utils.ResourceRequest.
# _translate_vtpm_request, nova.scheduler.request_filter.
# tpm_secret_security_filter). nova reads the secret security from the
# flavor only.
IMAGE_TPM_VERSION = 'hw_tpm_version'
IMAGE_TPM_MODEL = 'hw_tpm_model'
FLAVOR_TPM_VERSION = 'hw:tpm_version'
FLAVOR_TPM_MODEL = 'hw:tpm_model'
FLAVOR_TPM_SECRET_SECURITY = 'hw:tpm_secret_security'
NOVA_IMAGE_KEYS = (IMAGE_TPM_VERSION, IMAGE_TPM_MODEL)
NOVA_FLAVOR_KEYS = (FLAVOR_TPM_VERSION, FLAVOR_TPM_MODEL,
                    FLAVOR_TPM_SECRET_SECURITY)

# Every key build_request reads; everything else is ignored.
IMAGE_KEYS = (IMAGE_VTPM, IMAGE_VTPM_KEYS, IMAGE_MACHINE_TYPE,
              IMAGE_SHIELDED) + NOVA_IMAGE_KEYS
FLAVOR_KEYS = (FLAVOR_VTPM,) + NOVA_FLAVOR_KEYS

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

# What Hyper-V's virtual TPM is, in nova's words.
# Windows: a Generation 2 VM's virtual TPM is a TPM 2.0, "emulated in the
# guest VM independent of the Hyper-V host TPM presence or version"
# (windows/whats-new/windows-11-requirements.md, "Virtual machine support").
# Windows: its interface is a Command Response Buffer: Microsoft's own
# Hyper-V compatible device model (microsoft/openvmm,
# vm/devices/tpm/tpm_device/src/lib.rs, "Emulated TPM 2.0 device") has the
# CRB control area (CRB_INTF_ID, command and response buffers) and no TIS
# FIFO registers. Inferred: Windows Server's pages name no interface.
TPM_VERSION = '2.0'
TPM_MODEL = 'tpm-crb'
# nova's values (nova.objects.fields.TPMVersion, TPMModel), and the model
# nova assumes when none is given.
NOVA_TPM_VERSIONS = ('1.2', '2.0')
NOVA_TPM_MODELS = ('tpm-tis', 'tpm-crb')
NOVA_DEFAULT_TPM_MODEL = 'tpm-tis'
# nova's hw:tpm_secret_security (nova.conf [libvirt]
# supported_tpm_secret_security), the one nova assumes when none is given,
# and what each means here: who can open the vTPM's state.
SECRET_USER = 'user'
SECRET_HOST = 'host'
SECRET_DEPLOYMENT = 'deployment'
NOVA_SECRET_SECURITIES = (SECRET_USER, SECRET_HOST, SECRET_DEPLOYMENT)
NOVA_DEFAULT_SECRET_SECURITY = SECRET_USER
# user: only its owner, with the KeyProtector or guardians named by
# os_vtpm_keys (the owner's Barbican secrets); host: the host that runs it,
# whose administrator can open it (a local key protector, no keys). No
# vTPM here is sealed for nova's service user (deployment).
SECRET_SECURITIES = (SECRET_USER, SECRET_HOST)

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
# last re-authorization handled; the secrets the instance was sealed from;
# what a restarted compute found its VM lacks (vtpm_hyperv.nova.startcheck).
SYSMETA_FABRICS = 'vtpm_fabrics'
SYSMETA_HANDLED_KEYPROTECTOR = 'vtpm_keyprotector'
SYSMETA_KEYS = 'vtpm_keys'
SYSMETA_MISSING = 'vtpm_missing'

# Server metadata of a vTPM instance (vtpm_hyperv.nova.reauthorize): the
# owner names the Barbican secret (a UUID) of a new KeyProtector, and the
# compute host answers with the outcome.
METADATA_KEYPROTECTOR = 'os_vtpm_keyprotector'
METADATA_KEYPROTECTOR_STATUS = 'os_vtpm_keyprotector_status'

# HGS attestation status that allows a host to unwrap KeyProtectors.
ATTESTATION_PASSED = 'Passed'
