# SPDX-License-Identifier: Apache-2.0
"""What the distribution declares matches what its code imports and CI tests.

Each package's imports at module level are declared in ``install_requires``
or in its own extra; an import made inside a function (the way an optional
command loads its client) in some extra; what the tests, benchmarks and
demo import in ``test``. A runtime extra declares nothing its package does
not import, so no tool rides along with it. The Python classifiers are the
Pythons CI runs.
"""

import ast
import configparser
import hashlib
import importlib.metadata
import pathlib
import re
import sys

from packaging import requirements
from packaging import utils
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
OURS = {'vtpm_core', 'vtpm_cli', 'vtpm_filters', 'vtpm_hyperv', 'tests',
        'tools', 'benchmarks'}
# package, or a module of it installed elsewhere -> the extra that installs
# it (vtpm_core needs none): vtpm-check's reader of nova's databases runs
# where nova-scheduler's extra is installed, vtpm-hyperv-check on a compute
# host
EXTRA_OF = {'vtpm_core': None, 'vtpm_cli': 'audit',
            'vtpm_cli/novadb.py': 'filters', 'vtpm_cli/osc.py': 'osc',
            'vtpm_cli/status.py': 'filters',
            'vtpm_cli/hyperv_check.py': 'hyperv',
            'vtpm_filters': 'filters', 'vtpm_hyperv': 'hyperv'}
# declared for a dependency's sake, not imported by us
FOR_A_DEPENDENCY = {
    'setuptools': "os-win imports pkg_resources and does not declare it",
    'python-openstackclient': 'the openstack command, which loads '
                              'vtpm_cli.osc as its plugin',
    # the compute-hyperv extra: compute-hyperv is installed beside nova
    # without its dependencies (doc/source/install.rst)
    'six': 'compute-hyperv 16.0.0 imports it',
    'tooz': 'compute-hyperv 16.0.0 imports it',
}
# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt
APACHE_2 = 'cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30'


def _setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(ROOT / 'setup.cfg')
    return parser


def _names(value):
    """The normalized distribution names of a requirement list."""
    return {utils.canonicalize_name(requirements.Requirement(line).name)
            for line in value.splitlines() if line.strip()}


def _declared():
    cfg = _setup_cfg()
    extras = {name: _names(value)
              for name, value in cfg['options.extras_require'].items()}
    return _names(cfg['options']['install_requires']), extras


def _imports(paths):
    """distribution -> the files that import it, as (top level, lazy)."""
    by_module = importlib.metadata.packages_distributions()
    found = {}
    for path in paths:
        tree = ast.parse(path.read_text())
        top_level = set(tree.body)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                name = module.split('.')[0]
                if name in sys.stdlib_module_names or name in OURS | {
                        '__future__'}:
                    continue
                for dist in by_module.get(name, [name]):
                    found.setdefault(utils.canonicalize_name(dist), set()).add(
                        (path.relative_to(ROOT).as_posix(),
                         node in top_level))
    return found


def _python_files(*parts):
    return [path for part in parts for path in
            ([ROOT / part] if part.endswith('.py')
             else sorted((ROOT / part).rglob('*.py')))]


def _files_of(part):
    """The files of an EXTRA_OF entry, less those of a narrower one."""
    narrower = {ROOT / p for p in EXTRA_OF if p != part and p.startswith(
        part + '/')}
    return [p for p in _python_files(part) if p not in narrower]


@pytest.mark.parametrize('package', sorted(EXTRA_OF))
def test_every_import_of_a_package_is_declared_where_it_is_installed(
        package):
    base, extras = _declared()
    own = base | extras.get(EXTRA_OF[package], set())
    anywhere = base.union(*extras.values())

    missing = sorted(
        '%s (%s%s)' % (dist, where, '' if top else ', inside a function')
        for dist, seen in _imports(_files_of(package)).items()
        for where, top in seen
        if dist not in (own if top else anywhere))

    assert missing == []


def test_every_import_of_the_tests_demo_and_benchmarks_is_in_test():
    base, extras = _declared()

    missing = sorted(dist for dist in _imports(_python_files(
        'tests', 'benchmarks', 'tools/demo.py', 'doc/source/conf.py'))
        if dist not in base | extras['test'])

    assert missing == []


def test_a_runtime_extra_declares_only_what_its_code_imports():
    base, extras = _declared()
    imported = set(_imports(_python_files(*EXTRA_OF)))

    unused = sorted(
        '%s: %s' % (extra or 'install_requires', dist)
        for extra, names in [(None, base)] + [
            (e, n) for e, n in extras.items() if e != 'test']
        for dist in names
        if dist not in imported and dist not in FOR_A_DEPENDENCY)

    assert unused == []


def test_the_test_extra_holds_every_runtime_extra():
    _, extras = _declared()
    runtime = set().union(*(n for e, n in extras.items() if e != 'test'))

    assert sorted(runtime - extras['test']) == []


def _tox():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / 'tox.ini')
    return parser


def test_the_python_classifiers_are_the_pythons_ci_runs():
    cfg = _setup_cfg()
    claimed = re.findall(r'Programming Language :: Python :: (3\.\d+)$',
                         cfg['metadata']['classifier'], re.M)
    # run.py runs the tests that need no service on nova 27 with the oldest
    # Python (tox -e nova27), every test on python3 (the oldest run.py
    # accepts), those that need no service on the others (tox -e
    # py312,py313)
    oldest = cfg['options']['python_requires'].removeprefix('>=')
    run_py = (ROOT / 'run.py').read_text()
    nova27 = re.search(r"^OLDEST_NOVA = '([^']*)'", run_py, re.M)[1]
    python3 = re.search(r'sys.version_info < \(3, (\d+)\)', run_py)[1]
    others = re.search(r"^OTHER_PYTHONS = '([^']*)'", run_py, re.M)[1]

    assert _tox()['testenv:' + nova27]['basepython'] == 'python' + oldest
    assert claimed == [oldest, '3.' + python3] + [
        '3.' + env.removeprefix('py3') for env in others.split(',')]


def _nova27_pins():
    pins = {}
    for line in (ROOT / 'tools/nova27/constraints.txt').read_text(
            ).splitlines():
        if line.strip() and not line.startswith('#'):
            req = requirements.Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == '==='
            pins.setdefault(utils.canonicalize_name(req.name), spec.version)
    return pins


def test_every_floor_is_the_version_the_nova27_job_installs():
    """Each floor of setup.cfg is tested: tox -e nova27 installs exactly
    it, from 2023.1's upper-constraints (tools/nova27/constraints.txt)."""
    cfg = _setup_cfg()
    pins = _nova27_pins()
    lists = [cfg['options']['install_requires']] + list(
        cfg['options.extras_require'].values())
    floors = {}
    for line in '\n'.join(lists).splitlines():
        if line.strip() and not line.strip().startswith('#'):
            req = requirements.Requirement(line)
            for spec in req.specifier:
                if spec.operator == '>=':
                    floors[utils.canonicalize_name(req.name)] = spec.version

    assert floors and {name: pins.get(name) for name in floors} == floors
    assert '-c{toxinidir}/tools/nova27/constraints.txt' in \
        _tox()['testenv:nova27']['install_command']


def test_the_nova27_pins_are_2023_1_s_upper_constraints_and_nova_27():
    pins = _nova27_pins()

    assert pins['nova'].startswith('27.')
    # libraries of the 2023.1 series, as its upper-constraints pin them
    assert (pins['oslo-utils'], pins['cryptography'], pins['urllib3'],
            pins['python-barbicanclient'], pins['openstacksdk']) == (
        '6.1.0', '38.0.2', '1.26.12', '5.5.0', '1.0.2')


def test_the_license_file_is_the_apache_2_text_setup_cfg_names():
    cfg = _setup_cfg()

    assert cfg['metadata']['license'] == 'Apache-2.0'
    assert cfg['metadata']['license_files'] == 'LICENSE'
    assert hashlib.sha256((ROOT / 'LICENSE').read_bytes()).hexdigest() == \
        APACHE_2
