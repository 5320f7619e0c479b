"""The server's TLS context, built once from the ``--ssl-*`` settings.

Built in the master before anything is forked, so a missing certificate or a
wrong key password fails at start-up with one line (a ``ConfigError``), never
on the first client.  Process mode hands the context to the reactor's
acceptor; base mode (workers accepting connections themselves) can build or
inherit the same context: nothing here depends on where it is used.

Policy, whatever the settings say:

- TLS 1.2 is the minimum version (RFC 8996 deprecates 1.0 and 1.1); 1.3 is
  negotiated when the client has it.
- ALPN offers ``h2`` then ``http/1.1`` with ``--http2 on``, ``http/1.1`` alone
  otherwise, so a client that asks for ``h2`` falls back instead of failing
  after the handshake.
- TLS compression is off (CRIME); the rest is Python's secure server defaults
  (``ssl.create_default_context``), unless ``--ssl-ciphers`` narrows the TLS 1.2
  cipher list.  TLS 1.3 suites are not configurable there (OpenSSL's rule).
"""

from __future__ import annotations

import ssl
from typing import Final

from swserve.config import Config
from swserve.errors import ConfigError

CERT_REQS: Final = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def make_server_context(config: Config) -> ssl.SSLContext | None:
    """The server-side SSLContext of ``config``, or None when TLS is off (no --ssl-certfile).

    Raises:
        ConfigError: a file cannot be read or is not what it should be, the
            key does not match the certificate, the password is wrong or
            missing, or ``--ssl-ciphers`` selects no cipher.  One line, naming
            the setting.
    """
    if not config.ssl_certfile:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["h2", "http/1.1"] if config.http2 == "on" else ["http/1.1"])
    _load_chain(ctx, config)
    if config.ssl_ca_certs:
        try:
            ctx.load_verify_locations(cafile=config.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"--ssl-ca-certs {config.ssl_ca_certs}: cannot load CA certificates: {_why(exc)}"
            ) from None
    ctx.verify_mode = CERT_REQS[config.ssl_cert_reqs]
    if config.ssl_ciphers:
        try:
            ctx.set_ciphers(config.ssl_ciphers)
        except ssl.SSLError:
            raise ConfigError(
                f"--ssl-ciphers {config.ssl_ciphers!r} selects no cipher OpenSSL knows"
            ) from None
    return ctx


def _load_chain(ctx: ssl.SSLContext, config: Config) -> None:
    certfile, keyfile = config.ssl_certfile, config.ssl_keyfile or None
    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path is not None:
            _check_readable(flag, path)
    password = config.ssl_keyfile_password.encode()
    asked: list[bool] = []

    def give_password() -> bytes:
        # A callable, never None: with None, OpenSSL would prompt on the
        # terminal for the password of an encrypted key and hang a service.
        # It is called only for an encrypted key, which tells the errors apart.
        asked.append(True)
        return password

    try:
        ctx.load_cert_chain(certfile, keyfile, password=give_password)
    except ssl.SSLError as exc:
        raise ConfigError(_chain_error(config, exc, encrypted=bool(asked))) from None
    except OSError as exc:
        raise ConfigError(f"--ssl-certfile {certfile}: cannot load: {_why(exc)}") from None


def _check_readable(flag: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: {_why(exc)}") from None


def _chain_error(config: Config, exc: ssl.SSLError, *, encrypted: bool) -> str:
    """Say which setting to fix: OpenSSL 3 reports most of these as just "PEM lib"."""
    key_flag = "--ssl-keyfile" if config.ssl_keyfile else "--ssl-certfile"
    key = config.ssl_keyfile or config.ssl_certfile
    if encrypted:
        if config.ssl_keyfile_password:
            return f"{key_flag} {key}: wrong --ssl-keyfile-password"
        return f"{key_flag} {key} is encrypted: give --ssl-keyfile-password"
    if exc.reason == "KEY_VALUES_MISMATCH":
        return f"{key_flag} {key} is not the private key of --ssl-certfile {config.ssl_certfile}"
    with open(config.ssl_certfile, "rb") as f:
        has_cert = b"-----BEGIN CERTIFICATE-----" in f.read()
    if not has_cert:
        return f"--ssl-certfile {config.ssl_certfile} holds no PEM certificate"
    return f"{key_flag} {key} holds no PEM private key"


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or "not valid PEM").lower().replace("_", " ")
    return exc.strerror or str(exc)
