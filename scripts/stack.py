"""What scripts/monitoring and scripts/gateway share: processes started and stopped together,
waits on a condition, HTTP, and a minimal WebSocket player (stdlib only)."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# Every process started here, stopped by `stop_all`.
children = []
NAME = os.path.basename(sys.argv[0])


def say(msg):
    print(f"scripts/{NAME}: {msg}", flush=True)


def fail(msg):
    say(f"FAIL: {msg}")
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, log, env=None, user=None):
    cmd = (["runuser", "-u", user, "--"] if user else []) + args
    out = open(log, "w")
    child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})})
    children.append(child)
    return child


def wait_for(what, check, seconds=30, every=0.2, explain=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        time.sleep(every)
    fail(f"never happened within {seconds}s: {what}" + (f"\n{explain()}" if explain else ""))


def http(url, data=None, method=None):
    """(status, body); an error status is an answer too, not an exception. https:// is not
    verified (the stack's certificate is self-signed)."""
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    context = ssl._create_unverified_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Ws:
    """Just enough WebSocket for a player: text frames out (masked), text frames in; over TLS
    (certificate not checked: the stack's is self-signed) when `tls`. `status` is the
    upgrade's answer; a refused upgrade raises `Refused` carrying it."""

    class Refused(Exception):
        pass

    def __init__(self, port, tls=False):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.s = context.wrap_socket(self.s, server_hostname="localhost")
        self.s.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(1)
            if not chunk:
                break
            head += chunk
        line = head.split(b"\r\n")[0].split(b" ")
        self.status = int(line[1]) if len(line) > 1 and line[1].isdigit() else 0
        if self.status != 101:
            self.s.close()
            raise Ws.Refused(self.status)
        self.buf = b""

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        self.s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise OSError("closed")
            self.buf += chunk

    def recv(self):
        while True:
            self._need(2)
            op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            at = 2
            if n == 126:
                self._need(4)
                n, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                self._need(10)
                n, at = int.from_bytes(self.buf[2:10], "big"), 10
            self._need(at + n)
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            if op == 1:
                return json.loads(payload)

    def recv_type(self, ty):
        while True:
            msg = self.recv()
            if msg.get("type") == ty:
                return msg

    def close(self):
        self.s.sendall(bytes([0x88, 0x80]) + os.urandom(4))
        self.s.close()


def stop_all():
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def ensure_packages(packages):
    """Installs the Debian packages of `packages` ({binary: package}) whose binary is missing."""
    missing = [pkg for binary, pkg in packages.items() if not shutil.which(binary)]
    if missing:
        say(f"installing {' '.join(missing)}")
        subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def podium_binary():
    """The debug build the test suite made."""
    podium = os.path.join(ROOT, "target", "debug", "podium")
    if not os.access(podium, os.X_OK):
        fail("no target/debug/podium: run cargo build first")
    return podium


def quick_config(work):
    """A podium config file in `work` with the `quick` campaign: games may end after 1 ms."""
    config = os.path.join(work, "podium.toml")
    with open(config, "w") as f:
        f.write("[campaigns.quick]\nmin_duration_ms = 1\nmax_duration_ms = 60000\n"
                "max_score = 1000000\nmax_score_per_second = 1000000000\n")
    return config
