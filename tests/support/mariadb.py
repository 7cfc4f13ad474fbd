"""A throwaway MariaDB server on loopback, with a temporary data directory, for the MySQL test runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.polling import eventually_sync
from tests.support.processes import Process, free_port, port_open

USER = "incidents"
PASSWORD = "incidents-test"


def _binary(*names: str) -> str:
    for name in names:
        for folder in ("/usr/sbin", "/usr/bin", "/usr/local/bin"):
            candidate = Path(folder) / name
            if candidate.exists():
                return str(candidate)
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"{names[0]} not found: install MariaDB (apt-get install mariadb-server), or set TEST_MYSQL_URL")


class MariaDB:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.socket = workdir / "mysqld.sock"
        self.port = free_port()
        self.process: Process | None = None

    @property
    def admin_url(self) -> str:
        return f"mysql+asyncmy://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def start(self) -> MariaDB:
        self.workdir.mkdir(parents=True, exist_ok=True)
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                _binary("mariadb-install-db", "mysql_install_db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                *user,
            ],
            check=True,
            capture_output=True,
        )
        argv = [
            _binary("mariadbd", "mysqld"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket}",
            f"--pid-file={self.workdir / 'mysqld.pid'}",
            "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-buffer-pool-size=128M",
            "--max-connections=500",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
            *user,
        ]
        self.process = Process("mariadb", argv, None, self.workdir / "mariadb.log").start()
        eventually_sync(lambda: port_open(self.port), timeout=60, what="MariaDB to listen")
        self.sql(
            f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
            f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1'; FLUSH PRIVILEGES;"
        )
        return self

    def sql(self, statements: str) -> str:
        result = subprocess.run(
            [_binary("mariadb", "mysql"), "--no-defaults", "-uroot", f"--socket={self.socket}", "-N", "-e", statements],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def stop(self) -> None:
        if self.process:
            self.process.stop(timeout=30)

    def kill(self) -> None:
        if self.process:
            self.process.kill()

    def restart(self) -> None:
        assert self.process is not None
        self.process = Process("mariadb", self.process.argv, None, self.workdir / "mariadb.log").start()
        eventually_sync(lambda: port_open(self.port), timeout=60, what="MariaDB to listen again")
