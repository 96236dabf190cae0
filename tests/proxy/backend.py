#!/usr/bin/env python3
"""Plain TCP backends for the tlsflow-proxy tests (tests/proxy/test_proxy.c).

backend.py MODE PORT [ARG]; prints "ready" once listening, then one line per
event on stdout (flushed), which the test reads from the peer's log.
  echo        every connection echoes until EOF, then closes (asyncio: many at once)
  count       reads to EOF, answers "<n>\\n", closes
  hello       sends "hello\\n", shuts its sending side, reads to EOF, prints "got <n>"
  reset N     reads N bytes, then resets the connection (SO_LINGER 0)
  flood       sends until the peer goes; prints "peer gone: <error> after <n> bytes"
  proxyv2     reads a PROXY v2 header, prints it, then echoes as `echo`
"""
import asyncio
import socket
import struct
import sys

mode, port = sys.argv[1], int(sys.argv[2])
arg = sys.argv[3] if len(sys.argv) > 3 else None


def say(*a):
    print(*a, flush=True)


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError) as e:
        say("echo error", e)
    writer.close()


async def proxyv2(reader, writer):
    head = await reader.readexactly(16)
    sig, vc, fam, ln = head[:12], head[12], head[13], struct.unpack("!H", head[14:16])[0]
    body = await reader.readexactly(ln)
    if sig != b"\r\n\r\n\x00\r\nQUIT\n":
        say("bad signature")
    elif fam == 0x11:
        src, dst = socket.inet_ntoa(body[0:4]), socket.inet_ntoa(body[4:8])
        sp, dp = struct.unpack("!HH", body[8:12])
        say(f"proxy v2 cmd {vc:#x} tcp4 {src}:{sp} -> {dst}:{dp}")
    else:
        say(f"proxy v2 cmd {vc:#x} family {fam:#x} len {ln}")
    await echo(reader, writer)


async def serve_async(handler):
    srv = await asyncio.start_server(handler, "127.0.0.1", port, backlog=2048)
    say("ready")
    async with srv:
        await srv.serve_forever()


def serve_blocking(handler):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    say("ready")
    while True:
        c, _ = ls.accept()
        try:
            handler(c)
        except OSError as e:
            say("error", e)
        c.close()


def read_all(c):
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            return n
        n += len(d)


def count(c):
    n = read_all(c)
    c.sendall(b"%d\n" % n)
    say("counted", n)


def hello(c):
    c.sendall(b"hello\n")
    c.shutdown(socket.SHUT_WR)
    say("got", read_all(c))


def reset(c):
    want, n = int(arg), 0
    while n < want:
        d = c.recv(want - n)
        if not d:
            break
        n += len(d)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    say("resetting after", n)


def flood(c):
    block = b"x" * 65536
    n = 0
    try:
        while True:
            c.sendall(block)
            n += len(block)
    except OSError as e:
        say("peer gone:", e.strerror, "after", n, "bytes")


if mode == "echo":
    asyncio.run(serve_async(echo))
elif mode == "proxyv2":
    asyncio.run(serve_async(proxyv2))
else:
    serve_blocking({"count": count, "hello": hello, "reset": reset, "flood": flood}[mode])
