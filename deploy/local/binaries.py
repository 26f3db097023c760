"""Find a server program, installing its Debian package when running as root with apt."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

from deploy.local.processes import ServerError

# The Debian package that provides each program; other names are their own package.
PACKAGES = {
    "initdb": "postgresql",
    "postgres": "postgresql",
    "pg_basebackup": "postgresql",
    "pg_isready": "postgresql",
    "pg_ctl": "postgresql",
    "createdb": "postgresql",
    "psql": "postgresql-client",
    "pgbouncer": "pgbouncer",
    "redis-server": "redis-server",
    "redis-sentinel": "redis-sentinel",
    "rabbitmq-server": "rabbitmq-server",
    "nginx": "nginx-light",
    "promtool": "prometheus",
    "patroni": "patroni",
    "patronictl": "patroni",
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "haproxy": "haproxy",
}


def install_command(name: str) -> str:
    """Return the command that installs the package providing ``name``."""
    return f"sudo apt-get install -y {PACKAGES.get(name, name)}"


def find_binary(name: str) -> str:
    """Return the path of program ``name``, installing its package as root with apt.

    Raise ServerError with the exact install command when it cannot be found or installed.
    """
    path = _locate(name)
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        package = PACKAGES.get(name, name)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env)  # noqa: S607 -- apt from PATH
        subprocess.run(  # noqa: S603 -- fixed program, package name from the table
            ["apt-get", "install", "-y", "-q", package],  # noqa: S607 -- apt from PATH
            check=False,
            env=env,
        )
        path = _locate(name)
        if path:
            return path
    raise ServerError(f"{name} is not installed. Install it with: {install_command(name)}")


def _locate(name: str) -> str | None:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    return None
