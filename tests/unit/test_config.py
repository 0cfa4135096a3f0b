"""core.config: zoo.cfg parsing, ZooKeeper's defaults, server lines, errors with line numbers,
plugin options, unknown keys; and core.tap's handling of a bad configuration."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import types
from pathlib import Path

import pytest
from twisted.application.service import MultiService

import core
from core.config import Config, ConfigError, ServerSpec, load, parse

BASE = "dataDir=/nonexistent/zk\nclientPort=2181\n"


def cfg(text: str, base: str = BASE) -> Config:
    return parse(base + text)


def error_of(text: str, source: str = "zoo.cfg") -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, source=source)
    message = str(info.value)
    assert "\n" not in message
    return message


def quorum(tmp_path: Path, myid: str | None = "1", extra: str = "", servers: str | None = None) -> str:
    """A three-member zoo.cfg whose dataDir is tmp_path (with a myid file unless None)."""
    if myid is not None:
        (tmp_path / "myid").write_text(myid + "\n")
    if servers is None:
        servers = ("server.1=127.0.0.1:2888:3888\n"
                   "server.2=127.0.0.2:2888:3888\n"
                   "server.3=127.0.0.3:2888:3888\n")
    return (f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={tmp_path}\nclientPort=2181\n"
            + servers + extra)


# -- the file format -------------------------------------------------------------------------

def test_comments_blank_lines_and_whitespace():
    c = parse("# a comment\n! also a comment\n\n   \n  tickTime =  2500  \n"
              "dataDir\t=\t/nonexistent/zk\nclientPort=2181\n")
    assert c.tick_time == 2500
    assert c.data_dir == Path("/nonexistent/zk")
    assert c.raw == {"tickTime": "2500", "dataDir": "/nonexistent/zk", "clientPort": "2181"}
    assert c.lines == {"tickTime": 5, "dataDir": 6, "clientPort": 7}


def test_colon_and_blank_separators_as_java_properties():
    c = parse("tickTime: 2500\ndataDir /nonexistent/zk\nclientPort=2181\n")
    assert c.tick_time == 2500
    assert c.data_dir == Path("/nonexistent/zk")


def test_value_may_contain_separators():
    c = cfg("server.1=10.0.0.1:2888:3888\nsqlite.url=sqlite:///x.db?a=b\n")
    assert c.raw["server.1"] == "10.0.0.1:2888:3888"
    assert c.plugin_options("sqlite") == {"url": "sqlite:///x.db?a=b"}


def test_windows_line_endings():
    assert parse("tickTime=2100\r\ndataDir=/d\r\nclientPort=1\r\n").tick_time == 2100


def test_repeated_key_last_wins_with_a_warning():
    c = parse("tickTime=1000\ndataDir=/d\nclientPort=1\ntickTime=4000\n")
    assert c.tick_time == 4000
    assert c.lines["tickTime"] == 4
    assert c.warnings == ("zoo.cfg:4: tickTime: also set on line 1; the last value wins",)


def test_line_without_separator():
    assert error_of("dataDir=/d\nclientPort\n") == "zoo.cfg:2: expected 'key=value', got 'clientPort'"


def test_line_starting_with_separator():
    assert error_of("=5\n") == "zoo.cfg:1: expected 'key=value', got '=5'"


def test_continuation_line_is_refused():
    assert error_of("dataDir=/d\nclientPort=\\\n  2181\n").startswith("zoo.cfg:2: continuation")


def test_inline_comment_is_part_of_the_value():
    assert error_of("dataDir=/d\nclientPort=2181 # the port\n") == (
        "zoo.cfg:2: clientPort: expected a port number 0-65535, got '2181 # the port'")


# -- defaults (ZooKeeper's) ------------------------------------------------------------------

def test_defaults():
    c = parse("dataDir=/nonexistent/zk\nclientPort=2181\n")
    assert c.source == "zoo.cfg"
    assert c.tick_time == 3000
    assert c.data_dir == c.data_log_dir == Path("/nonexistent/zk")
    assert c.client_port == 2181
    assert c.client_port_address == "0.0.0.0"
    assert c.max_client_cnxns == 60
    assert (c.min_session_timeout, c.max_session_timeout) == (6000, 60000)
    assert c.jute_maxbuffer == 0xFFFFF
    assert c.four_letter_words == {"srvr"}
    assert c.extended_types_enabled is False
    assert c.storage == "sqlite"
    assert c.consensus == "standalone"
    assert c.servers == {}
    assert c.server_id == 1
    assert c.init_limit is None and c.sync_limit is None
    assert c.peer_type == "participant"
    assert c.standalone_enabled is True
    assert c.snap_count == 100000
    assert c.autopurge_snap_retain_count == 3
    assert c.autopurge_purge_interval == 0
    assert c.force_sync is True
    assert c.admin_enable_server is True
    assert c.admin_server_address == "0.0.0.0"
    assert c.admin_server_port == 8080
    assert c.admin_command_url == "/commands"
    assert c.metrics_provider_class is None
    assert c.metrics_http_port == 7000
    assert c.metrics_http_host == "0.0.0.0"
    assert c.global_outstanding_limit == 1000
    assert c.super_digest is None
    assert c.reconfig_enabled is False
    assert c.readonly_mode is False
    assert c.digest_enabled is True
    assert c.warnings == ()
    assert c.distributed is False


def test_every_field_is_set_from_zoo_cfg():
    c = cfg("tickTime=1000\ndataLogDir=/logs\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n"
            "minSessionTimeout=1500\nmaxSessionTimeout=9000\njute.maxbuffer=0x200000\n"
            "4lw.commands.whitelist= stat , ruok,,conf \nextendedTypesEnabled=TRUE\nstorage=memory\n"
            "consensus=my-consensus\ninitLimit=7\nsyncLimit=3\npeerType=observer\n"
            "snapCount=500\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=24\n"
            "forceSync=no\nadmin.enableServer=false\nadmin.serverAddress=127.0.0.1\n"
            "admin.serverPort=9090\nadmin.commandURL=/cmds\n"
            "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n"
            "metricsProvider.httpPort=7001\nmetricsProvider.httpHost=127.0.0.1\n"
            "globalOutstandingLimit=50\n"
            "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n"
            "reconfigEnabled=true\nreadonlymode.enabled=true\ndigest.enabled=false\n")
    assert c.tick_time == 1000
    assert c.data_log_dir == Path("/logs")
    assert c.client_port_address == "127.0.0.1"
    assert c.max_client_cnxns == 0
    assert (c.min_session_timeout, c.max_session_timeout) == (1500, 9000)
    assert c.jute_maxbuffer == 0x200000
    assert c.four_letter_words == {"srvr", "isro", "stat", "ruok", "conf"}
    assert c.extended_types_enabled is True
    assert c.storage == "memory"
    assert c.consensus == "my-consensus"
    assert (c.init_limit, c.sync_limit) == (7, 3)
    assert c.peer_type == "observer"
    assert c.snap_count == 500
    assert c.autopurge_snap_retain_count == 5
    assert c.autopurge_purge_interval == 24
    assert c.force_sync is False
    assert c.admin_enable_server is False
    assert c.admin_server_address == "127.0.0.1"
    assert c.admin_server_port == 9090
    assert c.admin_command_url == "/cmds"
    assert c.metrics_provider_class.endswith("PrometheusMetricsProvider")
    assert (c.metrics_http_host, c.metrics_http_port) == ("127.0.0.1", 7001)
    assert c.global_outstanding_limit == 50
    assert c.super_digest == "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    assert c.reconfig_enabled is True
    assert c.readonly_mode is True
    assert c.digest_enabled is False
    assert c.unknown_keys() == []


def test_session_timeout_defaults_follow_tick_time():
    c = cfg("tickTime=500\n")
    assert (c.min_session_timeout, c.max_session_timeout) == (1000, 10000)


def test_session_timeout_minus_one_means_default():
    c = cfg("tickTime=500\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n")
    assert (c.min_session_timeout, c.max_session_timeout) == (1000, 10000)


def test_config_is_frozen():
    c = cfg("")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.tick_time = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.raw["tickTime"] = "1"  # type: ignore[index]
    with pytest.raises(TypeError):
        c.servers[1] = None  # type: ignore[index]


def test_storage_memory_needs_no_data_dir():
    c = parse("storage=memory\nclientPort=2181\n")
    assert c.data_dir is None and c.data_log_dir is None


def test_relative_data_dir_is_kept_as_given():
    assert cfg("dataDir=./data\n", base="clientPort=1\n").data_dir == Path("data")


def test_booleans_ignore_case():
    assert cfg("reconfigEnabled=True\n").reconfig_enabled is True
    assert cfg("admin.enableServer=FALSE\n").admin_enable_server is False


def test_force_sync_yes_no_ignore_case():
    assert cfg("forceSync=YES\n").force_sync is True
    assert cfg("forceSync=No\n").force_sync is False


def test_client_port_zero_is_allowed():
    assert cfg("", base="dataDir=/d\nclientPort=0\n").client_port == 0


def test_jute_maxbuffer_decimal():
    assert cfg("jute.maxbuffer=4096\n").jute_maxbuffer == 4096


def test_four_letter_words_star():
    c = cfg("4lw.commands.whitelist=*\n")
    assert c.four_letter_word_enabled("ruok") and c.four_letter_word_enabled("mntr")
    d = cfg("4lw.commands.whitelist=ruok\n")
    assert d.four_letter_word_enabled("ruok") and d.four_letter_word_enabled("srvr")
    assert not d.four_letter_word_enabled("stat")
    assert not d.four_letter_word_enabled("isro")


def test_snap_retain_count_below_three_is_raised_with_a_warning():
    c = cfg("autopurge.snapRetainCount=1\n")
    assert c.autopurge_snap_retain_count == 3
    assert c.warnings == ("zoo.cfg:3: autopurge.snapRetainCount: 1 is below the minimum 3; using 3",)


def test_snap_count_below_two_is_raised_with_a_warning():
    c = cfg("snapCount=1\n")
    assert c.snap_count == 2
    assert len(c.warnings) == 1


def test_super_digest_under_the_system_property_name():
    c = cfg("zookeeper.DigestAuthenticationProvider.superDigest=super:abc=\n")
    assert c.super_digest == "super:abc="
    assert c.unknown_keys() == []


# -- errors name the key and the line ----------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("tickTime=abc", "tickTime: expected a positive integer, got 'abc'"),
    ("tickTime=-5", "tickTime: expected a positive integer, got '-5'"),
    ("tickTime=0", "tickTime: expected a positive integer, got '0'"),
    ("tickTime=99999999999", "tickTime: expected a positive integer, got '99999999999'"),
    ("tickTime=", "tickTime: expected a positive integer, got ''"),
    ("tickTime=1_000", "tickTime: expected a positive integer, got '1_000'"),
    ("clientPort=21x81", "clientPort: expected a port number 0-65535, got '21x81'"),
    ("clientPort=70000", "clientPort: expected a port number 0-65535, got '70000'"),
    ("admin.serverPort=-1", "admin.serverPort: expected a port number 0-65535, got '-1'"),
    ("metricsProvider.httpPort=x", "metricsProvider.httpPort: expected a port number 0-65535, got 'x'"),
    ("maxClientCnxns=-1", "maxClientCnxns: expected an integer >= 0, got '-1'"),
    ("minSessionTimeout=0",
     "minSessionTimeout: expected a positive number of milliseconds (or -1: the default), got '0'"),
    ("maxSessionTimeout=soon",
     "maxSessionTimeout: expected a positive number of milliseconds (or -1: the default), got 'soon'"),
    ("jute.maxbuffer=0", "jute.maxbuffer: expected a positive number of bytes, got '0'"),
    ("jute.maxbuffer=1M", "jute.maxbuffer: expected a positive number of bytes, got '1M'"),
    ("extendedTypesEnabled=yes", "extendedTypesEnabled: expected true or false, got 'yes'"),
    ("standaloneEnabled=1", "standaloneEnabled: expected true or false, got '1'"),
    ("forceSync=false", "forceSync: expected yes or no, got 'false'"),
    ("peerType=leader", "peerType: expected participant or observer, got 'leader'"),
    ("storage=my.store", "storage: expected a backend name (letters, digits, '_', '-'), got 'my.store'"),
    ("consensus=", "consensus: expected a backend name (letters, digits, '_', '-'), got ''"),
    ("electionAlg=1", "electionAlg: expected 3 (the only election algorithm), got '1'"),
    ("initLimit=ten", "initLimit: expected a positive integer, got 'ten'"),
    ("autopurge.purgeInterval=-2",
     "autopurge.purgeInterval: expected a number of hours >= 0 (0: no purge), got '-2'"),
    ("globalOutstandingLimit=0", "globalOutstandingLimit: expected a positive integer, got '0'"),
    ("snapCount=many", "snapCount: expected an integer, got 'many'"),
    ("DigestAuthenticationProvider.superDigest=nocolon",
     "DigestAuthenticationProvider.superDigest: expected '<user>:<base64 SHA-1 digest>', got 'nocolon'"),
    ("dataLogDir=", "dataLogDir: expected a directory path, got ''"),
    ("dynamicConfigFile=zoo.cfg.dynamic",
     "dynamicConfigFile: not supported: put the server.N lines in zoo.cfg itself"),
])
def test_bad_values(line, message):
    text = "# header\n" + BASE + line + "\n"
    assert error_of(text) == f"zoo.cfg:4: {message}"


def test_error_names_the_source():
    assert error_of("tickTime=x\n", source="/etc/zk/zoo.cfg").startswith("/etc/zk/zoo.cfg:1: tickTime:")


def test_error_attributes():
    with pytest.raises(ConfigError) as info:
        parse(BASE + "tickTime=x\n")
    e = info.value
    assert (e.source, e.key, e.line) == ("zoo.cfg", "tickTime", 3)


def test_config_error_from_a_whole_line():
    e = ConfigError("zoo.cfg:2: storage: no backend named 'x' is installed")
    assert str(e) == "zoo.cfg:2: storage: no backend named 'x' is installed"
    assert (e.source, e.key, e.line) == (None, None, None)


def test_min_session_timeout_larger_than_max():
    assert error_of(BASE + "minSessionTimeout=9000\nmaxSessionTimeout=5000\n") == (
        "zoo.cfg:3: minSessionTimeout: minSessionTimeout (9000) is larger than "
        "maxSessionTimeout (5000)")


def test_max_session_timeout_below_default_min_names_max():
    assert error_of(BASE + "tickTime=2000\nmaxSessionTimeout=3000\n") == (
        "zoo.cfg:4: maxSessionTimeout: minSessionTimeout (4000) is larger than "
        "maxSessionTimeout (3000)")


def test_missing_data_dir():
    assert error_of("clientPort=2181\n") == (
        "zoo.cfg: dataDir: required (the directory for the data; only storage=memory can do without)")


def test_missing_client_port():
    assert error_of("dataDir=/d\n").startswith("zoo.cfg: clientPort: required")


def test_load_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.cfg")
    assert str(info.value).startswith(f"{tmp_path / 'nope.cfg'}: cannot read the configuration")


def test_load_reads_the_file_and_names_it(tmp_path):
    path = tmp_path / "zoo.cfg"
    path.write_text("dataDir=/d\nclientPort=2181\ntickTime=x\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == f"{path}:3: tickTime: expected a positive integer, got 'x'"
    path.write_text("dataDir=/d\nclientPort=2181\n")
    assert load(path).source == str(path)


def test_repository_example_zoo_cfg():
    c = load(Path(__file__).resolve().parents[2] / "zoo.cfg")
    assert (c.client_port_address, c.client_port) == ("127.0.0.1", 2181)
    assert c.tick_time == 2000
    assert c.data_dir == Path("data")
    assert c.storage == "sqlite"
    assert c.admin_enable_server is False
    assert c.four_letter_words == {"srvr", "ruok", "stat", "mntr"}
    assert c.unknown_keys() == []


def test_super_digest_set_twice():
    message = error_of(BASE + "DigestAuthenticationProvider.superDigest=super:a\n"
                       "zookeeper.DigestAuthenticationProvider.superDigest=super:b\n")
    assert message == ("zoo.cfg:4: zookeeper.DigestAuthenticationProvider.superDigest: also set as "
                       "DigestAuthenticationProvider.superDigest (line 3); set it once")


# -- server lines and the quorum -------------------------------------------------------------

def test_quorum(tmp_path):
    c = parse(quorum(tmp_path, myid="2"))
    assert c.distributed is True
    assert c.consensus == "zab"
    assert c.server_id == 2
    assert c.peer_type == "participant"
    assert (c.init_limit, c.sync_limit) == (10, 5)
    assert list(c.servers) == [1, 2, 3]
    assert c.servers[3] == ServerSpec(3, "127.0.0.3", 2888, 3888, "participant", None, None)
    assert c.client_port == 2181 and c.client_port_address == "0.0.0.0"
    assert c.unknown_keys() == []


@pytest.mark.parametrize("value, spec", [
    ("zk1:2888:3888", ServerSpec(5, "zk1", 2888, 3888, "participant", None, None)),
    ("zk1:2888:3888:observer", ServerSpec(5, "zk1", 2888, 3888, "observer", None, None)),
    ("zk1:2888:3888:PARTICIPANT", ServerSpec(5, "zk1", 2888, 3888, "participant", None, None)),
    ("zk1:2888:3888;2181", ServerSpec(5, "zk1", 2888, 3888, "participant", "0.0.0.0", 2181)),
    ("zk1:2888:3888:observer;10.0.0.1:2182",
     ServerSpec(5, "zk1", 2888, 3888, "observer", "10.0.0.1", 2182)),
    ("[::1]:2888:3888", ServerSpec(5, "::1", 2888, 3888, "participant", None, None)),
    ("[fe80::1]:2888:3888:participant;[::1]:2181",
     ServerSpec(5, "fe80::1", 2888, 3888, "participant", "::1", 2181)),
    (" zk1:2888:3888 ; 2181 ", ServerSpec(5, "zk1", 2888, 3888, "participant", "0.0.0.0", 2181)),
])
def test_server_line_forms(tmp_path, value, spec):
    c = parse(quorum(tmp_path, extra=f"server.5={value}\n"))
    assert c.servers[5] == spec


@pytest.mark.parametrize("key, value, message", [
    ("server.1", "zk1:2888", "expected host:quorumPort:electionPort[:participant|observer]"
                             "[;[clientHost:]clientPort], got 'zk1:2888'"),
    ("server.1", "zk1:2888:3888:observer:x", "expected host:quorumPort:electionPort"),
    ("server.1", ":2888:3888", "expected host:quorumPort:electionPort"),
    ("server.1", "zk1:2888:3888;2181;2182", "expected host:quorumPort:electionPort"),
    ("server.1", "zk1:2888:3888;", "expected host:quorumPort:electionPort"),
    ("server.1", "zk1:2888:3888;a:b:2181", "expected host:quorumPort:electionPort"),
    ("server.1", "zk1:x:3888", "expected a port number 1-65535, got 'x'"),
    ("server.1", "zk1:0:3888", "expected a port number 1-65535, got '0'"),
    ("server.1", "zk1:2888:65536", "expected a port number 1-65535, got '65536'"),
    ("server.1", "zk1:2888:3888;port", "expected a port number 0-65535, got 'port'"),
    ("server.1", "zk1:2888:2888", "the quorum and election ports must differ, got 'zk1:2888:2888'"),
    ("server.1", "zk1:2888:3888:leader", "expected the role participant or observer, got 'leader'"),
    ("server.1", "a:1:2|b:1:2", "several addresses ('|') are not supported"),
    ("server.1", "[::1:2888:3888", "expected '[ipv6-address]:port...', got '[::1:2888:3888'"),
    ("server.x", "zk1:2888:3888", "expected server.<id> with an id 0-255"),
    ("server.256", "zk1:2888:3888", "expected server.<id> with an id 0-255"),
])
def test_bad_server_lines(key, value, message):
    text = BASE + f"tickTime=2000\n{key}={value}\n"
    assert error_of(text).startswith(f"zoo.cfg:4: {key}: {message}")


def test_server_id_given_twice():
    assert error_of(BASE + "server.01=a:1:2\nserver.1=b:1:2\n") == (
        "zoo.cfg:4: server.1: server id 1 is also given on line 3")


def test_server_id_255_refused_with_extended_types():
    message = error_of(BASE + "extendedTypesEnabled=true\nserver.255=zk:1:2\n")
    assert message == "zoo.cfg:4: server.255: expected server.<id> with an id 0-254"


def test_single_server_line_runs_standalone_with_a_warning():
    c = cfg("server.1=127.0.0.1:2888:3888;2181\n", base="dataDir=/nonexistent/zk\n")
    assert c.distributed is False
    assert c.consensus == "standalone"
    assert c.server_id == 1
    assert c.client_port == 2181 and c.client_port_address == "0.0.0.0"
    assert c.warnings == ("zoo.cfg:2: server.1: only one server line and standaloneEnabled=true: "
                          "running standalone",)


def test_single_server_line_with_standalone_disabled_is_a_quorum(tmp_path):
    text = quorum(tmp_path, servers="server.1=127.0.0.1:2888:3888\n", extra="standaloneEnabled=false\n")
    c = parse(text)
    assert c.distributed is True and c.consensus == "zab"


def test_standalone_disabled_without_participants():
    assert error_of(BASE + "standaloneEnabled=false\n") == (
        "zoo.cfg:3: standaloneEnabled: false needs at least one participant server.N line")


def test_observers_without_participants():
    assert error_of(BASE + "server.1=a:1:2:observer\n") == (
        "zoo.cfg:3: server.1: observers without participants")


def test_observers_without_a_quorum():
    message = error_of(BASE + "server.1=a:1:2\nserver.2=b:1:2:observer\n")
    assert message.startswith("zoo.cfg:3: server.1: observers without a quorum")


def test_explicit_consensus_wins(tmp_path):
    assert parse(quorum(tmp_path, extra="consensus=standalone\n")).consensus == "standalone"


def test_quorum_needs_myid(tmp_path):
    message = error_of(quorum(tmp_path, myid=None))
    assert message == (f"zoo.cfg:4: dataDir: {tmp_path / 'myid'} is missing: a quorum member "
                       "reads its server id from it")


def test_quorum_needs_data_dir():
    text = ("storage=memory\ninitLimit=1\nsyncLimit=1\nclientPort=1\n"
            "server.1=a:1:2\nserver.2=b:1:2\n")
    assert error_of(text) == ("zoo.cfg: dataDir: required: a quorum member reads its server id "
                              "from dataDir/myid")


def test_myid_not_among_the_servers(tmp_path):
    message = error_of(quorum(tmp_path, myid="4"))
    assert message == f"{tmp_path / 'myid'}:1: myid: server id 4 has no server.4 line in zoo.cfg"


@pytest.mark.parametrize("content", ["", "one", "-1", "256"])
def test_bad_myid(tmp_path, content):
    (tmp_path / "myid").write_text(content)
    message = error_of(f"dataDir={tmp_path}\nclientPort=1\n")
    assert message == f"{tmp_path / 'myid'}:1: myid: expected a server id 0-255, got {content!r}"


def test_myid_used_when_standalone(tmp_path):
    (tmp_path / "myid").write_text(" 7 \nignored\n")
    assert parse(f"dataDir={tmp_path}\nclientPort=1\n").server_id == 7


@pytest.mark.parametrize("key", ["initLimit", "syncLimit"])
def test_quorum_needs_limits(tmp_path, key):
    text = "\n".join(line for line in quorum(tmp_path).splitlines() if not line.startswith(key))
    assert error_of(text) == f"zoo.cfg: {key}: required in a quorum (server.N lines)"


def test_observer_role_from_server_line(tmp_path):
    servers = "server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2:observer\n"
    c = parse(quorum(tmp_path, myid="3", servers=servers))
    assert c.peer_type == "observer"
    assert c.warnings == ()


def test_peer_type_contradicting_server_line_warns(tmp_path):
    c = parse(quorum(tmp_path, myid="1", extra="peerType=observer\n"))
    assert c.peer_type == "participant"
    assert c.warnings == ("zoo.cfg:9: peerType: observer does not match server.1's role "
                          "participant; using the server line's",)


def test_client_port_from_own_server_line(tmp_path):
    servers = "server.1=a:1:2;127.0.0.1:3000\nserver.2=b:1:2;3001\n"
    text = quorum(tmp_path, myid="1", servers=servers).replace("clientPort=2181\n", "")
    c = parse(text)
    assert (c.client_port_address, c.client_port) == ("127.0.0.1", 3000)
    (tmp_path / "myid").write_text("2")
    c = parse(text)
    assert (c.client_port_address, c.client_port) == ("0.0.0.0", 3001)


def test_client_port_contradicting_server_line(tmp_path):
    servers = "server.1=a:1:2;3000\nserver.2=b:1:2;3001\n"
    assert error_of(quorum(tmp_path, servers=servers)) == (
        "zoo.cfg:6: server.1: client port 3000 differs from clientPort=2181 (line 5)")


def test_client_address_contradicting_server_line(tmp_path):
    servers = "server.1=a:1:2;127.0.0.2:2181\nserver.2=b:1:2\n"
    message = error_of(quorum(tmp_path, servers=servers, extra="clientPortAddress=127.0.0.1\n"))
    assert message == ("zoo.cfg:6: server.1: client address 127.0.0.2 differs from "
                       "clientPortAddress=127.0.0.1 (line 8)")


def test_wildcard_client_address_agrees_with_server_line(tmp_path):
    servers = "server.1=a:1:2;127.0.0.2:2181\nserver.2=b:1:2\n"
    c = parse(quorum(tmp_path, servers=servers, extra="clientPortAddress=0.0.0.0\n"))
    assert c.client_port_address == "127.0.0.2"


# -- plugin options and unknown keys ---------------------------------------------------------

def test_plugin_options():
    c = cfg("storage=sqlite\nsqlite.url=postgresql://h/db\nsqlite.pool.size=4\n"
            "rocksdb.cache=1\nsqlitex.other=1\n")
    assert c.plugin_options("sqlite") == {"url": "postgresql://h/db", "pool.size": "4"}
    assert c.plugin_options("rocksdb") == {"cache": "1"}
    assert c.plugin_options("memory") == {}


def test_unknown_keys_in_file_order():
    c = cfg("tikTime=2000\nsnapCount=10\nsyncEnabled=true\nquorumListenOnAllIPs=true\n"
            "server.1=a:1:2\nweight.1=1\nssl.keyStore.location=/k\nmetricsProvider.exportJvmInfo=true\n"
            "zookeeper.commitProcessor.numWorkerThreads=2\nauthProvider.1=x\nfoo.bar=1\n"
            "sqlite.url=x\nadmin.idleTimeout=30000\nclientportaddress=x\n")
    assert c.unknown_keys() == ["tikTime", "foo.bar", "clientportaddress"]


def test_unknown_keys_skip_plugins_keys():
    c = cfg("storage=rocksdb\nrocksdb.cache=1\nsqlite.url=x\nmine.opt=2\nconsensus=zab\nzab.x=1\n")
    assert c.unknown_keys() == ["sqlite.url", "mine.opt"]
    assert c.unknown_keys(["sqlite", "mine"]) == []


def test_error_helper_for_plugins():
    c = cfg("sqlite.url=nonsense\n")
    e = c.error("sqlite.url", "expected an SQLAlchemy URL")
    assert str(e) == "zoo.cfg:3: sqlite.url: expected an SQLAlchemy URL"
    assert str(c.error("sqlite.path", "required")) == "zoo.cfg: sqlite.path: required"


# -- core.tap: twistd's Options and makeService ----------------------------------------------

@pytest.fixture
def tap(monkeypatch):
    """core.tap imported against a stand-in core.service that records the Config it gets."""
    built: list[Config] = []

    def build_service(config: Config) -> MultiService:
        built.append(config)
        if config.plugin_options("fail"):
            raise config.error("fail.reason", "refused by a plugin")
        return MultiService()

    fake = types.ModuleType("core.service")
    fake.build_service = build_service  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "core.service", fake)
    monkeypatch.delitem(sys.modules, "core.tap", raising=False)
    monkeypatch.delattr(core, "tap", raising=False)
    module = importlib.import_module("core.tap")
    module.built = built
    yield module
    # monkeypatch then puts back whatever core.tap was before
    sys.modules.pop("core.tap", None)
    if getattr(core, "tap", None) is module:
        del core.tap


def test_tap_options_default_and_short_flag(tap):
    options = tap.Options()
    options.parseOptions([])
    assert options["config"] == "zoo.cfg"
    options = tap.Options()
    options.parseOptions(["-c", "/etc/zk.cfg"])
    assert options["config"] == "/etc/zk.cfg"


def test_tap_make_service_builds_from_config(tap, tmp_path):
    path = tmp_path / "zoo.cfg"
    path.write_text("storage=memory\nclientPort=0\n")
    options = tap.Options()
    options.parseOptions(["--config", str(path)])
    service = tap.makeService(options)
    assert isinstance(service, MultiService)
    assert [c.source for c in tap.built] == [str(path)]


@pytest.mark.parametrize("text, line", [
    ("storage=memory\nclientPort=0\ntickTime=abc\n", "{path}:3: tickTime: expected a positive "
                                                     "integer, got 'abc'"),
    ("storage=memory\nclientPort=0\nfail.reason=x\n", "{path}:3: fail.reason: refused by a plugin"),
])
def test_tap_config_error_is_one_line_and_status_2(tap, tmp_path, capsys, text, line):
    path = tmp_path / "zoo.cfg"
    path.write_text(text)
    options = tap.Options()
    options.parseOptions(["-c", str(path)])
    with pytest.raises(SystemExit) as info:
        tap.makeService(options)
    assert info.value.code == 2
    assert capsys.readouterr().err == line.format(path=path) + "\n"


def test_dropin_names_core_tap():
    from twisted.plugin import getPlugins
    from twisted.application.service import IServiceMaker
    import twisted.plugins

    makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
    assert makers["zkserver"].module == "core.tap"
    assert makers["zkserver"].description == "ZooKeeper-compatible coordination server"
