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
"""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from xml.etree import ElementTree

from os_win import exceptions as os_win_exc

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
            return props[name]
        if name.startswith('_'):
            raise AttributeError(name)
        handler = self._ns.method(self._class, name)
        if handler is None:
            raise AttributeError('%s has no property or method %s'
                                 % (self._class, name))
        return lambda *a, **kw: self._ns.invoke(self._class, name, self, a, kw)

    def __setattr__(self, name, value):
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
    """A failure planned for the ``at``-th call of a method (1-based)."""

    target: str
    return_code: int | None = None
    job_error: int | None = None
    description: str = 'simulated failure'
    at: int = 1
    times: int = 1
    seen: int = 0


class Namespace:
    """One WMI namespace of a host: classes, their instances and methods.

    Subclasses provide ``_instances(class_name)`` (a list of property
    dicts) and register method handlers with ``register``; a handler
    returns the out parameters (a dict) or raises ``MethodError``.
    """

    def __init__(self, host, name):
        self.host = host
        self.name = name
        self._methods = {}
        self._out_order = {}

    @property
    def host_name(self):
        return self.host.name

    # -- what a connection offers --------------------------------------------
    def register(self, class_name, method, handler, out=('ReturnValue',),
                 job=False):
        """``out`` is the order of the returned tuple; ``job`` marks methods
        that answer 4096 and report through a Msvm_ConcreteJob."""
        self._methods[(class_name, method)] = (handler, tuple(out), job)

    def method(self, class_name, method):
        return self._methods.get((class_name, method))

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
        handler, out, job = self._methods[(class_name, method)]
        target = '%s.%s' % (class_name, method)
        with self.host.lock:
            self.host.calls.append(target)
            fault = self.host.take_fault(target)
            try:
                if fault is not None:
                    code = fault.return_code or fault.job_error or FAILED
                    raise MethodError(code, fault.description,
                                      as_job=fault.job_error is not None)
                result = handler(instance, *args, **kwargs) or {}
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
            return tuple(result.get(name) for name in out)


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
        }


class WmiModule:
    """Stands in for the ``wmi`` module on the simulated hosts' behalf."""

    x_wmi = x_wmi
    __path__ = ['simulated-wmi']

    def __init__(self):
        self._hosts = {}
        self._lock = threading.Lock()

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
