"""The environment-override example: one image, its environment chosen at run time.

envkit build stack.py:app -t envdemo:latest       (see README.md)
envkit run --rm envdemo:latest                    # APP_ENV=Production
envkit run --rm -e APP_ENV=Staging envdemo:latest # APP_ENV=Staging
"""

from envkit import Image, Service, Stack

app = (
    Image.from_("busybox:1")
    .env(APP_ENV="Production", GREETING="hello")
    .cmd(["sh", "-c", 'echo "APP_ENV=$APP_ENV GREETING=$GREETING LEVEL=$LEVEL"'])
)

# In a stack: the image's ENV < .env beside this file < env_file= < env=.
service = Service("app", image=app, env_file="staging.env", env={"LEVEL": "debug"})
stack = Stack("envdemo", services=[service])
