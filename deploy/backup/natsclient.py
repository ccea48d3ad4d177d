"""A minimal NATS client over the text protocol, for the restore drill's requests
(`$JS.API.STREAM.INFO.*`, `<prefix>.feed.status`). Standard library only."""

import json
import socket
import uuid


class Nats:
    def __init__(self, host="127.0.0.1", port=4222, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self._line()  # INFO
        self._send('CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nPING\r\n')
        while self._line() != "PONG":
            pass
        self.inbox = f"_INBOX.drill.{uuid.uuid4().hex}"
        self._send(f"SUB {self.inbox}.* 1\r\n")

    def _send(self, text):
        self.sock.sendall(text.encode())

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("NATS closed the connection")
            self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill(len(self.buf) + 1)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def request(self, subject, body=b"{}"):
        """The reply's body (headers dropped)."""
        reply = f"{self.inbox}.{uuid.uuid4().hex}"
        self.sock.sendall(f"PUB {subject} {reply} {len(body)}\r\n".encode() + body + b"\r\n")
        while True:
            line = self._line()
            if line == "PING":
                self._send("PONG\r\n")
                continue
            if line.startswith("-ERR"):
                raise RuntimeError(line)
            parts = line.split()
            if parts[0] == "MSG":
                size = int(parts[-1])
                self._fill(size + 2)
                payload, self.buf = self.buf[:size], self.buf[size + 2 :]
                if parts[1] == reply:
                    return payload
            elif parts[0] == "HMSG":
                hsize, size = int(parts[-2]), int(parts[-1])
                self._fill(size + 2)
                payload, self.buf = self.buf[hsize:size], self.buf[size + 2 :]
                if parts[1] == reply:
                    return payload

    def json(self, subject, body=b"{}"):
        return json.loads(self.request(subject, body))

    def stream_messages(self, stream):
        """The stream's message count and last sequence; (0, 0) when it does not exist."""
        info = self.json(f"$JS.API.STREAM.INFO.{stream}")
        if "error" in info:
            return 0, 0
        return info["state"]["messages"], info["state"]["last_seq"]

    def delete_stream(self, stream):
        self.request(f"$JS.API.STREAM.DELETE.{stream}")
