"""The web app: each GET / records a visit in PostgreSQL and counts a hit in Redis."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import redis


def password() -> str:
    with open("/run/secrets/db_password") as f:
        return f.read().strip()


def database():  # type: ignore[no-untyped-def]
    return psycopg2.connect(
        host=os.environ["DB_HOST"],
        user=os.environ["DB_USER"],
        dbname=os.environ["DB_NAME"],
        password=password(),
    )


cache = redis.Redis(host=os.environ["REDIS_HOST"], port=6379)

with database() as conn, conn.cursor() as cur:
    cur.execute("CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, at timestamptz)")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self.answer({"ok": True})
            return
        with database() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO visits (at) VALUES (now())")
            cur.execute("SELECT count(*) FROM visits")
            visits = cur.fetchone()[0]
        hits = cache.incr("hits")
        self.answer({"visits": visits, "hits_since_redis_started": hits})

    def answer(self, body: dict) -> None:  # type: ignore[type-arg]
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


print("listening on :8000", flush=True)
ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
