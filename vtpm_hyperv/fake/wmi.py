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
PyMI binds and converts it (see that module): keyword arguments by name,
positional ones in PyMI's order; values converted as PyMI converts them
('2' to a uint16, 5 to a string, 'true' to a boolean). An undocumented
method, an unknown parameter or a value PyMI cannot convert raises
``x_wmi`` and changes nothing. A required input left unset reaches the
provider, as with PyMI, which refuses it (an inference) and counts it as
undocumented. ``STATS`` counts the calls validated and the undocumented
ones, for the conformance suite's report. Each host lists its round
trips (``FakeHyperVHost.round_trips``): every enumeration, query, method
call and job read, each a COM round trip to the WMI service on Windows.
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
        cls = wmi_schema.wmi_class(self._ns.name, self._class)
        if cls is not None and name in cls.properties:
            return None  # a documented property that holds no value: NULL
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
# PyLong_AsUnsignedLong (32 bits on Windows) for uint8 to uint32, then a C
# cast to the type; PyLong_AsUnsignedLongLong for uint64 (PyMI/Utils.cpp).
_C_LONG_BITS = {'uint8': 32, 'uint16': 32, 'uint32': 32, 'uint64': 64}
# PyMI's _unwrap_element: the strings a boolean input reads as true.
_TRUE_WORDS = ('true', 'yes', '1')


class _Unconvertible(Exception):
    """PyMI cannot convert the value (MI::TypeConversionException, or a
    Python error in ``_unwrap_element``)."""


def _item(cim_type, value):
    """One value as PyMI converts it for ``cim_type`` (not an array)."""
    if cim_type == 'boolean':
        if isinstance(value, str):  # wmi._unwrap_element, before Py2MI
            return value.lower() in _TRUE_WORDS
        if type(value) is bool:
            return value
        if isinstance(value, int):  # Py2MI: PyLong_AsLong(v) != 0
            return value != 0
        raise _Unconvertible()
    if type(value) is bool:
        # Py2MI makes any bool an MI boolean, which an element of another
        # type does not take.
        raise _Unconvertible()
    if cim_type in _UINT_BITS:
        if isinstance(value, str):
            try:  # PyLong_FromString(s, NULL, 10)
                value = int(value, 10)
            except ValueError:
                raise _Unconvertible() from None
        if not isinstance(value, int) or not (
                0 <= value < 2 ** _C_LONG_BITS[cim_type]):
            raise _Unconvertible()  # OverflowError, or no conversion
        return value & (2 ** _UINT_BITS[cim_type] - 1)  # the C cast
    if cim_type == 'string':
        if isinstance(value, (list, tuple)):
            raise _Unconvertible()
        return value if isinstance(value, str) else str(value)
    if cim_type == 'datetime':
        # Py2MI converts no Python value to MI_DATETIME; only None (unset).
        raise _Unconvertible()
    # An embedded instance (_unwrap_element reads value._instance).
    if isinstance(value, Instance) and value.class_name in (
            cim_type, *_SUBCLASSES.get(cim_type, ())):
        return value
    raise _Unconvertible()


# Msps_PDK derives from Msps_ProvisioningFile (msps-pdk).
_SUBCLASSES = {'Msps_ProvisioningFile': ('Msps_PDK',)}


def check_value(method, param, value):
    """What PyMI hands the provider for ``value``; refuses what it cannot
    convert. None stays None: PyMI leaves that input unset."""
    if value is None:
        return None
    try:
        if param.is_array:
            if isinstance(value, Instance):
                raise _Unconvertible()
            items = tuple(_item(param.item_type, v) for v in value)
            return bytes(items) if param.cim_type == 'uint8[]' else items
        return _item(param.cim_type, value)
    except (_Unconvertible, TypeError):
        raise _refuse(WrongType, '%s: %s is documented as %s; PyMI cannot '
                      'convert a %s to it' % (
                          method.target, param.name, param.cim_type,
                          type(value).__name__)) from None


def bind(method, args, kwargs):
    """The in-parameters by name, as PyMI binds ``args`` and ``kwargs``.

    An unset input is None, as PyMI passes it (it checks nothing); a
    required one missing is counted as undocumented (``missing``).
    """
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


def missing(method, inputs):
    """The required inputs a bound call leaves unset."""
    return [p.name for p in method.inputs
            if p.required and inputs.get(p.name) is None]


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
        self.host.round_trip(class_name)
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
        self.host.round_trip(class_name)
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

    # How the provider reports a failure: Hyper-V's (Msvm_*) return a
    # value their page lists; the HGS client's pages list none, so a failure
    # there is an MI error, which PyMI raises as x_wmi (``MiErrors``).
    mi_errors = False

    def invoke(self, class_name, method, instance, args, kwargs):
        handler, documented = self._methods[(class_name, method)]
        target = documented.target
        self.host.round_trip(target)
        inputs = bind(documented, args, kwargs)
        absent = missing(documented, inputs)
        if absent:
            # PyMI sends the call without them; Microsoft documents no such
            # call, so it counts as undocumented, and the provider refuses
            # it (an inference: no page says how).
            _refuse(x_wmi, '%s: the required input %s is missing' % (
                target, ', '.join(absent)))
        else:
            STATS['validated'] += 1
        job = documented.job
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
                if absent:
                    raise MethodError(invalid_parameter(documented), (
                        'The required input %s is missing.')
                        % ', '.join(absent))
                result = handler(instance, **inputs) or {}
                if fault is not None:  # applied, then reported failed
                    if fault.return_code is None and fault.job_error is None:
                        raise x_wmi('%s: %s' % (target, fault.description))
                    raise _fault_error(fault)
                code, description, as_job = OK, None, False
                code = result.pop('ReturnValue', OK)
            except MethodError as e:
                if self.mi_errors:
                    raise MiError(target, e.description) from None
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


def invalid_parameter(method):
    """A provider's answer to an input it cannot use: the value the
    method's page calls "Invalid parameter" (32773; ModifySecuritySettings
    lists DMTF's 4)."""
    for code, words in method.return_codes.items():
        if words.lower() == 'invalid parameter':
            return code
    return INVALID_PARAMETER


class ComError(Exception):
    """PyMI's ``wmi.com_error``, which its ``x_wmi`` carries for an MI
    error: ``hresult``, ``strerror``, ``excepinfo``, ``argerror``."""

    def __init__(self, hresult, strerror):
        super().__init__(strerror)
        self.hresult = hresult
        self.strerror = strerror
        self.excepinfo = (0, None, strerror, None, None, hresult)
        self.argerror = None


# MI_RESULT_FAILED as an HRESULT (WBEM_E_FAILED), which a CIM provider's
# generic failure carries (an inference: the HGS pages list no errors).
WBEM_E_FAILED = -2147217407


def MiError(target, description):  # noqa: N802 - an exception factory
    """What PyMI raises for an MI error of ``target`` (``mi_to_wmi_exception``
    in wmi/__init__.py: ``x_wmi(message, com_error(...))``)."""
    message = '%s: %s' % (target, description)
    return x_wmi(message, ComError(WBEM_E_FAILED, message))


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
    """What os-win holds for a namespace the host lacks (a Windows feature
    not installed), where on Windows its connection would have failed.

    On Windows os-win opens ``Root/Microsoft/Windows/Hgs`` when
    ``HostUtils10._conn_hgs`` is first read and raises ``OSWinException``
    ("Namespace ... is not supported on this Windows version.") when it
    cannot (os-win 5.9.0, utils/hostutils10.py). os-win opens no WMI
    connection off Windows, so the simulator hands it this object instead,
    which raises the same exception as soon as it is used.
    """

    def __init__(self, name, host_name):
        self._name = name
        self._host_name = host_name

    def _fail(self):
        return os_win_exc.OSWinException(
            'Namespace //%s/%s is not supported on this Windows version.'
            % (self._host_name, self._name))

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        raise self._fail()

    def query(self, wql):
        raise self._fail()


# CIM_ConcreteJob.JobState values (msvm-concretejob.md) the simulator uses.
JOB_STARTING = 3


class Job:
    """An asynchronous Msvm_ConcreteJob; it completes after ``polls`` reads.

    It is Starting (3) on its first read and Running (4) on the others
    until it is done, then Completed (7), or Exception (10) with its
    ErrorCode. Its OperationalStatus is OK (2) but for a failed job, Error
    (6); GetErrorEx gives an Msvm_Error for the failure, in CIM-XML.
    DetailedStatus is a uint16 that "A Null value indicates ... is not
    implemented": the simulator gives None.
    """

    def __init__(self, host, target, code, description, polls):
        self.instance_id = str(uuid.uuid4()).upper()
        self.target = target
        self.code = code
        self.description = description
        self.remaining = polls
        self.reads = 0

    @property
    def failed(self):
        return self.remaining <= 0 and self.code != OK

    def props(self):
        done = self.remaining <= 0
        failed = self.failed
        state = (JOB_EXCEPTION if failed else JOB_COMPLETED if done
                 else JOB_STARTING if self.reads == 0 else JOB_RUNNING)
        return {
            'InstanceID': self.instance_id,
            'Description': self.target,
            'ElementName': self.target,
            'JobState': state,
            'JobStatus': 'Exception' if failed else 'OK',
            'ErrorCode': self.code if done else 0,
            'ErrorDescription': self.description if failed else None,
            'ErrorSummaryDescription': self.description if failed else None,
            'PercentComplete': 100 if done else 50,
            'Cancellable': False,
            # os-win logs these (msvm-concretejob.md lists them).
            'ElapsedTime': '00000000000000.000000:000',
            'JobType': 0,
            'Owner': 'simulated',
            'StatusDescriptions': [self.description if failed else 'OK'],
            'OperationalStatus': [6 if failed else 2],
            'DetailedStatus': None,
            'TimeSubmitted': '20260101000000.000000+000',
            'UntilTime': '99991231235959.999999+999',
            'TimeOfLastStateChange': '20260101000000.000000+000',
            'LocalOrUtcTime': 2,
        }

    def errors(self):
        """GetErrorEx's Errors: "If the operational status of the job is
        not 2 (OK), ... one or more embedded instances of the Msvm_Error
        class, in CIM-XML format ...; If the operational status of the job
        is 2 (OK), then Null is returned" (geterrorex-msvm-concretejob.md).
        """
        if not self.failed:
            return None
        return [to_cim_xml('Msvm_Error', {'Message': self.description})]


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
