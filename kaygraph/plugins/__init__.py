"""KayGraph plugins: third-party packages that add to KayGraph without changing it.

Write a plugin as a package named ``kaygraph_<name>`` with a ``plugin_info()`` function (returning
a :class:`PluginInfo` or a dict of its fields), or declare an entry point in the group
``kaygraph.plugins``. An optional ``initialize()`` runs once when the plugin is loaded::

    # kaygraph_hello/__init__.py
    def plugin_info():
        return {"name": "hello", "version": "1.0", "description": "greets"}

    def initialize():
        ...

Nothing is discovered at import: the first call to :func:`discover_plugins`, :func:`load_plugin` or
``registry`` looks. ``KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD=1`` turns discovery off and
``KAYGRAPH_PLUGINS=a,b`` restricts it to the named plugins.
"""

from __future__ import annotations

from kaygraph.plugins.registry import (
    ENTRY_POINT_GROUP,
    PluginInfo,
    PluginRegistry,
    discover_plugins,
    load_plugin,
    registry,
)

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "PluginRegistry", "discover_plugins", "load_plugin", "registry"]
