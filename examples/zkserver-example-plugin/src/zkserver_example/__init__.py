"""An example third-party zkserver plugin: the ``appendlog`` store and a watch-event log.

``zkserver_example.hooks`` is the plugin (named in the ``zkserver.plugins`` entry-point group);
``store`` and ``eventlog`` hold what its hooks offer.
"""

__version__ = "0.1.0"
