"""For every tier: the shared helpers' assertions are reported as pytest reports a test's own."""

import pytest

pytest.register_assert_rewrite("tests.helpers")
