"""TLS and mutual TLS, as pyarrow and the command line meet them.

`serve --tls-cert --tls-key` speaks TLS only (the address line says grpc+tls://); pyarrow connects
with `flight.connect("grpc+tls://...", tls_root_certs=CA_PEM)`. With `--tls-client-ca` every call
needs a client certificate signed by that CA (pyarrow: `cert_chain=`, `private_key=`); a missing or
expired one is refused with UNAUTHENTICATED and a message that says what is wrong. With a token file
that lists certificates, a certificate's subject is a caller with a role, like a token. Certificate
files are read again when they change, without a restart.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pyarrow.flight as flight
import pytest

from conftest import start_server, wait_job
from tlscerts import CA

TIMEOUT = flight.FlightCallOptions(timeout=30)


def psd(client: flight.FlightClient) -> str:
    body = json.dumps({"dataset": "demo", "fs": 250, "nperseg": 128}).encode()
    res = list(client.do_action(flight.Action("psd", body), TIMEOUT))
    return json.loads(res[0].body.to_pybytes())["job_id"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, other = CA("lab CA"), CA("other CA")
    p = {"dir": d, "ca": ca, "other": other, "ca_file": ca.write(d, "ca"), "other_file": other.write(d, "other")}
    p["server_cert"], p["server_key"] = ca.server().write(d, "server")
    p["alice"] = ca.client("alice", "Neuro Lab")
    p["bob"] = ca.client("bob", "Neuro Lab")
    p["expired"] = ca.expired_client("old", "Neuro Lab")
    p["stranger"] = other.client("mallory", "Elsewhere")
    return p


@pytest.fixture(scope="module")
def tls_server(flightbatch_bin, tmp_path_factory, pki):
    srv = start_server(
        flightbatch_bin, tmp_path_factory.mktemp("tls"), "--demo-shards", "2",
        "--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"]),
    )
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def mtls_server(flightbatch_bin, tmp_path_factory, pki):
    work = tmp_path_factory.mktemp("mtls")
    tokens = work / "tokens.json"
    tokens.write_text(json.dumps({"certificates": [
        {"name": "alice", "subject": "CN=alice,O=Neuro Lab", "role": "read"},
        {"name": "bob", "subject": "CN=bob,O=Neuro Lab", "role": "submit"},
    ]}))
    srv = start_server(
        flightbatch_bin, work, "--demo-shards", "2",
        "--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"]),
        "--tls-client-ca", str(pki["ca_file"]), "--auth-tokens", str(tokens),
    )
    yield srv
    assert srv.stop() == 0


def test_listen_line_says_tls(tls_server):
    assert tls_server.location.startswith("grpc+tls://127.0.0.1:")


def test_pyarrow_connects_with_the_lab_ca(tls_server, pki):
    c = flight.connect(tls_server.location, tls_root_certs=pki["ca"].pem)
    names = [f.descriptor.path for f in c.list_flights(options=TIMEOUT)]
    assert [b"datasets", b"demo"] in names
    job = psd(c)
    assert wait_job(c, job)["state"] == "SUCCEEDED"
    assert c.do_get(flight.Ticket(f"jobs/{job}".encode()), TIMEOUT).read_all().num_rows > 0
    c.close()


def test_pyarrow_refuses_the_wrong_ca(tls_server, pki):
    c = flight.connect(tls_server.location, tls_root_certs=pki["other"].pem)
    with pytest.raises(flight.FlightUnavailableError):
        c.list_flights(options=TIMEOUT).__next__()
    c.close()


def test_plaintext_client_cannot_talk_to_a_tls_server(tls_server):
    c = flight.connect(f"grpc://{tls_server.addr}")
    with pytest.raises(flight.FlightUnavailableError):
        list(c.list_flights(options=TIMEOUT))
    c.close()


def test_cli_over_tls(tls_server, pki, flightbatch_bin):
    ok = subprocess.run(
        [str(flightbatch_bin), "datasets", "--addr", tls_server.location, "--tls-ca", str(pki["ca_file"])],
        capture_output=True, text=True, timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "demo" in ok.stdout
    bad = subprocess.run(
        [str(flightbatch_bin), "datasets", "--addr", tls_server.location, "--tls-ca", str(pki["other_file"])],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode != 0
    assert "certificate signed by unknown authority" in bad.stderr, bad.stderr


def connect_as(server, pki, who: str | None) -> flight.FlightClient:
    kw = {}
    if who is not None:
        kw = {"cert_chain": pki[who].cert_pem, "private_key": pki[who].key_pem}
    return flight.connect(server.location, tls_root_certs=pki["ca"].pem, **kw)


def test_mutual_tls_callers_and_roles(mtls_server, pki):
    bob = connect_as(mtls_server, pki, "bob")
    job = psd(bob)
    alice = connect_as(mtls_server, pki, "alice")
    st = wait_job(alice, job)
    assert st["state"] == "SUCCEEDED"
    assert st["submitted_by"] == "bob"
    with pytest.raises(flight.FlightUnauthorizedError, match="role submit"):
        psd(alice)


@pytest.mark.parametrize(
    "who, message",
    [
        (None, "no client certificate: this server uses mutual TLS"),
        ("expired", 'client certificate "CN=old,O=Neuro Lab" expired at'),
    ],
)
def test_mutual_tls_refusals_say_why(mtls_server, pki, who, message):
    c = connect_as(mtls_server, pki, who)
    with pytest.raises(flight.FlightUnauthenticatedError, match=message):
        list(c.list_flights(options=TIMEOUT))
    c.close()


def test_mutual_tls_refuses_another_cas_client(mtls_server, pki):
    c = connect_as(mtls_server, pki, "stranger")
    with pytest.raises(flight.FlightUnauthenticatedError, match="not signed by a CA the server trusts"):
        list(c.list_flights(options=TIMEOUT))
    c.close()


def test_cli_with_client_certificate(mtls_server, pki, flightbatch_bin, tmp_path):
    cert, key = pki["alice"].write(tmp_path, "alice")
    base = [str(flightbatch_bin), "jobs", "--addr", mtls_server.location, "--tls-ca", str(pki["ca_file"])]
    ok = subprocess.run(base + ["--tls-cert", str(cert), "--tls-key", str(key)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "no client certificate" in refused.stderr, refused.stderr


def test_certificates_reload_on_change(flightbatch_bin, tmp_path):
    first, second = CA("first"), CA("second")
    cert, key = first.server().write(tmp_path, "server")
    srv = start_server(flightbatch_bin, tmp_path / "srv", "--demo-shards", "1", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        c = flight.connect(srv.location, tls_root_certs=first.pem)
        assert list(c.list_flights(options=TIMEOUT))
        c.close()
        renewed = second.server()
        # Written to temporary names and renamed, as certificate tools do.
        tmp_cert, tmp_key = renewed.write(tmp_path, "renewed")
        os.replace(tmp_key, key)
        os.replace(tmp_cert, cert)
        later = time.time() + 2
        os.utime(cert, (later, later))
        os.utime(key, (later, later))
        c = flight.connect(srv.location, tls_root_certs=second.pem)
        assert list(c.list_flights(options=TIMEOUT))
        c.close()
        old = flight.connect(srv.location, tls_root_certs=first.pem)
        with pytest.raises(flight.FlightUnavailableError):
            list(old.list_flights(options=TIMEOUT))
        old.close()
        assert "certificate files reloaded" in srv.stderr_text()
    finally:
        assert srv.stop() == 0


def test_python_client_over_tls(tls_server, pki):
    import flightbatch

    c = flightbatch.connect(tls_server.location, tls_root_certs=pki["ca_file"])
    assert "demo" in list(c.datasets()["name"])
    c.close()
    c = flightbatch.connect(tls_server.location, tls_root_certs=pki["ca"].pem)
    assert "demo" in list(c.datasets()["name"])
    c.close()
    wrong = flightbatch.connect(tls_server.location, tls_root_certs=pki["other"].pem)
    with pytest.raises(flight.FlightUnavailableError):
        wrong.datasets()
    wrong.close()
