"""Which compose keys envkit reads, which it ignores with a warning, which it refuses.

A key that is ignored changes nothing a stack on one machine does (a container name,
log drivers, terminal flags); a key that would change how a service runs, and that
envkit cannot do, is refused (exit 2), never dropped in silence. Keys starting with
``x-`` are extensions and ignored, as compose does.
"""

from __future__ import annotations

#: Top-level keys read.
TOP = frozenset({"name", "services", "volumes", "networks", "secrets", "version"})

#: Service keys read (mapped onto envkit's Service).
SERVICE = frozenset(
    {
        "image", "build", "command", "entrypoint", "environment", "env_file", "ports",
        "volumes", "networks", "depends_on", "healthcheck", "restart", "secrets", "user",
        "working_dir", "init", "profiles", "hostname", "tmpfs", "read_only", "mem_limit",
        "cpus", "pids_limit", "cap_add", "cap_drop", "labels", "deploy", "scale",
        "stop_signal", "stop_grace_period", "shm_size", "security_opt", "ulimits", "links",
        "extra_hosts", "sysctls", "network_mode",
    }
)  # fmt: skip

#: Service keys ignored with a warning, and why that is harmless.
SERVICE_IGNORED = {
    "container_name": "envkit names containers after the stack and service",
    "expose": "services on a network reach each other's ports anyway",
    "logging": "envkit keeps each service's output in its own log (envkit logs)",
    "tty": "containers of a stack run without a terminal",
    "stdin_open": "containers of a stack run without stdin",
    "platform": "envkit builds and runs for this machine's platform",
    "pull_policy": "use `envkit up --pull missing|always|never`",
    "mem_reservation": "a soft limit; envkit applies mem_limit only",
    "domainname": "services are reached by service name",
    "annotations": "envkit keeps no annotations",
    "develop": "compose watch is not part of envkit",
    "attach": "envkit up shows every service's output",
}

#: Build keys read.
BUILD = frozenset({"context", "dockerfile", "args", "target"})

#: Build keys ignored with a warning.
BUILD_IGNORED = {
    "cache_from": "envkit caches build steps itself",
    "cache_to": "envkit caches build steps itself",
    "labels": "set LABEL in the Dockerfile instead",
    "tags": "envkit tags a service's image STACK-SERVICE:latest",
    "no_cache": "use `envkit build --no-cache`",
    "pull": "envkit pulls a base image when it is not in the store",
    "platforms": "envkit builds for this machine's platform",
}

#: Top-level keys refused, with the fix.
TOP_REFUSED = {
    "include": "give the included file with a second -f (envkit up -f compose.yaml -f other.yaml)",
    "configs": "mount the file with a bind volume, or use a secret",
    "models": "not supported by envkit",
}

#: Every service key of the compose specification (compose-spec schema/compose-spec.json
#: at 170098ba, ``definitions.service.properties``): a key outside it is a typo, not a
#: feature envkit lacks.
COMPOSE_SERVICE = frozenset(
    [
        "annotations",
        "attach",
        "blkio_config",
        "build",
        "cap_add",
        "cap_drop",
        "cgroup",
        "cgroup_parent",
        "command",
        "configs",
        "container_name",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpus",
        "cpuset",
        "credential_spec",
        "depends_on",
        "deploy",
        "develop",
        "device_cgroup_rules",
        "devices",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "entrypoint",
        "env_file",
        "environment",
        "expose",
        "extends",
        "external_links",
        "extra_hosts",
        "gpus",
        "group_add",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "ipc",
        "isolation",
        "label_file",
        "labels",
        "links",
        "logging",
        "mac_address",
        "mem_limit",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "models",
        "network_mode",
        "networks",
        "oom_kill_disable",
        "oom_score_adj",
        "pid",
        "pids_limit",
        "platform",
        "ports",
        "post_start",
        "pre_stop",
        "privileged",
        "profiles",
        "provider",
        "pull_policy",
        "pull_refresh_after",
        "read_only",
        "restart",
        "runtime",
        "scale",
        "secrets",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_grace_period",
        "stop_signal",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "use_api_socket",
        "user",
        "userns_mode",
        "uts",
        "volumes",
        "volumes_from",
        "working_dir",
    ]
)
