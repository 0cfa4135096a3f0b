"""Test helpers shipped for plugin authors and application developers.

- ``core.testing.store_suite``: the Store conformance suite (``StoreSuite``, ``StubConfig``).
- ``core.testing.auth_suite``: the AuthProvider conformance suite (``AuthProviderSuite``).
- ``core.testing.pytest_plugin``: the ``zkserver`` and ``zkserver_factory`` fixtures (real
  server processes), registered with pytest through the ``pytest11`` entry point.

Importing this package needs pytest; it registers the suites for pytest's assertion rewriting,
so a failing check shows the values compared.
"""

import pytest

pytest.register_assert_rewrite("core.testing.store_suite", "core.testing.auth_suite")
