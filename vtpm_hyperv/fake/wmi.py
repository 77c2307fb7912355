# SPDX-License-Identifier: Apache-2.0
"""A small WMI object model: namespaces, classes, instances, queries, jobs.

It answers the way the Python ``wmi``/PyMI modules do for the calls os-win
makes: ``conn.Class(**filters)`` and ``conn.query(wql)`` return lists of
instances; ``conn.Class.Method(...)`` and ``instance.Method(...)`` return a
tuple of out parameters; ``instance.path_()`` and ``instance.GetText_(1)``
give the object path and its embedded-instance text (CIM-XML). Instances
handed out are copies: changing one changes nothing until a method that
takes it is called, as on Windows.

``WmiModule`` stands in for the ``wmi`` module that
``os_win.utils.baseutils`` imports on Windows; it resolves monikers
(namespaces and object paths, such as a job's) to the simulated hosts.

Every method call is checked against ``vtpm_hyperv.wmi_schema`` the way
PyMI binds it (see that module): keyword arguments by name, positional ones
in PyMI's order; an undocumented method, an unknown parameter, a value of
the wrong CIM type or a missing required input raises ``x_wmi`` and changes
nothing. ``STATS`` counts the calls validated and the undocumented ones
refused, for the conformance suite's report.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import threading
import time
import uuid
from xml.etree import ElementTree

from os_win import exceptions as os_win_exc

from vtpm_hyperv import wmi_schema

# Hyper-V's method return codes (Msvm_SecurityService and friends).
OK = 0
JOB_STARTED = 4096
FAILED = 32768
ACCESS_DENIED = 32769
NOT_SUPPORTED = 32770
UNKNOWN = 32771
TIMEOUT = 32772
INVALID_PARAMETER = 32773
IN_USE = 32774
INVALID_STATE = 32775
INCORRECT_TYPE = 32776
NOT_AVAILABLE = 32777
OUT_OF_MEMORY = 32778

# CIM_ConcreteJob.JobState values os-win reads.
JOB_RUNNING = 4
JOB_COMPLETED = 7
JOB_EXCEPTION = 10

x_wmi = os_win_exc.x_wmi

# 'validated': calls that matched the documented signature; 'undocumented':
# calls of methods, parameters or types Microsoft does not document.
STATS: collections.Counter = collections.Counter()
UNDOCUMENTED: list[str] = []  # what was asked for, newest last


class WrongType(x_wmi, TypeError):
    """A value that is not of the documented CIM type.

    PyMI's converter raises TypeError for such a value (PyMI/Utils.cpp,
    ``Py2MI``; a str given for an embedded instance fails in
    ``wmi._unwrap_element``); either way nothing reaches the provider.
    """


def _refuse(cls, message):
    STATS['undocumented'] += 1
    UNDOCUMENTED.append(message)
    return cls(message)


class MethodError(Exception):
    """Raised by a method handler: fail with ``code`` (and a job error)."""

    def __init__(self, code, description, as_job=False):
        super().__init__(description)
        self.code = code
        self.description = description
        self.as_job = as_job


class Instance:
    """One WMI instance (a copy: setting a property changes only the copy)."""

    def __init__(self, namespace, class_name, props, key='InstanceID'):
        object.__setattr__(self, '_ns', namespace)
        object.__setattr__(self, '_class', class_name)
        object.__setattr__(self, '_props', dict(props))
        object.__setattr__(self, '_key', key)

    def __getattr__(self, name):
        props = self.__dict__['_props']
        if name in props:
            return typed(props[name], self._property_type(name))
        if name.startswith('_'):
            raise AttributeError(name)
        if self._ns.method(self._class, name) is None:
            raise AttributeError('%s has no property or method %s'
                                 % (self._class, name))
        return lambda *a, **kw: self._ns.invoke(self._class, name, self, a, kw)

    def _property_type(self, name):
        cls = wmi_schema.wmi_class(self._ns.name, self._class)
        return cls.properties.get(name) if cls else None

    def __setattr__(self, name, value):
        cls = wmi_schema.wmi_class(self._ns.name, self._class)
        if cls is not None and name not in cls.properties:
            # PyMI: _Instance.__setattr__ reads the element first.
            raise _refuse(x_wmi, '%s has no property %s'
                          % (self._class, name))
        self._props[name] = value

    def __repr__(self):
        return '<%s %s>' % (self._class, self._props.get(self._key))

    def __eq__(self, other):
        return isinstance(other, Instance) and self.path_() == other.path_()

    def __hash__(self):
        return hash(self.path_())

    @property
    def Path_(self):  # noqa: N802 - the wmi module's spelling
        return self.path_()

    def path_(self):
        return '\\\\%s\\%s:%s.%s="%s"' % (
            self._ns.host_name, self._ns.name.replace('/', '\\'),
            self._class, self._key, self._props.get(self._key))

    def GetText_(self, fmt=1):  # noqa: N802 - the wmi module's spelling
        return to_cim_xml(self._class, self._props)

    def properties(self):
        return dict(self._props)

    @property
    def class_name(self):
        return self._class


def typed(value, cim_type):
    """A value as PyMI returns it: arrays as tuples, uint8[] as ints."""
    if value is None or cim_type is None:
        return value
    if cim_type == 'uint8[]':
        return tuple(bytes(value))
    if cim_type.endswith('[]'):
        return tuple(value)
    return value


_UINT_BITS = {'uint8': 8, 'uint16': 16, 'uint32': 32, 'uint64': 64}
_BYTES = (bytes, bytearray, memoryview)


def _conforms(value, cim_type):
    """Whether ``value`` converts to ``cim_type`` (one item of an array)."""
    if cim_type in _UINT_BITS:
        return (type(value) is int
                and 0 <= value < 2 ** _UINT_BITS[cim_type])
    if cim_type == 'boolean':
        return type(value) is bool
    if cim_type in ('string', 'datetime'):
        return isinstance(value, str)
    # An embedded instance of that class (or of a subclass the page names).
    return isinstance(value, Instance) and value.class_name in (
        cim_type, *_SUBCLASSES.get(cim_type, ()))


# Msps_PDK derives from Msps_ProvisioningFile (msps-pdk).
_SUBCLASSES = {'Msps_ProvisioningFile': ('Msps_PDK',)}


def check_value(method, param, value):
    """Refuse a value PyMI would not convert to the documented type."""
    if value is None:
        if param.required:
            raise _refuse(x_wmi, '%s: the required input %s is missing'
                          % (method.target, param.name))
        return None
    if param.cim_type == 'uint8[]' and isinstance(value, _BYTES):
        return bytes(value)
    if param.is_array:
        if isinstance(value, (str,) + _BYTES) or not isinstance(
                value, (list, tuple)):
            raise _refuse(WrongType, '%s: %s is a %s array, not a %s' % (
                method.target, param.name, param.item_type,
                type(value).__name__))
        items = tuple(value)
    else:
        items = (value,)
    for item in items:
        if not _conforms(item, param.item_type):
            raise _refuse(WrongType, '%s: %s is documented as %s, not %s' % (
                method.target, param.name, param.cim_type,
                type(item).__name__))
    if param.cim_type == 'uint8[]':
        return bytes(items)
    return items if param.is_array else value


def bind(method, args, kwargs):
    """The in-parameters by name, as PyMI binds ``args`` and ``kwargs``."""
    inputs = {p.name: p for p in method.inputs}
    order = method.positional_order
    if len(args) > len(order):
        raise _refuse(x_wmi, '%s takes %d inputs, %d given' % (
            method.target, len(order), len(args)))
    given = dict(zip((p.name for p in order), args))
    for name, value in kwargs.items():
        if name not in inputs:
            raise _refuse(x_wmi, '%s has no parameter %s (documented: %s)' % (
                method.target, name, ', '.join(inputs)))
        given[name] = value
    return {name: check_value(method, param, given.get(name))
            for name, param in inputs.items()}


def to_cim_xml(class_name, props):
    root = ElementTree.Element('INSTANCE', CLASSNAME=class_name)
    for name, value in props.items():
        if isinstance(value, bool):
            el = ElementTree.SubElement(root, 'PROPERTY', NAME=name,
                                        TYPE='boolean')
            ElementTree.SubElement(el, 'VALUE').text = (
                'TRUE' if value else 'FALSE')
        elif isinstance(value, int):
            el = ElementTree.SubElement(root, 'PROPERTY', NAME=name,
                                        TYPE='uint32')
            ElementTree.SubElement(el, 'VALUE').text = str(value)
        elif isinstance(value, str):
            el = ElementTree.SubElement(root, 'PROPERTY', NAME=name,
                                        TYPE='string')
            ElementTree.SubElement(el, 'VALUE').text = value
        # Arrays and embedded objects are not part of the settings we echo.
    return ElementTree.tostring(root, encoding='unicode')


def from_cim_xml(text):
    """Parse an embedded instance; returns (class name, properties).

    :raises MethodError: INVALID_PARAMETER for anything unreadable.
    """
    try:
        root = ElementTree.fromstring(text)
    except (ElementTree.ParseError, TypeError) as e:
        raise MethodError(INVALID_PARAMETER,
                          'the embedded instance is not CIM-XML') from e
    props = {}
    for el in root.findall('PROPERTY'):
        value = el.findtext('VALUE')
        kind = el.get('TYPE')
        if kind == 'boolean':
            value = value == 'TRUE'
        elif kind == 'uint32' and value is not None:
            value = int(value)
        props[el.get('NAME')] = value
    return root.get('CLASSNAME'), props


class WmiClass:
    """``conn.ClassName``: call it to enumerate, or call its static methods."""

    def __init__(self, namespace, name):
        self._ns = namespace
        self._name = name

    def __call__(self, **filters):
        return self._ns.instances(self._name, filters)

    def new(self):
        return Instance(self._ns, self._name, {'InstanceID': None})

    def __getattr__(self, method):
        if method.startswith('_') or self._ns.method(self._name,
                                                     method) is None:
            raise AttributeError('%s has no static method %s'
                                 % (self._name, method))
        return lambda *a, **kw: self._ns.invoke(self._name, method, None,
                                                a, kw)

    def watch_for(self, *args, **kwargs):
        raise x_wmi('event watching is not simulated')


_WQL = re.compile(
    r"\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<cls>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?\s*\Z", re.I | re.S)
_COND = re.compile(r"\s*(\w+)\s*(=|LIKE)\s*'((?:[^']|'')*)'\s*\Z", re.I)


def _matches(props, where):
    if not where:
        return True
    for clause in re.split(r'\s+AND\s+', where, flags=re.I):
        m = _COND.match(clause)
        if not m:
            raise x_wmi('unsupported WQL condition: %s' % clause)
        name, op, value = m.group(1), m.group(2).upper(), m.group(3)
        actual = props.get(name)
        if actual is None:
            return False
        actual = str(actual)
        if op == '=':
            if actual.lower() != value.lower():
                return False
        else:
            pattern = '^' + '.*'.join(
                re.escape(p) for p in value.split('%')) + r'\Z'
            if not re.match(pattern, actual, re.I | re.S):
                return False
    return True


@dataclasses.dataclass
class Fault:
    """A failure planned for the ``at``-th call of a method (1-based).

    ``mode``: 'raise' (the call raises x_wmi, nothing happens), 'return'
    (it answers ``return_code``, nothing happens), 'job' (it starts a job
    that ends in ``job_error``, nothing happens), or 'applied' (the call
    takes effect, then reports ``return_code``/``job_error``, or raises
    when neither is given: a time-out after the provider acted).
    """

    target: str
    return_code: int | None = None
    job_error: int | None = None
    description: str = 'simulated failure'
    at: int = 1
    times: int = 1
    seen: int = 0
    mode: str = 'return'


class Namespace:
    """One WMI namespace of a host: classes, their instances and methods.

    Subclasses provide ``_instances(class_name)`` (a list of property
    dicts) and register a handler per documented method; a handler gets
    the instance it is called on (None for a static method) and the
    validated inputs by name, and returns its out parameters (a dict) or
    raises ``MethodError``.
    """

    def __init__(self, host, name):
        self.host = host
        self.name = name
        self._methods = {}

    @property
    def host_name(self):
        return self.host.name

    # -- what a connection offers --------------------------------------------
    def register(self, class_name, method, handler):
        documented = wmi_schema.method(self.name, class_name, method)
        if documented is None:
            raise ValueError('%s.%s is not in vtpm_hyperv.wmi_schema'
                             % (class_name, method))
        self._methods[(class_name, method)] = (handler, documented)

    def method(self, class_name, method):
        found = self._methods.get((class_name, method))
        if found is None and not method.startswith('_'):
            UNDOCUMENTED.append('%s.%s' % (class_name, method))
            STATS['undocumented'] += 1
        return found

    def instances(self, class_name, filters):
        self.host.check_fault(class_name, query=True)
        key = self.key_of(class_name)
        found = []
        with self.host.lock:  # computes may query from several threads
            rows = self._instances(class_name)
        for props in rows:
            if all(str(props.get(k)).lower() == str(v).lower()
                   if isinstance(v, str) else props.get(k) == v
                   for k, v in filters.items()):
                found.append(Instance(self, class_name, props, key))
        return found

    def query(self, wql):
        m = _WQL.match(wql)
        if not m:
            raise x_wmi('unsupported WQL: %s' % wql)
        class_name = m.group('cls')
        self.host.check_fault(class_name, query=True)
        key = self.key_of(class_name)
        with self.host.lock:
            rows = self._instances(class_name)
        return [Instance(self, class_name, props, key)
                for props in rows if _matches(props, m.group('where'))]

    def key_of(self, class_name):
        return 'InstanceID'

    def _instances(self, class_name):
        return []

    def invoke(self, class_name, method, instance, args, kwargs):
        handler, documented = self._methods[(class_name, method)]
        target = documented.target
        inputs = bind(documented, args, kwargs)
        STATS['validated'] += 1
        job = any(p.cim_type == 'REF CIM_ConcreteJob'
                  for p in documented.outputs)
        if self.host.latency:
            time.sleep(self.host.latency)  # a WMI round trip, lock not held
        with self.host.lock:
            self.host.calls.append(target)
            fault = self.host.take_fault(target)
            if fault is not None and fault.mode == 'raise':
                raise x_wmi('%s: %s' % (target, fault.description))
            try:
                if fault is not None and fault.mode != 'applied':
                    raise _fault_error(fault)
                result = handler(instance, **inputs) or {}
                if fault is not None:  # applied, then reported failed
                    if fault.return_code is None and fault.job_error is None:
                        raise x_wmi('%s: %s' % (target, fault.description))
                    raise _fault_error(fault)
                code, description, as_job = OK, None, False
            except MethodError as e:
                result, code, description = {}, e.code, e.description
                as_job = e.as_job and job
            if job and self.host.async_jobs and (code == OK or as_job):
                result['Job'] = self.host.new_job(target, code, description)
                code = JOB_STARTED
            elif job:
                result['Job'] = None
            result['ReturnValue'] = code
            types = {p.name: p.cim_type for p in documented.outputs}
            return tuple(typed(result.get(name), types.get(name))
                         for name in documented.result_order)


def _fault_error(fault):
    code = fault.job_error or fault.return_code or FAILED
    return MethodError(code, fault.description,
                       as_job=fault.job_error is not None)


class Connection:
    """What ``wmi.WMI(moniker=namespace)`` returns."""

    def __init__(self, namespace):
        self._ns = namespace

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        return WmiClass(self._ns, name)

    def query(self, wql):
        return self._ns.query(wql)

    def __repr__(self):
        return '<simulated WMI %s on %s>' % (self._ns.name, self._ns.host_name)


class MissingNamespace:
    """A namespace the host lacks (a Windows feature not installed)."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        raise x_wmi('Invalid namespace %s' % self._name)

    def query(self, wql):
        raise x_wmi('Invalid namespace %s' % self._name)


class Job:
    """An asynchronous Msvm_ConcreteJob; it completes after ``polls`` reads."""

    def __init__(self, host, target, code, description, polls):
        self.instance_id = str(uuid.uuid4()).upper()
        self.target = target
        self.code = code
        self.description = description
        self.remaining = polls

    def props(self):
        done = self.remaining <= 0
        failed = self.code != OK
        state = (JOB_RUNNING if not done
                 else JOB_EXCEPTION if failed else JOB_COMPLETED)
        return {
            'InstanceID': self.instance_id,
            'Description': self.target,
            'ElementName': self.target,
            'JobState': state,
            'JobStatus': 'Exception' if done and failed else 'OK',
            'ErrorCode': self.code if done else 0,
            'ErrorDescription': self.description if done and failed else None,
            'ErrorSummaryDescription': (self.description if done and failed
                                        else None),
            'PercentComplete': 100 if done else 50,
            'Cancellable': False,
            # os-win logs these (msvm-concretejob.md lists them).
            'ElapsedTime': '00000000000000.000000:000',
            'JobType': 0,
            'Owner': 'simulated',
            'StatusDescriptions': [self.description or 'OK'],
            'OperationalStatus': [2 if not (done and failed) else 6],
            'DetailedStatus': self.description or 'OK',
            'TimeSubmitted': '20260101000000.000000+000',
            'UntilTime': '99991231235959.999999+999',
            'TimeOfLastStateChange': '20260101000000.000000+000',
            'LocalOrUtcTime': 2,
        }


class WmiModule:
    """Stands in for the ``wmi`` module on the simulated hosts' behalf."""

    x_wmi = x_wmi
    __path__ = ['simulated-wmi']

    def __init__(self):
        self._hosts = {}
        self._lock = threading.Lock()
        # the Windows version of the hosts made while this is installed
        # (vtpm_hyperv.fake.host._one_windows_version)
        self.windows_version = None

    def register(self, host):
        with self._lock:
            self._hosts[host.name.lower()] = host
            self._hosts.setdefault('.', host)

    def unregister(self, host):
        with self._lock:
            for key in [k for k, v in self._hosts.items() if v is host]:
                del self._hosts[key]
            if '.' not in self._hosts and self._hosts:
                self._hosts['.'] = next(iter(self._hosts.values()))

    def WMI(self, moniker=None, **kwargs):  # noqa: N802 - wmi's spelling
        moniker = (moniker or '//./root/cimv2').replace('\\', '/')
        m = re.match(r'(?://([^/]+)/)?([^:]+?)(?::(\w+)\.(\w+)="([^"]*)")?\Z',
                     moniker)
        if not m:
            raise x_wmi('bad moniker %s' % moniker)
        host_name, ns_name, cls, key, value = m.groups()
        host = self._hosts.get((host_name or '.').lower())
        if host is None:
            raise x_wmi('no simulated host %s' % host_name)
        namespace = host.namespace(ns_name)
        if cls is None:
            return Connection(namespace)
        if cls == 'Msvm_ConcreteJob':
            # Job ids are UUIDs: find the job even if a newer simulated
            # host took over this host's name.
            for candidate in [host] + list(self._hosts.values()):
                if candidate.has_job(value):
                    return candidate.read_job(namespace, value)
            raise x_wmi('not found: %s' % moniker)
        found = namespace.instances(cls, {key: value})
        if not found:
            raise x_wmi('not found: %s' % moniker)
        return found[0]
