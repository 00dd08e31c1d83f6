"""`ruvon serve` as deployed: HTTPS with --ssl-keyfile/--ssl-certfile (a certificate from a throwaway CA, verified by the client),
and --root-path behind a reverse proxy (uvicorn's meaning: the proxy strips the prefix; docs and OpenAPI name it), with the API key
still required there."""
import os
import ssl
import subprocess
import sys
import time

import httpx
import pytest
import trustme

from conftest import free_port

MODEL = "standin"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    "A CA the client trusts, and a certificate for 127.0.0.1 it issued: (keyfile, certfile, ca file)."
    d, ca = tmp_path_factory.mktemp("tls"), trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(d / "key.pem")
    cert.cert_chain_pems[0].write_to_path(d / "cert.pem")
    ca.cert_pem.write_to_path(d / "ca.pem")
    return d / "key.pem", d / "cert.pem", d / "ca.pem"


@pytest.fixture
def https_server(standin_2l, tls_files, tmp_path):
    key, cert, ca = tls_files
    port, log = free_port(), tmp_path / "server.log"
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    with open(log, "w") as out:
        proc = subprocess.Popen([exe, "serve", str(standin_2l), "--port", str(port), "--served-model-name", MODEL, "--device", "cpu",
                                 "--kv-cache-memory", str(32 << 20), "--ssl-keyfile", str(key), "--ssl-certfile", str(cert)],
                                stdout=out, stderr=subprocess.STDOUT)
    url, verify, deadline = f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=str(ca)), time.time() + 120
    try:
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/health", verify=verify, timeout=2).status_code == 200: break
            except httpx.HTTPError: pass
            assert time.time() < deadline, log.read_text()
            time.sleep(0.3)
        yield url, verify, port
    finally:
        proc.terminate(); proc.wait(timeout=30)


def test_https_with_a_verified_certificate(https_server):
    url, verify, port = https_server
    r = httpx.post(f"{url}/v1/completions", json={"model": MODEL, "prompt": "Hi", "max_tokens": 3, "temperature": 0}, verify=verify, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
    with pytest.raises(httpx.HTTPError): httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)  # no plain HTTP on that port
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"): httpx.get(f"{url}/health", timeout=5)  # an untrusted CA


def test_ssl_options_go_together(standin_2l, tls_files):
    key, _, _ = tls_files
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    r = subprocess.run([exe, "serve", str(standin_2l), "--ssl-keyfile", str(key)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.strip() == "error: give --ssl-keyfile and --ssl-certfile together"


def test_root_path_behind_a_proxy(standin_2l, ruvon_server):
    "--root-path /api: routes answer at the paths the proxy forwards (prefix stripped), OpenAPI and the docs page name the prefix, the key still counts."
    _, url = ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20), "--root-path", "/api", "--api-key", "k")
    auth = {"Authorization": "Bearer k"}
    assert httpx.get(f"{url}/v1/models", headers=auth).json()["data"][0]["id"] == MODEL
    assert httpx.get(f"{url}/v1/models").status_code == 401                  # the prefix is no way around the key
    assert httpx.post(f"{url}/tokenize", json={"prompt": "Hi"}).status_code == 401
    assert httpx.get(f"{url}/openapi.json").json()["servers"] == [{"url": "/api"}]
    assert "url: '/api/openapi.json'" in httpx.get(f"{url}/docs").text     # the page the browser loads through the proxy
    assert httpx.get(f"{url}/health").status_code == 200
