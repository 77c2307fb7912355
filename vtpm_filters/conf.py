# SPDX-License-Identifier: Apache-2.0
"""``[vtpm_filter]`` options of the scheduler filter.

Registered on the conf the filter is given (nova's ``CONF``), never at
import; ``list_opts`` feeds ``oslo-config-generator --namespace vtpm_filters``.
"""

import copy

from oslo_config import cfg

GROUP = 'vtpm_filter'

OPTS = [
    cfg.IntOpt(
        'max_report_age',
        default=600,
        min=1,
        help='Maximum age, in seconds, of a host\'s vTPM capability report '
             '(its measured_at) for a request that needs an HGS KeyProtector '
             '(os_vtpm_keys or os_shielded_vm=required) or for a move of an '
             'instance that has one. An older report means the scheduler '
             'cannot tell whether the host still passes attestation, so the '
             'host is refused, unless nova sees its compute up and the '
             'report is younger than this plus 1800 s: a compute measures '
             'with nova\'s [DEFAULT] update_resources_interval periodic '
             'task (60 s by default) and publishes its report when it '
             'changes, and an unchanged one every 1800 s '
             '(vtpm_core.capabilities.REPUBLISH_INTERVAL), so that an idle '
             'compute writes nothing to the database. nova\'s '
             'ComputeFilter tells whether the compute is up; without it in '
             'enabled_filters the filter asks nova\'s servicegroup API '
             'itself. The default allows ten missed updates of a changed '
             'report. See also max_clock_skew, for reports dated in the '
             'future.'),
    cfg.IntOpt(
        'max_clock_skew',
        default=60,
        min=0,
        help='How many seconds a host\'s vTPM capability report (its '
             'measured_at) may lie in the future of the scheduler\'s clock '
             'and still count as fresh, for the requests that '
             'max_report_age applies to. A report from further ahead comes '
             'from a host whose clock is wrong; it would stay fresh until '
             'its date had passed, switching max_report_age off for that '
             'host, so the host is refused. Hosts and schedulers kept in '
             'time by NTP or the Windows Time service differ by well under '
             'a second; the default allows for a clock that drifts between '
             'synchronisations and is small next to max_report_age (600 s '
             'by default), so a report is never taken as fresh for more '
             'than max_report_age plus this.'),
    cfg.BoolOpt(
        'image_lookup',
        default=True,
        help='Read os_vtpm, os_vtpm_keys and os_shielded_vm from Glance '
             'when the request spec does not settle what a host needs '
             '(nova drops these properties from it): only for an image '
             'whose hw_machine_type is hyperv-gen2, under a flavor without '
             'os:vtpm=disabled, at most once per image per '
             'image_cache_ttl. When off, the filter decides on the flavor\'s '
             'os:vtpm alone: os:vtpm=required needs a vTPM capable host, and '
             'requests made by the image are left to the compute side, '
             'which refuses an unsuitable host and lets nova reschedule.'),
    cfg.IntOpt(
        'image_cache_ttl',
        default=60,
        min=0,
        help='Seconds the filter keeps the vTPM properties it read of an '
             'image, so that Glance is read at most once per image per '
             'this many seconds on each scheduler worker. A change to an '
             'image\'s os_vtpm, os_vtpm_keys or os_shielded_vm reaches the '
             'scheduler within this time (restart nova-scheduler to apply '
             'it at once). Until then a boot may be placed on the old '
             'properties; the compute side checks every property again from '
             'the instance\'s own copy, so such a boot is refused by the '
             'host (nova reschedules it) or finds no valid host, and never '
             'runs with the wrong vTPM. The default matches nova\'s '
             'periodic update of host reports ([DEFAULT] '
             'update_resources_interval, 60 s), which already bounds how old '
             'the scheduler\'s view of a host may be. 0 reads Glance for '
             'every such request. A failed read is never kept.'),
    cfg.IntOpt(
        'image_cache_size',
        default=1000,
        min=1,
        help='How many images the filter keeps the vTPM properties of '
             '(see image_cache_ttl); the least recently used goes first. '
             'An entry holds the image\'s four vTPM properties and the '
             'request made from them for each flavor the image was booted '
             'with in that time. Measured (tracemalloc, 1,000 entries): '
             '1.6 MB for images without keys, 2.7 MB for images naming six '
             'keys, each booted under one flavor; 11.2 MB when each was '
             'booted under five flavors (about 2 KB per image per further '
             'flavor). The default covers the images a cloud boots within '
             'one image_cache_ttl.'),
    cfg.BoolOpt(
        'restrict_moves_to_fabrics',
        default=True,
        help='On a move (cold migration, resize, live migration, evacuation, '
             'unshelve) of an instance whose KeyProtector names fabrics, '
             'pass only hosts of those fabrics. This costs one cell database '
             'read per move request (the instance\'s system metadata). A '
             'host outside those fabrics cannot unwrap the KeyProtector, so '
             'turning this off only moves the refusal to the destination '
             'compute.'),
]


def register_opts(conf):
    """Register the ``[vtpm_filter]`` options on ``conf``."""
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    """Return the options for oslo-config-generator (deep copies)."""
    return [(GROUP, copy.deepcopy(OPTS))]
