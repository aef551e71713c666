"""BATCHLINE_REDIS_URL's forms (batchline/redis_url.py): plain URLs pass through, sentinel URLs become
redis-py's and kombu's arguments, and a bad one fails naming the setting and the rule, never the password."""

from __future__ import annotations

import ssl

import pytest

from batchline.config.settings import Settings
from batchline.errors import ConfigError
from batchline.redis_url import Cluster, Sentinel, broker, masked, parse


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@h:6380/2", "unix:///tmp/r.sock"])
def test_plain_urls_pass_through(url):
    assert parse(url) is None
    assert broker(url) == {"broker_url": url}


def test_a_sentinel_url_names_hosts_master_db_and_both_passwords():
    target = parse("redis+sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/3"
                   "?sentinel_password=sp")
    assert target == Sentinel((("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)), "mymaster", 3,
                              "app", "s@cret", "sp", False)
    assert target.client_kwargs() == {"db": 3, "username": "app", "password": "s@cret"}
    assert target.sentinel_kwargs()["password"] == "sp" and "ssl" not in target.sentinel_kwargs()
    conf = broker("redis+sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2/mymaster/3?sentinel_password=sp")
    assert conf["broker_url"] == "sentinel://app:s%40cret@10.0.0.1:26379/3;sentinel://app:s%40cret@10.0.0.2:26379/3"
    assert conf["broker_transport_options"]["master_name"] == "mymaster"
    assert conf["broker_transport_options"]["sentinel_kwargs"]["password"] == "sp"
    assert "broker_use_ssl" not in conf


def test_rediss_sentinel_is_tls_to_sentinels_primary_and_broker():
    target = parse("rediss+sentinel://:pw@s1:26379/m")
    assert target is not None and target.tls and target.db == 0
    assert target.client_kwargs()["ssl"] and target.sentinel_kwargs()["ssl"]
    assert broker("rediss+sentinel://:pw@s1:26379/m")["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


@pytest.mark.parametrize(("url", "rule"), [
    ("http://:hunter2@h:1/0", "scheme 'http' is not one of"),
    ("redis+sentinel://:hunter2@/m", "at least one sentinel host"),
    ("redis+sentinel://:hunter2@h:1", "path is /MASTER_NAME"),
    ("redis+sentinel://:hunter2@h:1/m/x", "database after the master name must be a number"),
    ("redis+sentinel://:hunter2@h:port/m", "port is not a number from 1 to 65535"),
    ("redis+sentinel://:hunter2@h:1/m?password=x", "unknown query parameter"),
    ("redis+sentinel://:hunter2@h:1/m?ssl_ca_certs=/ca.pem", "ssl_ca_certs is for TLS: use rediss"),
    ("redis+sentinel://:hunter2@h:1/m?sentinel_password=a&sentinel_password=b", "given twice"),
    ("redis+sentinel://:hunter2@h:99999/m", "port is not a number from 1 to 65535"),
    ("redis+sentinel://:hunter2@::1/m", "not host:port or [IPv6]:port"),
    ("redis+sentinel://:hun/ter2@h:1/m", "percent-encode"),  # an unencoded '/' spills the password
])
def test_a_bad_url_names_the_setting_and_rule_not_the_password(url, rule):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"BATCHLINE_REDIS_URL": url})
    assert str(err.value).startswith("BATCHLINE_REDIS_URL") and rule in str(err.value)
    assert "hunter2" not in str(err.value) and "hun" not in str(err.value).replace("BATCHLINE", "")


def test_query_values_are_percent_decoded_only_and_the_url_never_shows_in_repr():
    target = parse("redis+sentinel://:p%2Fw@h:1/m?sentinel_password=s%2Bx+y")
    assert target is not None and (target.password, target.sentinel_password) == ("p/w", "s+x+y")
    s = Settings.from_env({"BATCHLINE_REDIS_URL": "redis+sentinel://:hunter2@h:1/m?sentinel_password=sp2"})
    assert "hunter2" not in repr(s) and "sp2" not in repr(s)
    assert masked("redis+sentinel://u:hunter2@h:1,g:2/m?sentinel_password=sp2") == "redis+sentinel://u:***@h:1,g:2/m"
    assert masked("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_min_replicas_settings_are_checked():
    s = Settings.from_env({"BATCHLINE_REDIS_MIN_REPLICAS": "1", "BATCHLINE_REDIS_WAIT_TIMEOUT_MS": "250"})
    assert (s.redis_min_replicas, s.redis_wait_timeout_ms) == (1, 250)
    with pytest.raises(ConfigError, match="BATCHLINE_REDIS_WAIT_TIMEOUT_MS=0: must be between 1 and 4000"):
        Settings.from_env({"BATCHLINE_REDIS_WAIT_TIMEOUT_MS": "0"})
    with pytest.raises(ConfigError, match="must be between 1 and 4000"):  # under redis-py's 5 s socket timeout
        Settings.from_env({"BATCHLINE_REDIS_WAIT_TIMEOUT_MS": "6000"})
    with pytest.raises(ConfigError, match="BATCHLINE_REDIS_MIN_REPLICAS=-1"):
        Settings.from_env({"BATCHLINE_REDIS_MIN_REPLICAS": "-1"})


def test_a_cluster_url_names_seed_nodes_and_credentials():
    target = parse("rediss+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7001")
    assert target == Cluster((("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7001)), "app", "s@cret", True)
    assert target.client_kwargs() == {"username": "app", "password": "s@cret"}
    assert "s@cret" not in repr(target)
    conf = broker("rediss+cluster://:pw@h:7000", "{bl}")
    assert conf["broker_url"] == "rediss://:pw@h:7000/0" and conf["broker_use_ssl"]
    assert conf["broker_transport_options"]["global_keyprefix"] == "{bl}:kombu:"


@pytest.mark.parametrize(("url", "rule"), [
    ("redis+cluster://:hunter2@/", "at least one node host:port"),
    ("redis+cluster://:hunter2@h:7000/1", "database 0 only"),
    ("redis+cluster://:hunter2@h:7000?x=1", "takes no query parameters"),
    ("redis+cluster://:hunter2@h:0", "port is not a number from 1 to 65535"),
    ("redis+cluster://:hun/ter2@h:1", "percent-encode"),
])
def test_a_bad_cluster_url_names_the_setting_and_rule_not_the_password(url, rule):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"BATCHLINE_REDIS_URL": url})
    assert str(err.value).startswith("BATCHLINE_REDIS_URL") and rule in str(err.value)
    assert "hunter2" not in str(err.value) and "ter2" not in str(err.value)


@pytest.mark.parametrize(("prefix", "kept"), [("bl", "{bl}"), ("{bl}", "{bl}"), ("app:{bl}", "app:{bl}"),
                                              ("{bl}:x", "{bl}:x")])
def test_cluster_mode_makes_the_prefix_a_hash_tag(prefix, kept):
    s = Settings.from_env({"BATCHLINE_REDIS_URL": "redis+cluster://h:7000", "BATCHLINE_KEY_PREFIX": prefix})
    assert s.key_prefix == kept
    assert Settings.from_env({"BATCHLINE_KEY_PREFIX": prefix}).key_prefix == prefix  # one Redis: unchanged


@pytest.mark.parametrize("prefix", ["{}bl", "bl{", "b}l", "{a}{b}", "a{b", "{a}}"])
def test_cluster_mode_refuses_braces_that_make_no_one_tag(prefix):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"BATCHLINE_REDIS_URL": "redis+cluster://h:7000", "BATCHLINE_KEY_PREFIX": prefix})
    assert str(err.value).startswith(f"BATCHLINE_KEY_PREFIX={prefix!r}: in cluster mode")


def test_a_tagged_prefix_puts_the_broker_keys_under_it_on_one_redis_too():
    assert broker("redis://h:6379/0", "{bl}") == {"broker_url": "redis://h:6379/0",
                                                  "broker_transport_options": {"global_keyprefix": "{bl}:kombu:"}}
    assert broker("redis://h:6379/0", "bl") == {"broker_url": "redis://h:6379/0"}
