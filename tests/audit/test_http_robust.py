#!/usr/bin/python3
"""`fvlm audit serve` against hostile and unlucky clients, over real sockets.

- binding a non-loopback address without --public is refused (exit 2); with
  --public and no TLS the server warns loudly; with --cert/--key it speaks
  TLS and the session cookie is Secure (when the openssl command exists to
  make a throwaway certificate);
- a few thousand malformed or random HTTP requests (garbage bytes, broken
  request lines, huge headers, bad Content-Length, NUL and traversal in
  paths, bodies over the limit, slow and half-closed connections) never
  crash it, and it still answers afterwards;
- a body over 64 KiB is 413; a burst of unauthenticated requests meets 429;
- kill -9 while annotators are deciding loses no decision that was
  acknowledged, leaves the database intact, and the next start applies
  every recorded decision.
Takes about 15 s. Exit codes: 0 ok, 1 a difference.
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

KEY = "robust-audit-deid-key"
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAILED: " + what, file=sys.stderr)


def run(cmd, env):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        sys.exit("%s failed (%d): %s" % (" ".join(cmd[:3]), p.returncode, p.stderr[-800:]))
    return p.stdout


STARTED = []


def serve(binary, db, env, extra=()):
    p = subprocess.Popen([binary, "audit", "serve", "--db", db, "--port", "0"] + list(extra), env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.append(p)
    line = p.stdout.readline()
    m = re.search(r"https?://([0-9.]+):(\d+)/", line)
    if not m:
        p.kill()
        sys.exit("fvlm audit serve did not print its URL: %r" % line)
    return p, m.group(1), int(m.group(2))


def raw(port, data, read=True, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if read:
            try:
                return s.recv(4096)
            except (socket.timeout, ConnectionError):
                return b""
        return b""
    except (BrokenPipeError, ConnectionError, socket.timeout):
        return b""
    finally:
        s.close()


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), r.getheader("Set-Cookie")
    finally:
        c.close()


def garbage(rng):
    kinds = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600))),
        lambda: b"GET " + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))) + b" HTTP/1.1\r\n\r\n",
        lambda: b"GET /" + b"A" * rng.randint(1000, 20000) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        lambda: b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"B" * rng.randint(1000, 200000) + b"\r\n\r\n",
        lambda: b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
        lambda: b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
        lambda: b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
        lambda: b"GET /static/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        lambda: b"GET /static/%2e%2e%2f%2e%2e%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n",
        lambda: b"GET /api/study/1%00/slice?plane=%00&i=1e309 HTTP/1.1\r\nHost: x\r\n\r\n",
        lambda: b"BREW /coffee HTCPCP/1.0\r\n\r\n",
        lambda: b"GET / HTTP/9.9\r\n\r\n",
        lambda: b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(rng.randint(100, 3000))) + b"\r\n",
        lambda: b"GET /api/me HTTP/1.1\r\nHost: x\r\nCookie: fvlm_session=" + b"%" * 300 + b"\r\n\r\n",
        lambda: b"POST /api/decide HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",  # body never comes
        lambda: b"\r\n" * rng.randint(1, 2000),
        lambda: b"GET /?" + b"&".join(b"a%d=%d" % (i, i) for i in range(rng.randint(100, 3000))) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    return rng.choice(kinds)()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("FVLM_BIN"))
    ap.add_argument("--requests", type=int, default=3000)
    a = ap.parse_args()
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="fvlm-audit-robust.")
    env = dict(os.environ, FVLM_DEID_KEY=KEY)
    db = os.path.join(tmp, "c.db")
    out = os.path.join(tmp, "corpus")
    run([a.bin, "synth", "--quiet", "--force", "--out", out, "--studies", "4", "--seed", "2", "--size", "tiny"], env)
    layouts = [os.path.join(out, d) for d in ("hospital", "ctrate") if os.path.isdir(os.path.join(out, d))]
    run([a.bin, "ingest", "--quiet", "--db", db, "--set", "ingest.spacing=4, 4, 8"] + layouts, env)
    run([a.bin, "parse", "--quiet", "--db", db], env)
    run([a.bin, "align", "--quiet", "--db", db], env)
    tokens = {n: json.loads(run([a.bin, "audit", "user", "add", n, "--json", "--db", db], env))["token"]
              for n in ("u1", "u2", "u3", "u4")}

    # Binding beyond loopback.
    p = subprocess.run([a.bin, "audit", "serve", "--db", db, "--bind", "0.0.0.0"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)
    check(p.returncode == 2 and "--public" in p.stderr, "non-loopback bind without --public: exit %d, %r"
          % (p.returncode, p.stderr[-300:]))
    srv, host, port = serve(a.bin, db, env, ["--bind", "0.0.0.0", "--public"])
    srv.send_signal(signal.SIGINT)
    err = srv.stderr.read()
    check(srv.wait(10) == 0, "SIGINT did not stop the server cleanly")
    check("WITHOUT TLS" in err, "no loud warning for --public without TLS: %r" % err[-300:])

    # TLS (GnuTLS through libmicrohttpd), with a throwaway self-signed key.
    openssl = shutil.which("openssl")
    if openssl:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=127.0.0.1"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        srv, host, port = serve(a.bin, db, env, ["--cert", cert, "--key", key])
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        c.request("POST", "/api/login", body=json.dumps({"name": "u1", "token": tokens["u1"]}))
        r = c.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie") or ""
        check(r.status == 200 and "Secure" in cookie and "HttpOnly" in cookie,
              "TLS login: %d, cookie %r" % (r.status, cookie))
        c.close()
        srv.send_signal(signal.SIGTERM)
        check(srv.wait(10) == 0, "SIGTERM did not stop the TLS server cleanly")
    else:
        print("note: no openssl command: TLS not checked")

    # Malformed HTTP.
    srv, host, port = serve(a.bin, db, env)
    rng = random.Random(1234)
    lock = threading.Lock()
    sent = [0]

    def fuzz(seed, n):
        r = random.Random(seed)
        for _ in range(n):
            data = garbage(r)
            raw(port, data, read=r.random() < 0.7, timeout=0.2)
            with lock:
                sent[0] += 1

    threads = [threading.Thread(target=fuzz, args=(rng.random(), a.requests // 8)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(srv.poll() is None, "the server died under %d malformed requests" % sent[0])
    st, body, _ = request(port, "GET", "/")
    check(st == 200 and b"app.js" in body, "the page does not answer after the malformed requests (%d)" % st)
    resp = raw(port, b"GET /static/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    check(b"root:" not in resp, "a traversal path reached the file system")

    # Size and rate limits.
    big = b"{" + b" " * (100 * 1024) + b"}"
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big))
    try:
        s.sendall(big)  # the server may answer and close before it has read it all
    except (BrokenPipeError, ConnectionResetError):
        pass
    head = s.recv(64)
    s.close()
    check(head.startswith(b"HTTP/1.1 413"), "a 100 KiB body answered %r, expected 413" % head[:40])
    codes = [request(port, "GET", "/api/me")[0] for _ in range(150)]
    check(429 in codes and codes.count(401) >= 50, "no 429 in a burst of 150 anonymous requests: %r"
          % sorted(set(codes)))

    # kill -9 while four annotators decide (after the address's request
    # bucket has refilled).
    time.sleep(3)
    sessions = {}
    for n, tok in tokens.items():
        st, body, cookie = request(port, "POST", "/api/login", body=json.dumps({"name": n, "token": tok}))
        check(st == 200, "login %s: %d" % (n, st))
        sessions[n] = (cookie.split(";")[0], json.loads(body)["csrf"])
    studies = [r[0] for r in sqlite3.connect(db).execute("SELECT id FROM studies")]
    acked = []
    stop = threading.Event()

    def decide(name, seed):
        r = random.Random(seed)
        cookie, csrf = sessions[name]
        while not stop.is_set():
            d = {"study_id": r.choice(studies), "kind": "status", "anatomy": r.choice(["liver", "spleen", "heart"]),
                 "value": r.choice(["normal", "abnormal"])}
            try:
                st, body, _ = request(port, "POST", "/api/decide", body=json.dumps(d),
                                      headers={"Cookie": cookie, "X-CSRF-Token": csrf})
            except (ConnectionError, OSError, http.client.HTTPException):
                return
            if st == 200:
                with lock:
                    acked.append(json.loads(body)["id"])

    ws = [threading.Thread(target=decide, args=(n, i)) for i, n in enumerate(sessions)]
    for w in ws:
        w.start()
    time.sleep(1.5)
    srv.send_signal(signal.SIGKILL)
    srv.wait(10)
    stop.set()
    for w in ws:
        w.join()
    con = sqlite3.connect(db)
    check(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "the database is damaged after kill -9")
    ids = {r[0] for r in con.execute("SELECT id FROM audits")}
    lost = [i for i in acked if i not in ids]
    check(len(acked) > 5, "too few decisions before the kill (%d)" % len(acked))
    check(not lost, "%d acknowledged decisions lost after kill -9" % len(lost))
    con.close()
    # The next start applies what was recorded and not yet applied.
    srv, host, port = serve(a.bin, db, env)
    srv.send_signal(signal.SIGTERM)
    check(srv.wait(20) == 0, "SIGTERM did not stop the server cleanly")
    con = sqlite3.connect(db)
    applied = con.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'audit.applied_id'").fetchone()
    top = con.execute("SELECT max(id) FROM audits").fetchone()[0]
    check(applied is not None and applied[0] == top, "decisions left unapplied after a restart: %r of %r"
          % (applied, top))
    # Every study's statuses are its newest decisions.
    cur = con.execute("""SELECT a.study_id, json_extract(a.key, '$.anatomy'), a.new FROM audits a
                         WHERE a.kind = 'status' AND a.id = (SELECT max(b.id) FROM audits b
                         WHERE b.study_id = a.study_id AND b.key = a.key AND b.kind = 'status')""").fetchall()
    for sid, anat, new in cur:
        got = con.execute("SELECT status FROM anatomy_status WHERE study_id = ? AND anatomy = ?",
                          (sid, anat)).fetchone()
        check(got and got[0] == new, "study %d %s: status %r, newest decision %s" % (sid, anat, got, new))
    con.close()
    took = time.time() - t0
    if not FAILURES:
        shutil.rmtree(tmp, ignore_errors=True)
    print("audit robustness: %d malformed requests, %d decisions acknowledged before kill -9, %d failures, %.1f s"
          % (sent[0], len(acked), len(FAILURES), took))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    try:
        code = main()
    finally:
        # A server left running by a failed check is stopped, not orphaned.
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    sys.exit(code)
