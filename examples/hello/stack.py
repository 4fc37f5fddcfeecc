"""A small stack: a static web site served by busybox httpd, and a worker that waits for it.

envkit config examples/hello/stack.py            # what envkit understood (YAML)
envkit config examples/hello/stack.py --format json
"""

from envkit import Healthcheck, Image, Network, Secret, Service, Stack, Volume

# One base image, two images built on it: builder methods return new Images.
base = Image.from_("busybox").workdir("/srv")

site = (
    base.copy("site/", "/srv/www", chmod=0o755)
    .env(PORT="8080")
    .expose(8080)
    .cmd(["httpd", "-f", "-v", "-p", "8080", "-h", "/srv/www"])
    .label(example="hello")
)
poller = base.cmd("while true; do wget -q -O- http://web:8080/ && sleep 5; done")

logs = Volume("hello-logs")
backend = Network("backend", subnet="10.89.7.0/24")
api_token = Secret.from_env("HELLO_TOKEN", required=False)  # read only when a container starts

web = Service(
    "web",
    init=True,  # httpd ignores SIGTERM as pid 1: an init passes it on (as in docker)
    image=site,
    ports={8080: 8080},  # host 127.0.0.1:8080 -> container 8080
    volumes={logs: "/var/log/httpd"},
    healthcheck=Healthcheck(
        ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], interval=1, retries=30
    ),
    restart="unless-stopped",
    networks=[backend],
)
worker = Service(
    "worker",
    init=True,
    image=poller,
    depends_on={web: "healthy"},
    secrets=[api_token],  # at /run/secrets/HELLO_TOKEN
    networks=[backend],
    memory="64m",
)

stack = Stack("hello", services=[web, worker])
