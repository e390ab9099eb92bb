"""A throwaway PostgreSQL cluster: `initdb` + `pg_ctl` on a temp folder and a unix socket.

Used by the `postgres` tests (one cluster per test session, tests/postgres/conftest.py) and by
benchmarks/run_postgres.py. The server runs as an unprivileged user: the `postgres` user
through `runuser` when this process is root (PostgreSQL refuses to run as root), else the
current user. It listens on a unix socket in its own folder only (no TCP port), with
password authentication for the users the tests create, and trust for the superuser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: the superuser's name inside the cluster (connects without a password, over the socket)
SUPERUSER = "sqlorch_admin"


def find_binary(name: str) -> str | None:
    """Return the path of a PostgreSQL server binary (PATH, then Debian's folders), or None."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in versions:
        if (folder / name).is_file():
            return str(folder / name)
    return None


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class Cluster:
    """A running throwaway cluster: its folder, socket folder and port."""

    root: Path
    port: int = 5432

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def conninfo(self, dbname: str = "postgres", user: str = SUPERUSER, password: str = "") -> str:
        """A libpq keyword connection string over the socket."""
        parts = [f"host={self.socket_dir}", f"port={self.port}", f"dbname={dbname}", f"user={user}"]
        if password:
            parts.append(f"password={password}")
        return " ".join(parts)

    def url(self, dbname: str, user: str, password: str) -> str:
        """A postgresql:// URL over the socket (the form SQLORCH_STATE_URL takes)."""
        from urllib.parse import quote

        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@/{dbname}"
            f"?host={quote(str(self.socket_dir), safe='')}&port={self.port}"
        )

    def sql(self, statement: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement as the superuser (autocommit) and return its rows, if any."""
        import psycopg

        with psycopg.connect(self.conninfo(dbname), autocommit=True) as con:
            cur = con.execute(statement)
            return cur.fetchall() if cur.description else []

    def create_database(self, name: str, owner: str, password: str) -> None:
        """Create a login role (if new) and a database it owns."""
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'")
        if not exists:
            self.sql(f"CREATE ROLE \"{owner}\" LOGIN PASSWORD '{password}'")
        self.sql(f'CREATE DATABASE "{name}" OWNER "{owner}"')

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        pg_ctl = find_binary("pg_ctl")
        if pg_ctl and (self.data / "postmaster.pid").exists():
            subprocess.run(
                _as_server_user([pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(port: int = 54329) -> Cluster:
    """Create and start a cluster in a fresh temp folder; wait until it accepts connections.

    Raises:
        RuntimeError: initdb or pg_ctl is missing or failed (their output is in the message).
    """
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError(
            "initdb/pg_ctl not found: install PostgreSQL (apt-get install postgresql)"
        )
    root = Path(tempfile.mkdtemp(prefix="sqlorch-pg-"))
    cluster = Cluster(root, port)
    cluster.socket_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(cluster.socket_dir, "postgres", "postgres")
    hba = root / "pg_hba.conf"
    hba.write_text(
        f"local all {SUPERUSER} trust\nlocal all all scram-sha-256\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    if os.geteuid() == 0:
        shutil.chown(hba, "postgres", "postgres")
    run = [initdb, "-D", str(cluster.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8"]
    out = subprocess.run(
        _as_server_user([*run, "--locale=C.UTF-8"]), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {out.stdout}{out.stderr}")
    options = (
        f"-c listen_addresses='' -c unix_socket_directories={cluster.socket_dir} "
        f"-c port={port} -c hba_file={hba} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    log = root / "server.log"
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "postgres", "postgres")
    out = subprocess.run(
        _as_server_user(
            [
                pg_ctl,
                "-D",
                str(cluster.data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        detail = log.read_text() if log.exists() else ""
        cluster.stop()
        raise RuntimeError(f"pg_ctl start failed: {out.stdout}{out.stderr}{detail}")
    deadline = time.monotonic() + 30
    while True:
        try:
            cluster.sql("SELECT 1")
            return cluster
        except Exception:
            if time.monotonic() > deadline:
                cluster.stop()
                raise
            time.sleep(0.1)
