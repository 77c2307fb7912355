# SPDX-License-Identifier: Apache-2.0
"""compute-hyperv 16.0.0 for the tests: its install beside nova
(``install``), and what its driver needs of a simulated Hyper-V host
(``host``). Test support, not product."""
