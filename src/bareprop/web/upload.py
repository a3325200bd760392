"""Request bodies with a size cap: uploaded images and the Train form's JSON.

The cap holds against a Content-Length that is too large and against a body that is
longer than its Content-Length says (or has none): bytes are counted as they arrive.
"""
from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..errors import DataError

MAX_UPLOAD = 2 << 20                # bytes of one uploaded image
MAX_PARTS = 16                      # parts of a multipart upload (the page sends one)
MAX_PART_HEAD = 8 << 10             # bytes of one part's headers
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,70})"|([^;\s"]{1,70}))', re.IGNORECASE)
_NAME = re.compile(r'(?:^|;)\s*name\s*=\s*(?:"([^"]*)"|([^;\s]*))', re.IGNORECASE)


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
    data, parsed in a worker thread (never on the event loop) within the size cap."""
    body = await capped(request, MAX_UPLOAD + (64 << 10))
    ctype = request.headers.get("content-type", "")
    if ctype.lower().startswith("multipart/form-data"):
        body = await run_in_threadpool(form_field, ctype, body, "image")
    if len(body) > MAX_UPLOAD:
        raise UploadTooLarge()
    if not body:
        raise DataError("the upload is empty; send a PNG or JPEG image")
    return body


def form_field(ctype: str, body: bytes, name: str) -> bytes:
    """The content of the multipart/form-data field ``name`` (the first one), found by one
    flat scan: a form of more than MAX_PARTS parts is refused before it is split, and
    nothing inside a part is parsed (a nested multipart is just bytes)."""
    m = _BOUNDARY.search(ctype)
    if m is None:
        raise DataError("the multipart form has no valid boundary; send the image as "
                        "field 'image' of an ordinary form, or as the raw body")
    delimiter = b"\r\n--" + (m.group(1) or m.group(2)).encode("latin-1")
    text = b"\r\n" + body                       # the first delimiter needs no CRLF
    if text.count(delimiter) > MAX_PARTS + 1:
        raise DataError(f"the form has more than {MAX_PARTS} parts; send only the "
                        "'image' field")
    for part in text.split(delimiter)[1:]:       # [0]: the preamble
        if part.startswith(b"--"):                # the closing delimiter
            break
        head, blank, content = part.partition(b"\r\n\r\n")
        if not blank or len(head) > MAX_PART_HEAD:
            raise DataError("a part of the multipart form is malformed; send the image "
                            "as field 'image' of an ordinary form, or as the raw body")
        for line in head.split(b"\r\n"):
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == "content-disposition":
                found = _NAME.search(value)
                if found and (found.group(1) if found.group(1) is not None
                              else found.group(2)) == name:
                    return content
    raise DataError(f"no '{name}' field in the form; send the PNG/JPEG as field "
                    f"'{name}' or as the raw request body")
