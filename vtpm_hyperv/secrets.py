# SPDX-License-Identifier: Apache-2.0
"""``vtpm_hyperv.secrets.BarbicanKeySource``, the public name of DESIGN.md
section 4; the key source lives in ``vtpm_hyperv.barbican.key_source``."""

from vtpm_hyperv.barbican import key_source

BarbicanKeySource = key_source.BarbicanKeySource

__all__ = ['BarbicanKeySource']
