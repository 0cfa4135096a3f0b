"""Test helpers shipped for plugin authors: conformance suites a backend runs in its own tests.

``core.testing.store_suite``: the Store suite (``StoreSuite``, ``StubConfig``).

Importing this package needs pytest; it registers the suites for pytest's assertion rewriting,
so a failing check shows the values compared.
"""

import pytest

pytest.register_assert_rewrite("core.testing.store_suite")
