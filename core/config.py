"""zoo.cfg -> a frozen `Config`, with the line number of every key kept for error messages.

The file format is ZooKeeper's (java.util.Properties as QuorumPeerConfig reads it):

- one ``key=value`` per line; ``key: value`` and ``key value`` work too (the first ``=``, ``:``
  or blank ends the key); blanks around key and value are trimmed;
- lines starting with ``#`` or ``!`` are comments; blank lines are skipped; there are no
  comments after a value (``clientPort=2181 # x`` is an error, as on ZooKeeper);
- a key given twice: the last value wins (a warning says so);
- not supported: backslash escapes and continuation lines (a line ending in ``\\`` is an error).

Defaults and checks follow ZooKeeper 3.8/3.9 (QuorumPeerConfig, the Administrator's Guide).
Rules of our own, each documented where it is applied:

- ``dataDir`` is required unless ``storage=memory``; relative paths are used as given, that is
  relative to the working directory, as ZooKeeper does.
- The server id comes from ``dataDir/myid`` when that file exists, else it is 1 (a standalone
  ZooKeeper numbers its sessions with 1 too). A quorum member needs ``myid``, and its id needs a
  ``server.N`` line.
- A quorum (``distributed``): ``server.N`` lines with more than one participant, or any
  participant with ``standaloneEnabled=false``; a single participant line with
  ``standaloneEnabled=true`` runs standalone, as ZooKeeper does.
- ``clientPort`` is required (ours always serves clients), unless this server's ``server.N`` line
  names its client port (``;2181``). Port 0 asks the OS for a free port (an extension).
- ``jute.maxbuffer`` and ``readonlymode.enabled`` are Java system properties that ZooKeeper does
  not read from zoo.cfg; ours reads them from zoo.cfg (an extension).
- The super digest: ``DigestAuthenticationProvider.superDigest=super:<base64 sha1>`` (ZooKeeper
  turns that zoo.cfg key into its system property ``zookeeper.DigestAuthenticationProvider
  .superDigest``); the system property's own name is accepted as a key too, but not both at
  once. No environment variable is read: a Config depends on zoo.cfg (and myid) only.
- ``storage=<name>`` (default ``sqlite``) and ``consensus=<name>`` (default ``zab`` for a quorum,
  else ``standalone``) pick backends; a backend's own keys are ``<name>.<key>``
  (`Config.plugin_options`).
- Unknown keys are kept (`Config.raw`) and listed by `Config.unknown_keys` for the server to log
  once; ZooKeeper's documented keys count as known even where we ignore them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

__all__ = ["Config", "ConfigError", "ServerSpec", "load", "parse", "ZOOKEEPER_KEYS"]

MAX_INT = 2**31 - 1  # ZooKeeper reads its numbers with Integer.parseInt
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "[::]")
ALL_FOUR_LETTER_WORDS = "*"

# Keys this module reads (besides server.N).
_READ_KEYS = frozenset({
    "tickTime", "dataDir", "dataLogDir", "clientPort", "clientPortAddress", "maxClientCnxns",
    "minSessionTimeout", "maxSessionTimeout", "jute.maxbuffer", "4lw.commands.whitelist",
    "extendedTypesEnabled", "storage", "consensus", "initLimit", "syncLimit", "peerType",
    "standaloneEnabled", "snapCount", "autopurge.snapRetainCount", "autopurge.purgeInterval",
    "forceSync", "admin.enableServer", "admin.serverAddress", "admin.serverPort",
    "admin.commandURL", "metricsProvider.className", "metricsProvider.httpPort",
    "metricsProvider.httpHost", "globalOutstandingLimit",
    "DigestAuthenticationProvider.superDigest",
    "zookeeper.DigestAuthenticationProvider.superDigest", "reconfigEnabled",
    "readonlymode.enabled", "digest.enabled", "electionAlg", "dynamicConfigFile",
})

# ZooKeeper's documented zoo.cfg keys (Administrator's Guide 3.8/3.9, QuorumPeerConfig), known
# even where we ignore them, so that they are not reported as unknown.
ZOOKEEPER_KEYS: frozenset[str] = _READ_KEYS | frozenset({
    "secureClientPort", "secureClientPortAddress", "observerMasterPort", "preAllocSize",
    "commitLogCount", "snapSizeLimitInKb", "txnLogSizeLimitInKb", "maxCnxns",
    "fsync.warningthresholdms", "maxResponseCacheSize", "maxGetChildrenResponseCacheSize",
    "syncEnabled", "emulate353TTLNodes", "watchManagerName", "watcherCleanThreadsNum",
    "watcherCleanThreshold", "watcherCleanIntervalInSeconds", "maxInProcessingDeadWatchers",
    "bitHashCacheSize", "fastleader.minNotificationInterval", "fastleader.maxNotificationInterval",
    "connectionMaxTokens", "connectionTokenFillTime", "connectionTokenFillCount",
    "connectionFreezeTime", "connectionDropIncrease", "connectionDropDecrease",
    "connectionDecreaseRatio", "clientPortListenBacklog", "serverCnxnFactory", "flushDelay",
    "maxWriteQueuePollTime", "maxBatchSize", "enforceQuota", "requestThrottleLimit",
    "requestThrottleStallTime", "requestThrottleDropStale", "requestStaleLatencyCheck",
    "requestStaleConnectionCheck", "advancedFlowControlEnabled", "enableEagerACLCheck",
    "maxConcurrentSnapSyncs", "maxConcurrentDiffSyncs", "snapshot.compression.method",
    "snapshot.trust.empty", "audit.enable", "audit.impl.class", "largeRequestMaxBytes",
    "largeRequestThreshold", "outstandingHandshake.limit",
    "netty.server.earlyDropSecureConnectionHandshakes", "throttledOpWaitTime",
    "learner.closeSocketAsync", "leader.closeSocketAsync", "learner.asyncSending",
    "forward_learner_requests_to_commit_processor_disabled", "maxTimeToWaitForEpoch",
    "connectToLearnerMasterLimit", "leaderServes", "cnxTimeout", "quorumCnxnTimeoutMs",
    "tcpKeepAlive", "clientTcpKeepAlive", "electionPortBindRetry", "observer.reconnectDelayMs",
    "observer.election.DelayMs", "localSessionsEnabled", "localSessionsUpgradingEnabled",
    "DigestAuthenticationProvider.enabled", "DigestAuthenticationProvider.digestAlg",
    "IPAuthenticationProvider.usexforwardedfor", "X509AuthenticationProvider.superUser",
    "sessionRequireClientSASLAuth", "enforce.auth.enabled", "enforce.auth.schemes", "sslQuorum",
    "sslQuorumReloadCertFiles", "client.certReload", "client.portUnification", "portUnification",
    "authProvider", "kerberos.removeHostFromPrincipal", "kerberos.removeRealmFromPrincipal",
    "kerberos.canonicalizeHostNames", "multiAddress.enabled",
    "multiAddress.reachabilityCheckTimeoutMs", "multiAddress.reachabilityCheckEnabled",
    "fips-mode", "jute.maxbuffer.extrasize", "skipACL", "quorumListenOnAllIPs",
    "znode.container.checkIntervalMs", "znode.container.maxPerMinute",
    "znode.container.maxNeverUsedIntervalMs", "admin.forceHttps", "admin.portUnification",
    "admin.idleTimeout", "admin.needClientAuth", "admin.rateLimiterIntervalInMS",
    "admin.restore.enabled", "admin.snapshot.enabled", "admin.snapshot.intervalInMS",
    "serializeLastProcessedZxid.enabled", "quorum.cnxn.threads.size", "oraclePath",
})

# Families of ZooKeeper keys: server.N / group.N / weight.N, provider settings, TLS, SASL, and
# Java system-property names (zookeeper.*) that some guides tell users to put in zoo.cfg.
ZOOKEEPER_KEY_PREFIXES = (
    "server.", "group.", "weight.", "metricsProvider.", "authProvider.", "ssl.", "quorum.auth.",
    "jvm.pause.", "zookeeper.",
)

_INTEGER = re.compile(r"[+-]?[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SEPARATOR = re.compile(r"\s*[=:]\s*|\s+")
_SERVER_FORMAT = "host:quorumPort:electionPort[:participant|observer][;[clientHost:]clientPort]"


class ConfigError(Exception):
    """A configuration problem, said in one line for the operator.

    Anyone may raise it with the whole line; `ConfigError.at` (and `Config.error`, for
    plugins) writes the usual ``<source>[:<line>]: <key>: <what is wrong>`` and keeps the parts
    as ``source``, ``key`` and ``line`` (None when not given).
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.key = key
        self.line = line

    @classmethod
    def at(cls, source: str, key: str | None, message: str, line: int | None = None) -> ConfigError:
        """The error about `key` (None: about the line itself) at `source`, line `line`."""
        where = source if line is None else f"{source}:{line}"
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        return cls(text, source=source, key=key, line=line)


@dataclass(frozen=True)
class ServerSpec:
    """One ``server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`` line.

    ``role`` is ``"participant"`` or ``"observer"``; ``client_host``/``client_port`` are None
    when the line has no client part (a client part without a host means ``0.0.0.0``).
    """

    sid: int
    host: str
    quorum_port: int
    election_port: int
    role: str
    client_host: str | None
    client_port: int | None


@dataclass(frozen=True)
class Config:
    """The parsed zoo.cfg. Durations are milliseconds unless the name says otherwise.

    ``raw`` holds every key's value as written, ``lines`` its line number; both are read-only
    mappings. ``warnings`` are one-line notes for the server to log once (values ZooKeeper also
    corrects, keys given twice).
    """

    source: str
    tick_time: int
    data_dir: Path | None
    data_log_dir: Path | None
    client_port: int
    client_port_address: str
    max_client_cnxns: int
    min_session_timeout: int
    max_session_timeout: int
    jute_maxbuffer: int
    four_letter_words: frozenset[str]
    extended_types_enabled: bool
    storage: str
    consensus: str
    servers: Mapping[int, ServerSpec]
    server_id: int
    init_limit: int | None
    sync_limit: int | None
    peer_type: str
    standalone_enabled: bool
    snap_count: int
    autopurge_snap_retain_count: int
    autopurge_purge_interval: int
    force_sync: bool
    admin_enable_server: bool
    admin_server_address: str
    admin_server_port: int
    admin_command_url: str
    metrics_provider_class: str | None
    metrics_http_port: int
    metrics_http_host: str
    global_outstanding_limit: int
    super_digest: str | None
    reconfig_enabled: bool
    readonly_mode: bool
    digest_enabled: bool
    raw: Mapping[str, str]
    lines: Mapping[str, int]
    warnings: tuple[str, ...]

    @property
    def distributed(self) -> bool:
        """True when the server.N lines make a quorum (QuorumPeerConfig.isDistributed)."""
        return _is_distributed(self.servers, self.standalone_enabled)

    def four_letter_word_enabled(self, word: str) -> bool:
        """True when `word` may be answered: whitelisted, or the whitelist is ``*``."""
        return ALL_FOUR_LETTER_WORDS in self.four_letter_words or word in self.four_letter_words

    def plugin_options(self, name: str) -> dict[str, str]:
        """The keys ``<name>.<key>`` with the ``<name>.`` prefix stripped (a backend's settings)."""
        prefix = name + "."
        return {key[len(prefix):]: value
                for key, value in self.raw.items() if key.startswith(prefix)}

    def unknown_keys(self, plugin_names: Iterable[str] = ()) -> list[str]:
        """Keys neither ZooKeeper's nor a plugin's, in file order.

        :param plugin_names: names whose ``<name>.<key>`` keys belong to a plugin (the server
            passes every installed backend); the chosen storage and consensus always count.
        """
        owners = {self.storage, self.consensus, *plugin_names}
        unknown = [
            key for key in self.raw
            if key not in ZOOKEEPER_KEYS
            and not key.startswith(ZOOKEEPER_KEY_PREFIXES)
            and not ("." in key and key.split(".", 1)[0] in owners)
        ]
        return sorted(unknown, key=self.lines.__getitem__)

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError about `key`, naming this file and the key's line (for plugins' checks)."""
        return ConfigError.at(self.source, key, message, self.lines.get(key))


def load(path: str | Path) -> Config:
    """Read and parse the zoo.cfg at `path`; an unreadable file is a ConfigError too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError.at(str(path), None, f"cannot read the configuration: {e}") from None
    return parse(text, source=str(path))


def parse(text: str, source: str = "zoo.cfg") -> Config:
    """Parse zoo.cfg text into a Config (reading ``dataDir/myid`` when it exists).

    :param text: the file's contents.
    :param source: the name used in error messages.
    :raises ConfigError: on the first bad line or value.
    """
    raw, lines, warnings = _read_properties(text, source)
    return _Builder(raw, lines, source, warnings).build()


def _read_properties(text: str, source: str) -> tuple[dict[str, str], dict[str, int], list[str]]:
    """Split the text into key -> value and key -> line number (the last of a repeated key)."""
    raw: dict[str, str] = {}
    lines: dict[str, int] = {}
    warnings: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        if stripped.endswith("\\"):
            raise ConfigError.at(source, None,
                                 "continuation lines (a trailing '\\') are not supported", number)
        match = _SEPARATOR.search(stripped)
        if match is None or match.start() == 0:
            raise ConfigError.at(source, None, f"expected 'key=value', got {stripped!r}", number)
        key, value = stripped[:match.start()], stripped[match.end():]
        if key in raw:
            warnings.append(f"{source}:{number}: {key}: also set on line {lines[key]}; "
                            "the last value wins")
            del raw[key]  # keep the file order of the value that counts
        raw[key] = value
        lines[key] = number
    return raw, lines, warnings


def _is_distributed(servers: Mapping[int, ServerSpec], standalone_enabled: bool) -> bool:
    participants = sum(1 for s in servers.values() if s.role == "participant")
    return participants > 1 or (participants == 1 and not standalone_enabled)


class _Builder:
    """Typed reads of the raw values, each error naming its key and line."""

    def __init__(self, raw: dict[str, str], lines: dict[str, int], source: str,
                 warnings: list[str]) -> None:
        self.raw = raw
        self.lines = lines
        self.source = source
        self.warnings = warnings

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError.at(self.source, key, message, self.lines.get(key))

    def warn(self, key: str, message: str) -> None:
        line = self.lines.get(key)
        where = self.source if line is None else f"{self.source}:{line}"
        self.warnings.append(f"{where}: {key}: {message}")

    # -- typed values ------------------------------------------------------------------------

    def optional_integer(self, key: str, minimum: int, what: str,
                         maximum: int = MAX_INT) -> int | None:
        """An int in [minimum, maximum], or None when absent; `what` is for the error message."""
        value = self.raw.get(key)
        if value is None:
            return None
        if not _INTEGER.fullmatch(value) or not minimum <= int(value) <= maximum:
            raise self.error(key, f"expected {what}, got {value!r}")
        return int(value)

    def integer(self, key: str, default: int, minimum: int, what: str) -> int:
        value = self.optional_integer(key, minimum, what)
        return default if value is None else value

    def positive(self, key: str, default: int) -> int:
        return self.integer(key, default, 1, "a positive integer")

    def optional_port(self, key: str) -> int | None:
        return self.optional_integer(key, 0, "a port number 0-65535", maximum=65535)

    def port(self, key: str, default: int) -> int:
        value = self.optional_port(key)
        return default if value is None else value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value.lower() == "true"

    def text(self, key: str, default: str) -> str:
        value = self.raw.get(key, "")
        return value if value else default

    def optional_text(self, key: str) -> str | None:
        return self.raw.get(key) or None

    def path(self, key: str) -> Path | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not value:
            raise self.error(key, "expected a directory path, got ''")
        return Path(value)

    def name(self, key: str, default: str) -> str:
        value = self.raw.get(key)
        if value is None:
            return default
        if not _NAME.fullmatch(value):
            raise self.error(key, "expected a backend name (letters, digits, '_', '-'), "
                             f"got {value!r}")
        return value

    # -- the whole Config --------------------------------------------------------------------

    def build(self) -> Config:
        raw = self.raw
        tick_time = self.positive("tickTime", 3000)
        extended_types = self.boolean("extendedTypesEnabled", False)
        standalone_enabled = self.boolean("standaloneEnabled", True)
        readonly_mode = self.boolean("readonlymode.enabled", False)
        storage = self.name("storage", "sqlite")

        if "dynamicConfigFile" in raw:
            raise self.error("dynamicConfigFile", "not supported: put the server.N lines in "
                             f"{self.source} itself")
        self.optional_integer("electionAlg", 3, "3 (the only election algorithm)", maximum=3)

        servers = self.servers(extended_types)
        distributed = _is_distributed(servers, standalone_enabled)
        self.check_quorum_shape(servers, standalone_enabled)

        data_dir = self.path("dataDir")
        if data_dir is None and distributed:
            raise self.error("dataDir", "required: a quorum member reads its server id from "
                             "dataDir/myid")
        if data_dir is None and storage != "memory":
            raise self.error("dataDir", "required (the directory for the data; only "
                             "storage=memory can do without)")
        data_log_dir = self.path("dataLogDir") or data_dir

        server_id = self.server_id(data_dir, servers, distributed, extended_types)
        own = servers.get(server_id)
        client_port, client_port_address = self.client_address(own)
        init_limit = self.optional_integer("initLimit", 1, "a positive integer")
        sync_limit = self.optional_integer("syncLimit", 1, "a positive integer")
        if distributed:
            for key, value in (("initLimit", init_limit), ("syncLimit", sync_limit)):
                if value is None:
                    raise self.error(key, "required in a quorum (server.N lines)")
        min_session_timeout, max_session_timeout = self.session_timeouts(tick_time)

        return Config(
            source=self.source,
            tick_time=tick_time,
            data_dir=data_dir,
            data_log_dir=data_log_dir,
            client_port=client_port,
            client_port_address=client_port_address,
            max_client_cnxns=self.integer("maxClientCnxns", 60, 0, "an integer >= 0"),
            min_session_timeout=min_session_timeout,
            max_session_timeout=max_session_timeout,
            jute_maxbuffer=self.jute_maxbuffer(),
            four_letter_words=self.four_letter_words(readonly_mode),
            extended_types_enabled=extended_types,
            storage=storage,
            consensus=self.name("consensus", "zab" if distributed else "standalone"),
            servers=MappingProxyType(servers),
            server_id=server_id,
            init_limit=init_limit,
            sync_limit=sync_limit,
            peer_type=self.peer_type(own),
            standalone_enabled=standalone_enabled,
            snap_count=self.at_least("snapCount", 100000, 2),
            autopurge_snap_retain_count=self.at_least("autopurge.snapRetainCount", 3, 3),
            autopurge_purge_interval=self.integer("autopurge.purgeInterval", 0, 0,
                                                  "a number of hours >= 0 (0: no purge)"),
            force_sync=self.yes_no("forceSync", True),
            admin_enable_server=self.boolean("admin.enableServer", True),
            admin_server_address=self.text("admin.serverAddress", "0.0.0.0"),
            admin_server_port=self.port("admin.serverPort", 8080),
            admin_command_url=self.text("admin.commandURL", "/commands"),
            metrics_provider_class=self.optional_text("metricsProvider.className"),
            metrics_http_port=self.port("metricsProvider.httpPort", 7000),
            metrics_http_host=self.text("metricsProvider.httpHost", "0.0.0.0"),
            global_outstanding_limit=self.positive("globalOutstandingLimit", 1000),
            super_digest=self.super_digest(),
            reconfig_enabled=self.boolean("reconfigEnabled", False),
            readonly_mode=readonly_mode,
            digest_enabled=self.boolean("digest.enabled", True),
            raw=MappingProxyType(raw),
            lines=MappingProxyType(self.lines),
            warnings=tuple(self.warnings),
        )

    def at_least(self, key: str, default: int, minimum: int) -> int:
        """An integer raised to `minimum` with a warning, as ZooKeeper does for this key."""
        value = self.integer(key, default, -MAX_INT - 1, "an integer")
        if value < minimum:
            self.warn(key, f"{value} is below the minimum {minimum}; using {minimum}")
            return minimum
        return value

    def yes_no(self, key: str, default: bool) -> bool:
        """ZooKeeper's yes/no switches (forceSync); true/false are refused, not guessed at."""
        value = self.raw.get(key)
        if value is None:
            return default
        if value.lower() not in ("yes", "no"):
            raise self.error(key, f"expected yes or no, got {value!r}")
        return value.lower() == "yes"

    def jute_maxbuffer(self) -> int:
        """A positive byte count, decimal or 0x hex (Java's Integer.decode)."""
        value = self.raw.get("jute.maxbuffer")
        if value is None:
            return 0xFFFFF
        if _HEX.fullmatch(value):
            number = int(value, 16)
        elif _INTEGER.fullmatch(value):
            number = int(value)
        else:
            number = 0
        if not 0 < number <= MAX_INT:
            raise self.error("jute.maxbuffer",
                             f"expected a positive number of bytes, got {value!r}")
        return number

    def four_letter_words(self, readonly_mode: bool) -> frozenset[str]:
        """The whitelist, with ``srvr`` always and ``isro`` in read-only mode (as ZooKeeper)."""
        words = {"srvr"}
        if readonly_mode:
            words.add("isro")
        listed = self.raw.get("4lw.commands.whitelist", "")
        words.update(word.strip() for word in listed.split(",") if word.strip())
        return frozenset(words)

    def session_timeouts(self, tick_time: int) -> tuple[int, int]:
        """min/max session timeouts; absent or -1 means 2 x / 20 x tickTime (as ZooKeeper)."""
        what = "a positive number of milliseconds (or -1: the default)"
        values = []
        for key, factor in (("minSessionTimeout", 2), ("maxSessionTimeout", 20)):
            value = self.integer(key, -1, -1, what)
            if value == 0:
                raise self.error(key, f"expected {what}, got {self.raw[key]!r}")
            values.append(tick_time * factor if value == -1 else value)
        low, high = values
        if low > high:
            key = "minSessionTimeout" if self.raw.get("minSessionTimeout", "-1") != "-1" \
                else "maxSessionTimeout"
            raise self.error(key, f"minSessionTimeout ({low}) is larger than maxSessionTimeout "
                             f"({high})")
        return low, high

    def super_digest(self) -> str | None:
        keys = [key for key in ("DigestAuthenticationProvider.superDigest",
                                "zookeeper.DigestAuthenticationProvider.superDigest")
                if key in self.raw]
        if not keys:
            return None
        if len(keys) == 2:
            raise self.error(keys[1], f"also set as {keys[0]} (line {self.lines[keys[0]]}); "
                             "set it once")
        value = self.raw[keys[0]]
        user, _, digest = value.partition(":")
        if not user or not digest:
            raise self.error(keys[0], f"expected '<user>:<base64 SHA-1 digest>', got {value!r}")
        return value

    # -- the quorum --------------------------------------------------------------------------

    def servers(self, extended_types: bool) -> dict[int, ServerSpec]:
        highest = 254 if extended_types else 255
        servers: dict[int, ServerSpec] = {}
        keys: dict[int, str] = {}
        for key, value in self.raw.items():
            if not key.startswith("server."):
                continue
            suffix = key[len("server."):]
            if not _INTEGER.fullmatch(suffix) or not 0 <= int(suffix) <= highest:
                raise self.error(key, f"expected server.<id> with an id 0-{highest}")
            sid = int(suffix)
            if sid in servers:
                raise self.error(key, f"server id {sid} is also given on line "
                                 f"{self.lines[keys[sid]]}")
            servers[sid], keys[sid] = self.server(key, sid, value), key
        return dict(sorted(servers.items()))

    def server(self, key: str, sid: int, value: str) -> ServerSpec:
        """One server.N value, checked as QuorumPeer.QuorumServer does."""
        bad_format = self.error(key, f"expected {_SERVER_FORMAT}, got {value!r}")
        server_part, *client_parts = value.split(";")
        if len(client_parts) > 1:
            raise bad_format
        if "|" in server_part:
            raise self.error(key, "several addresses ('|') are not supported")
        fields = self.host_and_ports(key, server_part.strip())
        if len(fields) not in (3, 4) or not fields[0]:
            raise bad_format
        host = fields[0]
        quorum, election = self.server_port(key, fields[1]), self.server_port(key, fields[2])
        if quorum == election:
            raise self.error(key, f"the quorum and election ports must differ, got {value!r}")
        role = fields[3].lower() if len(fields) == 4 else "participant"
        if role not in ("participant", "observer"):
            raise self.error(key, f"expected the role participant or observer, got {fields[3]!r}")
        client_host = client_port = None
        if client_parts:
            client = self.host_and_ports(key, client_parts[0].strip())
            if len(client) > 2 or not client[-1]:
                raise bad_format
            client_host = client[0] if len(client) == 2 and client[0] else "0.0.0.0"
            client_port = self.server_port(key, client[-1], allow_zero=True)
        return ServerSpec(sid, host, quorum, election, role, client_host, client_port)

    def host_and_ports(self, key: str, text: str) -> list[str]:
        """``host:port:...`` split at ':'; an IPv6 host is written in brackets (ConfigUtils)."""
        if not text.startswith("["):
            return text.split(":")
        end = text.find("]")
        if end < 0 or not text[end + 1:].startswith(":"):
            raise self.error(key, f"expected '[ipv6-address]:port...', got {text!r}")
        return [text[1:end], *text[end + 2:].split(":")]

    def server_port(self, key: str, text: str, allow_zero: bool = False) -> int:
        lowest = 0 if allow_zero else 1
        if not _INTEGER.fullmatch(text) or not lowest <= int(text) <= 65535:
            raise self.error(key, f"expected a port number {lowest}-65535, got {text!r}")
        return int(text)

    def check_quorum_shape(self, servers: dict[int, ServerSpec], standalone_enabled: bool) -> None:
        """ZooKeeper's parseDynamicConfig checks on participants and observers."""
        participants = sum(1 for s in servers.values() if s.role == "participant")
        observers = len(servers) - participants
        first = next((f"server.{sid}" for sid in servers), "standaloneEnabled")
        if participants == 0 and not standalone_enabled:
            raise self.error("standaloneEnabled", "false needs at least one participant "
                             "server.N line")
        if participants == 0 and observers:
            raise self.error(first, "observers without participants")
        if participants == 1 and standalone_enabled:
            if observers:
                raise self.error(first, "observers without a quorum (one participant and "
                                 "standaloneEnabled=true)")
            self.warn(first, "only one server line and standaloneEnabled=true: running standalone")

    def server_id(self, data_dir: Path | None, servers: dict[int, ServerSpec], distributed: bool,
                  extended_types: bool) -> int:
        """dataDir/myid when present, else 1; a quorum member needs it and its server.N line."""
        myid = data_dir / "myid" if data_dir is not None else None
        if myid is None or not myid.is_file():
            if distributed:
                raise self.error("dataDir", f"{myid} is missing: a quorum member reads its "
                                 "server id from it")
            return 1
        highest = 254 if extended_types else 255
        try:
            first_line = myid.read_text(encoding="utf-8").partition("\n")[0].strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError.at(str(myid), "myid", f"cannot read it: {e}") from None
        if not _INTEGER.fullmatch(first_line) or not 0 <= int(first_line) <= highest:
            raise ConfigError.at(str(myid), "myid", f"expected a server id 0-{highest}, "
                              f"got {first_line!r}", 1)
        sid = int(first_line)
        if distributed and sid not in servers:
            raise ConfigError.at(str(myid), "myid", f"server id {sid} has no server.{sid} line in "
                              f"{self.source}", 1)
        return sid

    def client_address(self, own: ServerSpec | None) -> tuple[int, str]:
        """clientPort/clientPortAddress, or this server's client part of its server.N line.

        As ZooKeeper's setupClientPort: the server line wins, and a clientPort or a specific
        clientPortAddress that contradicts it is an error.
        """
        port = self.optional_port("clientPort")
        address = self.optional_text("clientPortAddress")
        if own is not None and own.client_port is not None:
            key = f"server.{own.sid}"
            if port is not None and port != own.client_port:
                raise self.error(key, f"client port {own.client_port} differs from clientPort="
                                 f"{port} (line {self.lines['clientPort']})")
            if address not in (None, *WILDCARD_ADDRESSES) and address != own.client_host:
                raise self.error(key, f"client address {own.client_host} differs from "
                                 f"clientPortAddress={address} "
                                 f"(line {self.lines['clientPortAddress']})")
            return own.client_port, own.client_host or "0.0.0.0"
        if port is None:
            raise self.error("clientPort", "required: the port clients connect to (or "
                             "';<port>' on this server's server.N line)")
        return port, address or "0.0.0.0"

    def peer_type(self, own: ServerSpec | None) -> str:
        """This server's role: its server.N line's, else peerType (default participant)."""
        value = self.raw.get("peerType")
        if value is not None and value.lower() not in ("participant", "observer"):
            raise self.error("peerType", f"expected participant or observer, got {value!r}")
        if own is None:
            return value.lower() if value is not None else "participant"
        if value is not None and value.lower() != own.role:
            self.warn("peerType", f"{value} does not match server.{own.sid}'s role {own.role}; "
                      "using the server line's")
        return own.role
