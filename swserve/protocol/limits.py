"""Size limits the parser glue enforces (httptools/llhttp enforces none itself)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    # request_line limits the request-target, the one unbounded part of the
    # request line: both parsers compare the target's length with it (414).
    # The method is bounded by the longest one implemented (501 past that,
    # RFC 9112 §3) and the version is 8 bytes, so the whole line is at most
    # about request_line + 20.  8190 is the largest limit_request_line
    # gunicorn accepts (its default is 4094, both for the whole line) and
    # gunicorn's default limit_request_field_size (which counts the whole
    # field line; here name plus value); 100 header fields is gunicorn's
    # limit_request_fields; 64 KiB for the whole head is
    # nginx's large_client_header_buffers (4 x 16k) rounded, and h11's 16 KiB
    # is too small for some cookie-heavy sites.  A field's size is its name
    # plus its value without OWS; header_block is the sum of (size + 4).
    request_line: int = 8190
    header_count: int = 100
    header_field: int = 8190
    header_block: int = 64 * 1024
    body: int = 16 * 1024 * 1024

    @property
    def head_backstop(self) -> int:
        """Raw bytes an incomplete head (or trailer line) may buffer: 431 past this.

        The limits above count field sizes, which leave out optional
        whitespace; this bounds what the glue holds while a head dribbles in.
        """
        return self.request_line + self.header_block + 4096
