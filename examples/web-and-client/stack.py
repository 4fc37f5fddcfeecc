"""A busybox web server and a client that fetches from it by service name.

The web server becomes healthy once it wrote its page; the client starts only then,
fetches the page through the stack's network, reads a runtime secret and counts its
runs in a named volume. Run it with ``envkit up`` from this directory (see README.md).
"""

from envkit import Healthcheck, Secret, Service, Stack, Volume

runs = Volume("runs")
token = Secret.from_env("DEMO_TOKEN", required=False)

web = Service(
    "web",
    init=True,  # httpd and sh ignore SIGTERM as pid 1: an init passes it on (as in docker)
    image="busybox:1",
    command=[
        "sh",
        "-c",
        "mkdir -p /www && echo hello from web > /www/index.html && "
        "touch /tmp/ready && exec busybox httpd -f -p 8080 -h /www",
    ],
    ports={0: 8080},  # a free host port on 127.0.0.1; `envkit stack ps` shows it
    healthcheck=Healthcheck(["test", "-f", "/tmp/ready"], interval=0.2, retries=50),
    restart="unless-stopped",
)
client = Service(
    "client",
    init=True,
    image="busybox:1",
    command=[
        "sh",
        "-c",
        "busybox timeout 3 wget -q -O - http://web:8080/ && "
        "echo token has $(wc -c < /run/secrets/DEMO_TOKEN) bytes && "
        "echo run >> /data/runs && echo runs so far: $(wc -l < /data/runs) && "
        "exec sleep 3600",
    ],
    depends_on={web: "healthy"},
    volumes={runs: "/data"},
    secrets=[token],
    restart="on-failure:3",
)

stack = Stack("webdemo", services=[web, client])
