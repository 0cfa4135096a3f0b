"""zkserver's pytest plugin (core.testing.pytest_plugin) and the shipped suites, as a stranger's
test run sees them: throw-away test modules run by pytester."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

#: Plugins the inner runs do without (pytest-twisted's reactor belongs to the outer run).
INNER = ("-p", "no:twisted", "-p", "no:cacheprovider")

#: The application tests the user guide shows (docs/user/testing.rst includes the file).
APPLICATION_TESTS = (Path(__file__).resolve().parents[2] / "examples" / "application-tests"
                     / "test_with_zkserver.py")


def test_the_plugin_is_registered_by_entry_point() -> None:
    [ep] = [ep for ep in importlib.metadata.entry_points(group="pytest11")
            if ep.value == "core.testing.pytest_plugin"]
    assert ep.name == "zkserver" and ep.dist is not None and ep.dist.name == "zkserver"


def test_an_application_test_module_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=APPLICATION_TESTS.read_text())
    result = pytester.runpytest(*INNER, "-v")
    result.assert_outcomes(passed=2)


def test_no_server_unless_asked(pytester: pytest.Pytester) -> None:
    """Side-effect free: a test that names no zkserver fixture sets none up."""
    pytester.makepyfile(test_plain="def test_plain(tmp_path):\n    assert tmp_path.is_dir()\n")
    result = pytester.runpytest(*INNER, "--setup-plan")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*SETUP    F tmp_path*"])
    plan = [line for line in result.stdout.lines if "SETUP" in line or "TEARDOWN" in line]
    assert plan and not any("zkserver" in line for line in plan), plan
    fixtures = pytester.runpytest(*INNER, "--fixtures")
    fixtures.stdout.fnmatch_lines(["zkserver_factory -- *pytest_plugin.py*",
                                   "zkserver -- *pytest_plugin.py*"])


def test_a_server_that_cannot_start_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad='''
def test_bad_store(zkserver_factory):
    zkserver_factory(storage="nosuch")
''')
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*RuntimeError: zkserver exited with status 2 while starting*",
        "*storage: no backend named 'nosuch' is installed*"])


BROKEN_STORE = '''
import pytest
from core.testing.store_suite import StoreSuite, StubConfig
from plugins.storage_memory.store import MemoryStore


class ForgetfulStore(MemoryStore):
    """Loses the last txn of every batch of more than one."""

    def append(self, txns):
        super().append(txns[:-1] if len(txns) > 1 else txns)


class TestForgetfulStore(StoreSuite):
    durable = False
    owns_data_dir = False

    @pytest.fixture
    def make_store(self):
        def make(data_dir):
            store = ForgetfulStore()
            store.open()
            return store
        return make
'''


def test_a_broken_store_fails_the_suite_readably(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_forgetful=BROKEN_STORE)
    result = pytester.runpytest(*INNER, "-rf")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 5 and outcomes["passed"] >= 10
    result.stdout.fnmatch_lines([
        "*FAILED test_forgetful.py::TestForgetfulStore::test_append_then_read_in_order*",
    ])
    # the assertion is rewritten: the report shows the txns the store returned and expected
    result.stdout.fnmatch_lines(["*assert list(store.read_from(0)) == txns(*range(1, 10))",
                                 "*At index 2 diff: (4, *) != (3, *)",
                                 "*Right contains 2 more items*"])


BROKEN_PROVIDER = '''
import pytest
from core.testing.auth_suite import AuthProviderSuite
from core import Id


class SloppyProvider:
    """Splits the credentials without checking them: raises on malformed data."""

    scheme = "token"
    is_authenticated = True

    def authenticate(self, peer, auth):
        user, password = auth.decode().split(":")
        return [Id("token", user)] if password == "pw" else None

    def matches(self, id, acl_id):
        return id == acl_id

    def is_valid(self, acl_id):
        return acl_id.isalpha()


class TestSloppyProvider(AuthProviderSuite):
    good_auth = [b"alice:pw"]
    bad_auth = [b"alice:nope"]
    valid_ids = ["alice"]
    invalid_ids = ["", "a b"]

    @pytest.fixture
    def provider(self):
        return SloppyProvider()
'''


def test_a_broken_auth_provider_fails_the_suite_readably(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sloppy=BROKEN_PROVIDER)
    result = pytester.runpytest(*INNER, "-rf")
    result.assert_outcomes(passed=9, failed=1, skipped=2)
    result.stdout.fnmatch_lines([
        "*auth = b''*",
        "*ValueError: not enough values to unpack*",
        "FAILED test_sloppy.py::TestSloppyProvider::test_malformed_credentials_never_raise*"])
