# SPDX-License-Identifier: Apache-2.0
"""build_request against nova's own get_vtpm_constraint, in one run.

    .venv/bin/python benchmarks/bench_policy.py

nova's ``hardware.get_vtpm_constraint`` is the closest upstream analogue:
it merges the TPM version and model of a flavor and an image. Both sides get
an equivalent request (a vTPM asked by the image, confirmed by the flavor).
The goal is a ratio of at most 1.0 with six keys.
"""

import os
import statistics
import timeit
import uuid

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

from nova import objects as nova_objects  # noqa: E402
from nova.virt import hardware  # noqa: E402

from vtpm_core import policy  # noqa: E402

nova_objects.register_all()

ROUNDS = 7


def per_call_us(func, number):
    """Median over ROUNDS of the per-call time in microseconds."""
    times = timeit.repeat(func, number=number, repeat=ROUNDS)
    return statistics.median(times) / number * 1e6


def main():
    flavor = nova_objects.Flavor(
        name='m1.vtpm', extra_specs={'hw:tpm_version': '2.0',
                                     'hw:tpm_model': 'tpm-crb'})
    image = nova_objects.ImageMeta.from_dict({
        'name': 'win', 'properties': {'hw_tpm_version': '2.0',
                                      'hw_tpm_model': 'tpm-crb'}})
    keys = ','.join(str(uuid.uuid4()).upper() for _ in range(6))
    no_keys = {'os_vtpm': 'required', 'hw_machine_type': 'hyperv-gen2'}
    six_keys = dict(no_keys, os_vtpm_keys=keys, os_shielded_vm='required')
    specs = {'os:vtpm': 'required'}

    number = 20000
    baseline = per_call_us(
        lambda: hardware.get_vtpm_constraint(flavor, image), number)
    rows = [
        ('nova get_vtpm_constraint (baseline)', baseline),
        ('build_request, no keys',
         per_call_us(lambda: policy.build_request(no_keys, specs), number)),
        ('build_request, six keys, shielded',
         per_call_us(lambda: policy.build_request(six_keys, specs), number)),
    ]
    print('%-40s %10s %8s' % ('case', 'us/call', 'ratio'))
    for name, us in rows:
        print('%-40s %10.2f %8.2f' % (name, us, us / baseline))


if __name__ == '__main__':
    main()
