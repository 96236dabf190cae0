#!/usr/bin/env python3
"""TLS clients that read slowly or never, for the --send-timeout tests
(tests/proxy/test_send_timeout.c).

tls_client.py MODE PORT CA SECONDS; one line per event on stdout (flushed).
  never   handshake, send "go\\n", print "sent", read nothing for SECONDS,
          then read to the end: "ended after <n> bytes: <why>", or "alive
          after <n> bytes" when bytes still came after 2 s of reading
  slow    handshake, send "go\\n", print "sent", then read 8 KiB every 50 ms
          (160 KB/s): after SECONDS "alive after <n> bytes", and on at the same
          pace until killed; "ended after <n> bytes: <why>" when the
          connection ends
"""
import socket
import ssl
import sys
import time

mode, port, ca, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])


def say(*a):
    print(*a, flush=True)


ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(("127.0.0.1", port))
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(b"go\n")
say("sent")
n = 0
try:
    if mode == "never":
        time.sleep(seconds)
        s.settimeout(2)
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    say("ended after", n, "bytes: EOF")
                    break
                n += len(d)
        except socket.timeout:
            say("alive after", n, "bytes")
    else:
        # The same pace after the report, until killed: the test looks at
        # the proxy and the backend while this still reads.
        end = time.monotonic() + seconds
        while True:
            d = s.recv(8192)
            if not d:
                say("ended after", n, "bytes: EOF")
                break
            n += len(d)
            if end and time.monotonic() >= end:
                say("alive after", n, "bytes")
                end = 0
            time.sleep(0.05)
except (OSError, ssl.SSLError) as e:
    say("ended after", n, "bytes:", e)
raw.close()
