#!/usr/bin/env python3
"""make restore-drill: a base backup under load, WAL archiving, a point-in-time restore to
a fresh data directory, and the checks of docs/operations.md ("Backups").

 1. A throwaway PostgreSQL 15 (port 16320) with archive_mode on and an archive_command
    copying WAL into a folder; a cartd (relays on, streams of its own) on it.
 2. Load: `cart-bench orders` (fill, checkout, pay) the whole time, and a recorder that
    sends fills, checkouts and payments with known command ids through `cartctl` and
    writes down when each was acknowledged.
 3. `pg_basebackup` while the load runs; the load goes on; the target time T is noted in
    the middle of it; the load goes on past T; cartd and PostgreSQL are stopped.
 4. Restore: the base backup copied to a fresh data directory, recovery.signal,
    restore_command from the archive, recovery_target_time = T, promote; PostgreSQL on
    port 16321; cartd started on it (same streams).
 5. Checks: every fill and payment acknowledged before T is there (and acknowledged
    after T + 1 s is not: the restore stopped at T); the relays resume from the
    restored checkpoints and reach the restored heads, and what they re-publish is
    dropped by JetStream as duplicates (the drill ends inside the duplicate window);
    `cartctl projections rebuild` on the restored log finds no row differing from the
    restored projection.
Times and counts are printed and written to <target>/restore-drill/report.json.

Needs PostgreSQL 15's server binaries (Debian's postgresql-15), nats-server on
NATS_URL, and root or the postgres user (initdb refuses root: it runs as postgres).
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from natsclient import Nats  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
BIN = os.environ.get("DRILL_BIN") or os.path.join(TARGET, "release")
WORK = os.path.join(TARGET, "restore-drill")
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PRIMARY_PORT, RESTORED_PORT = 16320, 16321
ADMIN = {"primary": 16330, "restored": 16331}
PREFIX = "cart.drill"
STREAMS = {"carts": "CART_DRILL_EVENTS", "orders": "CART_DRILL_ORDERS"}
NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
PROJECT = 44056
# Seconds of load before the base backup, between it and T, and after T.
BEFORE_BACKUP, BEFORE_T, AFTER_T = 5, 10, 8

report = {"times_s": {}, "counts": {}, "checks": {}}
children = []


def log(msg):
    print(f"restore-drill: {msg}", flush=True)


def fail(msg):
    log(f"FAILED: {msg}")
    raise SystemExit(1)


def timed(name):
    class T:
        def __enter__(self):
            self.t = time.monotonic()

        def __exit__(self, *exc):
            report["times_s"][name] = round(time.monotonic() - self.t, 2)

    return T()


def as_postgres(cmd):
    """A command as the postgres user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        fail(f"{' '.join(cmd)}: exit {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out.stdout


def psql(port, sql, db="cart"):
    return run(
        [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(port),
         "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql]
    ).strip()


def pg_ctl(data, action, extra=()):
    run(as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-w", "-t", "600",
                     "-l", data + ".log", action, *extra]))


def database_url(port):
    return f"postgres://postgres@127.0.0.1:{port}/cart"


def start_cartd(port, which):
    env = dict(
        os.environ,
        DATABASE_URL=database_url(port),
        NATS_URL=NATS_URL,
        CART_SUBJECT_PREFIX=PREFIX,
        CART_SERVICE_NAME="cart-drill",
        CART_EVENTS_STREAM=STREAMS["carts"],
        CART_ORDERS_STREAM=STREAMS["orders"],
        CART_ADMIN_ADDR=f"127.0.0.1:{ADMIN[which]}",
        CART_CATALOG=os.path.join(REPO, "deploy", "catalog.json"),
        RUST_LOG="warn",
    )
    out = open(os.path.join(WORK, f"cartd-{which}.log"), "w")
    proc = subprocess.Popen([os.path.join(BIN, "cartd")], env=env, stdout=out, stderr=out)
    children.append(proc)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ADMIN[which]}/readyz", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                fail(f"cartd ({which}) exited {proc.returncode}; see {out.name}")
            time.sleep(0.2)
    fail(f"cartd ({which}) not ready within 120 s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cartctl(*args, user):
    env = dict(os.environ, NATS_URL=NATS_URL, CART_SUBJECT_PREFIX=PREFIX,
               CART_PROJECT=str(PROJECT), CART_USER=user)
    out = subprocess.run([os.path.join(BIN, "cartctl"), *args], env=env,
                         capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout


class Recorder(threading.Thread):
    """Fills, checkouts and payments with known ids; the acknowledgement time of each."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.fills = []  # (user, command_id, acked_at)
        self.paid = []  # (user, order_id, acked_at)

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            user = f"drill-{i}"
            command_id = f"drill-fill-{i}"
            code, _ = cartctl("--command-id", command_id, "fill", "cup01=1", user=user)
            if code == 0:
                self.fills.append((user, command_id, time.time()))
            if i % 3 == 0 and code == 0:
                self.purchase(user)

    def purchase(self, user):
        code, out = cartctl("checkout", user=user)
        if code != 0:
            return
        order_id = str(json.loads(out)["order_id"])
        code, out = cartctl("order", "get", order_id, user=user)
        if code != 0:
            return
        amount = json.loads(out)["content"]["price"]["amount"]
        code, _ = cartctl("pay", "--amount", amount, order_id, user=user)
        if code == 0:
            self.paid.append((user, order_id, time.time()))


def wait_archived(port):
    """Switches to a new WAL segment and waits until the archiver has copied the old one."""
    segment = psql(port, "select pg_walfile_name(pg_switch_wal())")
    for _ in range(600):
        last = psql(port, "select coalesce(last_archived_wal, '') from pg_stat_archiver")
        if last >= segment:
            return
        time.sleep(0.1)
    fail(f"WAL segment {segment} not archived within 60 s")


def connect_nats():
    host, port = NATS_URL.removeprefix("nats://").rsplit(":", 1)
    return Nats(host, int(port))


def feed_status(nats):
    return nats.json(f"{PREFIX}.feed.status")


def main():
    for tool in ("initdb", "pg_ctl", "pg_basebackup", "psql"):
        if not os.path.exists(os.path.join(PG_BIN, tool)):
            fail(f"{PG_BIN}/{tool} missing: apt-get install postgresql-15")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(WORK, "wal"))
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for d in (WORK, os.path.join(WORK, "wal")):
            os.chown(d, pg.pw_uid, pg.pw_gid)
    primary, restored = os.path.join(WORK, "primary"), os.path.join(WORK, "restored")
    base, wal = os.path.join(WORK, "base"), os.path.join(WORK, "wal")

    nats = connect_nats()
    for stream in STREAMS.values():
        nats.delete_stream(stream)

    # 1. The primary: WAL archived to a folder.
    run(as_postgres([os.path.join(PG_BIN, "initdb"), "-D", primary, "-U", "postgres",
                     "-A", "trust", "--no-sync"]))
    with open(os.path.join(primary, "postgresql.conf"), "a") as f:
        f.write(
            f"port = {PRIMARY_PORT}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{WORK}'\nwal_level = replica\narchive_mode = on\n"
            f"archive_command = 'test ! -f {wal}/%f && cp %p {wal}/%f'\n"
            "max_wal_senders = 4\nfsync = on\nsynchronous_commit = on\n"
        )
    pg_ctl(primary, "start")
    cartd = start_cartd(PRIMARY_PORT, "primary")
    log(f"primary on {PRIMARY_PORT}, cartd ready; load starts")

    # 2. Load, and the recorder.
    bench_out = open(os.path.join(WORK, "cart-bench.log"), "w")
    secs = BEFORE_BACKUP + BEFORE_T + AFTER_T + 60
    bench = subprocess.Popen(
        [os.path.join(BIN, "cart-bench"), "orders", "--nats-url", NATS_URL, "--subject-prefix",
         PREFIX, "--clients", "4", "--secs", str(secs)],
        stdout=bench_out, stderr=bench_out)
    children.append(bench)
    recorder = Recorder()
    recorder.start()
    time.sleep(BEFORE_BACKUP)

    # 3. The base backup under load.
    with timed("base_backup"):
        run(as_postgres([os.path.join(PG_BIN, "pg_basebackup"), "-h", "127.0.0.1", "-p",
                         str(PRIMARY_PORT), "-U", "postgres", "-D", base, "-X", "stream",
                         "-c", "fast", "--no-sync"]))
    report["counts"]["base_backup_bytes"] = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(base) for f in fs)
    time.sleep(BEFORE_T)
    target = datetime.now(timezone.utc)
    t_epoch = target.timestamp()
    log(f"target time T = {target.isoformat()}")
    time.sleep(AFTER_T)
    recorder.stop.set()
    recorder.join()
    bench.terminate()
    bench.wait()
    stop(cartd)
    published = {log_: nats.stream_messages(s)[0] for log_, s in STREAMS.items()}
    wait_archived(PRIMARY_PORT)
    pg_ctl(primary, "stop", ["-m", "fast"])
    report["counts"]["wal_archived_segments"] = len(os.listdir(wal))
    report["counts"]["stream_messages_before_restore"] = published
    log(f"load stopped: {len(recorder.fills)} fills and {len(recorder.paid)} payments recorded; primary stopped")

    # 4. Restore to a fresh data directory at T.
    with timed("restore_to_T"):
        run(as_postgres(["cp", "-a", base, restored]))
        with open(os.path.join(restored, "postgresql.conf"), "a") as f:
            f.write(
                f"port = {RESTORED_PORT}\narchive_mode = off\n"
                f"restore_command = 'cp {wal}/%f %p'\n"
                f"recovery_target_time = '{target.isoformat()}'\n"
                "recovery_target_action = 'promote'\n"
            )
        open(os.path.join(restored, "recovery.signal"), "w").close()
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(os.path.join(restored, "recovery.signal"), pg.pw_uid, pg.pw_gid)
        pg_ctl(restored, "start")
        for _ in range(6000):
            if psql(RESTORED_PORT, "select pg_is_in_recovery()") == "f":
                break
            time.sleep(0.1)
        else:
            fail("the restored server never left recovery")
    checkpoints = {
        log_: psql(RESTORED_PORT, f"select tx_id || ':' || global_position from feed_checkpoints "
                                  f"where name = 'relay:{s}'")
        for log_, s in STREAMS.items()
    }
    heads = {
        "carts": int(psql(RESTORED_PORT, "select count(*) from cart_events")),
        "orders": int(psql(RESTORED_PORT, "select count(*) from order_events")),
    }
    behind = {
        "carts": int(psql(RESTORED_PORT, "select count(*) from cart_events e, feed_checkpoints c "
                          f"where c.name = 'relay:{STREAMS['carts']}' and "
                          "(e.tx_id, e.global_position) > (c.tx_id, c.global_position)")),
        "orders": int(psql(RESTORED_PORT, "select count(*) from order_events e, feed_checkpoints c "
                           f"where c.name = 'relay:{STREAMS['orders']}' and "
                           "(e.tx_id, e.global_position) > (c.tx_id, c.global_position)")),
    }
    report["counts"]["restored_events"] = heads
    report["counts"]["restored_relay_checkpoints"] = checkpoints
    report["counts"]["events_after_restored_checkpoint"] = behind
    with timed("cartd_ready_on_restored"):
        cartd = start_cartd(RESTORED_PORT, "restored")

    # 5. Checks.
    margin = 1.0
    before = [f for f in recorder.fills if f[2] < t_epoch]
    after = [f for f in recorder.fills if f[2] > t_epoch + margin]
    present = set(psql(RESTORED_PORT, "select command_id from processed_commands "
                       "where command_id like 'drill-fill-%'").split())
    missing = [f[1] for f in before if f[1] not in present]
    kept_after = [f[1] for f in after if f[1] in present]
    paid_before = [p for p in recorder.paid if p[2] < t_epoch]
    statuses = dict(
        line.split("|") for line in psql(
            RESTORED_PORT, "select order_id, status from orders").splitlines() if line)
    unpaid = [p[1] for p in paid_before if statuses.get(p[1]) not in ("paid", "done")]
    report["counts"]["fills_acked_before_T"] = len(before)
    report["counts"]["payments_acked_before_T"] = len(paid_before)
    report["counts"]["fills_acked_after_T_plus_1s"] = len(after)
    report["checks"]["acked_before_T_present"] = not missing and not unpaid
    report["checks"]["acked_after_T_absent"] = not kept_after
    if missing or unpaid:
        fail(f"acknowledged before T but not restored: fills {missing[:5]}, payments {unpaid[:5]}")
    if kept_after:
        fail(f"acknowledged after T + {margin} s but restored: {kept_after[:5]} (recovery did not stop at T)")
    if not before or not paid_before or not after:
        fail("the drill recorded too little on one side of T to check anything")
    log(f"{len(before)} fills and {len(paid_before)} payments acknowledged before T are restored; "
        f"none of the {len(after)} fills acknowledged after T + {margin:.0f} s")

    # The relays resume from the restored checkpoints and reach the restored heads.
    with timed("relays_caught_up"):
        for _ in range(600):
            status = feed_status(nats)
            lag = (status["relay"]["lag_events"], status["orders_relay"]["lag_events"])
            if lag == (0, 0) and status["relay"]["checkpoint"] == status["heads"]["carts"] and \
                    status["orders_relay"]["checkpoint"] == status["heads"]["orders"]:
                break
            time.sleep(0.1)
        else:
            fail(f"relays never caught up: {status}")
    after_restore = {log_: nats.stream_messages(s)[0] for log_, s in STREAMS.items()}
    instance = status.get("this_instance") or {}
    report["counts"]["stream_messages_after_restore"] = after_restore
    report["counts"]["relay_duplicates_dropped"] = instance.get("duplicates_dropped")
    report["counts"]["relay_published"] = instance.get("published")
    # Every event the restored relays re-published was in the stream already: JetStream
    # dropped the copies (same event id, inside the duplicate window).
    report["checks"]["republished_dropped_as_duplicates"] = after_restore == published
    if after_restore != published:
        fail(f"the stream grew on restore: {published} -> {after_restore}")
    orphans = {k: published[k] - heads[k] for k in heads}
    report["counts"]["stream_events_not_in_restored_log"] = orphans
    log(f"relays resumed from {checkpoints}, re-published {behind} events, all dropped as "
        f"duplicates; the streams keep {orphans} events of the lost future (docs/operations.md)")

    # The projection rebuilt from the restored log equals the restored projection.
    snapshot = "select stream_id, version, lines::text from cart_projection order by stream_id"
    live = psql(RESTORED_PORT, snapshot)
    with timed("projection_rebuild"):
        out = subprocess.run([os.path.join(BIN, "cartctl"), "projections", "rebuild",
                              "--database-url", database_url(RESTORED_PORT)],
                             capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"cartctl projections rebuild: {out.stderr}")
    rebuilt = psql(RESTORED_PORT, snapshot)
    differed = " 0 rows differed" in out.stderr
    report["checks"]["rebuild_equals_restored_projection"] = differed and rebuilt == live
    if not differed or rebuilt != live:
        fail(f"the rebuilt projection differs from the restored one: {out.stderr.strip()}")
    log(f"projections rebuild: {out.stderr.strip()}")
    stop(cartd)
    pg_ctl(restored, "stop", ["-m", "fast"])


if __name__ == "__main__":
    started = time.monotonic()
    ok = False
    try:
        main()
        ok = True
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        for d in ("primary", "restored"):
            data = os.path.join(WORK, d)
            if os.path.exists(os.path.join(data, "postmaster.pid")):
                subprocess.run(as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", data, "stop",
                                            "-m", "immediate"]), capture_output=True)
        try:
            n = connect_nats()
            for s in STREAMS.values():
                n.delete_stream(s)
        except OSError:
            pass
    report["times_s"]["drill_total"] = round(time.monotonic() - started, 1)
    with open(os.path.join(WORK, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    for d in ("primary", "restored", "base", "wal"):
        shutil.rmtree(os.path.join(WORK, d), ignore_errors=True)
    if ok:
        log("ok: " + json.dumps(report))
