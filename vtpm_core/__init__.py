# SPDX-License-Identifier: Apache-2.0
"""Pure vTPM policy: versioned objects, merge rules, capability reports.

Nothing in this package performs I/O or imports nova, os-win or a client
library, so the scheduler, nova-api and the compute side can all share it.
"""
