"""The compose loader: compose.yaml -> Stack, key by key, and its errors and warnings."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from envkit import records
from envkit.build.dockerfile import expand
from envkit.compose import ComposeProject, ComposeWarning, find_compose_file, load, to_compose
from envkit.errors import StackFileError
from envkit.spec import Healthcheck, Image, Network, Secret, Stack, Volume
from envkit.spec.bases import Dockerfile, FromRef


def write(tmp_path: Path, text: str, *, name: str = "compose.yaml", folder: str = "app") -> Path:
    project = tmp_path / folder
    project.mkdir(exist_ok=True)
    path = project / name
    path.write_text(textwrap.dedent(text))
    return path


def loaded(tmp_path: Path, text: str, **kw: Any) -> ComposeProject:
    """The project of ``text`` (warnings name the file relative to its folder)."""
    kw.setdefault("environ", {})
    path = write(tmp_path, text)
    project = load(path, **kw)
    prefix = f"{path.parent}/"
    return records.replace(
        project, warnings=tuple(w.removeprefix(prefix) for w in project.warnings)
    )


def error(tmp_path: Path, text: str, **kw: Any) -> str:
    """The message of the error loading ``text`` gives (the file relative to its folder)."""
    with pytest.raises(StackFileError) as caught:
        loaded(tmp_path, text, **kw)
    assert caught.value.exit_code == 2
    return str(caught.value).removeprefix(f"{tmp_path / 'app'}/")


def test_minimal_service(tmp_path: Path) -> None:
    project = loaded(tmp_path, "services:\n  web:\n    image: busybox\n")
    stack = project.stack
    assert stack.name == "app"
    assert stack.base_dir == tmp_path / "app"
    assert stack["web"].image == Image.from_("busybox")
    assert [n.name for n in stack.networks] == ["default"]
    assert project.warnings == ()


@pytest.mark.parametrize(
    ("folder", "expected"), [("My App!", "myapp"), ("_x-y", "x-y"), ("a.b_c", "ab_c")]
)
def test_project_name_from_the_directory_is_normalised(
    tmp_path: Path, folder: str, expected: str
) -> None:
    path = write(tmp_path, "services:\n  s:\n    image: busybox\n", folder=folder)
    assert load(path, environ={}).stack.name == expected


def test_project_name_precedence(tmp_path: Path) -> None:
    text = "name: fromfile\nservices:\n  s:\n    image: busybox\n"
    assert loaded(tmp_path, text).stack.name == "fromfile"
    env = {"COMPOSE_PROJECT_NAME": "fromenv"}
    assert loaded(tmp_path, text, environ=env).stack.name == "fromenv"
    assert loaded(tmp_path, text, environ=env, project_name="given").stack.name == "given"
    message = error(tmp_path, "name: Bad Name\nservices:\n  s:\n    image: busybox\n")
    assert "compose.yaml:1: name: invalid project name 'Bad Name'" in message


def test_interpolation_from_environment_and_dotenv(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        services:
          web:
            image: "busybox:${TAG:-latest}"
            environment:
              GREETING: "hello $$NAME ${WHO}"
              PORT: ${PORT}
            ports: ["${PORT}:80"]
        """,
    )
    (path.parent / ".env").write_text("TAG=1.36\nWHO=dotenv\nPORT=8080\n")
    stack = load(path, environ={"WHO": "shell"}).stack
    assert stack["web"].image == Image.from_("busybox:1.36")
    assert dict(stack["web"].env) == {"GREETING": "hello $NAME shell", "PORT": "8080"}
    assert stack["web"].ports[0].host_port == 8080


def test_required_variable_error_names_the_line(tmp_path: Path) -> None:
    message = error(
        tmp_path, "services:\n  web:\n    image: busybox\n    user: ${UID:?set UID first}\n"
    )
    assert "compose.yaml:4: services.web.user: required variable UID is missing a value" in message
    assert "set UID first" in message


def test_unset_variable_is_a_warning(tmp_path: Path) -> None:
    project = loaded(tmp_path, "services:\n  web:\n    image: busybox\n    user: x$NOPE\n")
    assert project.stack["web"].user == "x"
    assert project.warnings == (
        'compose.yaml:4: services.web.user: the "NOPE" variable is not set, '
        "defaulting to a blank string",
    )


def test_invalid_template(tmp_path: Path) -> None:
    message = error(tmp_path, "services:\n  web:\n    image: busybox\n    user: ${ X}\n")
    assert "compose.yaml:4: services.web.user: Invalid template" in message


def test_environment_list_map_and_env_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        services:
          a:
            image: busybox
            env_file: [base.env, {path: missing.env, required: false}]
            environment:
              - A=1
              - FROM_SHELL
              - NOT_SET
              - EMPTY=
          b:
            image: busybox
            env_file: base.env
            environment:
              B: 2
              ON: true
              NOTHING:
        """,
    )
    (path.parent / "base.env").write_text("A=file\nFILE_ONLY='x y'\n# comment\n")
    stack = load(path, environ={"FROM_SHELL": "s"}).stack
    assert dict(stack["a"].env) == {"A": "1", "FROM_SHELL": "s", "EMPTY": "", "FILE_ONLY": "x y"}
    assert dict(stack["b"].env) == {"A": "file", "FILE_ONLY": "x y", "B": "2", "ON": "true"}


def test_missing_env_file(tmp_path: Path) -> None:
    message = error(tmp_path, "services:\n  a:\n    image: busybox\n    env_file: nope.env\n")
    assert "compose.yaml:4: services.a.env_file: env file" in message
    assert "nope.env not found" in message


def test_command_and_entrypoint_forms(tmp_path: Path) -> None:
    stack = loaded(
        tmp_path,
        """\
        services:
          a:
            image: busybox
            command: sh -c 'echo "hi there"'
            entrypoint: ["/bin/tini", "--"]
          b:
            image: busybox
            command: ["echo", 1, true]
            entrypoint: ""
        """,
    ).stack
    assert stack["a"].command == ("sh", "-c", 'echo "hi there"')
    assert stack["a"].entrypoint == ("/bin/tini", "--")
    assert stack["b"].command == ("echo", "1", "true")
    assert stack["b"].entrypoint == ()


def test_depends_on_forms_and_conditions(tmp_path: Path) -> None:
    stack = loaded(
        tmp_path,
        """\
        services:
          web:
            image: busybox
            depends_on:
              db: {condition: service_healthy}
              cache: {condition: service_started, restart: false}
              init: {condition: service_completed_successfully}
              optional: {condition: service_started, required: false}
          worker:
            image: busybox
            depends_on: [db]
          db:
            image: busybox
            healthcheck: {test: "true"}
          cache: {image: busybox}
          init: {image: busybox}
        """,
    ).stack
    assert dict(stack["web"].depends_on) == {
        "db": "healthy",
        "cache": "started",
        "init": "completed",
    }
    assert dict(stack["worker"].depends_on) == {"db": "started"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("depends_on: [nope]", "compose.yaml:4: services.a.depends_on: depends on undefined"),
        (
            "depends_on: {b: {condition: service_ready}}",
            "compose.yaml:4: services.a.depends_on.b.condition: unknown condition",
        ),
    ],
)
def test_depends_on_errors(tmp_path: Path, body: str, message: str) -> None:
    text = f"services:\n  a:\n    image: busybox\n    {body}\n  b:\n    image: busybox\n"
    assert message in error(tmp_path, text)


def test_depends_on_cycle(tmp_path: Path) -> None:
    text = """\
    services:
      a: {image: busybox, depends_on: [b]}
      b: {image: busybox, depends_on: [a]}
    """
    assert "cycle" in error(tmp_path, text)


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ('test: "pg_isready -q"', Healthcheck("pg_isready -q")),
        ("test: [CMD, pg_isready, -q]", Healthcheck(["pg_isready", "-q"])),
        ('test: [CMD-SHELL, "exit 0"]', Healthcheck("exit 0")),
        ("test: [NONE]", Healthcheck(["NONE"])),
        ("disable: true", Healthcheck(["NONE"])),
        (
            "{test: 'true', interval: 1m30s, timeout: 500ms, retries: 5, start_period: 1h}",
            Healthcheck("true", interval=90, timeout=0.5, retries=5, start_period=3600),
        ),
    ],
)
def test_healthcheck_forms(tmp_path: Path, check: str, expected: Healthcheck) -> None:
    text = f"services:\n  a:\n    image: busybox\n    healthcheck:\n      {check}\n"
    if check.startswith("{"):
        text = f"services:\n  a:\n    image: busybox\n    healthcheck: {check}\n"
    assert loaded(tmp_path, text).stack["a"].healthcheck == expected


def test_healthcheck_errors(tmp_path: Path) -> None:
    base = "services:\n  a:\n    image: busybox\n    healthcheck:\n"
    message = error(tmp_path, base + "      test: 'true'\n      interval: 30\n")
    assert "compose.yaml:6: services.a.healthcheck.interval: invalid duration 30" in message
    assert "needs the test" in error(tmp_path, base + "      interval: 5s\n")


def test_restart_no_is_a_string_in_yaml_1_2(tmp_path: Path) -> None:
    text = "services:\n  a:\n    image: busybox\n    restart: no\n  b:\n    image: busybox\n"
    text += "    restart: on-failure:3\n"
    stack = loaded(tmp_path, text).stack
    assert stack["a"].restart == "no"
    assert stack["b"].restart == "on-failure:3"


def test_ports_short_and_long_syntax(tmp_path: Path) -> None:
    stack = loaded(
        tmp_path,
        """\
        services:
          a:
            image: busybox
            ports:
              - 80
              - 8000:5000
              - "0.0.0.0:9000:9000/udp"
              - {target: 443, published: 8443, host_ip: "::1"}
        """,
    ).stack
    assert [str(p) for p in stack["a"].ports] == [
        "127.0.0.1:0:80/tcp",
        "127.0.0.1:8000:5000/tcp",
        "[::1]:8443:443/tcp",
        "0.0.0.0:9000:9000/udp",
    ]


def test_volumes_named_bind_tmpfs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        services:
          a:
            image: busybox
            volumes:
              - data:/data
              - ./conf:/etc/conf:ro
              - type: tmpfs
                target: /cache
                tmpfs: {size: 1m}
            tmpfs: /run
        volumes:
          data:
            driver_opts: {size: 10g}
        """,
    )
    stack = load(path, environ={}).stack
    mounts = {m.target: m for m in stack["a"].volumes}
    assert mounts["/data"].source == Volume("data", options={"size": "10g"})
    assert mounts["/etc/conf"].source == str(path.parent / "conf")
    assert mounts["/etc/conf"].read_only
    assert stack["a"].tmpfs == ("/cache:size=1m", "/run")
    assert stack.volumes == (Volume("data", options={"size": "10g"}),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("volumes: [other:/x]", "compose.yaml:4: services.a.volumes: refers to undefined volume"),
        ("volumes: [/anon/../..]", "cannot mount over the container's root"),
        ("volumes: [data:relative]", "must be an absolute path"),
    ],
)
def test_volume_errors(tmp_path: Path, body: str, message: str) -> None:
    text = f"services:\n  a:\n    image: busybox\n    {body}\nvolumes:\n  data:\n"
    assert message in error(tmp_path, text)


def test_anonymous_volumes_are_volumes_of_their_service_and_path(tmp_path: Path) -> None:
    """compose's ``- /path`` and ``{type: volume, target: /path}``: an anonymous volume
    named after the service and the path (the same each load), written back without a
    name and without a top-level entry, as ``docker compose config`` writes it."""
    text = """\
        services:
          web:
            image: busybox
            volumes:
              [./app:/app, /app/node_modules, {type: volume, target: /cache, read_only: true}]
          worker:
            image: busybox
            volumes: [/app/node_modules]
        """
    project = loaded(tmp_path, text)
    mounts = {m.target: m for m in project.stack["web"].volumes}
    modules, cache = mounts["/app/node_modules"].source, mounts["/cache"].source
    assert isinstance(modules, Volume) and isinstance(cache, Volume)
    assert modules.anonymous and cache.anonymous and mounts["/cache"].read_only
    assert modules.name.startswith("web-anon-") and modules != cache
    other = project.stack["worker"].volumes[0].source
    assert other != modules, "two services share an anonymous volume"
    assert loaded(tmp_path, text).stack == project.stack
    form = to_compose(project)
    assert "volumes" not in form
    written = {m["target"]: m for m in form["services"]["web"]["volumes"]}
    assert written["/app/node_modules"] == {
        "type": "volume",
        "target": "/app/node_modules",
        "volume": {},
    }
    assert written["/cache"]["read_only"] is True and "source" not in written["/cache"]


def test_a_python_anonymous_volume_of_another_name_keeps_its_name() -> None:
    from envkit.compose import stack_to_compose
    from envkit.spec import Service

    mine = Volume("mine", anonymous=True)
    stack = Stack("demo", services=[Service("web", image="busybox", volumes={mine: "/d"})])
    form = stack_to_compose(stack)
    assert form["services"]["web"]["volumes"][0]["source"] == "mine"
    assert form["volumes"] == {"mine": {"name": "demo_mine"}}


def test_stop_grace_period_is_the_services_grace(tmp_path: Path) -> None:
    project = loaded(
        tmp_path, "services:\n  db:\n    image: busybox\n    stop_grace_period: 1m30s\n"
    )
    assert project.stack["db"].stop_grace_period == 90
    assert to_compose(project)["services"]["db"]["stop_grace_period"] == "1m30s"
    bad = "services:\n  db:\n    image: busybox\n    stop_grace_period: soon\n"
    assert "compose.yaml:4: services.db.stop_grace_period: invalid duration" in error(tmp_path, bad)


def test_shm_size_and_tmpfs_options_reach_the_service(tmp_path: Path) -> None:
    """compose's ``shm_size: 1gb`` (bytes in its normalised form) and a tmpfs with
    docker's size and mode options; a read-only tmpfs is refused (the runtime's tmpfs is
    writable), naming the line."""
    text = (
        "services:\n  db:\n    image: busybox\n    shm_size: 1gb\n"
        "    tmpfs: ['/run:size=1m,mode=1770']\n"
    )
    project = loaded(tmp_path, text)
    assert project.stack["db"].shm_size == 1 << 30
    assert project.stack["db"].tmpfs == ("/run:size=1m,mode=1770",)
    assert to_compose(project)["services"]["db"]["shm_size"] == str(1 << 30)
    ro = (
        "services:\n  db:\n    image: busybox\n    volumes:\n"
        "      - {type: tmpfs, target: /x, read_only: true}\n"
    )
    assert "compose.yaml:4: services.db.tmpfs:" in error(tmp_path, ro)
    assert "unsupported tmpfs option 'ro'" in error(tmp_path, ro)


@pytest.mark.parametrize(
    ("options", "seccomp", "warned"),
    [
        ("['no-new-privileges:true']", True, False),  # always set by envkit
        ("[no-new-privileges]", True, False),
        ("['seccomp:unconfined']", False, False),
        ("['seccomp=unconfined', 'apparmor:unconfined', 'label=disable']", False, True),
        ("['no-new-privileges=false']", True, True),
    ],
)
def test_security_opt_as_docker_takes_it(
    tmp_path: Path, options: str, seccomp: bool, warned: bool
) -> None:
    project = loaded(
        tmp_path, f"services:\n  a:\n    image: busybox\n    security_opt: {options}\n"
    )
    assert project.stack["a"].seccomp is seccomp
    assert bool(project.warnings) is warned, project.warnings
    again = to_compose(project)["services"]["a"]
    assert ("security_opt" in again) is not seccomp


def test_a_security_opt_envkit_cannot_honour_is_refused(tmp_path: Path) -> None:
    text = "services:\n  a:\n    image: busybox\n    security_opt: ['seccomp=/x.json']\n"
    assert "services.a.security_opt[0]: 'seccomp=/x.json' is not supported" in error(tmp_path, text)


def test_ulimits_as_compose_writes_them(tmp_path: Path) -> None:
    text = (
        "services:\n  db:\n    image: busybox\n    ulimits:\n      nproc: 65535\n"
        "      nofile: {soft: 20000, hard: 40000}\n"
    )
    project = loaded(tmp_path, text)
    assert project.stack["db"].ulimits == (("nofile", 20000, 40000), ("nproc", 65535, 65535))
    assert to_compose(project)["services"]["db"]["ulimits"] == {
        "nofile": {"soft": 20000, "hard": 40000},
        "nproc": 65535,
    }
    bad = "services:\n  db:\n    image: busybox\n    ulimits: {nofiles: 1}\n"
    assert "compose.yaml:4: services.db.ulimits:" in error(tmp_path, bad)


def test_links_are_dependencies_and_their_aliases_names_of_the_target(tmp_path: Path) -> None:
    """compose's legacy ``links``: ``db`` and ``cache:redis`` make web depend on both
    (started, as a link implies) and make ``redis`` a name of cache; a declared
    ``depends_on`` condition wins."""
    text = """\
        services:
          web:
            image: busybox
            links: [db, "cache:redis"]
            depends_on: {db: {condition: service_healthy}}
          db:
            image: busybox
            healthcheck: {test: [CMD, "true"]}
          cache:
            image: busybox
        """
    stack = loaded(tmp_path, text).stack
    assert dict(stack["web"].depends_on) == {"db": "healthy", "cache": "started"}
    assert stack["cache"].aliases == ("redis",)
    assert stack["db"].aliases == ()
    bad = "services:\n  web:\n    image: busybox\n    links: [nothere]\n"
    assert "services.web.links[0]: links to 'nothere'" in error(tmp_path, bad)


def test_extra_hosts_as_compose_writes_them(tmp_path: Path) -> None:
    text = (
        "services:\n  a:\n    image: busybox\n    extra_hosts:\n"
        "      - somehost:162.242.195.82\n      - host.docker.internal:host-gateway\n"
    )
    project = loaded(tmp_path, text)
    assert project.stack["a"].extra_hosts == (
        ("host.docker.internal", "host-gateway"),
        ("somehost", "162.242.195.82"),
    )
    assert to_compose(project)["services"]["a"]["extra_hosts"] == [
        "host.docker.internal=host-gateway",
        "somehost=162.242.195.82",
    ]
    bad = "services:\n  a:\n    image: busybox\n    extra_hosts: [db:nowhere]\n"
    assert "compose.yaml:4: services.a.extra_hosts:" in error(tmp_path, bad)


def test_external_volume_is_refused(tmp_path: Path) -> None:
    text = "services:\n  a:\n    image: busybox\nvolumes:\n  data:\n    external: true\n"
    assert "compose.yaml:6: volumes.data.external: external volumes" in error(tmp_path, text)


def test_networks_and_aliases(tmp_path: Path) -> None:
    stack = loaded(
        tmp_path,
        """\
        services:
          a:
            image: busybox
            networks:
              front:
              back:
                aliases: [api, api.internal]
          b:
            image: busybox
            networks: [back]
          c:
            image: busybox
        networks:
          front: {}
          back:
            internal: true
            ipam:
              config:
                - subnet: 10.89.7.0/24
        """,
    ).stack
    back = Network("back", internal=True, subnet="10.89.7.0/24")
    assert stack["a"].networks == (back, Network("front"))
    assert stack["a"].aliases == ("api", "api.internal")
    assert stack["b"].networks == (back,)
    assert stack.service_networks("c") == (Network("default"),)
    assert [n.name for n in stack.networks] == ["back", "default", "front"]


def test_network_errors(tmp_path: Path) -> None:
    base = "services:\n  a:\n    image: busybox\n"
    assert "refers to undefined network nope" in error(tmp_path, base + "    networks: [nope]\n")
    message = error(tmp_path, base + "    network_mode: service:b\n")
    assert "compose.yaml:4: services.a.network_mode: 'service:b' is not supported" in message
    both = base + "    network_mode: host\n    ports: ['80:80']\n"
    assert "cannot be combined with networks, ports" in error(tmp_path, both)
    message = error(tmp_path, base + "networks:\n  n:\n    driver: overlay\n")
    assert "compose.yaml:6: networks.n.driver: network driver 'overlay'" in message


def test_network_mode_host_and_none_take_no_network(tmp_path: Path) -> None:
    """plex's ``network_mode: host``; ``none`` for a job with no network; ``bridge`` is
    the stack's default network (with a warning)."""
    project = loaded(
        tmp_path,
        """\
        services:
          media: {image: busybox, network_mode: host}
          job: {image: busybox, network_mode: none}
          web: {image: busybox, network_mode: bridge}
        """,
    )
    stack = project.stack
    assert (stack["media"].network_mode, stack["job"].network_mode) == ("host", "none")
    assert stack.service_networks("media") == () and stack.service_networks("job") == ()
    assert stack["web"].network_mode is None
    assert [n.name for n in stack.networks] == ["default"]
    assert any("network_mode: bridge" in str(w) for w in project.warnings)
    form = to_compose(project)["services"]
    assert form["media"]["network_mode"] == "host" and "networks" not in form["media"]


def test_secrets_file_environment_short_long(tmp_path: Path) -> None:
    project = loaded(
        tmp_path,
        """\
        services:
          a:
            image: busybox
            secrets:
              - db_password
              - source: token
                target: api_token
              - source: db_password
                target: /run/secrets/pw
        secrets:
          db_password:
            file: ./secrets/db.txt
          token:
            environment: API_TOKEN
        """,
    )
    base = tmp_path / "app"
    assert project.stack["a"].secrets == (
        Secret("api_token", "env:API_TOKEN"),
        Secret("db_password", f"file:{base}/secrets/db.txt"),
        Secret("pw", f"file:{base}/secrets/db.txt"),
    )
    assert project.secret_keys == {
        "api_token": "token",
        "db_password": "db_password",
        "pw": "db_password",
    }


def test_secret_errors(tmp_path: Path) -> None:
    base = "services:\n  a:\n    image: busybox\n    secrets: [s]\nsecrets:\n  s:\n"
    assert "external secrets are not supported" in error(tmp_path, base + "    external: true\n")
    assert "needs file: or environment:" in error(tmp_path, base + "    x-note: 1\n")
    text = "services:\n  a:\n    image: busybox\n    secrets: [nope]\n"
    assert "compose.yaml:4: services.a.secrets[0]: refers to undefined secret nope" in error(
        tmp_path, text
    )
    text = base.replace("[s]", "[{source: s, target: /etc/s}]") + "    file: s.txt\n"
    assert "can only be mounted in /run/secrets" in error(tmp_path, text)


def test_user_workdir_init_and_limits(tmp_path: Path) -> None:
    service = loaded(
        tmp_path,
        """\
        services:
          a:
            image: busybox
            user: "1000:1000"
            working_dir: /srv
            init: true
            hostname: box
            read_only: true
            cap_add: [NET_ADMIN]
            labels: [team=web]
            deploy:
              resources:
                limits: {memory: 256m, cpus: "0.5", pids: 100}
        """,
    ).stack["a"]
    assert (service.user, service.workdir, service.init) == ("1000:1000", "/srv", True)
    assert (service.hostname, service.read_only, service.cap_add) == (
        "box",
        True,
        ("CAP_NET_ADMIN",),
    )
    assert dict(service.labels) == {
        "team": "web",
        "com.docker.compose.project": "app",
        "com.docker.compose.service": "a",
    }
    assert (service.memory, service.cpus, service.pids_limit) == (256 << 20, 0.5, 100)


PROFILES = """\
services:
  web:
    image: busybox
  debug:
    image: busybox
    profiles: [debug]
  all:
    image: busybox
    profiles: [debug, tools]
"""


def test_profiles(tmp_path: Path) -> None:
    assert [s.name for s in loaded(tmp_path, PROFILES).stack.services] == ["web"]
    env = {"COMPOSE_PROFILES": "tools"}
    assert [s.name for s in loaded(tmp_path, PROFILES, environ=env).stack.services] == [
        "all",
        "web",
    ]
    chosen = loaded(tmp_path, PROFILES, profiles=["debug"]).stack
    assert [s.name for s in chosen.services] == ["all", "debug", "web"]
    every = loaded(tmp_path, PROFILES, environ={"COMPOSE_PROFILES": "*"}).stack
    assert len(every.services) == 3


def test_dependency_on_an_inactive_profile(tmp_path: Path) -> None:
    text = PROFILES.replace(
        "  web:\n    image: busybox\n", "  web:\n    image: busybox\n    depends_on: [debug]\n"
    )
    assert "not in an active profile" in error(tmp_path, text)


def test_build_context_and_dockerfile(tmp_path: Path) -> None:
    project = loaded(
        tmp_path,
        """\
        services:
          a:
            build: ./web
          b:
            image: team/b:dev
            build:
              context: .
              dockerfile: docker/Dockerfile.prod
        """,
    )
    base = tmp_path / "app"
    assert project.stack["a"].image.base == Dockerfile(f"{base}/web/Dockerfile", f"{base}/web")
    assert project.stack["b"].image.base == Dockerfile(f"{base}/docker/Dockerfile.prod", str(base))
    assert project.images == {"b": "team/b:dev"}


def test_build_args_and_target_import_the_dockerfile(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        services:
          a:
            build:
              context: .
              target: app
              args:
                VERSION: "2"
                FROM_ENV:
        """,
    )
    (path.parent / "Dockerfile").write_text(
        'FROM busybox AS base\nARG VERSION=1\nRUN echo $VERSION\nFROM base AS app\nCMD ["true"]\n'
        "FROM base AS other\n"
    )
    image = load(path, environ={}).stack["a"].image
    # FROM_ENV has no value and none in the environment: left out, as compose does
    assert image.base == Dockerfile(
        f"{path.parent}/Dockerfile", str(path.parent), (("VERSION", "2"),), "app"
    )
    expanded = expand(image)
    assert expanded.base == FromRef("docker.io/library/busybox:latest")
    steps = [step.canonical() for step in expanded.steps]
    assert steps[0]["argv"] == ["/bin/sh", "-c", "echo $VERSION"]
    assert steps[0]["env"] == {"VERSION": "2"}
    assert steps[-1] == {"op": "cmd", "argv": ["true"]}


def test_build_args_and_target_with_a_context_of_its_own(tmp_path: Path) -> None:
    """awesome-compose's shape: ``context: app`` beside ``target:`` (a Dockerfile in a
    subdirectory); its COPY reads that subdirectory."""
    text = (
        "services:\n  a:\n    build:\n      context: web\n      target: builder\n"
        "      args: [A=1]\n"
    )
    path = write(tmp_path, text)
    web = path.parent / "web"
    web.mkdir()
    (web / "Dockerfile").write_text(
        "FROM busybox AS builder\nARG A=0\nCOPY . /src\nRUN echo $A\nFROM builder AS dev\n"
    )
    image = load(path, environ={}).stack["a"].image
    assert image.base == Dockerfile(f"{web}/Dockerfile", str(web), (("A", "1"),), "builder")
    steps = [step.canonical() for step in expand(image).steps]
    assert [s["op"] for s in steps] == ["copy", "run"]
    assert steps[1]["env"] == {"A": "1"}


def test_unsupported_and_ignored_keys(tmp_path: Path) -> None:
    project = loaded(
        tmp_path,
        """\
        version: "3.9"
        x-common: &common
          image: busybox
        services:
          a:
            <<: *common
            container_name: my-a
            x-note: anything
        """,
    )
    assert project.warnings == (
        "compose.yaml:1: version: the attribute is obsolete; ignored (as compose does)",
        "compose.yaml:7: services.a.container_name: ignored: envkit names containers after "
        "the stack and service",
    )
    message = error(tmp_path, "services:\n  a:\n    image: busybox\n    privileged: true\n")
    assert message.startswith("compose.yaml:4: services.a.privileged: not supported by envkit")
    message = error(tmp_path, "services:\n  a:\n    image: busybox\n    imagee: x\n")
    assert "compose.yaml:4: services.a.imagee: unknown key (not in the compose spec)" in message
    assert "did you mean 'image'?" in message
    message = error(tmp_path, "include: [other.yaml]\nservices:\n  a:\n    image: busybox\n")
    assert "compose.yaml:1: include: not supported by envkit" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("services:\n  a:\n    image: busybox\n  a:\n    image: x\n", "compose.yaml:4: key 'a'"),
        ("services:\n  a: [\n", "not valid YAML"),
        ("", "empty compose file"),
        ("- a\n", "expected a mapping at the top level"),
        ("services:\n  a:\n    command: x\n", "has neither image nor build"),
        ("services: {}\n", "no services"),
    ],
)
def test_file_errors(tmp_path: Path, text: str, message: str) -> None:
    assert message in error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StackFileError, match="no such compose file"):
        load(tmp_path / "compose.yaml")


def test_find_compose_file_order_and_parents(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_compose_file(deep) == tmp_path / "docker-compose.yml"
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    assert find_compose_file(tmp_path) == tmp_path / "compose.yaml"
    (deep / "compose.yml").write_text("services: {}\n")
    assert find_compose_file(deep) == deep / "compose.yml"


def test_stack_from_compose_warns_through_python_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  a:\n    image: busybox\n    tty: true\n")
    with pytest.warns(ComposeWarning, match="services.a.tty: ignored"):
        stack = Stack.from_compose(path, environ={})
    assert stack.name == "app" and stack.base_dir == path.parent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Stack.from_compose(write(tmp_path, "services:\n  a:\n    image: busybox\n"), environ={})


ROUND_TRIP = """\
name: shop
services:
  web:
    build: .
    command: python app.py
    environment: {DATABASE_URL: "postgresql://db/app", PRICE: "$$5"}
    ports: ["8000:5000"]
    depends_on: {db: {condition: service_healthy}}
    restart: unless-stopped
    secrets: [db_password]
    networks:
      default:
      back: {aliases: [www]}
  db:
    image: postgres:15
    volumes: [db-data:/var/lib/postgresql/data, ./init:/docker-entrypoint-initdb.d:ro, /scratch]
    healthcheck: {test: [CMD, pg_isready], interval: 2s, retries: 30}
    tmpfs: [/run]
    networks: [back]
volumes:
  db-data: {}
networks:
  back: {internal: true}
secrets:
  db_password: {file: ./db_password.txt}
"""


def test_normalised_form_loads_back_to_an_equal_stack(tmp_path: Path) -> None:
    import yaml

    first = loaded(tmp_path, ROUND_TRIP)
    form = to_compose(first)
    again = write(tmp_path, yaml.safe_dump(form), folder="again")
    second = load(again, environ={})
    assert second.stack == first.stack
    assert second.warnings == ()
    assert to_compose(second) == form


def test_normalised_form_of_a_python_stack() -> None:
    from envkit.compose import stack_to_compose
    from envkit.spec import Service

    stack = Stack("demo", services=[Service("web", image="busybox", ports={8000: 80})])
    form = stack_to_compose(stack)
    assert form["services"]["web"]["image"] == "docker.io/library/busybox:latest"
    assert form["services"]["web"]["ports"][0]["published"] == "8000"
    assert form["networks"] == {"default": {"name": "demo_default"}}


def test_dotenv_is_for_interpolation_only(tmp_path: Path) -> None:
    """compose reads .env to interpolate the file; its variables reach no container
    (a stack.py's .env does reach them: envkit.stack.environment)."""
    from envkit.stack.environment import service_env

    path = write(tmp_path, "services:\n  a:\n    image: busybox\n    environment: [X=$X]\n")
    (path.parent / ".env").write_text("X=1\nPASSWORD=not-for-containers\n")
    stack = load(path, environ={}).stack
    assert service_env(stack, "a") == {"X": "1"}


def test_secret_from_a_variable_only_dotenv_sets_is_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "services:\n  a:\n    image: busybox\n    secrets: [t]\n"
        "secrets:\n  t:\n    environment: TOKEN\n",
    )
    (path.parent / ".env").write_text("TOKEN=abc\n")
    assert load(path, environ={"TOKEN": "x"}).warnings == ()
    (warning,) = load(path, environ={}).warnings
    assert warning.endswith(
        "compose.yaml:7: secrets.t.environment: TOKEN is set in .env only: "
        "envkit reads the secret from its own environment when a container starts; export it"
    )


def test_a_service_runs_the_image_another_builds(tmp_path: Path) -> None:
    project = loaded(
        tmp_path,
        """\
        services:
          worker:
            image: shop/app:dev
            command: python worker.py
          web:
            image: shop/app:dev
            build: .
        """,
    )
    base = tmp_path / "app"
    assert project.stack["worker"].image == project.stack["web"].image
    assert project.stack["worker"].image.base == Dockerfile(f"{base}/Dockerfile", str(base))
    form = to_compose(project)
    assert form["services"]["worker"]["image"] == "shop/app:dev"
    assert "build" not in form["services"]["worker"]
