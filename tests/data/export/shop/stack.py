"""The stack the export tests use: every feature the Kubernetes and compose exports map
(and some they cannot, which must be named in warnings). Images are pinned by digest so
that no registry or store is needed; the digests are made up."""

from envkit import Healthcheck, Network, Secret, Service, Stack, Volume
from envkit.spec.readiness import Ready

D = "sha256:" + "a" * 64
db_data = Volume("db-data")
shared = Volume("uploads")
db_pass = Secret.from_file("./db_password.txt")
token = Secret.from_env("API_TOKEN")
back = Network("back")

db = Service(
    "db",
    image=f"postgres@{D}",
    volumes={db_data: "/var/lib/postgresql/data"},
    secrets=[db_pass],
    env={"POSTGRES_PASSWORD_FILE": "/run/secrets/db_password.txt"},
    healthcheck=Healthcheck(["pg_isready", "-h", "127.0.0.1"], interval=0.5, retries=60),
    ports=["5432"],
    user="999:999",
    memory="512m",
    cpus=0.5,
    aliases=["database"],
    networks=[back],
)
cache = Service(
    "cache",
    image=f"redis@{D}",
    command=["redis-server", "--save", ""],
    ready=Ready.tcp(6379),
    ports=["127.0.0.1:6379:6379"],
    networks=[back],
)
web = Service(
    "web",
    image=f"registry.example.org/team/web@{D}",
    env={"DATABASE_URL": "postgresql://db:5432/app", "PRICE": "$5"},
    ports={8000: 5000, "0.0.0.0:5353": "53/udp"},
    depends_on={db: "healthy", cache: "started"},
    restart="unless-stopped",
    secrets=[token],
    entrypoint=["python"],
    command=["app.py", "--port", "5000"],
    workdir="/app",
    healthcheck=Healthcheck("wget -q -O- http://127.0.0.1:5000/ || exit 1", start_period=5),
    volumes={"./conf": "/etc/app:ro", shared: "/uploads"},
    tmpfs=["/tmp:size=64m"],
    read_only=True,
    cap_add=["NET_BIND_SERVICE"],
    cap_drop=["ALL"],
    labels={"com.example.team": "shop"},
    networks=[back],
)
worker = Service(
    "worker_1",
    image=f"registry.example.org/team/worker@{D}",
    volumes={shared: "/uploads"},
    restart="on-failure:3",
    init=True,
    user="app",
    depends_on={web: "healthy"},
)

stack = Stack("shop", services=[web, db, cache, worker])
