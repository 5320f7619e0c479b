"""Size limits the parser glue enforces (httptools/llhttp enforces none itself)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    # 8190 for the request line and one header field are gunicorn's defaults
    # (limit_request_line, limit_request_field_size); 100 header fields is
    # gunicorn's limit_request_fields; 64 KiB for the whole head is nginx's
    # large_client_header_buffers (4 x 16k) rounded, and h11's 16 KiB is too
    # small for some cookie-heavy sites.
    request_line: int = 8190
    header_count: int = 100
    header_field: int = 8190
    header_block: int = 64 * 1024
    body: int = 16 * 1024 * 1024
