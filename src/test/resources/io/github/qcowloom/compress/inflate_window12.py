"""Inflates each case of the file argv[1] as QEMU's 4 KiB window (zlib wbits -12) allows, strictly.

A case is u32 BE stream length, the raw deflate stream, u32 BE expected output length. For each case one
line goes to stdout: "ok <sha256 of the output>" or "error <reason>".

Output is taken one byte per call: within one call zlib lets a back-reference reach into the output of that
same call whatever the window, so only one-byte calls check every reference against the 4 KiB window.
"""
import hashlib
import struct
import sys
import zlib


def inflate(stream, size):
    d = zlib.decompressobj(-12)
    out = bytearray()
    pos = 0
    pending = b""
    while not d.eof:
        if not pending:
            pending = stream[pos:pos + 64]
            pos += 64
        produced = d.decompress(pending, 1)
        if not produced and not pending and not d.eof:
            raise zlib.error("stream truncated")
        out += produced
        pending = d.unconsumed_tail
        if len(out) > size:
            raise zlib.error("more output than expected")
    return bytes(out)


with open(sys.argv[1], "rb") as f:
    data = f.read()
at = 0
while at < len(data):
    (length,) = struct.unpack_from(">I", data, at)
    stream = data[at + 4:at + 4 + length]
    (size,) = struct.unpack_from(">I", data, at + 4 + length)
    at += 8 + length
    try:
        print("ok", hashlib.sha256(inflate(stream, size)).hexdigest())
    except zlib.error as e:
        print("error", e)
