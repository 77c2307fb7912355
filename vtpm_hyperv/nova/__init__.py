# SPDX-License-Identifier: Apache-2.0
"""What a nova Hyper-V compute driver composes: the vTPM hooks (``driver``,
``compute``), the lifecycle rules, re-authorization and notifications.

The only room of ``vtpm_hyperv`` that imports nova.
"""
