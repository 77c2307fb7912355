# SPDX-License-Identifier: Apache-2.0
"""``vtpm-hyperv-check``: hold a real Hyper-V host against our WMI table.

The simulator is our model of Windows and can be wrong where Microsoft's
pages are silent; this is how an operator finds out. On a Windows Server
Hyper-V host (with the HGS client feature, os-win and PyMI installed):

``vtpm-hyperv-check``
    reads the live signatures of every WMI class in
    ``vtpm_hyperv.wmi_schema`` (PowerShell's ``Get-CimClass``, as JSON),
    compares them with the table and prints each difference. ``--dump
    FILE`` also writes what was read, the format of ``--compare``.
``vtpm-hyperv-check --compare FILE``
    the same comparison against a read recorded with ``--dump`` (any
    platform). Elsewhere than on Windows, every other use exits 2 with a
    message that says so.
``vtpm-hyperv-check --exercise``
    also runs the backend on a scratch Generation 2 VM that it creates and
    removes: attach, start, stop, detach. A host in local mode, or a
    guarded host in HGS mode (attested, with a fabric guardian), gets a vTPM
    without keys; ``--key-protector FILE`` gives it a raw KeyProtector that
    names the host's fabric instead.
``vtpm-hyperv-check --report [--config-file nova.conf]``
    measures the host as nova-compute does, with its options
    (``[hyperv_vtpm]``, ``[DEFAULT] host``), and prints the capability
    report it publishes: each field as the scheduler reads it back, the
    stats entry ``VTPMFilter`` reads, and the placement traits; exit code 1
    when it has no report to publish (the scheduler then refuses it every
    vTPM instance).

What the comparison checks, for what the table lists (the live classes
inherit many more properties and methods from CIM): that each class is
there (a class its page says a Windows Server release no longer has is a
note, not a difference, on that release); each method, its return type and
whether it is static (the ``Static`` qualifier); each parameter, its CIM
type, direction (``In``/``Out`` qualifiers) and place (the ``ID``
qualifiers, which number the parameters as the MOF declares them); each
property and its CIM type. What it cannot check: how a provider behaves
(its rules, return values, states), which only ``--exercise`` tries; and
qualifiers a host does not report (a note says so).

Exit codes: 0 when the host matches the table, 1 when there is a
difference (a class or namespace the host lacks is one), 2 when there is
nothing to compare (the read failed, or the file is not a read).

The read is PowerShell's ``ConvertTo-Json``, whose shapes the reader takes
as they come: a collection of one element may be unrolled into the element
itself, an empty one may be null or absent, and Windows PowerShell 5.1 may
write an array wrapped in an object, ``{"value": [...], "Count": n}``.
"""

from __future__ import annotations

import argparse
import dataclasses
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

# One entry per class: its properties and methods (each method with its
# return type, qualifiers and parameters), or the error Get-CimClass gave
# (a class or namespace the host lacks); "_host" is the Windows version.
# Collections are built with @() in place, never returned from a script
# block (which would unroll one element).
_POWERSHELL = r'''
$ErrorActionPreference = 'Stop'
$result = @{}
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$result['_host'] = @{ version = "$($os.Version)"; caption = "$($os.Caption)" }
foreach ($c in (ConvertFrom-Json $env:VTPM_CHECK_CLASSES)) {
  $key = "$($c.namespace):$($c.name)"
  try {
    $cls = Get-CimClass -Namespace $c.namespace -ClassName $c.name
  } catch {
    $result[$key] = @{ error = "$($_.Exception.Message)" }
    continue
  }
  $props = @{}
  foreach ($p in $cls.CimClassProperties) {
    $props[$p.Name] = @{
      type = $p.CimType.ToString(); referenceClassName = $p.ReferenceClassName
      qualifiers = @($p.Qualifiers | ForEach-Object {
        @{ name = $_.Name; value = "$($_.Value)" } }) } }
  $methods = @{}
  foreach ($m in $cls.CimClassMethods) {
    $methods[$m.Name] = @{
      returnType = $m.ReturnType.ToString()
      qualifiers = @($m.Qualifiers | ForEach-Object {
        @{ name = $_.Name; value = "$($_.Value)" } })
      parameters = @($m.Parameters | ForEach-Object {
        @{ name = $_.Name; type = $_.CimType.ToString()
           referenceClassName = $_.ReferenceClassName
           qualifiers = @($_.Qualifiers | ForEach-Object {
             @{ name = $_.Name; value = "$($_.Value)" } }) } }) } }
  $result[$key] = @{ properties = $props; methods = $methods }
}
$result | ConvertTo-Json -Depth 10 -Compress
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


# --- the reader: every shape ConvertTo-Json writes -------------------------

def items(value) -> list:
    """A JSON value that stands for a collection, as a list.

    ``ConvertTo-Json`` writes a collection of one as the element itself, an
    empty one as null (or leaves the key out), and in Windows PowerShell
    5.1 an array wrapped in a PSObject as ``{"value": [...], "Count": n}``.
    """
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and set(value) == {'value', 'Count'} and \
            isinstance(value['value'], list):
        return value['value']
    return [value]


def _qualifiers(element) -> dict[str, str]:
    """An element's qualifiers by lowercase name (values as strings); None
    when the read has no qualifiers for it at all."""
    if not isinstance(element, dict) or 'qualifiers' not in element:
        return None
    found = {}
    for q in items(element.get('qualifiers')):
        if isinstance(q, dict) and q.get('name'):
            found[str(q['name']).lower()] = str(q.get('value'))
    return found


def _qualifier(element, name):
    return (_qualifiers(element) or {}).get(name.lower())


@dataclasses.dataclass
class LiveMethod:
    parameters: list[dict]
    return_type: str | None  # None: not in the read
    qualifiers: dict | None  # None: not in the read


def live_method(value) -> LiveMethod:
    """A method as read: ``{returnType, qualifiers, parameters}``, or (a
    read of an earlier release) its parameters alone."""
    if isinstance(value, dict) and ({'parameters', 'returnType'}
                                    & set(value)):
        return LiveMethod(
            [p for p in items(value.get('parameters'))
             if isinstance(p, dict)],
            value.get('returnType'), _qualifiers(value))
    return LiveMethod([p for p in items(value) if isinstance(p, dict)],
                      None, None)


def cim_type(element) -> str:
    """A live element's type in the table's spelling."""
    kind = str(element.get('type'))
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


def _id(parameter):
    value = _qualifier(parameter, 'ID')
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _build(version):
    try:
        return tuple(int(p) for p in str(version).split('.')[:3])
    except ValueError:
        return None


# --- the comparison ----------------------------------------------------------

@dataclasses.dataclass
class Comparison:
    differences: list[str]
    # what could not be compared, or is as documented although absent
    notes: list[str]


def compare(live) -> list[str]:
    """Each difference between the table and a live read, in words."""
    return check(live).differences


def check(live) -> Comparison:
    """The differences between the table and a live read, and the notes."""
    if not isinstance(live, dict):
        raise ValueError('a read is a JSON object, one entry per class')
    found, notes = set(), set()
    host = live.get('_host') if isinstance(live.get('_host'), dict) else {}
    host_build = _build(host.get('version'))
    classes = {}
    for namespace, name in classes_used():
        where = '%s:%s' % (namespace, name)
        entry = live.get(where)
        if not isinstance(entry, dict):
            found.add('%s: class not in the read' % where)
        elif 'error' in entry and not entry.get('methods') and \
                not entry.get('properties'):
            table = wmi_schema.wmi_class(namespace, name)
            ended = table.last_server if table else None
            if ended and host_build and host_build > _build(ended):
                notes.add('%s: absent, as its page says ("End of server '
                          'support: %s"; this host runs %s)' % (
                              where, wmi_schema.SERVER_RELEASES.get(
                                  ended, ended), host.get('version')))
            else:
                found.add('%s: class missing on the host (%s)'
                          % (where, entry.get('error')))
        else:
            classes[where] = entry
    for method in wmi_schema.METHODS:
        where = '%s:%s' % (method.namespace, method.class_name)
        if where in classes:
            _check_method(where, classes[where], method, found, notes)
    for table_class in wmi_schema.CLASSES:
        where = '%s:%s' % (table_class.namespace, table_class.name)
        if where in classes:
            _check_properties(where, classes[where], table_class, found)
    return Comparison(sorted(found), sorted(notes))


def _check_method(where, cls, method, found, notes):
    methods = cls.get('methods') or {}
    if method.name not in methods:
        found.add('%s.%s: method missing on the host (%s)'
                  % (where, method.name, method.source))
        return
    there = live_method(methods[method.name])
    name = '%s.%s' % (where, method.name)
    if there.return_type is not None:
        kind = _CIM_TYPES.get(there.return_type, there.return_type)
        if kind != method.return_type:
            found.add('%s: returns %s on the host, %s in the table (%s)'
                      % (name, kind, method.return_type, method.source))
    if there.qualifiers is None:
        notes.add('%s: static or not not checked (no method qualifiers in '
                  'the read)' % name)
    else:
        static = there.qualifiers.get('static', '').lower() == 'true'
        if static != method.static:
            found.add('%s: %s on the host, %s in the table (%s)' % (
                name, _static(static), _static(method.static),
                method.source))
    params = {p.get('name'): p for p in there.parameters}
    for p in method.params:
        live_p = params.pop(p.name, None)
        if live_p is None:
            found.add('%s: parameter %s missing on the host' % (name, p.name))
            continue
        seen = (cim_type(live_p), _direction(live_p))
        if seen != (p.cim_type, p.direction):
            found.add('%s: parameter %s is [%s] %s on the host, [%s] %s in '
                      'the table (%s)' % (
                          name, p.name, _direction(live_p), cim_type(live_p),
                          p.direction, p.cim_type, method.source))
    for extra, live_p in sorted(params.items()):
        found.add('%s: parameter %s ([%s] %s) is not in the table'
                  % (name, extra, _direction(live_p), cim_type(live_p)))
    _check_order(name, there, method, found, notes)


def _static(value):
    return 'static' if value else 'not static'


def _check_order(name, there, method, found, notes):
    """The parameters' order: the host's ID qualifiers, the table's MOF
    order, over the parameters both have."""
    numbered = [(_id(p), p.get('name')) for p in there.parameters]
    if not numbered or any(number is None for number, _ in numbered):
        notes.add('%s: parameter order not checked (no ID qualifiers in the '
                  'read)' % name)
        return
    common = {p.name for p in method.params} & {n for _, n in numbered}
    live_order = [n for _, n in sorted(numbered) if n in common]
    table_order = [p.name for p in method.params if p.name in common]
    if live_order != table_order:
        found.add('%s: parameters are in the order %s on the host (ID '
                  'qualifiers), %s in the table (%s)' % (
                      name, ', '.join(live_order), ', '.join(table_order),
                      method.source))


def _check_properties(where, cls, table_class, found):
    props = cls.get('properties') or {}
    for name, kind in table_class.properties.items():
        there = props.get(name)
        if not isinstance(there, dict):
            found.add('%s.%s: property missing on the host' % (where, name))
        elif cim_type(there) != kind:
            found.add('%s.%s: property is %s on the host, %s in the table '
                      '(%s)' % (where, name, cim_type(there), kind,
                                table_class.source))


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
    try:
        if args.compare:
            with open(args.compare) as f:
                live = json.load(f)
        else:
            live = read_live()
            if args.dump:
                with open(args.dump, 'w') as f:
                    json.dump(live, f, indent=1, sort_keys=True)
        result = check(live)
    except (OSError, ValueError, subprocess.CalledProcessError) as e:
        out('nothing to compare: %s' % e)
        return 2
    out('%d difference(s) between this host and vtpm_hyperv.wmi_schema'
        % len(result.differences))
    for line in result.differences:
        out('  ' + line)
    for line in result.notes:
        out('note: ' + line)
    if args.exercise:
        exercise(args.key_protector, out=out)
    return 1 if result.differences else 0


if __name__ == '__main__':
    sys.exit(main())
