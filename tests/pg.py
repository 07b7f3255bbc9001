"""A throwaway PostgreSQL server for the tests, from Debian's postgresql package (`make
postgres` installs it). The session starts one cluster in a temporary folder (in memory
when it can), on a free port of 127.0.0.1, with fsync off; each test that asks gets a database of its own,
dropped after it. As root the cluster runs as the `postgres` system user (initdb refuses
root). A watchdog process stops it and removes its folder if the session dies first.

Fixtures: ``pg_server`` (session), ``pg_url`` (a fresh database's URL),
``store_target``, which runs a test twice: on a SQLite file, then on PostgreSQL; and
``backend``/``databases``, which run a whole module's workspace tests (``ws``) on both:
mark the module ``pytestmark = pytest.mark.backends`` (a test of something only SQLite
has, or that PostgreSQL would only repeat: ``@pytest.mark.sqlite_only``).
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from newsletter.ports import free_port

SUPERUSER = "postgres"  # trusted on 127.0.0.1: test URLs carry no password
# A role that must give a password (scram-sha-256), for the tests of where it comes from.
PASSWORD_ROLE, PASSWORD = "reader", "reader-password-for-tests"
HBA = f"""\
local all all trust
host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""
SETTINGS = """\
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{root}'
fsync = off                  # a test database need not survive a power cut
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 100
"""
# Runs beside the session; once the session is gone (its parent changes), stops the
# cluster and removes its folder.
WATCHDOG = """\
import os, shutil, subprocess, sys, time
parent, stop, root = int(sys.argv[1]), sys.argv[2:-1], sys.argv[-1]
while os.getppid() == parent:
    time.sleep(0.5)
subprocess.run(stop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
shutil.rmtree(root, ignore_errors=True)
"""


class Unavailable(Exception):
    """PostgreSQL cannot be had here: the tests that need it are skipped, saying why."""


def binaries() -> Path | None:
    """The newest installed server's bin folder (Debian 12 ships 15, Debian 13 ships 17)."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl") if p.parent.parent.name.isdigit()]
    return max(found, key=lambda bindir: int(bindir.parent.name), default=None)


class Server:
    """One running cluster; ``url()`` names a database in it."""

    def __init__(self, bindir: Path, root: Path, as_user: list[str]):
        self.bindir, self.root, self.as_user = bindir, root, as_user
        self.data = root / "data"
        self.port = 0
        self.started_in = 0.0  # seconds from initdb to accepting connections
        self.watchdog: subprocess.Popen | None = None

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.bindir / program), *args],
                              capture_output=True, text=True, timeout=120)

    def url(self, dbname: str, user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run ``sql`` as the superuser through the unix socket."""
        import psycopg

        with psycopg.connect(host=str(self.root), port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> None:
        # FILE_COPY (PostgreSQL 15+): a template this small copies faster than it logs
        self.admin(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # FORCE: pools still open

    def start(self) -> None:
        began = time.monotonic()
        done = self.run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                        "--locale=C", "--no-sync")
        if done.returncode:
            raise Unavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        (self.data / "pg_hba.conf").write_text(HBA)
        for _ in range(3):  # the free port may be taken before the server binds it
            self.port = free_port()
            (self.data / "postgresql.auto.conf").write_text(SETTINGS.format(port=self.port, root=self.root))
            done = self.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.root / "log"))
            if done.returncode == 0:
                break
        else:
            log = (self.root / "log").read_text(errors="replace") if (self.root / "log").exists() else ""
            raise Unavailable(f"pg_ctl start failed: {(done.stderr + log).strip()[-500:]}")
        stop = [*self.as_user, str(self.bindir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(self.data)]
        self.watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), *stop, str(self.root)],
                                         start_new_session=True, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.started_in = time.monotonic() - began
        self.admin(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")

    def stop(self) -> None:
        """Stop the cluster and remove its folder; again is harmless."""
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
            self.watchdog = None
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data))
        shutil.rmtree(self.root, ignore_errors=True)


def scratch() -> Path:
    """A new folder for the cluster: in memory (/dev/shm) when there is room, where
    creating a test's database takes milliseconds; on a busy disk, up to a second."""
    shm = Path("/dev/shm")
    try:
        in_memory = os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 ** 30
    except OSError:
        in_memory = False
    return Path(tempfile.mkdtemp(prefix="newsletter-pg-", dir=shm if in_memory else None))


def start() -> Server:
    """A running cluster, or Unavailable saying why there is none."""
    bindir = binaries()
    if bindir is None:
        raise Unavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl); "
                          "`make postgres` installs Debian's postgresql package")
    root = scratch()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the postgres user
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            raise Unavailable("running as root, and there is no `postgres` user to run PostgreSQL as") from None
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = Server(bindir, root, as_user)
    atexit.register(server.stop)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    """The session's PostgreSQL cluster (started on first use), or a skip saying why not."""
    try:
        server = start()
    except (Unavailable, OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"no PostgreSQL server for the tests: {e}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: Server) -> Iterator[str]:
    """A new, empty database, dropped after the test: its URL."""
    name = f"test_{os.getpid()}_{next(_numbers)}"
    pg_server.create_database(name)
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture
def databases(backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[[], str] | None]:
    """On PostgreSQL, a maker of new databases (each dropped after the test), which the
    ``ws`` fixture's store is made with; None on SQLite."""
    if backend != "postgresql":
        yield None
        return
    server: Server = request.getfixturevalue("pg_server")
    made: list[str] = []

    def make() -> str:
        made.append(f"test_{os.getpid()}_{next(_numbers)}")
        server.create_database(made[-1])
        return server.url(made[-1])
    yield make
    for name in made:
        server.drop_database(name)


BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends: run the module's workspace tests on SQLite and on PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: in a `backends` module, a test of what only SQLite has, or"
                            " of what PostgreSQL would only repeat")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests of a module marked ``backends`` run twice, on each backend (the ``backend``
    fixture, which ``ws`` follows), unless marked ``sqlite_only``."""
    node = metafunc.definition
    if ("backend" in metafunc.fixturenames and node.get_closest_marker("backends")
            and not node.get_closest_marker("sqlite_only")):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store's database: "sqlite", or both in turn in a module marked ``backends``."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store goes: a SQLite file, then (the same test again) a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "subscribers.db"
    return request.getfixturevalue("pg_url")
