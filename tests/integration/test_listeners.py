"""Listeners over the real server: TLS, fd://N, systemd socket activation, unix modes, IPv6.

Certificates are made per module by trustme (a throwaway CA); inherited
sockets are bound by the test and passed with ``pass_fds``, as a supervisor
or systemd would.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from tests.helpers import ResponseReader, exchange
from tests.integration.conftest import APPS, Server, Starter

pytestmark = pytest.mark.modes("process", "base", "reactors")

GET = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
PASSWORD = "correct horse"  # noqa: S105  # of a throwaway test key


@dataclass
class Certs:
    ca: trustme.CA
    chain: Path  # the server's certificate chain
    key: Path
    encrypted_key: Path  # the same key, encrypted with PASSWORD
    other_key: Path  # a key that does not belong to the certificate
    ca_file: Path
    client: trustme.LeafCert  # a client certificate issued by the same CA

    def client_context(self, *, with_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if with_cert:
            self.client.configure_cert(ctx)
        return ctx


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "::1", "localhost")
    chain, key, encrypted, other, ca_file = (
        folder / name for name in ("chain.pem", "key.pem", "enc.pem", "other.pem", "ca.pem")
    )
    chain.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key))
    private = serialization.load_pem_private_key(server.private_key_pem.bytes(), None)
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    ca.issue_cert("elsewhere.example").private_key_pem.write_to_path(str(other))
    ca.cert_pem.write_to_path(str(ca_file))
    return Certs(ca, chain, key, encrypted, other, ca_file, ca.issue_cert("client.example"))


def tls_args(certs: Certs, *extra: str) -> tuple[str, ...]:
    return ("--ssl-certfile", str(certs.chain), "--ssl-keyfile", str(certs.key), *extra)


def tls_exchange(port: int, ctx: ssl.SSLContext, request: bytes = GET) -> bytes:
    """Send ``request`` over TLS; the raw response, or the failure as text."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(request)
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
    except (ssl.SSLError, ConnectionError) as exc:
        return f"refused: {exc!r}".encode()


# -- TLS -------------------------------------------------------------------------------------


def test_tls_wsgi_sees_https(serve: Starter, certs: Certs) -> None:
    server = serve("wsgi_echo:app", *tls_args(certs), workers=1)
    assert server.scheme == "https"  # the "Listening on https://…" line
    with httpx.Client(base_url=server.url, verify=certs.client_context(), timeout=10) as client:
        environ = client.get("/environ").json()
        assert environ["wsgi.url_scheme"] == "https"
        assert client.post("/echo", content=b"x" * 100_000).content == b"x" * 100_000
    # plain HTTP to the TLS port is not served
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(GET)
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/"), answer


def test_tls_asgi_sees_https_with_an_encrypted_key(serve: Starter, certs: Certs) -> None:
    server = serve(
        "asgi_echo:app",
        "--ssl-certfile", str(certs.chain), "--ssl-keyfile", str(certs.encrypted_key),
        "--ssl-keyfile-password", PASSWORD,
        workers=1,
    )  # fmt: skip
    with httpx.Client(base_url=server.url, verify=certs.client_context(), timeout=10) as client:
        scope = client.get("/scope").json()
    assert scope["scheme"] == "https"
    assert scope["server"][1] == server.port


def _tls11_client_hello() -> bytes:
    """A ClientHello that offers TLS 1.1 at most, made by OpenSSL through memory BIOs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 allows 1.1 at level 0 only
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(incoming, outgoing)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError as exc:
        pytest.skip(f"this OpenSSL cannot offer TLS 1.1: {exc}")
    hello = outgoing.read()
    # a handshake record whose ClientHello.legacy_version is 3.2 (TLS 1.1), no 1.2 or 1.3
    assert hello[:1] == b"\x16", hello[:16]
    assert hello[9:11] == b"\x03\x02", hello[:16]
    return hello


def test_tls_1_1_is_refused_and_1_2_is_served(serve: Starter, certs: Certs) -> None:
    server = serve("wsgi_echo:app", *tls_args(certs), workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_tls11_client_hello())
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b""
    # an alert (0x15) or a close, never a ServerHello (a 0x16 handshake record)
    assert answer[:1] in (b"", b"\x15"), answer[:16]
    ctx = certs.client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    assert tls_exchange(server.port, ctx).startswith(b"HTTP/1.1 200 ")


def test_client_certificate_required(serve: Starter, certs: Certs) -> None:
    server = serve(
        "wsgi_echo:app",
        *tls_args(certs, "--ssl-cert-reqs", "required", "--ssl-ca-certs", str(certs.ca_file)),
        workers=1,
    )
    refused = tls_exchange(server.port, certs.client_context())
    assert not refused.startswith(b"HTTP/"), refused[:200]
    served = tls_exchange(server.port, certs.client_context(with_cert=True))
    assert served.startswith(b"HTTP/1.1 200 "), served[:200]


def test_tls_handshake_is_bounded_by_header_timeout(serve: Starter, certs: Certs) -> None:
    server = serve("wsgi_echo:app", *tls_args(certs, "--header-timeout", "1"), workers=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent:
        silent.settimeout(5)  # far below uvloop's default 60 s handshake timeout
        try:
            assert silent.recv(100) == b""  # closed by the server, not by our timeout
        except ConnectionResetError:
            pass


def _fails_to_start(args: list[str], code: int) -> list[str]:
    """Run swserve that must exit with ``code`` before serving; its error lines."""
    server = Server(args)
    try:
        assert server.wait_exit(30) == code, server.logs()
    finally:
        server.kill_group()
    assert "Traceback" not in server.logs()
    return [line for line in server.stderr if "ERROR" in line or "Error" in line]


def _swserve(*args: str) -> list[str]:
    return [sys.executable, "-m", "swserve", "wsgi_echo:app", "--app-dir", str(APPS),
            "--bind", "127.0.0.1:0", "--workers", "1", *args]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing cert", "--ssl-certfile {tmp}/nope.pem: No such file or directory"),
        ("missing key", "--ssl-keyfile {tmp}/nope.pem: No such file or directory"),
        ("wrong password", "--ssl-keyfile {enc}: wrong --ssl-keyfile-password"),
        ("no password", "--ssl-keyfile {enc} is encrypted: give --ssl-keyfile-password"),
        ("not a cert", "--ssl-certfile {key} holds no PEM certificate"),
        ("key mismatch", "--ssl-keyfile {other} is not the private key of --ssl-certfile"),
    ],
)
def test_bad_tls_files_are_one_line_and_exit_1(
    certs: Certs, tmp_path: Path, case: str, expected: str
) -> None:
    chain, key, enc = str(certs.chain), str(certs.key), str(certs.encrypted_key)
    missing = str(tmp_path / "nope.pem")
    flags = {
        "missing cert": ["--ssl-certfile", missing, "--ssl-keyfile", key],
        "missing key": ["--ssl-certfile", chain, "--ssl-keyfile", missing],
        "wrong password": ["--ssl-certfile", chain, "--ssl-keyfile", enc,
                           "--ssl-keyfile-password", "wrong"],
        "no password": ["--ssl-certfile", chain, "--ssl-keyfile", enc],
        "not a cert": ["--ssl-certfile", key, "--ssl-keyfile", key],
        "key mismatch": ["--ssl-certfile", chain, "--ssl-keyfile", str(certs.other_key)],
    }[case]  # fmt: skip
    errors = _fails_to_start(_swserve(*flags), 1)
    want = expected.format(tmp=tmp_path, enc=enc, key=key, other=certs.other_key)
    assert len(errors) == 1, errors
    assert want in errors[0], errors


def test_tls_settings_that_cannot_work_are_usage_errors(certs: Certs) -> None:
    errors = _fails_to_start(
        _swserve(*tls_args(certs, "--ssl-cert-reqs", "required")), 2
    )  # no --ssl-ca-certs to check client certificates against
    assert any("--ssl-cert-reqs required needs --ssl-ca-certs" in line for line in errors), errors


# -- unix sockets, IPv6, backlog -------------------------------------------------------------


def test_uds_permissions(serve: Starter, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    serve("wsgi_echo:app", "--bind", f"unix:{path}", "--uds-permissions", "0o600", workers=1)
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(GET)
        assert ResponseReader(sock).read().status == 200


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_loopback(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--bind", "[::1]:0", workers=1)
    port = int(server.wait_for(r"Listening on http://\[::1\]:(\d+)").group(1))
    with socket.create_connection(("::1", port), timeout=10) as sock:
        sock.sendall(b"GET /environ HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
        response = ResponseReader(sock).read()
    assert response.status == 200
    assert json.loads(response.body)["REMOTE_ADDR"] == "::1"


def _listen_backlog(port: int) -> int | None:
    """The listen queue length of a listening TCP port, as ss(8) shows it (Send-Q)."""
    try:
        out = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=10
        ).stdout
    except FileNotFoundError:
        pytest.skip("ss (iproute2) is not installed")
    fields = out.split()
    return int(fields[2]) if len(fields) > 2 else None


def test_backlog(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--backlog", "37", workers=1)
    assert _listen_backlog(server.port) == 37


# -- inherited sockets: fd://N and systemd ---------------------------------------------------


@pytest.fixture
def inherited() -> Iterator[socket.socket]:
    """A listening TCP socket on 127.0.0.1, to be passed to swserve."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.set_inheritable(True)
    yield sock
    sock.close()


def test_fd_bind(serve: Starter, inherited: socket.socket) -> None:
    fd, port = inherited.fileno(), inherited.getsockname()[1]
    server = serve("wsgi_echo:app", "--bind", f"fd://{fd}", workers=1, pass_fds=[fd])
    inherited.close()  # only the server holds it now
    server.wait_for(rf"Listening on http://127\.0\.0\.1:{port}\b")
    assert exchange(port, GET)[0].status == 200
    assert exchange(server.port, GET)[0].status == 200  # the --bind 127.0.0.1:0 beside it


@pytest.mark.parametrize("kind", ["closed", "file", "udp", "not listening"])
def test_fd_bind_rejects_what_is_not_a_listening_socket(
    serve: Starter, tmp_path: Path, kind: str
) -> None:
    keep: list[socket.socket] = []
    if kind == "closed":
        fd = 999  # nothing in the child has that many files open; none is passed
        pass_fds: list[int] = []
        expected = f"fd {fd} is not open"
    elif kind == "file":
        fd = os.open(tmp_path / "plain", os.O_CREAT | os.O_RDWR)
        pass_fds, expected = [fd], f"fd {fd} is not a socket"
    else:
        sock = socket.socket(
            socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
        )
        sock.bind(("127.0.0.1", 0))
        keep.append(sock)
        fd = sock.fileno()
        pass_fds = [fd]
        expected = f"fd {fd} is not " + ("a stream" if kind == "udp" else "listening")
    try:
        server = serve("wsgi_echo:app", "--bind", f"fd://{fd}", wait=False, pass_fds=pass_fds)
        server.expected_exit = 1
        assert server.wait_exit(30) == 1, server.logs()
    finally:
        for sock in keep:
            sock.close()
        if kind == "file":
            os.close(fd)
    errors = [line for line in server.stderr if "ERROR" in line]
    assert len(errors) == 1, server.logs()
    assert f"cannot listen on fd://{fd}: {expected}" in errors[0]
    assert "Traceback" not in server.logs()


# The exec wrapper a service manager amounts to: the socket becomes fd 3 and
# LISTEN_PID names the process that exec() turns into swserve (same pid).
SYSTEMD_WRAPPER = (
    "import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); fd != 3 and os.close(fd); "
    "os.environ['LISTEN_PID'] = str(os.getpid()); os.execv(sys.executable, sys.argv[2:])"
)


def _socket_activated(sock: socket.socket, *args: str) -> Server:
    wrapper = [sys.executable, "-c", SYSTEMD_WRAPPER, str(sock.fileno())]
    command = [sys.executable, "-m", "swserve", "listen_env:app", "--app-dir", str(APPS)]
    return Server(
        [*wrapper, *command, "--workers", "1", *args],
        env={"LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"},
        pass_fds=[sock.fileno()],
    )


def test_systemd_socket_activation(inherited: socket.socket) -> None:
    port = inherited.getsockname()[1]
    server = _socket_activated(inherited)
    inherited.close()
    try:
        server.wait_ready()
        assert server.port == port  # the passed socket, not the default 127.0.0.1:8000
        assert sum("Listening on" in line for line in server.stderr) == 1
        with httpx.Client(base_url=server.url, timeout=10) as client:
            seen = client.get("/").json()
        # unset before any fork: a worker (or anything it starts) must not take fd 3
        assert seen == {
            "LISTEN_PID": None, "LISTEN_FDS": None, "LISTEN_FDNAMES": None, "scheme": "http",
        }  # fmt: skip
    finally:
        code = server.stop()
    assert code == 0, server.logs()


def test_systemd_sockets_unnamed_by_bind_are_closed(inherited: socket.socket) -> None:
    port = inherited.getsockname()[1]
    server = _socket_activated(inherited, "--bind", "127.0.0.1:0")
    inherited.close()
    try:
        server.wait_ready()
        assert server.port != port
        server.wait_for(r"systemd passed socket fd\(s\) 3, but --bind is given")
        with pytest.raises(ConnectionRefusedError):  # nobody holds the systemd socket now
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        assert exchange(server.port, GET)[0].status == 200
    finally:
        code = server.stop()
    assert code == 0, server.logs()


def test_systemd_socket_named_by_bind_is_served(inherited: socket.socket) -> None:
    port = inherited.getsockname()[1]
    server = _socket_activated(inherited, "--bind", "fd://3", "--bind", "127.0.0.1:0")
    inherited.close()
    try:
        server.wait_for(rf"Listening on http://127\.0\.0\.1:{port}\b", 30)
        assert exchange(port, GET)[0].status == 200
        assert not any("systemd passed" in line for line in server.stderr)
    finally:
        code = server.stop()
    assert code == 0, server.logs()
