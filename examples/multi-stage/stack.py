"""A multi-stage build: a builder stage renders a site, the final image carries only
the built artifact (the site and one static busybox to serve it).

    envkit up -d            # from this directory
    envkit stack port web 8080
    envkit down
"""

from envkit import Image, Ready, Service, Stack

# Stage 1: everything needed to build (sources, a shell, the build script).
builder = Image.from_("busybox:1").copy("src/", "/src/").run("sh /src/build.sh")

# Stage 2: from scratch, only what the builder produced.
site = (
    Image.scratch()
    .copy("/out/busybox", "/bin/busybox", from_=builder)
    .copy("/out/www/", "/www/", from_=builder)
    .expose(8080)
    .cmd(["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"])
)

web = Service("web", image=site, ports={0: 8080}, ready=Ready.http("/", 8080), init=True)
stack = Stack("multistage", services=[web])
