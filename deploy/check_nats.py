"""The NATS half of `make deploy-check`: deploy/k8s/nats/values.yaml.

The chart has no values.schema.json, so the values are held against the chart's own
values.yaml (vendored): every key we set must be one the chart has, except inside the
free-form maps (`merge`, `env`, ...). Then the permissions are tried for real: a
nats-server runs with the values' `config.merge` (accounts, users, permissions) on a
port of ours, and each rule of values.yaml's header is tried over the client protocol.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import yaml

HERE = os.path.dirname(__file__)
VALUES = os.path.join(HERE, "k8s", "nats", "values.yaml")
CHART_VALUES = os.path.join(HERE, "schemas", "nats", "values.yaml")
PORT = 16310
PASSWORDS = {
    "CARTD_PASSWORD": "t-cartd",
    "WEBHOOK_PASSWORD": "t-webhook",
    "CALLER_PASSWORD": "t-caller",
    "PAYMENTS_PASSWORD": "t-payments",
    "OPERATOR_PASSWORD": "t-operator",
}
USERS = {
    "cartd": "t-cartd",
    "cart-webhook": "t-webhook",
    "caller": "t-caller",
    "payments": "t-payments",
    "operator": "t-operator",
}
# (user, action, subject, allowed): the rules of values.yaml's header.
RULES = [
    ("caller", "pub", "cart.v1.fill", True),
    ("caller", "pub", "cart.v1.order.checkout", True),
    ("caller", "pub", "cart.v1.admin.catalog.import", False),
    ("caller", "pub", "cart.v1.admin.webhook.set", False),
    ("caller", "pub", "cart.v1.events.44056.x", False),
    ("caller", "pub", "cart.v1.orders.44056.1", False),
    ("caller", "pub", "cart.v1.payment.confirm", False),
    ("caller", "sub", "cart.v1.fill", False),
    ("caller", "sub", "cart.v1.>", False),
    ("caller", "sub", "_INBOX.abc", True),
    ("payments", "pub", "cart.v1.payment.confirm", True),
    ("payments", "pub", "cart.v1.fill", False),
    ("payments", "sub", "cart.v1.payment.confirm", False),
    ("operator", "pub", "cart.v1.admin.catalog.import", True),
    ("operator", "pub", "cart.v1.events.44056.x", False),
    ("operator", "sub", "cart.v1.fill", False),
    ("cart-webhook", "sub", "cart.v1.admin.webhook.set", True),
    ("cart-webhook", "sub", "cart.v1.fill", False),
    ("cart-webhook", "pub", "cart.v1.admin.catalog.import", False),
    ("cart-webhook", "pub", "cart.v1.fill", False),
    ("cartd", "sub", "cart.v1.fill", True),
    ("cartd", "sub", "cart.v1.admin.catalog.import", True),
    ("cartd", "pub", "cart.v1.events.44056.x", True),
    ("cartd", "pub", "cart.v1.admin.catalog.import", False),
]
FREE_FORM = {"merge", "env", "patch", "topologySpreadConstraints"}


def unknown_keys(ours, theirs, path=""):
    out = []
    for key, value in ours.items():
        here = f"{path}.{key}" if path else key
        if key in FREE_FORM:
            continue
        if not isinstance(theirs, dict) or key not in theirs:
            out.append(here)
        elif isinstance(value, dict) and isinstance(theirs[key], dict) and theirs[key]:
            out += unknown_keys(value, theirs[key], here)
    return out


def server_config(merge, store):
    """The nats.conf the chart would make of `config.merge`: JSON, `<< X >>` unquoted."""
    text = json.dumps(merge, indent=2)
    text = re.sub(r'"<< (.*?) >>"', r"\1", text)
    return (
        f"port: {PORT}\nhost: 127.0.0.1\njetstream {{ store_dir: {json.dumps(store)} }}\n"
        + text.strip()[1:-1]
        + "\n"
    )


class Client:
    def __init__(self, user, password):
        self.sock = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        self.buf = b""
        self.line()  # INFO
        connect = {"user": user, "pass": password, "verbose": False, "pedantic": False}
        self.send(f"CONNECT {json.dumps(connect)}\r\nPING\r\n")
        reply = self.until_pong()
        if reply:
            raise RuntimeError(f"{user} could not connect: {reply}")

    def send(self, text):
        self.sock.sendall(text.encode())

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def until_pong(self):
        """Lines before the PONG that answers our PING: errors, if any."""
        errors = []
        while True:
            line = self.line()
            if line == "PONG":
                return errors
            if line.startswith("-ERR"):
                errors.append(line)

    def attempt(self, action, subject, sid):
        if action == "pub":
            self.send(f"PUB {subject} 2\r\nhi\r\nPING\r\n")
        else:
            self.send(f"SUB {subject} {sid}\r\nPING\r\n")
        errors = self.until_pong()
        return not any("Permissions Violation" in e for e in errors), errors


def permissions(merge):
    server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    problems = []
    with tempfile.TemporaryDirectory(prefix="deploy-check-nats-") as tmp:
        conf = os.path.join(tmp, "nats.conf")
        with open(conf, "w") as f:
            f.write(server_config(merge, os.path.join(tmp, "js")))
        test = subprocess.run([server, "-t", "-c", conf], env={**os.environ, **PASSWORDS},
                              capture_output=True, text=True)
        if test.returncode != 0:
            return [f"nats-server refuses the config: {test.stderr.strip()}"]
        proc = subprocess.Popen([server, "-c", conf], env={**os.environ, **PASSWORDS},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        return [f"nats-server exited: {proc.stderr.read()}"]
                    time.sleep(0.1)
            clients = {}
            for n, (user, action, subject, allowed) in enumerate(RULES):
                client = clients.get(user) or clients.setdefault(user, Client(user, USERS[user]))
                got, errors = client.attempt(action, subject, n + 1)
                if got != allowed:
                    problems.append(
                        f"{user} {action} {subject}: {'allowed' if got else 'denied'}, "
                        f"want {'allowed' if allowed else 'denied'} {errors}"
                    )
            wrong = Client.__new__(Client)
            try:
                Client.__init__(wrong, "caller", "not-the-password")
                problems.append("a wrong password was accepted")
            except RuntimeError:
                pass
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return problems


def check():
    values = yaml.safe_load(open(VALUES))
    chart = yaml.safe_load(open(CHART_VALUES))
    out = [f"nats values: {k} is not a key of the chart's values.yaml" for k in unknown_keys(values, chart)]
    config = values.get("config", {})
    if not config.get("cluster", {}).get("enabled") or config["cluster"].get("replicas") != 3:
        out.append("nats values: want config.cluster.enabled with 3 replicas")
    js = config.get("jetstream", {})
    if not js.get("enabled") or not js.get("fileStore", {}).get("enabled"):
        out.append("nats values: want JetStream on file storage")
    out += [f"nats permissions: {p}" for p in permissions(config.get("merge", {}))]
    return out, len(RULES)
