#!/usr/bin/env python3
"""Slow-loris against tlsflow-serve: many connections that dribble a byte at a
time (some before the handshake, some after it, in the HTTP request), while a
normal client keeps being served quickly.  Exit 0 on success, 1 on failure,
77 when a needed program is missing.
usage: slowloris.py TLSFLOW_SERVE CERT KEY CA"""
import os, shutil, socket, ssl, subprocess, sys, tempfile, time

serve, cert, key, ca = sys.argv[1:5]
if not shutil.which("curl"):
    print("skip: curl missing"); sys.exit(77)

root = tempfile.mkdtemp()
with open(os.path.join(root, "file.bin"), "wb") as f:
    f.write(os.urandom(1 << 20))
proc = subprocess.Popen([serve, "--cert", cert, "--key", key, "--root", root, "--port", "0",
                         "--stats-interval", "0", "--request-timeout", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True)
line = proc.stdout.readline().strip()
if not line.startswith("listening on "):
    print("tlsflow-serve did not start:", line, proc.stderr.read()); sys.exit(1)
port = int(line.rsplit(":", 1)[1])

def fetch():
    t0 = time.monotonic()
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", ca, "-o", "/dev/null",
                        "-w", "%{http_code} %{size_download}", f"https://localhost:{port}/file.bin"],
                       capture_output=True, text=True)
    return r.stdout.strip(), time.monotonic() - t0, r.stderr.strip()

ok = True
try:
    # 150 raw connections that send a ClientHello one byte at a time (never finishing)
    raw = []
    for _ in range(150):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        raw.append(s)
    # 50 TLS connections that dribble the HTTP request header one byte at a time
    ctx = ssl.create_default_context(cafile=ca)
    tls = []
    for _ in range(50):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        tls.append(s)
    hello = bytes.fromhex("16030100f4010000f00303") + os.urandom(32)
    req = b"GET /file.bin HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 1000
    worst = 0.0
    for i in range(6):
        for s in raw:
            try:
                s.send(hello[i:i + 1])
            except OSError:
                pass
        for s in tls:
            try:
                s.send(req[i:i + 1])
            except OSError:
                pass
        out, secs, err = fetch()
        worst = max(worst, secs)
        if out != "200 1048576":
            print(f"round {i}: normal client got '{out}' ({err})"); ok = False
        time.sleep(1)
    print(f"normal client served in every round; slowest fetch {worst:.2f}s with 200 slow connections open")
    if worst > 3:
        print("a normal fetch took over 3 s"); ok = False
    # --request-timeout 3: the dribbling requests (started 6 s ago) are closed
    # by the server with close_notify; the socket reads EOF, not a response.
    closed = 0
    for s in tls:
        s.settimeout(5)
        try:
            if s.recv(4096) == b"":
                closed += 1
        except (ssl.SSLError, OSError):
            closed += 1
    print(f"{closed} of {len(tls)} dribbling requests closed by the request timeout")
    if closed != len(tls):
        ok = False
    if proc.poll() is not None:
        print("tlsflow-serve died"); ok = False
finally:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill(); ok = False; print("tlsflow-serve did not stop on SIGTERM")
    shutil.rmtree(root)
sys.exit(0 if ok else 1)
