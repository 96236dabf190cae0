#!/usr/bin/env python3
"""TLS clients that never read, for bench/memory.sh.

Opens N connections to 127.0.0.1:PORT, completes each TLS handshake
(verifying the server against --ca), then, without ever reading a byte:
  http: sends "GET PATH HTTP/1.1" plus --pipelined more requests in one write;
  echo: streams bytes for --stream seconds, as fast as the server takes them.
Prints "ready N SENT" on stdout (SENT = application bytes written, all
connections) once every connection has done that, then holds the connections
open until SIGTERM/SIGINT or --hold seconds.  Exit 1 when a connection fails.
"""
import argparse
import os
import select
import signal
import socket
import ssl
import struct
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--mode", choices=("http", "echo"), default="http")
    ap.add_argument("--path", default="/big")
    ap.add_argument("--pipelined", type=int, default=3,
                    help="requests written after the first one (http)")
    ap.add_argument("--stream", type=float, default=3.0,
                    help="seconds to keep sending (echo)")
    ap.add_argument("--hold", type=float, default=600.0,
                    help="seconds to hold the connections after ready")
    a = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.check_hostname = True
    conns = []
    for _ in range(a.conns):
        raw = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")  # handshake here
        conns.append(s)

    sent = 0
    if a.mode == "http":
        req = (f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").encode()
        for s in conns:
            s.sendall(req * (1 + a.pipelined))
            sent += len(req) * (1 + a.pipelined)
    else:
        # Non-blocking writes of one fixed chunk: OpenSSL wants a write that
        # returned WANT_WRITE retried with the same bytes, and this is always
        # the same bytes.
        chunk = os.urandom(16384)
        for s in conns:
            s.setblocking(False)
        live = list(conns)
        end = time.monotonic() + a.stream
        while live and not stop and time.monotonic() < end:
            _, w, _ = select.select([], live, [], max(0.0, min(0.2, end - time.monotonic())))
            for s in w:
                try:
                    while True:
                        sent += s.send(chunk)
                except (ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except ssl.SSLWantReadError:
                    pass   # TLS 1.3 never needs a read to write
    print(f"ready {len(conns)} {sent}", flush=True)

    end = time.monotonic() + a.hold
    while not stop and time.monotonic() < end:
        time.sleep(0.1)
    for s in conns:
        # a reset, not a close_notify: nothing here wants to wait for the server
        try:
            s.setblocking(True)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ssl.SSLError) as e:
        print(f"never_read.py: {e}", file=sys.stderr)
        sys.exit(1)
