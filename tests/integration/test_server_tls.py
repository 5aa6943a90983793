"""The server over TLS: the API on HTTPS and STARTTLS on SMTP, with a certificate the test makes
(self-signed, for 127.0.0.1). A client that trusts it (SSL_CERT_FILE, as for other HTTPS clients)
is served; one that does not is refused before any token is sent."""

from __future__ import annotations

import os
import smtplib
import ssl
from pathlib import Path

import httpx

from tests.conftest import run_cps
from tests.integration.intake_helpers import inbox_raws, make_certificate, message
from tests.integration.server_run import make_site, protecting, running

ALICE = "alice@example.com"
SERVER_ERROR_EXIT = 50


def test_the_api_on_https_and_smtp_with_starttls(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    site = make_site(tmp_path, {"mail": [ALICE]})
    tls = f'tls_cert = "{cert}"\ntls_key = "{key}"\n'
    text = site.config.read_text()
    site.config.write_text(text.replace("[server]\n", f"[server]\n{tls}", 1)
                           .replace("[intake]\n", f"[intake]\n{tls}", 1))
    token_file = tmp_path / "operator.token"
    token_file.write_text(site.tokens["operator"] + "\n")
    with running(site) as server:
        assert server.api.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=cert)
        with httpx.Client(base_url=server.api, verify=context,
                          headers={"Authorization": f"Bearer {site.tokens['auditor']}"}) as api:
            protecting(api, "mail")
        with httpx.Client(base_url=server.api, verify=context) as browser:
            signed_in = browser.post("/login", data={"token": site.tokens["auditor"]})
            assert signed_in.status_code == 303
            assert "; Secure" in signed_in.headers["set-cookie"]  # never sent over plain HTTP
        trusted = {**os.environ, "SSL_CERT_FILE": str(cert)}
        status = run_cps("server", "status", "--server", server.api, "--token-file", token_file,
                         "--json", env=trusted)
        assert b'"mail"' in status.stdout
        untrusted = run_cps("server", "status", "--server", server.api, "--token-file",
                            token_file, check=False,
                            env={k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"})
        assert untrusted.returncode == SERVER_ERROR_EXIT, untrusted.stderr
        assert b"certificate" in untrusted.stderr.lower()

        with smtplib.SMTP("127.0.0.1", server.port("smtp")) as smtp:
            smtp.starttls(context=context)
            refused = smtp.sendmail("sender@example.org", [ALICE], message("over TLS"))
        assert refused == {}
        server.stop()
    [stored] = inbox_raws(site.databases["mail"], ALICE)
    assert stored.endswith(message("over TLS")) and b" with ESMTPS id " in stored
