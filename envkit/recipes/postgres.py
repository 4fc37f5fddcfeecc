"""PostgreSQL: from Debian's ``postgresql-N`` package (no registry needed) or an
official ``postgres`` image."""

from __future__ import annotations

import hashlib
import re

from envkit.errors import SpecError
from envkit.recipes import scram
from envkit.recipes.checks import server_check
from envkit.recipes.recipe import Recipe, shell_quote
from envkit.records import Value
from envkit.spec import Image, Service

PORT = 5432
#: The major version each Debian suite ships.
DEBIAN_VERSIONS = {"bookworm": 15, "trixie": 17}
#: Where the server keeps its data and sockets: a tmpfs, so nothing outlives the container.
DATA_MOUNT = "/var/lib/postgresql/data"
#: Settings for a throwaway server: no durability, enough connections for parallel tests.
FAST_SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "listen_addresses=*",
    "max_connections=200",
)
_TEMPLATE_CLUSTER = "/var/lib/postgresql/envkit-cluster"
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresAdmin(Value):
    """Databases of a PostgreSQL server, managed through ``psql`` in its container."""

    psql: tuple[str, ...]
    user: str
    version: int
    templates: bool = True

    def client(self, database: str) -> list[str]:
        """``psql`` reading a script from stdin, stopping at the first error; rows come
        out unaligned, without headers."""
        return [
            *self.psql,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            self.user,
            "-d",
            database,
        ]

    def create(self, name: str, template: str | None) -> str:
        """``CREATE DATABASE``; a clone by file copy (one checkpoint, faster than
        WAL_LOG for the small databases tests use) where the server has it (15+)."""
        sql = f"CREATE DATABASE {quote_identifier(name)}"
        if template is not None:
            sql += f" TEMPLATE {quote_identifier(template)}"
            if self.version >= 15:
                sql += " STRATEGY FILE_COPY"
        return sql

    def drop(self, name: str) -> str:
        """``DROP DATABASE ... WITH (FORCE)``: the test's open connections are closed."""
        return f"DROP DATABASE IF EXISTS {quote_identifier(name)} WITH (FORCE)"

    def seal(self, name: str) -> str:
        """Mark ``name`` a template without connections and close any left open (a
        seeding callable's client, say), waiting up to 5 s for each to go."""
        literal = name.replace("'", "''")
        return (
            f"ALTER DATABASE {quote_identifier(name)} WITH IS_TEMPLATE true "
            "ALLOW_CONNECTIONS false;\n"
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            f"WHERE datname = '{literal}' AND pid <> pg_backend_pid();"
        )


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def postgres(
    version: int = 15,
    *,
    image: str | None = None,
    user: str = "postgres",
    password: str = "postgres",
    database: str = "postgres",
    suite: str = "bookworm",
) -> Recipe:
    """A PostgreSQL server for tests, data on a tmpfs, tuned for speed over durability.

    By default built from Debian ``suite``'s ``postgresql-<version>`` package with
    :meth:`Image.debian` (cached after the first build; the cluster is initialised at
    build time, so a start takes well under a second); ``image="postgres:16"`` uses an
    official registry image instead. ``user`` is the superuser, ``password`` its password
    over TCP (it is part of the built image: a test credential, not a secret), and
    ``database`` the database the URL names.
    """
    field = "postgres()"
    if not _IDENTIFIER_RE.match(user):
        raise SpecError(f"{field}.user", "expected a plain SQL identifier", value=user)
    if not _IDENTIFIER_RE.match(database):
        raise SpecError(f"{field}.database", "expected a plain SQL identifier", value=database)
    if image is not None:
        return _from_registry(image, version, user, password, database)
    shipped = DEBIAN_VERSIONS.get(suite)
    if shipped != version:
        raise SpecError(
            f"{field}.version",
            f"Debian {suite} ships PostgreSQL {shipped}, not {version}",
            value=version,
            hint=f'use postgres(version={shipped}) or postgres(image="postgres:{version}")',
        )
    binaries = f"/usr/lib/postgresql/{version}/bin"
    settings = [w for s in FAST_SETTINGS for w in ("-c", s)]
    # tar into tar, not cp -a: reading and writing run on two cores (28 MB, ~1000 files:
    # 35 ms instead of 64 ms on the first database's path). dash has no pipefail: a copy
    # cut short fails the extracting tar (a truncated archive), or postgres on its data.
    copy = (
        f"mkdir -m 700 {DATA_MOUNT}/pgdata; "
        f"tar -C {_TEMPLATE_CLUSTER} -cf - . | tar -C {DATA_MOUNT}/pgdata -xf -"
    )
    start = f"set -e; {copy}; exec " + shell_quote(
        [
            f"{binaries}/postgres",
            "-D",
            f"{DATA_MOUNT}/pgdata",
            "-c",
            f"unix_socket_directories={DATA_MOUNT}",
            *settings,
        ]
    )
    service = Service(
        "postgres",
        image=_debian_image(suite, version, user, password, database),
        user="postgres",
        command=["sh", "-c", start],
        tmpfs=[DATA_MOUNT],
        ports={0: PORT},
        healthcheck=server_check(
            [f"{binaries}/pg_isready", "-q", "-h", "127.0.0.1", "-U", user, "-d", database]
        ),
        # Immediate shutdown: the data is on a tmpfs that goes with the container, so
        # the shutdown checkpoint of SIGTERM's smart shutdown would be written for nothing.
        stop_signal="SIGQUIT",
    )
    admin = PostgresAdmin((f"{binaries}/psql", "-h", DATA_MOUNT), user, version)
    return Recipe(service, PORT, "postgresql", user, password, database, admin)


def _debian_image(suite: str, version: int, user: str, password: str, database: str) -> Image:
    """Debian with the server and a cluster initialised at build time (as ``postgres``:
    initdb refuses root), trust over the socket, a password over TCP."""
    binaries = f"/usr/lib/postgresql/{version}/bin"
    initdb = shell_quote(
        [
            f"{binaries}/initdb",
            "-D",
            _TEMPLATE_CLUSTER,
            "-U",
            user,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            # 1 MB WAL segments instead of 16: the cluster copied to the tmpfs at each
            # start shrinks from 39 to 24 MB (a test server never needs a big segment).
            "--wal-segsize=1",
            "--pwfile=/dev/stdin",
        ]
    )
    # Clients reach the server through the stack network's gateway, not loopback.
    hba = f"echo 'host all all all scram-sha-256' >> {_TEMPLATE_CLUSTER}/pg_hba.conf"
    secret = _stored_password(user, password)
    script = f"printf '%s\\n' {shell_quote([secret])} | {initdb} && {hba}"
    if database != "postgres":
        single = shell_quote(
            [f"{binaries}/postgres", "--single", "-D", _TEMPLATE_CLUSTER, "postgres"]
        )
        script += f" && echo {shell_quote([f'CREATE DATABASE {database}'])} | {single}"
    return (
        Image.debian(suite, packages=[f"postgresql-{version}"])
        .user("postgres")
        .run(script)
        .user("root")
    )


def _stored_password(user: str, password: str) -> str:
    """What initdb stores for ``user``: a SCRAM secret of few rounds, so that a client
    connects in a fraction of a millisecond instead of ~5 ms (:mod:`envkit.recipes.scram`);
    the password itself when it is empty or not printable ASCII. The salt is derived from the
    credentials, so the image's build step (and its cache key) stays the same."""
    if not password:
        return password
    try:
        salt = hashlib.sha256(f"envkit-postgres\0{user}\0{password}".encode()).digest()[:16]
        return scram.postgres_secret(password, salt)
    except ValueError:
        return password


def _from_registry(image: str, version: int, user: str, password: str, database: str) -> Recipe:
    """The official image: its entrypoint initialises the cluster from the environment
    at start and switches to the ``postgres`` user itself."""
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    major = re.match(r"^(\d+)", tag)
    service = Service(
        "postgres",
        image=image,
        env={
            "POSTGRES_USER": user,
            "POSTGRES_PASSWORD": password,
            "POSTGRES_DB": database,
            "PGDATA": f"{DATA_MOUNT}/pgdata",
        },
        command=["postgres", *(w for s in FAST_SETTINGS for w in ("-c", s))],
        tmpfs=[DATA_MOUNT],
        ports={0: PORT},
        healthcheck=server_check(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-U", user, "-d", database]
        ),
        # Stopped with the image's STOPSIGNAL (SIGINT, fast shutdown, in the official image).
    )
    admin = PostgresAdmin(("psql",), user, int(major.group(1)) if major else version)
    return Recipe(service, PORT, "postgresql", user, password, database, admin)
