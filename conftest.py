"""This checkout's pytest set-up: livelab's plugin, also without an installed entry point.

An installed livelab registers its plugin through the ``pytest11`` entry point (as ``livelab``).
Run from a plain checkout (no ``pip install``, or with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1), this
registers the same module; a plain ``pytest_plugins`` line would register it a second time.
"""


def pytest_addhooks(pluginmanager):
    if pluginmanager.has_plugin("livelab"):
        return
    from harness import pytest_plugin
    if not pluginmanager.is_registered(pytest_plugin):
        pluginmanager.register(pytest_plugin, "livelab")
