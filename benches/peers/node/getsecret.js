// GetSecret written the way the Azure SDK for JavaScript documents it: one
// ManagedIdentityCredential and one SecretClient for the process, GET /api/secrets/{name}
// answering {name, value, version, contentType}. The Node peer scripts/bench measures beside
// `handler`. GET / answers 200 (readiness).
//
// Settings (environment): FUNCTIONS_CUSTOMHANDLER_PORT, KEY_VAULT_URL, IDENTITY_ENDPOINT and
// IDENTITY_HEADER (read by @azure/identity), NODE_EXTRA_CA_CERTS (to trust the test CA, as
// production trusts its roots). Challenge-resource verification is off only because the local
// vault is https://127.0.0.1:PORT, which cannot match the challenge's vault.azure.net resource.
"use strict";
const http = require("node:http");
const { ManagedIdentityCredential } = require("@azure/identity");
const { SecretClient } = require("@azure/keyvault-secrets");

const port = Number(process.env.FUNCTIONS_CUSTOMHANDLER_PORT || 0);
// A user-assigned identity when AZURE_CLIENT_ID names one, as handler does; else system-assigned.
const clientId = process.env.AZURE_CLIENT_ID;
const credential = clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
const client = new SecretClient(process.env.KEY_VAULT_URL, credential, {
  disableChallengeResourceVerification: true,
});
const allowed = new Set((process.env.ALLOWED_SECRETS || "").split(",").map((s) => s.trim()).filter(Boolean));

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

async function getSecret(name, res) {
  if (!allowed.has(name)) {
    return send(res, 403, { error: `secret '${name}' is not in ALLOWED_SECRETS` });
  }
  try {
    const secret = await client.getSecret(name);
    console.log(`read secret '${secret.name}' version ${secret.properties.version || "(latest)"}`);
    send(res, 200, {
      name: secret.name,
      value: secret.value,
      version: secret.properties.version || null,
      contentType: secret.properties.contentType || null,
    });
  } catch (error) {
    const status = error.statusCode === 404 ? 404 : error.statusCode === 403 ? 403 : 502;
    send(res, status, { error: `Key Vault request failed (${error.statusCode || error.name})` });
  }
}

const server = http.createServer((req, res) => {
  const match = /^\/api\/secrets\/([^/?]+)/.exec(req.url);
  if (req.method === "GET" && match) {
    getSecret(decodeURIComponent(match[1]), res);
  } else if (req.method === "GET" && req.url === "/") {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("ok");
  } else {
    send(res, 404, { error: "no route" });
  }
});
server.keepAliveTimeout = 60000;
server.listen(port, "127.0.0.1", 1024);
