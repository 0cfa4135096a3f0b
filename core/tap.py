"""twistd's entry to the server: ``twistd -n zkserver -c zoo.cfg``.

The dropin ``twisted/plugins/zkserver_plugin.py`` names this module; twistd parses `Options`
and calls `makeService`, whose service tree ``core.service.build_service`` builds from the
Config.
"""

from __future__ import annotations

import sys

from twisted.application.service import IService
from twisted.python import usage

from core.config import ConfigError, load
from core.interfaces import StoreError
from core.pluginmanager import PluginError, blame
from core.service import build_service

CONFIG_ERROR_EXIT_STATUS = 2


class Options(usage.Options):
    """The zkserver subcommand's options: only the zoo.cfg path."""

    optParameters = [
        ["config", "c", "zoo.cfg", "The ZooKeeper-format configuration file."],
    ]


def makeService(options: Options) -> IService:
    """Load the configuration and build the server's service tree.

    A configuration error (from zoo.cfg or from a plugin's check), a store's refusal of its
    settings (StoreError) or a plugin error (a plugin that fails to load or offers something
    inconsistent; the message names its distribution) is printed as one line on stderr and
    ends the process with status 2, without a traceback; so is any other exception raised in
    a third-party plugin's code (core.pluginmanager.blame).
    """
    try:
        return build_service(load(options["config"]))
    except (ConfigError, PluginError, StoreError) as e:
        print(e, file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT_STATUS) from None
    except Exception as e:  # raised in a third-party plugin's hook: name it, in one line
        error = blame(e)
        if error is None:
            raise
        print(error, file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT_STATUS) from None
