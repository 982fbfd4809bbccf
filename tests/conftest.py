"""Shared test helpers.

Framework cross-checks use `need(name)`: it returns the imported module, skips when the framework
is missing on a developer's machine, and fails when CI=true (CI installs every framework, so a
missing one there is a broken set-up, never a reason to skip).
"""
import importlib
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / "data"


def need(name):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is required when CI=true but cannot be imported: {e}")
        pytest.skip(f"{name} is not installed (pip install 'bptt[all]')")


@pytest.fixture(params=["reference", "fast"])
def each_backend(request, monkeypatch):
    """Run the test once on each backend (BPTT_BACKEND), the reference engine and the fast one."""
    monkeypatch.setenv("BPTT_BACKEND", request.param)
    return request.param
