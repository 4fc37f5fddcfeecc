"""What ``envkit config`` and ``docker compose config`` must agree on (the compared keys).

Both sides are compose's normalised JSON; :func:`compared` keeps, per service, the keys
envkit maps and drops what envkit differs on by design (docs/reference/compose.md):
ports without a host IP (envkit: 127.0.0.1), ``mode``/``name``/``app_protocol`` of
ports, bind options, unset environment variables (``null``), healthcheck defaults
envkit fills in, tmpfs mounts (envkit lists them under ``tmpfs``).
"""

from __future__ import annotations

from typing import Any

SERVICE_KEYS = (
    "image", "command", "entrypoint", "user", "working_dir", "init", "restart",
    "hostname", "read_only", "labels", "cap_add", "cap_drop",
)  # fmt: skip


def compared(form: dict[str, Any], *, ours: bool) -> dict[str, Any]:
    """The compared part of a normalised compose mapping (``ours``: envkit's side)."""
    services = {}
    for name, body in (form.get("services") or {}).items():
        services[name] = _service(body, ours=ours)
    out: dict[str, Any] = {"name": form.get("name"), "services": services}
    out["volumes"] = {
        k: {"name": v.get("name"), "driver_opts": v.get("driver_opts") or {}}
        for k, v in (form.get("volumes") or {}).items()
    }
    out["networks"] = {
        k: {"name": v.get("name"), "internal": bool(v.get("internal"))}
        for k, v in (form.get("networks") or {}).items()
    }
    out["secrets"] = {
        k: {key: v.get(key) for key in ("file", "environment") if key in v}
        for k, v in (form.get("secrets") or {}).items()
    }
    return out


def _service(body: dict[str, Any], *, ours: bool) -> dict[str, Any]:
    out = {k: body[k] for k in SERVICE_KEYS if body.get(k) not in (None, False, [], {})}
    if out.get("restart") == "no":
        del out["restart"]
    if "build" in body:
        build = body["build"]
        out["build"] = {k: build[k] for k in ("context", "dockerfile", "target") if k in build}
        args = {k: v for k, v in (build.get("args") or {}).items() if v is not None}
        if args:
            out["build"]["args"] = args
    env = {k: v for k, v in (body.get("environment") or {}).items() if v is not None}
    if env:
        out["environment"] = env
    ports = [
        {
            "target": p["target"],
            "published": p.get("published"),
            "protocol": p.get("protocol", "tcp"),
            "host_ip": p.get("host_ip") or "127.0.0.1",
        }
        for p in body.get("ports") or []
    ]
    if ports:
        out["ports"] = sorted(
            ports, key=lambda p: (p["target"], p["host_ip"], p["protocol"], p["published"] or "")
        )
    volumes = []
    tmpfs = list(body.get("tmpfs") or [])
    if isinstance(body.get("tmpfs"), str):
        tmpfs = [body["tmpfs"]]
    for v in body.get("volumes") or []:
        if v["type"] == "tmpfs":
            size = (v.get("tmpfs") or {}).get("size")
            tmpfs.append(v["target"] + (f":size={size}" if size else ""))
            continue
        volumes.append(
            {
                "type": v["type"],
                "source": v.get("source"),
                "target": v["target"],
                "read_only": bool(v.get("read_only")),
            }
        )
    if volumes:
        out["volumes"] = sorted(volumes, key=lambda v: v["target"])
    if tmpfs:
        out["tmpfs"] = sorted(tmpfs)
    secrets = [
        {"source": s["source"], "target": _secret_target(s.get("target") or s["source"])}
        for s in body.get("secrets") or []
    ]
    if secrets:
        out["secrets"] = sorted(secrets, key=lambda s: s["target"])
    depends = {t: d.get("condition") for t, d in (body.get("depends_on") or {}).items()}
    if depends:
        out["depends_on"] = depends
    nets = body.get("networks") or {}
    out["networks"] = {n: sorted((v or {}).get("aliases") or []) for n, v in nets.items()}
    check = body.get("healthcheck")
    if check:
        out["healthcheck"] = _healthcheck(check, ours=ours)
    return out


def _secret_target(target: str) -> str:
    """A relative secret target is a file name under /run/secrets."""
    return target if target.startswith("/") else f"/run/secrets/{target}"


_HEALTH_DEFAULTS = {"interval": "30s", "timeout": "30s", "retries": 3, "start_period": "0s"}


def _healthcheck(check: dict[str, Any], *, ours: bool) -> dict[str, Any]:
    if check.get("disable") or check.get("test") == ["NONE"]:
        return {"disable": True}
    out = {"test": check.get("test")}
    for key, default in _HEALTH_DEFAULTS.items():
        out[key] = check.get(key, default)
    return out
