"""Listener and TLS settings without sockets: parsing, cross-checks, systemd's variables."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from swserve.config import Config, parse_bind, parse_mode, problems
from swserve.errors import ConfigError
from swserve.ipc.codec import conn_prefix
from swserve.net.listeners import systemd_fds
from swserve.net.tls import make_server_context


def test_parse_bind_fd() -> None:
    address = parse_bind("fd://3")
    assert (address.family, address.fd) == ("fd", 3)
    for bad in ("fd://", "fd://-1", "fd://three", "fd://3.0"):
        with pytest.raises(ConfigError, match="fd://N takes a file descriptor number"):
            parse_bind(bad)


def test_the_same_fd_twice_is_a_problem() -> None:
    assert problems({"bind": ("fd://3", "fd://3")}) == ["bind address 'fd://3' is given twice"]
    assert problems({"bind": ("fd://3", "fd://4")}) == []


@pytest.mark.parametrize(("text", "mode"), [("0o660", 0o660), ("660", 0o660), ("0600", 0o600)])
def test_parse_mode(text: str, mode: int) -> None:
    assert parse_mode(text) == mode


@pytest.mark.parametrize("text", ["rw-rw----", "0o888", "7777", "0x1ff", ""])
def test_bad_modes(text: str) -> None:
    with pytest.raises(ConfigError, match="is not an octal file mode"):
        parse_mode(text)
    if text:
        (problem,) = problems({"uds_permissions": text})
        assert problem.startswith("--uds-permissions ")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"ssl_keyfile": "k.pem"}, ["--ssl-keyfile needs --ssl-certfile"]),
        ({"ssl_ca_certs": "ca.pem"}, ["--ssl-ca-certs needs --ssl-certfile"]),
        ({"ssl_ciphers": "HIGH"}, ["--ssl-ciphers needs --ssl-certfile"]),
        (
            {"ssl_certfile": "c.pem", "ssl_cert_reqs": "optional"},
            [
                "--ssl-cert-reqs optional needs --ssl-ca-certs (the CAs that client "
                "certificates are checked against)"
            ],
        ),
        ({"ssl_certfile": "c.pem", "ssl_cert_reqs": "required", "ssl_ca_certs": "ca"}, []),
        ({"ssl_certfile": "c.pem", "ssl_keyfile_password": "pw"}, []),  # key in the chain file
    ],
)
def test_tls_cross_checks(values: dict[str, str], expected: list[str]) -> None:
    assert problems(values) == expected


@pytest.mark.parametrize(
    ("environ", "fds"),
    [
        ({"LISTEN_PID": "42", "LISTEN_FDS": "2"}, [3, 4]),
        ({"LISTEN_PID": "42", "LISTEN_FDS": "0"}, []),
        ({"LISTEN_PID": "41", "LISTEN_FDS": "2"}, []),  # meant for another process
        ({"LISTEN_FDS": "2"}, []),  # no LISTEN_PID: not ours (sd_listen_fds agrees)
        ({"LISTEN_PID": "42"}, []),
        ({}, []),
    ],
)
def test_systemd_fds(environ: dict[str, str], fds: list[int]) -> None:
    assert systemd_fds(environ, 42) == fds


def test_systemd_fds_bad_count() -> None:
    with pytest.raises(ConfigError, match="LISTEN_FDS='x'"):
        systemd_fds({"LISTEN_PID": "42", "LISTEN_FDS": "x"}, 42)


def test_conn_prefix_takes_ipv6_addresses() -> None:
    prefix = conn_prefix("https", ("::1", 5000, 0, 0), ("::1", 443, 0, 0))
    assert prefix == [b"https", b"::1", b"5000", b"::1", b"443"]


# -- the TLS context ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("pems")
    ca = trustme.CA()
    both = folder / "both.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(both))
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return {"both": str(both), "ca": str(ca_file)}


def test_no_certfile_no_tls() -> None:
    assert make_server_context(Config()) is None


def test_context_policy(pems: dict[str, str]) -> None:
    ctx = make_server_context(Config(ssl_certfile=pems["both"]))
    assert ctx is not None
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE
    assert ctx.options & ssl.OP_NO_COMPRESSION


@pytest.mark.parametrize(
    ("reqs", "mode"), [("optional", ssl.CERT_OPTIONAL), ("required", ssl.CERT_REQUIRED)]
)
def test_client_certificates(pems: dict[str, str], reqs: str, mode: ssl.VerifyMode) -> None:
    ctx = make_server_context(
        Config(ssl_certfile=pems["both"], ssl_ca_certs=pems["ca"], ssl_cert_reqs=reqs)
    )
    assert ctx is not None
    assert ctx.verify_mode == mode
    assert ctx.cert_store_stats()["x509_ca"] == 1


def test_ciphers(pems: dict[str, str]) -> None:
    ctx = make_server_context(Config(ssl_certfile=pems["both"], ssl_ciphers="ECDHE+AESGCM"))
    assert ctx is not None
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12
    assert all("GCM" in name and name.startswith("ECDHE") for name in tls12)
    with pytest.raises(ConfigError, match="--ssl-ciphers 'NOPE' selects no cipher"):
        make_server_context(Config(ssl_certfile=pems["both"], ssl_ciphers="NOPE"))


def test_bad_ca_file(pems: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"^--ssl-ca-certs .*junk\.pem: cannot load CA"):
        make_server_context(Config(ssl_certfile=pems["both"], ssl_ca_certs=str(junk)))
    with pytest.raises(ConfigError, match="No such file"):
        make_server_context(Config(ssl_certfile=pems["both"], ssl_ca_certs=str(tmp_path / "x")))
