"""The processes a load run needs on this machine, all on loopback: a seeded database (SQLite
file, or a PostgreSQL database emptied first), N ``uvicorn kapnotes.asgi:app`` processes, and
nginx in front of them with the deploy/nginx snippets (the same maps and proxy directives an
operator installs), run unprivileged from a scratch directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
COOKIE_SECRET = "bench-load-shared-cookie-secret"  # the same on every process (deploy/kapnotes.env.example)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_") and k != "KAPNOTES_APPTEST_SIGN_IN"}
    env.update({"KAPNOTES_DATABASE_URL": url, "KAPNOTES_FAST_HASH": "1", "PYTHONUNBUFFERED": "1",
                "STREAMLIT_SERVER_COOKIE_SECRET": COOKIE_SECRET, "STREAMLIT_LOGGER_LEVEL": "error"})
    return env


def prepare_database(url: str, patients: int, log=print) -> None:
    """A fresh, migrated, seeded database (PostgreSQL: the public schema is dropped first)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if make_url(url).get_backend_name() == "sqlite":
        path = Path(make_url(url).database)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    else:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    env = base_env(url)
    started = time.perf_counter()
    for args in (["init-db"], ["seed-demo", "--patients", str(patients), "--years", "0.3"]):
        subprocess.run([sys.executable, "-m", "kapnotes", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    log(f"  database ready ({make_url(url).get_backend_name()}, {patients} patients) in "
        f"{time.perf_counter() - started:.1f} s")


def wait_healthy(base: str, proc: subprocess.Popen | None = None, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
        if proc is not None and proc.poll() is not None:
            break
    raise RuntimeError(f"{base} did not become healthy")


class Cluster:
    """``processes`` app processes on one database, with nginx in front when there are several."""

    def __init__(self, url: str, processes: int, workdir: Path, behind_nginx: bool):
        self.url, self.workdir = url, workdir
        self.ports = [free_port() for _ in range(processes)]
        self.procs: dict[int, subprocess.Popen] = {}
        self.nginx: subprocess.Popen | None = None
        self.behind_nginx = behind_nginx
        self.base = f"http://127.0.0.1:{self.ports[0]}"

    def start(self) -> Cluster:
        env = base_env(self.url)
        if self.behind_nginx:
            env["KAPNOTES_TRUST_PROXY"] = "1"
        for port in self.ports:
            log = open(self.workdir / f"app-{port}.log", "w")
            self.procs[port] = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "kapnotes.asgi:app", "--host", "127.0.0.1", "--port", str(port),
                 "--no-proxy-headers"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        for port in self.ports:
            wait_healthy(f"http://127.0.0.1:{port}", self.procs[port])
        if self.behind_nginx:
            self._start_nginx()
        return self

    def _start_nginx(self) -> None:
        port = free_port()
        prefix = self.workdir / "nginx"
        prefix.mkdir(exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in self.ports)
        temp = " ".join(f"{name}_temp_path {prefix}/{name};" for name in
                        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    {temp}
    include {ROOT}/deploy/nginx/kapnotes-maps.conf;
    upstream kapnotes {{
        hash $kapnotes_affinity consistent;
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include {ROOT}/deploy/nginx/kapnotes-proxy.conf;
        }}
    }}
}}
"""
        (prefix / "nginx.conf").write_text(conf)
        self.nginx = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                       "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        wait_healthy(self.base, self.nginx)

    def kill(self, port: int) -> None:
        """SIGKILL one app process: no goodbye to its browsers, as in a crash."""
        proc = self.procs.get(port)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in [self.nginx, *self.procs.values()]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
