# SPDX-License-Identifier: Apache-2.0
"""The attach of a vTPM, per kind of key material, at its WMI floor.

For each path (no keys, in HGS and in local mode; a raw KeyProtector; a
shielding data file; an owner bundle with one and with five guardians),
in one run:

- the WMI round trips of one attach by a backend that has attached before
  (the reads made once per process are done), each one classified: a call
  the end state is made of (the floor), or a documented check, named with
  its reason. The floor is issue 24's figure; the run fails if a path makes
  a round trip that is neither, or more than the floor plus its checks;
- the attach time with the real Barbican (Keystone and Barbican of
  ``tools.services``) in its parts: Barbican (fetching the secrets, beside
  the raw lower bound: concurrent raw GETs of the same secrets with a
  token in hand, in the same run), key material (classifying and checking
  them, ``vtpm_hyperv.material``), files (the private files Windows reads)
  and WMI (the rest: the simulated host, whose time is not Windows'; the
  round trips are what carries over: on Windows each is a COM call);
- for the owner bundle, the share of cryptography's RSA private-key check.

The check: cryptography validates an RSA private key as it loads it (two
Miller-Rabin primality tests and a modular exponentiation per key), and its
PKCS#12 loader has no way to skip that. It is made once per key and
attach: the bundle's two files are loaded once, and the PFX files Windows
imports are written from the loaded keys, not loaded again. It protects
nova-compute: the keys are the tenant's, and cryptography's documentation
says "User supplied keys should never be loaded" without it: "If you do
load an invalid key this way and attempt to use it OpenSSL may hang,
crash, or otherwise misbehave".

Usage: ``.venv/bin/python benchmarks/bench_attach.py [rounds]``. It uses the
services of ``python3 run.py test`` when ``VTPM_TEST_*`` is set, else starts
its own (``.state/bench``) and stops them afterwards. Exit status 1 when a
path misses its floor.
"""

import collections
import concurrent.futures
import contextlib
import os
import pathlib
import statistics
import sys
import textwrap
import time
import typing
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from oslo_config import cfg  # noqa: E402

from vtpm_core import policy  # noqa: E402
from vtpm_hyperv import backend  # noqa: E402
from vtpm_hyperv import conf as hv_conf  # noqa: E402
from vtpm_hyperv import fake  # noqa: E402
from vtpm_hyperv import keyprotector  # noqa: E402
from vtpm_hyperv import material  # noqa: E402


class Call(typing.NamedTuple):
    """A round trip (an entry of ``FakeHyperVHost.round_trips``), and why
    the attach makes it."""

    target: str
    reason: str


# -- the calls the end state is made of --------------------------------------
JOB = 'Msvm_ConcreteJob'
FABRIC_GUARDIAN = Call('MSFT_HgsGuardian', 'the guardian store: the fabric\'s '
                       'guardian, which the KeyProtector names')
LOCAL_GUARDIAN = Call('MSFT_HgsGuardian', 'the host\'s local guardian, the '
                      'KeyProtector\'s owner')
VM_SETTINGS = Call('Msvm_VirtualSystemSettingData', 'the VM\'s id (and its '
                   'generation and configuration version)')
SECURITY = Call('Msvm_SecuritySettingData', 'the security settings that '
                'SetKeyProtector and ModifySecuritySettings take')
NEW_KP = Call('MSFT_HgsKeyProtector.NewByGuardians', 'the KeyProtector')
DESCRIBE = Call('MSFT_HgsKeyProtector.ConvertToByRawBytes',
                'who the KeyProtector names (the fabrics the attach reports)')
POPULATE = Call('Msps_ProvisioningFileProcessor.PopulateFromFile',
                'the KeyProtector and policy in the shielding data file')
OWNER = Call('MSFT_HgsGuardian.NewByAcceptCertificates', 'the owner guardian')
IMPORT = Call('MSFT_HgsGuardian.Import', 'a guardian file')
REMOVE = Call('MSFT_HgsGuardian.Remove', 'an imported guardian removed: the '
              'owner\'s private keys must not stay on the host')
SET_KP = (Call('Msvm_SecurityService.SetKeyProtector', 'the KeyProtector '
               'set'), Call(JOB, 'its job'))
SET_POLICY = (Call('Msvm_SecurityService.SetSecurityPolicy', 'the shielding '
                   'data file\'s security policy set'), Call(JOB, 'its job'))
ENABLE = (Call('Msvm_SecurityService.ModifySecuritySettings', 'the TPM, '
               'shielding and encryption on'), Call(JOB, 'its job'))

# -- the documented checks ----------------------------------------------------
CONFIGURATION = Call(
    'MSFT_HgsClientConfiguration.Get',
    'check: the host as it is now (the scheduler\'s rule). Its mode, '
    'attestation and guarded state change at runtime '
    '(Set-HgsClientConfiguration; attestation is renewed while the host '
    'runs), and in HGS mode "the host must get the key from HGS" '
    '(Microsoft, "Shielded VM local mode and HGS mode")')
CURRENT_KP = Call(
    'Msvm_SecurityService.GetKeyProtector',
    'check: the key protector the VM has. A VM that has this vTPM is left '
    'alone, another one is never replaced (its contents would be '
    'unreadable), and as no documented call removes a key protector '
    '(msvm-securityservice.md lists none) a failed attach sets it again')
HOST_FABRIC = Call(
    'MSFT_HgsGuardian',
    'check: the guardian store, for this host\'s fabric: HGS releases a '
    'shielded VM\'s key only to hosts of the fabrics whose guardians its '
    'KeyProtector names (New-ShieldingDataFile -Guardian), so a '
    'KeyProtector that names none of them is refused before the VM changes')
RAW_TRY = Call(
    'MSFT_HgsKeyProtector.ConvertToByRawBytes',
    'check: the tenant artifact first read as a raw KeyProtector, in '
    'memory: neither format is published, so vtpm_hyperv.material cannot '
    'tell a shielding data file from a raw KeyProtector, and only what '
    'Windows refuses as a KeyProtector is written for PopulateFromFile')


class Path(typing.NamedTuple):
    name: str
    kind: str           # 'none', 'raw', 'pdk' or 'bundle'
    guardians: int      # guardian files beside an owner bundle
    floor: int | None   # issue 24's figure (None: the end state's count)
    end_state: tuple
    checks: tuple
    optional: tuple = ()  # checks a path may still make (named all the same)
    local: bool = False

    @property
    def shielded(self):
        return self.kind in ('raw', 'pdk')

    @property
    def allowed(self):
        return (self.floor if self.floor is not None
                else len(self.end_state)) + len(self.checks)


def _bundle(guardians, floor):
    return Path('owner bundle, %d guardian%s' % (
        guardians, 's' if guardians > 1 else ''), 'bundle', guardians, floor,
        (FABRIC_GUARDIAN, VM_SETTINGS, SECURITY, OWNER)
        + (IMPORT,) * guardians + (NEW_KP,) + (REMOVE,) * (1 + guardians)
        + SET_KP + ENABLE, (CONFIGURATION, CURRENT_KP))


PATHS = (
    Path('no keys, HGS mode', 'none', 0, 9,
         (FABRIC_GUARDIAN, VM_SETTINGS, SECURITY, LOCAL_GUARDIAN, NEW_KP)
         + SET_KP + ENABLE, (CONFIGURATION, CURRENT_KP)),
    Path('no keys, local mode', 'none', 0, None,
         (VM_SETTINGS, SECURITY, LOCAL_GUARDIAN, NEW_KP) + SET_KP + ENABLE,
         (CONFIGURATION, CURRENT_KP), local=True),
    Path('raw KeyProtector', 'raw', 0, 7,
         (VM_SETTINGS, DESCRIBE, SECURITY) + SET_KP + ENABLE,
         (CONFIGURATION, HOST_FABRIC, CURRENT_KP)),
    Path('shielding data file', 'pdk', 0, 10,
         (VM_SETTINGS, POPULATE, DESCRIBE, SECURITY) + SET_KP + SET_POLICY
         + ENABLE, (CONFIGURATION, HOST_FABRIC, CURRENT_KP), (RAW_TRY,)),
    _bundle(1, 13),
    _bundle(5, 21),
)

# The periodic report: the HGS client configuration and the guardian store,
# once each per run; the Windows version once per process (os-win keeps it).
REPORT = (Call(CONFIGURATION.target, 'the HGS client configuration'),
          Call('MSFT_HgsGuardian', 'the guardian store (the fabric)'))


def classify(path, observed):
    """``observed`` (round-trip targets) as ``(call, kind)`` rows, and what
    is left unexplained (a Counter: empty when every round trip is the end
    state's or a named check's)."""
    left = collections.Counter(observed)
    rows = []
    for kind, calls in (('end state', path.end_state),
                        ('check', path.checks),
                        ('check', path.optional)):
        for call in calls:
            if left[call.target] > 0:
                left[call.target] -= 1
                rows.append((call, kind))
            elif kind != 'check' or call not in path.optional:
                rows.append((call, 'MISSING'))
    return rows, +left


def verdict(path, observed):
    """None when ``observed`` is at the floor plus named checks, else why
    not."""
    rows, unexplained = classify(path, observed)
    if unexplained:
        return 'unexplained round trips: %s' % dict(unexplained)
    missing = [c.target for c, kind in rows if kind == 'MISSING']
    if missing:
        return 'the floor or a check is not what the path makes: %s' % (
            missing)
    if path.floor is not None and len(path.end_state) > path.floor:
        return 'the end state counts %d, the floor is %d' % (
            len(path.end_state), path.floor)
    made = len(observed)
    optional = sum(1 for c, kind in rows if c in path.optional)
    if made > path.allowed + optional:
        return '%d round trips, floor plus checks %d' % (made, path.allowed)
    return None


# -- one simulated host per path ----------------------------------------------
def make_host(path, fabric):
    host = fake.FakeHyperVHost(
        'hv-bench-%s' % uuid.uuid4().hex[:8],
        fabric=None if path.local else fabric)
    return host


def payloads(path, fabric, owner, others):
    """The secrets of ``path``, as a tenant stores them."""
    parties = [fabric.guardian.public(), others[0].public()]
    if path.kind == 'raw':
        return [fake.build_key_protector(owner, parties)]
    if path.kind == 'pdk':
        return [fake.make_shielding_data_file(owner, parties)]
    if path.kind == 'bundle':
        return [fake.export_owner_pkcs12(owner)] + [
            fake.export_guardian_file(g) for g in others[:path.guardians]]
    return []


def request(path, refs):
    props = {'os_vtpm': 'required', 'hw_machine_type': 'hyperv-gen2'}
    if refs:
        props['os_vtpm_keys'] = ','.join(refs)
    if path.shielded:
        props['os_shielded_vm'] = 'required'
    return policy.build_request(props, {})


def make_conf():
    conf = cfg.ConfigOpts()
    conf([], project='hyperv-vtpm-bench')
    hv_conf.register_opts(conf)
    # the simulated guardians' certificates are self-signed
    conf.set_override('allow_untrusted_root', True, group=hv_conf.GROUP)
    return conf


def round_trips(hv, host, path, refs, auth=None):
    """The round trips of ``hv``'s first attach on ``host`` and of the next
    one, each on a new VM. The first makes the reads kept for the backend's
    life, and a vTPM without keys creates the host's local guardian."""
    req = request(path, refs)
    made = []
    for vm in ('first', 'next'):
        host.add_vm(vm, generation=2)
        del host.round_trips[:]
        hv.attach(str(uuid.uuid4()), vm, req, auth=auth)
        made.append(list(host.round_trips))
    return made


def report_round_trips(hv, host):
    del host.round_trips[:]
    hv.get_capabilities()
    return list(host.round_trips)


# -- timing in parts ----------------------------------------------------------
class Parts:
    """Seconds spent in each part of the attach, by wrapping the functions
    the backend calls (they still run; nothing is replaced)."""

    NAMES = ('Barbican', 'key material', 'files')

    def __init__(self):
        self.seconds = collections.Counter()
        self._inside = None

    def timed(self, part, function):
        def wrapper(*args, **kwargs):
            if self._inside is not None:  # a part inside another: counted
                return function(*args, **kwargs)
            self._inside = part
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - started
                self._inside = None
        return wrapper

    @contextlib.contextmanager
    def installed(self, hv):
        saved = []

        def patch(owner, name, part):
            saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, self.timed(part, getattr(owner, name)))
        patch(hv.key_source, 'fetch', 'Barbican')
        patch(material, 'parse', 'key material')
        patch(material, 'check_set', 'key material')
        for name in ('__enter__', '__exit__', 'write', 'write_pfx'):
            patch(keyprotector.PrivateFiles, name, 'files')
        try:
            yield self
        finally:
            for owner, name, value in reversed(saved):
                if owner is hv.key_source:
                    delattr(owner, name)
                else:
                    setattr(owner, name, value)


def rsa_check_seconds(owner, rounds=9):
    """Reading an owner bundle (``material.parse``) and, apart, what
    cryptography's check of its two RSA keys costs: loading them with the
    check and without it (``unsafe_skip_rsa_key_validation``, never used on
    a tenant's key: here, the bundle's own keys, for the figure). The three
    interleaved, medians."""
    bundle = fake.export_owner_pkcs12(owner)
    ders = [key.private_bytes(serialization.Encoding.DER,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
            for key in (owner.signing_key, owner.encryption_key)]

    def load(skip):
        for der in ders:
            serialization.load_der_private_key(
                der, None, unsafe_skip_rsa_key_validation=skip)
    cases = {'parse': lambda: material.parse('bench', bundle),
             'checked': lambda: load(False), 'skipped': lambda: load(True)}
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, function in cases.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(t) for name, t in times.items()}
    return median['parse'], median['checked'] - median['skipped']


def run(rounds):
    from keystoneauth1 import session as ks_session
    import requests

    from tools.services import clients as realservices
    from vtpm_hyperv.barbican import key_source

    fabric = fake.Fabric('bench-hgs', reuse_keys=True)
    owner = fake.make_guardian('bench-owner', reuse_keys=True)
    others = [fake.make_guardian('bench-g%d' % i, reuse_keys=True)
              for i in range(5)]
    auth = realservices.auth('owner')
    sess = ks_session.Session(auth=auth)
    raw = requests.Session()
    raw.headers.update({'X-Auth-Token': auth.get_token(sess)})
    base = realservices.barbican_url()
    pool = concurrent.futures.ThreadPoolExecutor(6)

    def raw_fetch(refs):
        def get(ref):
            response = raw.get('%s/v1/secrets/%s/payload' % (base, ref),
                               headers={'Accept': '*/*'}, timeout=10)
            response.raise_for_status()
            return response.content
        return list(pool.map(get, refs))

    results, stored = {}, []
    try:
        for path in PATHS:
            refs = [realservices.store_secret(p)
                    for p in payloads(path, fabric, owner, others)]
            stored += refs
            host = make_host(path, fabric)
            vmutils, hostutils = host.os_win_utils()
            conf = make_conf()
            hv = backend.HyperVBackend(
                conf, key_source=key_source.BarbicanKeySource(conf),
                vmutils=vmutils, hostutils=hostutils)
            first, observed = round_trips(hv, host, path, refs, auth)
            report = report_round_trips(hv, host)
            times, bound = [], []
            parts = {name: [] for name in Parts.NAMES}
            req = request(path, refs)
            with Parts().installed(hv) as timer:
                for _ in range(rounds):
                    vm = 'vm-%s' % uuid.uuid4().hex[:8]
                    host.add_vm(vm, generation=2)  # a new VM each attach
                    if refs:
                        started = time.perf_counter()
                        raw_fetch(refs)
                        bound.append(time.perf_counter() - started)
                    timer.seconds.clear()
                    started = time.perf_counter()
                    hv.attach(str(uuid.uuid4()), vm, req, auth=auth)
                    times.append(time.perf_counter() - started)
                    for name in Parts.NAMES:
                        parts[name].append(timer.seconds[name])
            host.close()
            results[path] = {
                'observed': observed, 'first': first, 'report': report,
                'total': statistics.median(times),
                'parts': {n: statistics.median(v) for n, v in parts.items()},
                'bound': statistics.median(bound) if bound else None,
            }
    finally:
        pool.shutdown()
        for ref in stored:
            realservices.delete_secret(ref)
    return results, rsa_check_seconds(owner)


def print_report(results, rsa_check, rounds):
    print('%d attaches per path (median), each on a new VM, by a backend '
          'that attached before; real Keystone + Barbican on loopback, '
          'simulated Hyper-V host (its time includes what Windows does, '
          'such as loading the owner\'s PFX files: the round trips are the '
          'figure that carries over)' % rounds)
    print()
    print('%-28s %6s %6s %7s %8s  %9s %9s %9s %9s  %s' % (
        'path', 'round', 'floor', 'checks', 'allowed', 'total ms',
        'Barbican', 'material', 'files', 'WMI (simulated)'))
    print('%-28s %6s' % ('', 'trips'))
    ok = True
    for path, r in results.items():
        parts = r['parts']
        wmi = r['total'] - sum(parts.values())
        rows, _ = classify(path, r['observed'])
        optional = sum(1 for c, _ in rows if c in path.optional)
        print('%-28s %6d %6s %7s %8d  %9.1f %9.1f %9.1f %9.1f  %.1f' % (
            path.name, len(r['observed']),
            path.floor if path.floor is not None else '-',
            '%d+%d' % (len(path.checks), optional) if optional
            else len(path.checks), path.allowed + optional, r['total'] * 1000,
            parts['Barbican'] * 1000, parts['key material'] * 1000,
            parts['files'] * 1000, wmi * 1000))
    print()
    for path, r in results.items():
        rows, _ = classify(path, r['observed'])
        problem = verdict(path, r['observed'])
        ok = ok and problem is None
        print('%s: %d round trips, floor %s, %s' % (
            path.name, len(r['observed']),
            path.floor if path.floor is not None
            else '%d (the end state)' % len(path.end_state),
            'OK' if problem is None else 'FAILED: %s' % problem))
        for call, kind in rows:
            if kind != 'end state':
                print(textwrap.fill(
                    call.reason, 79, initial_indent='    %s: ' % call.target,
                    subsequent_indent=' ' * 8))
        once = collections.Counter(r['first'])
        once.subtract(r['observed'])
        print('    the first attach of a backend: %d (%s, once)' % (
            len(r['first']), ', '.join(sorted(+once)) or 'nothing more'))
        if r['bound'] is not None:
            print('    Barbican %.1f ms, raw lower bound (concurrent GETs) '
                  '%.1f ms: %.2fx' % (
                      r['parts']['Barbican'] * 1000, r['bound'] * 1000,
                      r['parts']['Barbican'] / r['bound']))
    report = next(iter(results.values()))['report']
    print()
    print('periodic report: %d round trips (%s); the Windows version once '
          'per process' % (len(report), ', '.join(report)))
    ok = ok and collections.Counter(report) == collections.Counter(
        c.target for c in REPORT)
    bundle = next(r for p, r in results.items() if p.kind == 'bundle')
    material_s = bundle['parts']['key material']
    print()
    parse, check = rsa_check
    print(textwrap.fill(
        'owner bundle, 1 guardian: key material %.1f ms of the attach\'s '
        '%.1f ms. Apart, reading the bundle takes %.1f ms, of which '
        'cryptography\'s check of its two RSA private keys %.1f ms (%.0f%%; '
        'loading both keys with the check and without it). It is made once '
        'per key and attach, as cryptography loads the key; it keeps a '
        'tenant\'s invalid key from making OpenSSL in nova-compute "hang, '
        'crash, or otherwise misbehave" (cryptography\'s documentation)' % (
            material_s * 1000, bundle['total'] * 1000, parse * 1000,
            check * 1000, 100 * check / parse), 79))
    return ok


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    from tools import services
    # the services of "python3 run.py test" when they are up, else its own
    up = (contextlib.nullcontext({}) if 'VTPM_TEST_KEYSTONE_URL' in os.environ
          else services.running(ROOT / '.state' / 'bench'))
    with up as env:
        os.environ.update(env)
        with fake.installed():
            results, rsa_check = run(rounds)
    return 0 if print_report(results, rsa_check, rounds) else 1


if __name__ == '__main__':
    sys.exit(main())
