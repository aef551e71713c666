"""`BATCHLINE_REDIS_URL`: one Redis, or a primary found through Sentinel; read once, used by every role.

    redis://[[user]:password@]host:port/db           one Redis (rediss:// for TLS, unix:// for a socket)
    redis+sentinel://[[user]:password@]h1:p1,h2:p2,h3:p3/MASTER_NAME[/db][?sentinel_password=...]
    rediss+sentinel://...[?ssl_ca_certs=/path/ca.pem] the same, TLS to the sentinels and the primary
                                                     (verified against the system's CAs, or that bundle)
    redis+cluster://[[user]:password@]h1:p1[,h2:p2...][/0]   a Redis Cluster (rediss+cluster:// for TLS)

The data side connects with redis-py's `Sentinel(...).master_for(...)`, the Celery broker with kombu's
`sentinel://` transport (`master_name`, `sentinel_kwargs`). Both ask the sentinels for the primary
again on every new connection, so after a failover each role reconnects to the new primary by itself.
A cluster URL names seed nodes: every role talks to the one node that owns the slot of batchline's
hash tag (`batchline/keys.py`, `batchline/redis_cluster.py`), found again from the seeds on every new
connection and after a MOVED. Errors name the setting and the rule; they never echo the password.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from batchline.errors import ConfigError
from batchline.keys import Keys
from batchline.redis_cluster import key_slot

SETTING = "BATCHLINE_REDIS_URL"
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
DIRECT_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_PORT = 26379
REDIS_PORT = 6379
#: The kombu transport of cluster mode (`workers/broker_cluster.py`): kombu's Redis transport, its
#: connections bound to the node that owns batchline's slot.
CLUSTER_TRANSPORT = "batchline.workers.broker_cluster:Transport"


@dataclass(frozen=True)
class Sentinel:
    """A primary behind sentinels, as `BATCHLINE_REDIS_URL` names it."""

    hosts: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_certs: str | None = None  # a CA bundle to verify the servers by, instead of the system's

    def _tls(self) -> dict[str, Any]:
        if not self.tls:
            return {}
        return {"ssl": True, **({"ssl_ca_certs": self.ca_certs} if self.ca_certs else {})}

    def client_kwargs(self) -> dict[str, Any]:
        """What the primary's connections take (password, db, TLS), for redis-py's `master_for`."""
        kw: dict[str, Any] = {"db": self.db}
        if self.username:
            kw["username"] = self.username
        if self.password:
            kw["password"] = self.password
        return {**kw, **self._tls()}

    def sentinel_kwargs(self) -> dict[str, Any]:
        """What the connections to the sentinels themselves take."""
        kw: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
        if self.sentinel_password:
            kw["password"] = self.sentinel_password
        return {**kw, **self._tls()}

    def broker(self) -> tuple[str, dict[str, Any]]:
        """kombu's form: `sentinel://[:password@]h:p;sentinel://...` and its transport options."""
        auth = ""
        if self.password:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        url = ";".join(f"sentinel://{auth}{_netloc(h, p)}/{self.db}" for h, p in self.hosts)
        return url, {"master_name": self.master, "sentinel_kwargs": self.sentinel_kwargs()}


@dataclass(frozen=True)
class Cluster:
    """A Redis Cluster, as `BATCHLINE_REDIS_URL` names it: seed nodes to learn the slot map from."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    def client_kwargs(self) -> dict[str, Any]:
        """What every node's connections take (password, TLS)."""
        kw: dict[str, Any] = {}
        if self.username:
            kw["username"] = self.username
        if self.password:
            kw["password"] = self.password
        return kw

    def broker(self, key_prefix: str) -> tuple[str, dict[str, Any]]:
        """kombu's form: a redis:// URL of the first seed (credentials), the cluster transport's options
        (the seeds and the slot) and `global_keyprefix`, which puts every kombu key in batchline's slot."""
        keys = Keys(key_prefix)
        auth = ""
        if self.password:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        host, port = self.seeds[0]
        url = f"{'rediss' if self.tls else 'redis'}://{auth}{_netloc(host, port)}/0"
        return url, {"global_keyprefix": keys.broker_prefix, "cluster_seeds": [list(s) for s in self.seeds],
                     "cluster_slot": key_slot(keys.prefix)}


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse(url: str) -> Sentinel | Cluster | None:
    """The Sentinel or Cluster form of `url`, or None for a plain Redis URL (which redis-py and kombu read
    as is)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in DIRECT_SCHEMES:
        return None
    if scheme in CLUSTER_SCHEMES:
        return _cluster(url, CLUSTER_SCHEMES[scheme])
    if scheme not in SENTINEL_SCHEMES:
        raise ConfigError(f"{SETTING}: scheme {scheme or '(none)'!r} is not one of redis://, rediss://, unix://, "
                          "redis+sentinel://, rediss+sentinel://, redis+cluster://, rediss+cluster://")
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    hosts = tuple(_host(h) for h in hostlist.split(",") if h.strip())
    if not hosts:
        raise ConfigError(f"{SETTING}: a sentinel URL names at least one sentinel host:port")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ConfigError(f"{SETTING}: a sentinel URL's path is /MASTER_NAME or /MASTER_NAME/DB")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ConfigError(f"{SETTING}: the database after the master name must be a number")
        db = int(path[1])
    query: dict[str, str] = {}
    for pair in filter(None, parts.query.split("&")):
        name, _, value = pair.partition("=")
        if name in query:
            raise ConfigError(f"{SETTING}: query parameter {name!r} given twice")
        query[name] = unquote(value)  # percent-decoding only: a '+' stays a '+'
    unknown = set(query) - {"sentinel_password", "ssl_ca_certs"}
    if unknown:
        raise ConfigError(f"{SETTING}: unknown query parameter(s) {sorted(unknown)}; "
                          "only sentinel_password and ssl_ca_certs")
    tls, ca_certs = SENTINEL_SCHEMES[scheme], query.get("ssl_ca_certs") or None
    if ca_certs and not tls:
        raise ConfigError(f"{SETTING}: ssl_ca_certs is for TLS: use rediss+sentinel://")
    return Sentinel(hosts, unquote(path[0]), db, unquote(username) or None, unquote(password) or None,
                    query.get("sentinel_password"), tls, ca_certs)


def is_cluster(url: str) -> bool:
    return isinstance(parse(url), Cluster)


def _cluster(url: str, tls: bool) -> Cluster:
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    seeds = tuple(_host(h, "cluster node", REDIS_PORT) for h in hostlist.split(",") if h.strip())
    if not seeds:
        raise ConfigError(f"{SETTING}: a cluster URL names at least one node host:port")
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigError(f"{SETTING}: a cluster URL has no path, or /0 (a Redis Cluster has database 0 only)")
    if parts.query:
        raise ConfigError(f"{SETTING}: a cluster URL takes no query parameters")
    return Cluster(seeds, unquote(username) or None, unquote(password) or None, tls)


def _host(text: str, what: str = "sentinel host", default_port: int = SENTINEL_PORT) -> tuple[str, int]:
    """host[:port] or [v6]:port. Errors never echo the text: a password with an unencoded '/', '#',
    '?' or '@' spills into it."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host or (":" in host and not text.startswith("[")):
        raise ConfigError(f"{SETTING}: a {what} is not host:port or [IPv6]:port (percent-encode "
                          "'/', '#', '?' and '@' in passwords)")
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(f"{SETTING}: a {what.split()[0]} port is not a number from 1 to 65535")
    return host, int(port) if port else default_port


def masked(url: str) -> str:
    """`url` with any password replaced by `***`, for printing."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, hosts = rest.rpartition("@")
    rest = (userinfo.partition(":")[0] + ":***@" + hosts) if at and ":" in userinfo else rest
    return f"{scheme}://{rest.split('?')[0]}"


def broker(url: str, key_prefix: str = "bl") -> dict[str, Any]:
    """Celery settings for the broker: its URL, and for sentinels or a cluster the transport, its options
    and TLS. (`key_prefix`: as Settings holds it, the hash tag already applied in cluster mode.)"""
    target = parse(url)
    # a prefix with a hash tag (always so in cluster mode) puts kombu's keys under it, in its slot
    tagged = {"global_keyprefix": Keys(key_prefix).broker_prefix} if Keys(key_prefix).tag else {}
    if target is None:
        return {"broker_url": url, **({"broker_transport_options": tagged} if tagged else {})}
    conf: dict[str, Any]
    if isinstance(target, Cluster):
        kombu_url, transport = target.broker(key_prefix)
        conf = {"broker_url": kombu_url, "broker_transport": CLUSTER_TRANSPORT, "broker_transport_options": transport}
    else:
        kombu_url, transport = target.broker()
        conf = {"broker_url": kombu_url, "broker_transport_options": {**transport, **tagged}}
    if target.tls:
        conf["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED,
                                  **({"ssl_ca_certs": ca} if (ca := getattr(target, "ca_certs", None)) else {})}
    return conf
