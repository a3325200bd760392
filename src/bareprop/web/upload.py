"""Request bodies with a size cap: uploaded images and the Train form's JSON.

The cap holds against a Content-Length that is too large and against a body that is
longer than its Content-Length says (or has none): bytes are counted as they arrive.
"""
from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP

from starlette.requests import Request

from ..errors import DataError

MAX_UPLOAD = 2 << 20                # bytes of one uploaded image


class UploadTooLarge(Exception):
    pass


async def capped(request: Request, cap: int) -> bytes:
    """The body, refused (UploadTooLarge) as soon as Content-Length or the bytes
    actually streamed pass ``cap`` (a lying or absent Content-Length is no way round)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > cap):
        raise UploadTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise UploadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: Request) -> bytes:
    """The image bytes: a raw image/* body, or the ``image`` field of multipart form
    data (parsed by the standard library's MIME parser, within the size cap)."""
    body = await capped(request, MAX_UPLOAD + (64 << 10))
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
        parts = [p for p in msg.iter_parts() if p.get_param("name", header="content-disposition")
                 == "image"] if msg.is_multipart() else []
        if not parts:
            raise DataError("no 'image' field in the form; send the PNG/JPEG as field "
                            "'image' or as the raw request body")
        body = parts[0].get_payload(decode=True) or b""
    if len(body) > MAX_UPLOAD:
        raise UploadTooLarge()
    if not body:
        raise DataError("the upload is empty; send a PNG or JPEG image")
    return body
