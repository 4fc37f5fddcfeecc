"""MariaDB: from Debian's ``mariadb-server`` package or an official ``mariadb`` image."""

from __future__ import annotations

import re

from envkit.errors import SpecError
from envkit.recipes.checks import server_check
from envkit.recipes.recipe import Recipe, shell_quote
from envkit.records import Value
from envkit.spec import Image, Service

PORT = 3306
DEBIAN_VERSIONS = {"bookworm": "10.11", "trixie": "11.8"}
DATA_MOUNT = "/var/lib/mysql-tmpfs"
SOCKET = f"{DATA_MOUNT}/mysqld.sock"
_TEMPLATE_DIR = "/var/lib/envkit-mysql"
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class MariadbAdmin(Value):
    """Databases of a MariaDB server, managed through the ``mariadb`` client in its
    container. MariaDB has no template databases: a fresh one is created empty and
    the seed replayed into it."""

    client_argv: tuple[str, ...]
    templates: bool = False

    def client(self, database: str) -> list[str]:
        """``mariadb`` reading a script from stdin (it stops at the first error)."""
        return [*self.client_argv, database]

    def create(self, name: str, template: str | None) -> str:
        """``CREATE DATABASE`` (``template`` is ignored: see the class)."""
        return f"CREATE DATABASE `{name}`"

    def drop(self, name: str) -> str:
        """``DROP DATABASE``."""
        return f"DROP DATABASE IF EXISTS `{name}`"

    def seal(self, name: str) -> str:
        """Nothing to seal: templates are not used."""
        return "SELECT 1"


def mariadb(
    version: str = "10.11",
    *,
    image: str | None = None,
    user: str = "root",
    password: str = "mariadb",
    database: str = "test",
    suite: str = "bookworm",
) -> Recipe:
    """A MariaDB server for tests, data on a tmpfs, as the ``mysql`` user.

    Built from Debian ``suite``'s ``mariadb-server`` package by default (the data
    directory is initialised at build time); ``image="mariadb:11"`` uses an official
    registry image. ``user`` (``root`` or a new user) may connect from anywhere with
    ``password``; ``database`` is created at start and named by the URL.
    """
    for name, value in (("user", user), ("database", database)):
        if not _IDENTIFIER_RE.match(value):
            raise SpecError(f"mariadb().{name}", "expected a plain SQL identifier", value=value)
    if image is not None:
        env = {"MARIADB_DATABASE": database, "MARIADB_ROOT_PASSWORD": password}
        if user != "root":
            env |= {"MARIADB_USER": user, "MARIADB_PASSWORD": password}
        service = Service(
            "mariadb",
            image=image,
            env=env,
            tmpfs=["/var/lib/mysql"],
            ports={0: PORT},
            healthcheck=server_check(["healthcheck.sh", "--connect", "--innodb_initialized"]),
        )
        admin = MariadbAdmin(("mariadb", "-uroot", f"-p{password}"))
        return Recipe(service, PORT, "mysql", user, password, database, admin)
    shipped = DEBIAN_VERSIONS.get(suite)
    if shipped != version:
        raise SpecError(
            "mariadb().version",
            f"Debian {suite} ships MariaDB {shipped}, not {version}",
            value=version,
            hint=f'use mariadb(version="{shipped}") or mariadb(image="mariadb:{version}")',
        )
    grant = (
        f"CREATE DATABASE IF NOT EXISTS `{database}`;\n"
        f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{_sql_string(password)}';\n"
        f"GRANT ALL ON *.* TO '{user}'@'%' WITH GRANT OPTION;\n"
        # The admin client in the container logs in as the OS user, over the socket.
        "CREATE USER IF NOT EXISTS 'mysql'@'localhost' IDENTIFIED VIA unix_socket;\n"
        "GRANT ALL ON *.* TO 'mysql'@'localhost' WITH GRANT OPTION;\n"
    )
    start = (
        f"set -e; cp -a {_TEMPLATE_DIR} {DATA_MOUNT}/data; "
        f"printf '%s' {shell_quote([grant])} > {DATA_MOUNT}/init.sql; exec "
        + shell_quote(
            [
                "mariadbd",
                f"--datadir={DATA_MOUNT}/data",
                f"--socket={SOCKET}",
                f"--pid-file={DATA_MOUNT}/mysqld.pid",
                f"--init-file={DATA_MOUNT}/init.sql",
                "--bind-address=0.0.0.0",
                f"--port={PORT}",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--skip-log-bin",
            ]
        )
    )
    service = Service(
        "mariadb",
        # The -core packages: mariadb-server's maintainer scripts start and stop a
        # server, which fails in a build; the mysql user is created here instead.
        image=Image.debian(suite, packages=["mariadb-client-core", "mariadb-server-core"])
        .run(
            "groupadd --system mysql && useradd --system --gid mysql --home-dir /nonexistent "
            f"mysql && mkdir {_TEMPLATE_DIR} && chown mysql:mysql {_TEMPLATE_DIR}"
        )
        .user("mysql")
        .run(
            f"mariadb-install-db --force --datadir={_TEMPLATE_DIR} --skip-test-db "
            "--auth-root-authentication-method=socket"
        )
        .user("root"),
        user="mysql",
        command=["sh", "-c", start],
        tmpfs=[DATA_MOUNT],
        ports={0: PORT},
        healthcheck=server_check(
            ["mariadb", f"--socket={SOCKET}", "--user=mysql", "-e", "SELECT 1"]
        ),
    )
    admin = MariadbAdmin(("mariadb", f"--socket={SOCKET}", "--user=mysql"))
    return Recipe(service, PORT, "mysql", user, password, database, admin)


def _sql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "''")
