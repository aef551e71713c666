"""`rediss+sentinel://`: sentinels, primary and replica that speak TLS only (real redis-servers on
loopback with a CA made for the test). Producers, worker clients and the Celery broker reach the
primary over TLS, verified against `ssl_ca_certs`, and follow a failover; a server the CA did not sign
is refused."""

from __future__ import annotations

import datetime
import ipaddress
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from batchline.config.settings import Settings
from batchline.local_sentinel import SentinelGroup
from batchline.local_services import TLSFiles
from batchline.producers.producer import Producer
from batchline.workers.app import create_app
from batchline.workers.context import Context

pytestmark = pytest.mark.slow


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
          ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_tls(directory: Path, name: str) -> TLSFiles:
    """A CA, and a certificate for 127.0.0.1 and localhost that it signed, as PEM files in `directory`."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = _cert(f"{name} test CA", ca_key, ca_name, ca_key, ca=True)
    cert = _cert("127.0.0.1", key, ca_name, ca_key, ca=False)
    files = TLSFiles(ca=str(directory / f"{name}-ca.pem"), cert=str(directory / f"{name}.pem"),
                     key=str(directory / f"{name}.key"))
    Path(files.ca).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(files.cert).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(files.key).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return files


@pytest.fixture
def tls_group(tmp_path) -> Iterator[SentinelGroup]:
    g = SentinelGroup(tls=make_tls(tmp_path, "redis"), password="pw").start()
    yield g
    g.stop()


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"q {i}"}]}


def test_every_role_reaches_the_primary_over_tls_and_follows_a_failover(tls_group):
    g = tls_group
    assert g.url.startswith("rediss+sentinel://") and "ssl_ca_certs=" in g.url
    with pytest.raises(redis.ConnectionError):  # TLS only: plain TCP gets nothing
        redis.Redis(port=g.primary.port, password="pw", socket_timeout=2).ping()
    s = Settings(redis_url=g.url, key_prefix=f"t{uuid.uuid4().hex[:6]}")
    producer, ctx = Producer.from_settings(s), Context(s)
    assert producer.submit_many([{"custom_id": f"a-{i}", "params": params(i)} for i in range(20)]).accepted == 20
    app = create_app(s)
    with app.connection_for_write() as conn:  # kombu's sentinel transport, over TLS
        conn.ensure_connection(max_retries=3)
        with conn.SimpleQueue("tls-probe") as q:
            q.put({"hello": 1})
            assert q.get(timeout=5).payload == {"hello": 1}
    old = g.primary.port
    g.primary.kill()
    new = g.wait_primary()
    deadline = time.monotonic() + 30
    while True:
        try:
            report = producer.submit_many([{"custom_id": f"b-{i}", "params": params(i)} for i in range(20)])
            break
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert report.accepted == 20 and new != old
    assert ctx.redis.info("server")["tcp_port"] == new  # the worker's client moved too
    assert ctx.redis.config_get("port")["port"] == "0"  # and it is on TLS: the plain port is off


def test_a_server_the_ca_did_not_sign_is_refused(tls_group, tmp_path):
    other = make_tls(tmp_path, "other")  # a CA that signed nothing the servers hold
    url = tls_group.url.split("?")[0] + f"?ssl_ca_certs={other.ca}"
    # no sentinel passes verification, so none can name the primary (redis-py's MasterNotFoundError)
    with pytest.raises(redis.ConnectionError, match="No master found for 'batchline'"):
        Producer.from_settings(Settings(redis_url=url)).submit("x-1", params(1))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):  # and the primary itself
        redis.Redis(port=tls_group.primary.port, password="pw", ssl=True, ssl_ca_certs=other.ca).ping()
