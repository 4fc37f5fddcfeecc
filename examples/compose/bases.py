"""The local base images compose.yaml starts from, built from Debian packages by envkit
(no registry needed):

    envkit build bases.py:python -t shop/python:bookworm
    envkit build bases.py:postgres -t shop/postgres:15
    envkit build bases.py:redis -t shop/redis:7
"""

from envkit import Image

python = Image.debian("bookworm", packages=["python3", "python3-psycopg2", "python3-redis"])
postgres = Image.debian("bookworm", packages=["postgresql-15"])
redis = Image.debian("bookworm", packages=["redis-server"])
