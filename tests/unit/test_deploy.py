"""deploy/: the nginx configuration is valid for Debian's nginx, sticks by the session cookie, and
sends the same security headers as the app; the systemd unit runs the app as ``make run`` does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kapnotes.server.headers import security_headers

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _nginx_headers() -> dict[str, str]:
    text = (DEPLOY / "nginx" / "kapnotes-headers.conf").read_text()
    return dict(re.findall(r'^add_header ([\w-]+) "([^"]*)" always;', text, flags=re.M))


def test_nginx_pages_carry_the_apps_security_headers():
    ours, app = _nginx_headers(), security_headers(https=True)
    for name in ("Referrer-Policy", "X-Content-Type-Options", "X-Frame-Options", "Strict-Transport-Security"):
        assert ours[name] == app[name], name
    assert "frame-ancestors 'none'" in ours["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in app["Content-Security-Policy"]


def test_the_balancer_sticks_by_the_session_cookie_then_the_address():
    maps = (DEPLOY / "nginx" / "kapnotes-maps.conf").read_text()
    site = (DEPLOY / "nginx" / "kapnotes.conf").read_text()
    proxy = (DEPLOY / "nginx" / "kapnotes-proxy.conf").read_text()
    assert "map $cookie_kapnotes_session $kapnotes_affinity" in maps and "$remote_addr" in maps
    assert "hash $kapnotes_affinity consistent;" in site
    assert "proxy_set_header Upgrade $http_upgrade;" in proxy and "Connection $connection_upgrade" in proxy
    assert "ssl_certificate " in site and "return 301 https://" in site


def test_the_unit_runs_the_asgi_app_without_trusting_uvicorns_proxy_headers():
    unit = (DEPLOY / "systemd" / "kapnotes@.service").read_text()
    assert "uvicorn kapnotes.asgi:app" in unit and "--port %i" in unit and "--no-proxy-headers" in unit
    assert "--workers" not in unit
    env = (DEPLOY / "kapnotes.env.example").read_text()
    for name in ("KAPNOTES_DB_POOL_SIZE", "KAPNOTES_DB_STATEMENT_TIMEOUT_MS", "KAPNOTES_TRUST_PROXY=1",
                 "STREAMLIT_SERVER_COOKIE_SECRET"):
        assert name in env


def test_nginx_accepts_the_site_configuration(tmp_path):
    nginx, openssl = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("openssl")
    if not Path(nginx).exists() or not openssl:
        pytest.skip("needs Debian's nginx and openssl")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kap.test",
                    "-keyout", str(tmp_path / "k.key"), "-out", str(tmp_path / "k.pem")],
                   check=True, capture_output=True)
    site = (DEPLOY / "nginx" / "kapnotes.conf").read_text()
    site = (site.replace("/etc/nginx/snippets/", f"{DEPLOY}/nginx/")
            .replace("/etc/ssl/certs/kapnotes.pem", str(tmp_path / "k.pem"))
            .replace("/etc/ssl/private/kapnotes.key", str(tmp_path / "k.key")))
    (tmp_path / "site.conf").write_text(site)
    temp = " ".join(f"{n}_temp_path {tmp_path}/{n};" for n in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        f"http {{ access_log off; {temp} include {tmp_path}/site.conf; }}\n")
    r = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
