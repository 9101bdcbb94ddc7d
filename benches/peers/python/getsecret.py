"""GetSecret written the way the Azure SDK for Python documents it: one ManagedIdentityCredential
and one SecretClient for the process, GET /api/secrets/{name} answering
{name, value, version, contentType}. The Python peer scripts/bench measures beside `handler`.
GET / answers 200 (readiness).

Settings (environment): FUNCTIONS_CUSTOMHANDLER_PORT, KEY_VAULT_URL, IDENTITY_ENDPOINT and
IDENTITY_HEADER (read by azure-identity), REQUESTS_CA_BUNDLE and SSL_CERT_FILE (to trust the test
CA the way production trusts its roots: through the environment, not a per-client path).
Challenge-resource verification is off only because the local vault is https://127.0.0.1:PORT,
which cannot match the challenge's vault.azure.net resource.

A threaded HTTP/1.1 server (one thread per connection) around the synchronous clients, which
are thread-safe; the HTTP connection pool is sized for the benchmark's concurrency so that no
connection is thrown away for lack of room.
"""

import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

POOL = 256
session = requests.Session()
adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL)
session.mount("https://", adapter)
session.mount("http://", adapter)

# A user-assigned identity when AZURE_CLIENT_ID names one, as handler does; else system-assigned.
credential = ManagedIdentityCredential(client_id=os.environ.get("AZURE_CLIENT_ID") or None)
client = SecretClient(
    vault_url=os.environ["KEY_VAULT_URL"],
    credential=credential,
    verify_challenge_resource=False,
    transport=RequestsTransport(session=session, session_owner=False),
)
allowed = {s.strip() for s in os.environ.get("ALLOWED_SECRETS", "").split(",") if s.strip()}
ROUTE = re.compile(r"^/api/secrets/([^/?]+)")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # no access log: the other apps keep none either
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/":
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        match = ROUTE.match(self.path)
        if not match:
            return self.send_json(404, {"error": "no route"})
        name = unquote(match.group(1))
        if name not in allowed:
            return self.send_json(403, {"error": f"secret '{name}' is not in ALLOWED_SECRETS"})
        try:
            secret = client.get_secret(name)
        except Exception as error:  # the SDK's HttpResponseError and transport errors
            status = getattr(error, "status_code", None)
            return self.send_json(status if status in (403, 404) else 502,
                                  {"error": f"Key Vault request failed ({status or type(error).__name__})"})
        print(f"read secret '{secret.name}' version {secret.properties.version or '(latest)'}")
        self.send_json(200, {
            "name": secret.name,
            "value": secret.value,
            "version": secret.properties.version,
            "contentType": secret.properties.content_type,
        })


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main():
    port = int(os.environ.get("FUNCTIONS_CUSTOMHANDLER_PORT", "0"))
    server = Server(("127.0.0.1", port), Handler)
    sys.stdout.reconfigure(line_buffering=False)
    server.serve_forever()


if __name__ == "__main__":
    main()
