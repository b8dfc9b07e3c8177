#!/usr/bin/env python3
"""Writes the committed seed corpus under fuzz/corpus/<target>/ (deterministic).

Seeds are small, valid (or deliberately almost valid) inputs that get libFuzzer past the
first checks quickly: frame headers of every length form, handshake requests and
responses with subprotocols and permessage-deflate offers, client byte streams with
text, binary, fragmented, control, close and compressed frames, and client tokens (claims,
headers, signed and unsigned tokens).

Run from anywhere: python3 fuzz/gen_corpus.py
"""

import base64
import hashlib
import hmac
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])

OP = {"cont": 0x0, "text": 0x1, "bin": 0x2, "close": 0x8, "ping": 0x9, "pong": 0xA}


def header(op, length, fin=True, rsv1=False, mask=None, form=None):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | OP[op]
    m = 0x80 if mask is not None else 0
    if form is None:
        form = 7 if length <= 125 else 16 if length <= 0xFFFF else 64
    if form == 7:
        out = bytes([b0, m | length])
    elif form == 16:
        out = bytes([b0, m | 126]) + struct.pack(">H", length)
    else:
        out = bytes([b0, m | 127]) + struct.pack(">Q", length)
    return out + (mask or b"")


def masked(payload, key=KEY):
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def frame(op, payload, fin=True, rsv1=False, key=KEY):
    """A client frame: masked."""
    return header(op, len(payload), fin, rsv1, key) + masked(payload, key)


def deflate(payload, wbits=15):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame_header():
    seeds = {
        "text-7bit": header("text", 5) + b"Hello",
        "bin-16bit-masked": header("bin", 300, mask=KEY),
        "bin-64bit": header("bin", 70000),
        "bin-64bit-masked": header("bin", 1 << 40, mask=KEY),
        "nonminimal-16": header("text", 5, form=16),
        "nonminimal-64": header("text", 5, form=64),
        "ping-masked": header("ping", 4, mask=KEY) + b"ping",
        "close-125": header("close", 125),
        "cont-notfin": header("cont", 10, fin=False),
        "rsv1-text": header("text", 3, rsv1=True, mask=KEY),
        "short": bytes([0x82]),
        "reserved-op": bytes([0x83, 0x00]),
        "len-msb": bytes([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]),
    }
    for name, data in seeds.items():
        write("frame_header", name, data)


REQ_BASE = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
)


def handshake_request():
    seeds = {
        "minimal": REQ_BASE + b"\r\n",
        "protocols": REQ_BASE + b"Sec-WebSocket-Protocol: superchat, chat\r\n\r\n",
        "deflate-bare": REQ_BASE + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        "deflate-params": REQ_BASE
        + b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; "
        b"server_max_window_bits=10, permessage-deflate; server_no_context_takeover\r\n\r\n",
        "deflate-server-8": REQ_BASE
        + b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n\r\n",
        "deflate-quoted": REQ_BASE
        + b'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits="12"\r\n'
        b"Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\r\n",
        "with-frame-after": REQ_BASE + b"\r\n" + frame("text", b"hi"),
        "version-8": REQ_BASE.replace(b"Version: 13", b"Version: 8") + b"\r\n",
        "post": REQ_BASE.replace(b"GET", b"POST") + b"\r\n",
        "partial": REQ_BASE,
        "lowercase-lists": b"GET / HTTP/1.1\r\nhost: a\r\nupgrade: WebSocket\r\n"
        b"connection: keep-alive, upgrade\r\nsec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
        b"sec-websocket-version: 13\r\n\r\n",
    }
    for name, data in seeds.items():
        write("handshake_request", name, data)


RESP_BASE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
)


def client_response():
    seeds = {
        "minimal": RESP_BASE + b"\r\n",
        "protocol": RESP_BASE + b"Sec-WebSocket-Protocol: chat\r\n\r\n",
        "deflate": RESP_BASE
        + b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n",
        "deflate-bits": RESP_BASE
        + b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"client_max_window_bits=9; server_max_window_bits=12\r\n\r\n",
        "with-frame-after": RESP_BASE + b"\r\n" + header("text", 2) + b"hi",
        "not-101": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        "bad-accept": RESP_BASE.replace(b"s3pP", b"AAAA") + b"\r\n",
    }
    for name, data in seeds.items():
        write("client_response", name, data)


def takeover_pair(payload):
    """Two compressed messages sharing one LZ77 context (the second refers to the first)."""
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = (z.compress(payload) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
    second = (z.compress(payload) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]
    return frame("text", first, rsv1=True) + frame("text", second, rsv1=True)


def split_compressed(payload):
    """One compressed binary message in two frames (RSV1 on the first only)."""
    z = deflate(payload)
    return frame("bin", z[:5], fin=False, rsv1=True) + frame("cont", z[5:])


def server_connection():
    # Flags byte: bits 0-1 deflate variant, 2 small limits, 3 echo, 4 close after first
    # message, 5-7 write step. Second byte: chunking.
    text = b'{"channel":"room-1","seq":1,"body":"hello hello hello hello"}'
    utf8 = "h\u00e9llo w\u00f6rld \u2603 \U0001F600".encode()
    close = frame("close", struct.pack(">H", 1000) + b"bye")
    seeds = {
        "text": (0x00, 0, frame("text", b"Hello") + close),
        "binary-chunked": (0x08, 3, frame("bin", bytes(range(200))) + close),
        "fragmented-utf8": (
            0x08,
            1,
            frame("text", utf8[:7], fin=False)
            + frame("ping", b"p")
            + frame("cont", utf8[7:12], fin=False)
            + frame("cont", utf8[12:])
            + close,
        ),
        "ping-pong-close": (0x20, 0, frame("ping", b"abc") + frame("pong", b"") + close),
        "deflate-nct": (0x01 | 0x08, 0, frame("text", deflate(text * 4), rsv1=True) + close),
        "deflate-takeover-2msgs": (0x02 | 0x08, 5, takeover_pair(text) + close),
        "deflate-fragmented": (0x01 | 0x40, 2, split_compressed(bytes(1000)) + close),
        "deflate-window9": (0x03 | 0x08, 0, frame("text", deflate(text, 9), rsv1=True)),
        "big-over-limit": (0x04, 0, frame("bin", bytes(5000))),
        "invalid-utf8": (0x00, 0, frame("text", b"ok \xff\xfe")),
        "unmasked": (0x00, 0, header("text", 2) + b"hi"),
        "close-after-first": (0x10, 0, frame("text", b"one") + frame("text", b"two") + close),
    }
    for name, (flags, chunking, wire) in seeds.items():
        write("server_connection", name, bytes([flags, chunking]) + wire)


def proto():
    seeds = {
        "subscribe": b'{"id":1,"op":"subscribe","channel":"chat:lobby","since":"abc:3"}',
        "publish-json": b'{"id":3,"op":"publish","channel":"chat:lobby","data":{"text":"hi\\n",\r\n"n":[1,2.5e3,null,true]}}',
        "publish-b64": b'{"id":4,"op":"publish","channel":"files","data_b64":"AP8="}',
        "history": b'{"id":5,"op":"history","channel":"c","since":"ffffffffffffffff:18446744073709551615","limit":50}',
        "ping": b'{"id":6,"op":"ping","extra":{"ignored":[1]}}',
        "cursor": b"d00d:7",
        "json-unicode": '["caf\u00e9 \\u2028 \u2028", "\\ud83d\\ude00"]'.encode(),
        "text-lines": b"line one\r\nline two\rthree\n\nfive",
        "json-null": b"null",
        # Valid JSON syntax, invalid UTF-8 in the string: must not count as JSON.
        "json-bad-utf8": b'{"text":"caf\xe9"}',
    }
    for name, data in seeds.items():
        write("proto", name, data)


HIXIE_REQ = (
    b"GET /demo HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n"
    b"Sec-WebSocket-Protocol: sample\r\n"
    b"Upgrade: WebSocket\r\n"
    b"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
    b"Origin: http://example.com\r\n"
    b"\r\n"
    b"^n:ds[4U"
)


def hixie76():
    # Byte 0: the decoder's frame size limit; the rest: the handshake and then frames.
    seeds = {
        "draft-example": bytes([64]) + HIXIE_REQ,
        "chat-protocol": bytes([64]) + HIXIE_REQ.replace(b"sample", b"chat"),
        "no-spaces": bytes([64]) + HIXIE_REQ.replace(b"12998 5 Y3 1  .P00", b"1299851"),
        "rfc6455": bytes([64]) + REQ_BASE + b"\r\n",
        "frames": bytes([16]) + b"\x00hello\xff\x00\xc3\xa9\xff\x05skip\xff"
        b"\x80\x03abc\x81\x01z\xff\x00",
        "too-large": bytes([4]) + b"\x00abcdefgh\xff",
    }
    for name, data in seeds.items():
        write("hixie76", name, data)


# The token target's fixed HS256 secret (fuzz_targets/token.rs).
TOKEN_SECRET = b"the fuzz target's fixed HS256 secret"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def hs256(header, claims):
    message = b64url(header) + b"." + b64url(claims)
    sig = hmac.new(TOKEN_SECRET, message, hashlib.sha256).digest()
    return message + b"." + b64url(sig)


def token():
    # The target reads each input three ways: as a token, as the claims of a token it
    # signs, and as header + "\n" + claims of a token it signs.
    claims = (
        b'{"sub":"alice","exp":4102444800,"nbf":1,"subscribe":["chat:*","room"],'
        b'"publish":["chat:*"],"presence":["*"],"history":["chat:lobby"]}'
    )
    seeds = {
        "claims": claims,
        "claims-channel": b'{"exp":4102444800,"channel":"secret:x","sub":"user"}',
        "claims-bad-pattern": b'{"exp":4102444800,"subscribe":["a*b",""]}',
        "claims-expired": b'{"sub":"alice","exp":1}',
        "header-es256": b'{"alg":"ES256","kid":"k1"}\n{"exp":4102444800}',
        "header-rs256": b'{"alg":"RS256","typ":"JWT"}\n' + claims,
        "header-none": b'{"alg":"none"}\n' + claims,
        "signed-token": hs256(b'{"alg":"HS256","typ":"JWT"}', claims),
        "unsigned-token": b64url(b'{"alg":"none"}') + b"." + b64url(claims) + b".",
    }
    for name, data in seeds.items():
        write("token", name, data)


def request_head():
    """Request heads for the connection front's classifier; the first byte picks the
    head limit (0xff: the largest), the rest is the head."""
    seeds = {
        "sse": b"GET /ch/a HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
        "longpoll": b"GET /ch/a?transport=longpoll&since=e:1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "sub-stream": b"GET /sub?channel=a&channel=b,e:2&transport=stream HTTP/1.1\r\nHost: x\r\n\r\n",
        "upgrade": b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "cl-te": b"GET /ch/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "obs-fold": b"GET /ch/a HTTP/1.1\r\nHost: x\r\nAccept: text/\r\n event-stream\r\n\r\n",
        "bare-lf": b"GET /ch/a HTTP/1.1\nHost: x\nAccept: text/event-stream\n\n",
        "pipelined": b"GET /ch/a?transport=poll HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /ch/a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
        "expect": b"GET /ch/a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        "http10": b"GET /ch/a HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n",
        "fragment": b"GET /ch/#?transport=longpoll&since=e:1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    }
    for name, data in seeds.items():
        write("request_head", name, bytes([255]) + data)


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    frame_header()
    handshake_request()
    client_response()
    server_connection()
    proto()
    hixie76()
    token()
    request_head()
    total = 0
    for root, _, files in os.walk(CORPUS):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f"corpus: {total} bytes in {CORPUS}")


if __name__ == "__main__":
    main()
