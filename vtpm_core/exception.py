# SPDX-License-Identifier: Apache-2.0
"""Every error of the core and of the backend contract: one hierarchy
under VTPMError.

Messages are written for the person who has to fix the problem: they name
the key, where it came from (``named``: image property, flavor extra spec
or server metadata), an excerpt of the value as given (``excerpt``), and
what is allowed. They never carry key material or tokens.

A backend raises the classes that ``vtpm_core.backend.VTPMBackend``'s
methods name, as castellan's key managers raise castellan's: the compute
side tells them apart (abort a build, reschedule it, refuse a
re-authorization) by these classes alone. A backend subclasses one only
where its message must say more (``vtpm_hyperv.exception``'s
``HyperVOperationFailed`` gives Hyper-V's return code). Each package's
other errors live in its own ``exception`` module.
"""

import reprlib

from vtpm_core import constants as c

# An error message quotes at most this many characters of a value. 300 holds
# the repr of any ASCII value that build_request can accept (at most 251
# characters, constants.MAX_VALUE_BYTES) with its quotes, so a value near
# the limit is shown whole; a longer value is refused for its length, and
# its first 300 characters and its length are enough to find it. A hostile
# 1 MB property then costs a log line of a few hundred characters, not a
# megabyte (the scheduler filter logs an invalid request once per request).
EXCERPT_LENGTH = 300

# repr of containers without walking all of them: a handful of items, each
# bounded (the final cut to EXCERPT_LENGTH bounds the whole).
_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = _REPR.maxother = EXCERPT_LENGTH


class _Absent:
    """A key that is not set, as every message names it: absent."""

    def __repr__(self):
        return 'absent'


# The value of a key that is not set; excerpt() and the messages show it
# unquoted ("os_vtpm (image property) is absent"), as the "why" of a request
# does, so it cannot be mistaken for a value someone set.
ABSENT = _Absent()


def excerpt(value) -> str:
    """Return ``repr(value)``, or its start and the value's size if longer.

    At most EXCERPT_LENGTH characters of the repr, then for example
    ``... (1000000 characters)``. A string is cut before its repr is built
    and a container is rendered by ``reprlib``, so the cost does not grow
    with the value either.
    """
    if isinstance(value, str):
        text = repr(value[:EXCERPT_LENGTH + 1])
        size = '%d characters' % len(value)
    else:
        text = _REPR.repr(value)
        size = type(value).__name__
    if len(text) <= EXCERPT_LENGTH:
        return text
    return '%s... (%s)' % (text[:EXCERPT_LENGTH], size)


def named(key: str, source: str) -> str:
    """How every message names a key: ``os_vtpm (image property)``."""
    return '%s (%s)' % (key, source)


# The key and source an error is given, and the keys our messages name.
_THE_KEY = named('%(key)s', '%(source)s')
_KEYS = named(c.IMAGE_VTPM_KEYS, c.IMAGE)
_KEYPROTECTOR = named(c.METADATA_KEYPROTECTOR, c.SERVER_METADATA)


class VTPMError(Exception):
    """Base of every error hyperv-vtpm raises.

    Subclasses set ``msg_fmt``; keyword arguments fill it (unless a message
    is given) and are kept as attributes, so callers can act on ``.key``,
    ``.ref`` and so on. The arguments named in ``quoted`` hold values as a
    caller gave them: the message shows them through ``excerpt``
    (``%(value)s`` in ``msg_fmt``), the attributes keep them whole.
    """

    msg_fmt = 'vTPM error'
    quoted = ('value',)

    def __init__(self, message=None, **kwargs):
        for name, value in kwargs.items():
            setattr(self, name, value)
        if message is None:
            message = self.msg_fmt % {
                name: excerpt(value) if name in self.quoted else value
                for name, value in kwargs.items()}
        super().__init__(message)


# --- the request (image properties and flavor extra specs) -----------------

class InvalidVTPMRequest(VTPMError, ValueError):
    """The image and flavor together do not make a valid vTPM request.

    Retrying on another host cannot help: the compute side aborts the build
    without rescheduling.
    """


class InvalidPropertyValue(InvalidVTPMRequest):
    msg_fmt = _THE_KEY + " is %(value)s; allowed: %(allowed)s"


class PolicyConflict(InvalidVTPMRequest):
    quoted = ('image_value', 'flavor_value')
    msg_fmt = (named(c.FLAVOR_VTPM, c.FLAVOR) + " is %(flavor_value)s but "
               + named(c.IMAGE_VTPM, c.IMAGE) + " is %(image_value)s: %(why)s")

    def __init__(self, image_value, flavor_value, why):
        super().__init__(image_key=c.IMAGE_VTPM, flavor_key=c.FLAVOR_VTPM,
                         image_value=image_value, flavor_value=flavor_value,
                         why=why)


class PropertyNotCopyable(InvalidPropertyValue):
    """nova would not copy the value to the instance unchanged."""

    msg_fmt = (_THE_KEY + " is %(value)s: %(problem)s; allowed: a string of "
               "at most %(max_bytes)d bytes in UTF-8, which nova copies to "
               "the instance unchanged")


class NestedImageProperties(InvalidVTPMRequest):
    """The caller passed nova's image dict instead of its properties."""

    msg_fmt = (_THE_KEY + " is %(value)s: image properties nested "
               "under 'properties', as nova's glance.API().get() returns an "
               "image; pass the flat properties (image['properties']), as "
               "Glance's v2 API returns them")


class InvalidKeyList(InvalidVTPMRequest):
    msg_fmt = (_THE_KEY + " is %(value)s: %(problem)s; allowed: "
               "1 to %(max_keys)d Barbican secret UUIDs separated by commas "
               "(ASCII whitespace around each is ignored), at most "
               "%(max_length)d characters in all")


class KeysWithoutVTPM(InvalidVTPMRequest):
    msg_fmt = (_THE_KEY + " is %(value)s but the vTPM is off (%(why)s); "
               "keys are allowed only when the vTPM is on")


class MachineTypeNotSupported(InvalidVTPMRequest):
    msg_fmt = (_THE_KEY + " is %(value)s but a vTPM needs a Generation 2 "
               "VM; allowed: %(allowed)s")


class ShieldingNotPossible(InvalidVTPMRequest):
    msg_fmt = (_THE_KEY + " is %(value)s but %(why)s; a shielded VM needs "
               "the vTPM on and at least one key in " + c.IMAGE_VTPM_KEYS)


# --- nova's own vTPM vocabulary (hw:tpm_*, hw_tpm_*) -------------------------

class TPMNotOffered(InvalidPropertyValue):
    """nova's value names a TPM that Hyper-V's virtual TPM is not."""

    msg_fmt = ("%(key)s (%(source)s) is %(value)s but %(why)s; allowed: "
               "%(allowed)s")


class TPMPropertyConflict(InvalidVTPMRequest):
    """Two keys that must agree do not (nova's FlavorImageConflict, or one
    side asking for a vTPM in one vocabulary and refusing it in the other).
    """

    quoted = ('value', 'other_value')
    msg_fmt = ("%(key)s (%(source)s) is %(value)s but %(other_key)s "
               "(%(other_source)s) is %(other_value)s: %(why)s")


class TPMModelMissing(InvalidVTPMRequest):
    """nova's version without a model: nova assumes TIS, which Hyper-V's
    virtual TPM is not, and requires the TIS placement trait."""

    msg_fmt = ("%(key)s (%(source)s) is %(value)s but hw:tpm_model (flavor "
               "extra spec) and hw_tpm_model (image property) are absent, "
               "which nova reads as tpm-tis: nova's scheduler then requires "
               "placement trait COMPUTE_SECURITY_TPM_TIS, and Hyper-V's "
               "virtual TPM has a CRB interface, not TIS; set "
               "hw:tpm_model=tpm-crb (flavor extra spec) or "
               "hw_tpm_model=tpm-crb (image property)")


class TPMPropertyWithoutVTPM(InvalidVTPMRequest):
    """A model with nothing that turns the vTPM on: nova gives no TPM."""

    msg_fmt = ("%(key)s (%(source)s) is %(value)s but the vTPM is off "
               "(%(why)s): nova gives a TPM only when hw:tpm_version or "
               "hw_tpm_version asks for one, so the server would have none; "
               "add hw:tpm_version=2.0 (flavor extra spec) or "
               "hw_tpm_version=2.0 (image property), or remove %(key)s")


class SecretSecurityNotPossible(InvalidVTPMRequest):
    """nova's secret security says who may open the vTPM's state; the keys
    (or their absence) say otherwise."""

    msg_fmt = "%(key)s (%(source)s) is %(value)s%(default)s but %(why)s"


# --- loading plugins ---------------------------------------------------------

class BackendNotFound(VTPMError):
    quoted = ('name',)
    msg_fmt = ("vTPM backend %(name)s is not installed (entry point group "
               "'vtpm.backends'); installed: %(installed)s")


# --- key material (compute side) --------------------------------------------

class KeyMaterialError(VTPMError):
    """A secret named by os_vtpm_keys could not be used. Carries ``.ref``."""


class KeyNotFound(KeyMaterialError):
    msg_fmt = "Barbican secret %(ref)s named by " + _KEYS + " does not exist"


class KeyWithoutPayload(KeyNotFound):
    """The secret exists, but holds nothing to read."""

    msg_fmt = ("Barbican secret %(ref)s named by " + _KEYS + " has no "
               "payload; store the key material in it")


class InvalidSecretRef(KeyNotFound):
    """What names the secret is no secret UUID (so no secret is read)."""

    quoted = ('ref',)
    msg_fmt = ("Barbican secret %(ref)s named by " + _KEYS + " is not a "
               "secret UUID; allowed: a UUID such as "
               "8f14e45f-ceea-467a-9575-7a6c8c2b3a11")


class KeyAccessDenied(KeyMaterialError):
    msg_fmt = ("Barbican refused secret %(ref)s named by " + _KEYS + " to "
               "the instance owner's project")


class KeyAccessDeniedToService(KeyAccessDenied):
    """Refused to the service credentials (no owner's were given)."""

    msg_fmt = ("Barbican refused secret %(ref)s named by " + _KEYS + " to "
               "the service credentials of [%(group)s] (HTTP 403)")


class KeyManagerUnavailable(KeyMaterialError):
    msg_fmt = ("Barbican could not be reached for secret %(ref)s named by "
               + _KEYS + ": %(reason)s")


class InvalidKeyMaterial(KeyMaterialError):
    msg_fmt = ("Barbican secret %(ref)s named by " + _KEYS + " is not usable "
               "guardian material: %(reason)s")


class InvalidKeySet(VTPMError):
    msg_fmt = ("the secrets named by " + _KEYS + " are not a valid set: "
               "%(reason)s; allowed: exactly one owner PKCS#12 bundle plus "
               "up to " + str(c.MAX_GUARDIANS) + " guardian files, or one "
               "raw KeyProtector or shielding data file alone")


class OwnerKeysRefused(KeyMaterialError):
    """An owner bundle where the owner's private keys must stay away.

    Retrying on another host cannot help: the build is aborted.
    """

    msg_fmt = ("Barbican secret %(ref)s named by " + _KEYS + " is an owner "
               "PKCS#12 bundle, refused because %(why)s: it would hand the "
               "owner's private keys to the compute host; allowed instead: "
               "a raw KeyProtector or a shielding data file (PDK) that the "
               "tenant made, alone")


# --- reading an image (scheduler side) ---------------------------------------

class ImageReadFailed(VTPMError):
    """The scheduler could not read an image's properties from Glance."""

    msg_fmt = ("VTPMFilter could not read image %(image)s from Glance: "
               "%(reason)s")


# --- lifecycle of a vTPM instance (compute side) ----------------------------

class OperationRefused(VTPMError):
    """A nova operation would break the instance's vTPM; nothing was changed.

    Carries ``.operation`` and ``.instance``; the message says why (naming
    the property or flavor extra spec and its value) and what to do instead.
    """

    msg_fmt = "%(operation)s of instance %(instance)s refused: %(reason)s"


# --- reading key material from Barbican (compute side) -----------------------

class KeyFetchFailed(KeyMaterialError):
    """Barbican answered, but neither with the payload nor a known refusal."""

    msg_fmt = ("Barbican answered HTTP %(status)s for secret %(ref)s named by "
               + _KEYS + ": %(reason)s")


class KeySourceNotConfigured(KeyMaterialError):
    """No credentials to read secrets with: no owner's, no service's."""

    msg_fmt = ("no credentials to read Barbican secret %(ref)s named by "
               + _KEYS + ": the caller passed no instance owner's "
               "credentials and [%(group)s] sets no auth_type; pass the "
               "owner's auth plugin, or configure service credentials")


class KeyAuthenticationFailed(KeyMaterialError):
    """Barbican or Keystone did not accept the token (HTTP 401).

    Not a refusal of the secret: the credentials themselves are invalid or
    expired, so nothing is known about who owns the secret.
    """

    msg_fmt = ("%(service)s did not accept %(credentials)s (HTTP 401) when "
               "reading secret %(ref)s named by " + _KEYS + ": the token is "
               "invalid or has expired, which says nothing about who owns "
               "the secret. A build that outlives the owner's token needs "
               "nova's [service_user] send_service_user_token = true")


class KeyTooLarge(InvalidKeyMaterial):
    """A payload over the configured cap, refused before it is read whole."""

    msg_fmt = ("Barbican secret %(ref)s named by " + _KEYS + " is larger "
               "than [%(group)s] max_payload_bytes = %(limit)d bytes "
               "(%(seen)s) and was refused before it was read in full; "
               "allowed: at most %(limit)d bytes (raise the option only for "
               "a genuine shielding data file that large)")


# --- what a backend raises (vtpm_core.backend.VTPMBackend) ------------------

class HostNotSuitable(VTPMError):
    """This host cannot run the instance; another host may (reschedule)."""

    msg_fmt = "host %(host)s cannot run this vTPM instance: %(reason)s"


class UnsupportedVM(VTPMError):
    """The VM cannot have a vTPM; no other host can change that (abort)."""

    msg_fmt = "VM %(vm)s cannot have a vTPM: %(reason)s"


class BackendOperationFailed(VTPMError):
    """The hypervisor refused a step; everything before it was rolled back.

    Another host may succeed (reschedule). A backend subclasses it to say
    what its hypervisor answered (``HyperVOperationFailed``).
    """

    msg_fmt = "%(operation)s failed for VM %(vm)s: %(description)s"


# --- re-authorization of an existing vTPM (vtpm_hyperv.nova.reauthorize) ---

class InvalidReauthorization(VTPMError):
    """The server metadata names no Barbican secret UUID."""

    msg_fmt = (_KEYPROTECTOR + " of instance "
               "%(instance)s is %(value)s; allowed: one Barbican secret "
               "UUID")


class ReauthorizationRefused(VTPMError):
    """A re-authorization refused before anything changed on the VM.

    Carries ``.instance``, ``.ref`` (the secret the server metadata names)
    and ``.reason``; each subclass is one rule.
    """

    quoted = ('ref',)
    msg_fmt = ("re-authorization of instance %(instance)s with "
               + _KEYPROTECTOR + " %(ref)s refused: %(reason)s")


class ReauthorizationNotOff(ReauthorizationRefused):
    """A KeyProtector changes only while the VM is off."""


class ReauthorizationSecretUnusable(ReauthorizationRefused):
    """The secret is missing, forbidden to the owner, or no KeyProtector."""


class ReauthorizationOwnerChanged(ReauthorizationRefused):
    """The new KeyProtector has another owner: the vTPM would not open."""


class ReauthorizationDropsFabric(ReauthorizationRefused):
    """The new KeyProtector no longer names the fabric the VM runs in."""


class ReauthorizationNotKeyed(ReauthorizationRefused):
    """The VM has no KeyProtector of a tenant's to re-authorize."""


class KeyProtectorDidNotOpen(VTPMError):
    """The VM did not start with its new KeyProtector; the last known good
    one is back and the instance's recorded fabrics with it. ``.reason``
    is what the start raised."""

    quoted = ('ref',)
    msg_fmt = ("instance %(instance)s did not start with " + _KEYPROTECTOR
               + " %(ref)s; last known good KeyProtector restored: "
               "%(reason)s")


# --- starts (vtpm_hyperv.nova.startcheck) -----------------------------------

class StartRefused(VTPMError):
    """A start (power on, reboot, resume after a host reboot, unrescue, the
    end of a spawn) of a VM that lacks what its vTPM request asks for; the
    VM stays off. ``.missing`` says what it lacks, ``.remedy`` what the
    owner or the admin can do."""

    msg_fmt = ("instance %(instance)s was not started: its VM %(vm)s has "
               "%(missing)s, which its vTPM request asks for; %(remedy)s")


class VTPMIncomplete(VTPMError):
    """What a restarted compute found: a VM that lacks what its vTPM
    request asks for (its build's attach did not finish, or its VM was
    changed by hand). Every start of it is checked (``StartRefused``)."""

    msg_fmt = ("instance %(instance)s: its VM %(vm)s has %(missing)s, which "
               "its vTPM request asks for (found by host %(host)s at "
               "start-up); it does not start so: %(remedy)s")


class StartAwaitsOwner(StartRefused):
    """A start by someone other than the owner while the owner's
    re-authorization (``os_vtpm_keyprotector``) is pending: only the
    owner's credentials read its secret, and a start without it would
    spend the request."""

    quoted = ('ref',)
    msg_fmt = ("instance %(instance)s was not started: its owner asked "
               "for a re-authorization with " + _KEYPROTECTOR + " %(ref)s, "
               "which only the owner's credentials can read; the owner "
               "starts it (openstack server start), or removes the "
               "property")
