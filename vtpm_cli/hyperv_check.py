# SPDX-License-Identifier: Apache-2.0
"""``vtpm-hyperv-check``: hold a real Hyper-V host against our WMI table.

The simulator is our model of Windows and can be wrong where Microsoft's
pages are silent; this is how an operator finds out. On a Windows Server
Hyper-V host (with the HGS client feature, os-win and PyMI installed):

``vtpm-hyperv-check``
    reads the live signatures of every WMI class in
    ``vtpm_hyperv.wmi_schema`` (PowerShell's ``Get-CimClass``, as JSON),
    compares them with the table and prints each difference; exit code 1
    when there is one. ``--dump FILE`` also writes what was read, the
    format of ``--compare``.
``vtpm-hyperv-check --compare FILE``
    the same comparison against a read recorded with ``--dump`` (any
    platform). Elsewhere than on Windows, every other use exits 2 with a
    message that says so.
``vtpm-hyperv-check --exercise``
    also runs the backend on a scratch Generation 2 VM that it creates and
    removes: attach, start, stop, detach. A host in local mode gets a vTPM
    without keys; a guarded host needs ``--key-protector FILE``, a raw
    KeyProtector that names its fabric.
``vtpm-hyperv-check --report [--config-file nova.conf]``
    measures the host as nova-compute does, with its options
    (``[hyperv_vtpm]``, ``[DEFAULT] host``), and prints the capability
    report it publishes: each field as the scheduler reads it back, the
    stats entry ``VTPMFilter`` reads, and the placement traits; exit code 1
    when it has no report to publish (the scheduler then refuses it every
    vTPM instance).

Only the differences of what the table lists count: the live classes
inherit many more properties and methods from CIM.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys

from vtpm_hyperv import wmi_schema

# The exit code of a live check on a machine that is not Windows.
NOT_WINDOWS = 2

# Get-CimClass's CimType names for the scalar types of the table.
_CIM_TYPES = {
    'Boolean': 'boolean', 'String': 'string', 'DateTime': 'datetime',
    'UInt8': 'uint8', 'UInt16': 'uint16', 'UInt32': 'uint32',
    'UInt64': 'uint64',
}

_POWERSHELL = r'''
$ErrorActionPreference = 'Stop'
$result = @{}
foreach ($c in (ConvertFrom-Json $env:VTPM_CHECK_CLASSES)) {
  $cls = Get-CimClass -Namespace $c.namespace -ClassName $c.name
  $q = { param($x) @($x.Qualifiers | ForEach-Object {
          @{ name = $_.Name; value = "$($_.Value)" } }) }
  $props = @{}
  foreach ($p in $cls.CimClassProperties) {
    $props[$p.Name] = @{ type = $p.CimType.ToString();
                         referenceClassName = $p.ReferenceClassName;
                         qualifiers = (& $q $p) } }
  $methods = @{}
  foreach ($m in $cls.CimClassMethods) {
    $methods[$m.Name] = @($m.Parameters | ForEach-Object {
      @{ name = $_.Name; type = $_.CimType.ToString();
         referenceClassName = $_.ReferenceClassName;
         qualifiers = (& $q $_) } }) }
  $result["$($c.namespace):$($c.name)"] = @{ properties = $props;
                                              methods = $methods }
}
$result | ConvertTo-Json -Depth 8 -Compress
'''


def classes_used():
    """(namespace, class name) of every class the table lists."""
    found = {(m.namespace, m.class_name) for m in wmi_schema.METHODS}
    found |= {(c.namespace, c.name) for c in wmi_schema.CLASSES}
    return sorted(found)


def read_live():
    """Get-CimClass's view of every class the table lists (Windows only)."""
    classes = json.dumps([{'namespace': ns, 'name': name}
                          for ns, name in classes_used()])
    out = subprocess.run(
        ['powershell.exe', '-NoProfile', '-NonInteractive', '-Command',
         _POWERSHELL], capture_output=True, text=True, check=True,
        env=dict(os.environ, VTPM_CHECK_CLASSES=classes))
    return json.loads(out.stdout)


def _qualifier(element, name):
    for q in element.get('qualifiers') or ():
        if q.get('name', '').lower() == name.lower():
            return q.get('value')
    return None


def cim_type(element) -> str:
    """A live element's type in the table's spelling."""
    kind = element['type']
    array = kind.endswith('Array')
    base = kind[:-len('Array')] if array else kind
    if base == 'Instance':
        name = _qualifier(element, 'EmbeddedInstance') or 'Instance'
    elif base == 'Reference':
        name = 'REF %s' % (element.get('referenceClassName') or 'object')
    else:
        name = _CIM_TYPES.get(base, base)
    return name + ('[]' if array else '')


def _direction(parameter):
    inward = str(_qualifier(parameter, 'In')).lower() == 'true'
    outward = str(_qualifier(parameter, 'Out')).lower() == 'true'
    return 'in/out' if inward and outward else 'out' if outward else 'in'


def compare(live) -> list[str]:
    """Each difference between the table and a live read, in words."""
    found = []
    for method in wmi_schema.METHODS:
        where = '%s:%s' % (method.namespace, method.class_name)
        cls = live.get(where)
        if cls is None:
            found.append('%s: class missing on the host' % where)
            continue
        params = cls.get('methods', {}).get(method.name)
        if params is None:
            found.append('%s.%s: method missing on the host (%s)'
                         % (where, method.name, method.source))
            continue
        params = {p['name']: p for p in params}
        for p in method.params:
            there = params.pop(p.name, None)
            if there is None:
                found.append('%s.%s: parameter %s missing on the host'
                             % (where, method.name, p.name))
                continue
            if (cim_type(there), _direction(there)) != (p.cim_type,
                                                        p.direction):
                found.append('%s.%s: parameter %s is [%s] %s on the host, '
                             '[%s] %s in the table (%s)' % (
                                 where, method.name, p.name,
                                 _direction(there), cim_type(there),
                                 p.direction, p.cim_type, method.source))
        for name, there in sorted(params.items()):
            found.append('%s.%s: parameter %s ([%s] %s) is not in the table'
                         % (where, method.name, name, _direction(there),
                            cim_type(there)))
    for table_class in wmi_schema.CLASSES:
        where = '%s:%s' % (table_class.namespace, table_class.name)
        props = live.get(where, {}).get('properties')
        if props is None:
            found.append('%s: class missing on the host' % where)
            continue
        for name, kind in table_class.properties.items():
            there = props.get(name)
            if there is None:
                found.append('%s.%s: property missing on the host'
                             % (where, name))
            elif cim_type(there) != kind:
                found.append('%s.%s: property is %s on the host, %s in the '
                             'table (%s)' % (where, name, cim_type(there),
                                             kind, table_class.source))
    return sorted(set(found))


def exercise(key_protector=None, out=print):
    """Attach, start, stop and detach on a scratch Gen2 VM (Windows only)."""
    import tempfile
    import uuid

    from os_win import constants as os_win_const
    from os_win import utilsfactory
    from oslo_config import cfg

    from vtpm_core import policy
    from vtpm_hyperv import backend
    from vtpm_hyperv.barbican import key_source

    class FileKeySource:
        def fetch(self, key_refs, auth=None):
            with open(key_protector, 'rb') as f:
                return [key_source.SecretPayload(key_refs[0],
                                                 bytearray(f.read()))]

    name = 'vtpm-hyperv-check-%s' % uuid.uuid4().hex[:8]
    props = {'os_vtpm': 'required', 'hw_machine_type': 'hyperv-gen2'}
    if key_protector:
        props['os_vtpm_keys'] = str(uuid.uuid4())
    request = policy.build_request(props, {})
    conf = cfg.ConfigOpts()
    conf([])
    vmutils = utilsfactory.get_vmutils()
    hv = backend.HyperVBackend(conf, vmutils=vmutils,
                               key_source=FileKeySource())
    with tempfile.TemporaryDirectory() as path:
        vmutils.create_vm(name, False, 2, path)
        try:
            out('attach: %s' % (hv.attach(name, name, request),))
            vmutils.set_vm_state(name, os_win_const.HYPERV_VM_STATE_ENABLED)
            out('start: ok')
            vmutils.set_vm_state(name, os_win_const.HYPERV_VM_STATE_DISABLED)
            hv.detach(name, name)
            out('detach: ok')
        finally:
            vmutils.destroy_vm(name)
            out('scratch VM %s removed' % name)


def report(config_files, out=print, make_backend=None):
    """Print what this host publishes, measured now; 0, or 1 for nothing.

    :param config_files: nova.conf and the like; ``[hyperv_vtpm]`` and
        ``[DEFAULT] host`` are read from them, as nova-compute reads them.
    :param make_backend: ``conf -> VTPMBackend``; default: the ``hyperv``
        backend, loaded by name as the compute driver loads it.
    """
    import socket

    from oslo_config import cfg

    from vtpm_core import backend as vtpm_backend
    from vtpm_core import capabilities
    from vtpm_hyperv.nova import compute

    conf = cfg.ConfigOpts()
    # nova's [DEFAULT] host: the name the backend and nova give this host
    conf.register_opt(cfg.StrOpt('host', default=socket.gethostname()))
    conf(args=[], project='nova', default_config_files=list(config_files))
    make_backend = make_backend or functools.partial(
        vtpm_backend.load_backend, 'hyperv')
    vtpm = compute.VTPMCompute(conf, backend=make_backend(conf))
    stats = vtpm.stats()
    # what the scheduler reads back from the stats nova stores
    caps = capabilities.from_stats(stats)
    if caps is None:
        out('%s publishes no vTPM capability report (see the warning '
            'logged above): the scheduler refuses it every vTPM instance'
            % conf.host)
        return 1
    out('vTPM capability report of %s, measured now:' % conf.host)
    for name in caps.fields:
        out('  %s: %s' % (name, getattr(caps, name) if caps.obj_attr_is_set(
            name) else 'unset'))
    for key, value in sorted(stats.items()):
        out('stats entry %s (read by VTPMFilter): %s' % (key, value))
    out('traits: %s' % (', '.join(sorted(capabilities.traits(caps)))
                        or 'none'))
    return 0


def main(argv=None, out=print, make_backend=None):
    parser = argparse.ArgumentParser(prog='vtpm-hyperv-check',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--compare', metavar='FILE',
                        help='compare a recorded read instead of this host')
    parser.add_argument('--dump', metavar='FILE',
                        help='also write the live read to FILE')
    parser.add_argument('--exercise', action='store_true',
                        help='attach, start, stop, detach on a scratch '
                             'Generation 2 VM, created and removed')
    parser.add_argument('--key-protector', metavar='FILE',
                        help='with --exercise: a raw KeyProtector for a '
                             'guarded host')
    parser.add_argument('--report', action='store_true',
                        help='print the vTPM capability report this host '
                             'publishes, measured now, instead')
    parser.add_argument('--config-file', metavar='FILE', action='append',
                        default=[],
                        help='with --report: nova-compute\'s nova.conf '
                             '(repeatable)')
    args = parser.parse_args(argv)
    live_host = not args.compare and make_backend is None
    if live_host and sys.platform != 'win32':
        print('error: vtpm-hyperv-check reads this host\'s WMI, through '
              'PowerShell and os-win: run it on a Windows Server Hyper-V '
              'host; anywhere else, --compare FILE checks a recorded read '
              '(this is %s)' % sys.platform, file=sys.stderr)
        return NOT_WINDOWS
    if args.report:
        return report(args.config_file, out=out, make_backend=make_backend)
    if args.compare:
        with open(args.compare) as f:
            live = json.load(f)
    else:
        live = read_live()
        if args.dump:
            with open(args.dump, 'w') as f:
                json.dump(live, f, indent=1, sort_keys=True)
    differences = compare(live)
    out('%d difference(s) between this host and vtpm_hyperv.wmi_schema'
        % len(differences))
    for line in differences:
        out('  ' + line)
    if args.exercise:
        exercise(args.key_protector, out=out)
    return 1 if differences else 0


if __name__ == '__main__':
    sys.exit(main())
