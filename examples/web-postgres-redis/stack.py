"""A Python web app with PostgreSQL and Redis, every image built by envkit from Debian
packages. The app reaches ``db`` and ``redis`` by service name, the visits it records
survive ``down`` and ``up`` in the named volume ``pgdata``, and the database password
comes from the secret file ``db_password.txt`` (never from a layer or the environment).

    envkit up -d                 # from this directory; first build ~1-2 min, then cached
    curl http://127.0.0.1:$(envkit stack port web 8000 | cut -d: -f2)/
    envkit down                  # `down -v` also removes the database volume
"""

from envkit import Healthcheck, Image, Ready, Secret, Service, Stack, Volume

db_password = Secret.from_file("db_password.txt", name="db_password")
pgdata = Volume("pgdata")

PG_BIN = "/usr/lib/postgresql/15/bin"
postgres = Service(
    "db",
    image=Image.debian("bookworm", packages=["postgresql-15"]),
    user="postgres",
    command=[
        "sh",
        "-c",
        # First start: an empty data dir, initialised with the app's user and password.
        f"[ -s /data/PG_VERSION ] || {PG_BIN}/initdb -D /data -U app "
        "--pwfile=/run/secrets/db_password --auth-local=trust --auth-host=scram-sha-256 "
        "&& echo 'host all all 0.0.0.0/0 scram-sha-256' >> /data/pg_hba.conf; "
        f"exec {PG_BIN}/postgres -D /data -c listen_addresses='*' "
        "-c unix_socket_directories=/tmp",
    ],
    volumes={pgdata: "/data"},
    secrets=[db_password],
    healthcheck=Healthcheck(
        [f"{PG_BIN}/pg_isready", "-h", "127.0.0.1", "-U", "app", "-d", "postgres"],
        interval=0.3,
        retries=100,
    ),
)

redis = Service(
    "redis",
    image=Image.debian("bookworm", packages=["redis-server"]),
    user="redis",
    command=["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"],
    ready=Ready.tcp(6379),
)

app_image = (
    Image.debian("bookworm", packages=["python3", "python3-psycopg2", "python3-redis"])
    .copy("app.py", "/app/app.py")
    .env(PYTHONUNBUFFERED="1")
    .expose(8000)
    .cmd(["python3", "/app/app.py"])
)

web = Service(
    "web",
    init=True,  # python ignores SIGTERM as pid 1: an init passes it on (as in docker)
    image=app_image,
    env={"DB_HOST": "db", "DB_USER": "app", "DB_NAME": "postgres", "REDIS_HOST": "redis"},
    secrets=[db_password],
    ports={0: 8000},
    depends_on={postgres: "healthy", redis: "healthy"},
    ready=Ready.http("/health", 8000),
    restart="on-failure:3",
)

stack = Stack("shop", services=[web, postgres, redis])
