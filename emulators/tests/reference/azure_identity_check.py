#!/usr/bin/env python3
"""Drive the official azure-identity ManagedIdentityCredential against the identity emulator.

Usage: azure_identity_check.py BASE_URL HEADER_SECRET USER_CLIENT_ID [SCOPE] [--only PROTOCOL:IDENTITY]

For each protocol (App Service 2019, legacy 2017 / Azure ML, IMDS through
AZURE_POD_IDENTITY_AUTHORITY_HOST) and each identity (system-assigned, user-assigned by client
id) this runs a fresh Python subprocess with only that protocol's environment variables, asks
ManagedIdentityCredential for a token, and prints one JSON document on stdout:

  {"results": [{"protocol", "identity", "ok", "claims": {aud, oid, appid, tid, iss},
                "expires_on", "error"}]}

`--only appservice2019:system` (repeatable) restricts the run to those cases, for scenarios the
caller prepares on the emulator first (e.g. queued faults). Only decoded claims are printed,
never the token or the secret. Exit code 0 when the driver ran
(individual failures are reported in "ok"/"error"), 2 on bad usage.
"""

import base64
import json
import os
import subprocess
import sys

PLATFORM_VARIABLES = [
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
    "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
]
CHILD_TIMEOUT_SECS = 120


def protocol_environment(protocol, base_url, secret):
    """The variables the platform sets for one protocol."""
    if protocol == "appservice2019":
        return {"IDENTITY_ENDPOINT": base_url + "/msi/token", "IDENTITY_HEADER": secret}
    if protocol == "legacy2017":
        return {"MSI_ENDPOINT": base_url + "/msi/token", "MSI_SECRET": secret}
    if protocol == "imds":
        return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": base_url}
    raise ValueError("unknown protocol " + protocol)


def child_environment(protocol, base_url, secret):
    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_VARIABLES}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(protocol_environment(protocol, base_url, secret))
    return env


def decode_claims(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def run_child(scope, client_id):
    """In the subprocess: one get_token call, one JSON line out."""
    from azure.identity import ManagedIdentityCredential

    try:
        if client_id:
            credential = ManagedIdentityCredential(client_id=client_id)
        else:
            credential = ManagedIdentityCredential()
        token = credential.get_token(scope)
        claims = decode_claims(token.token)
        wanted = {k: claims.get(k) for k in ("aud", "oid", "appid", "tid", "iss")}
        print(json.dumps({"ok": True, "claims": wanted, "expires_on": token.expires_on}))
    except Exception as error:  # report every failure as data for the Rust test
        message = str(error).splitlines()[0] if str(error) else ""
        print(json.dumps({"ok": False, "error": type(error).__name__ + ": " + message[:300]}))


def run_case(protocol, identity, client_id, base_url, secret, scope):
    command = [sys.executable, os.path.abspath(__file__), "--child", scope, client_id or ""]
    try:
        completed = subprocess.run(
            command, env=child_environment(protocol, base_url, secret),
            capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECS, check=False,
        )
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        result = json.loads(lines[-1]) if lines else {
            "ok": False, "error": "no output; stderr: " + completed.stderr[-500:]}
    except subprocess.TimeoutExpired:
        result = {"ok": False, "error": "timed out"}
    result.update({"protocol": protocol, "identity": identity})
    return result


def split_only(args):
    """Separates `--only P:I` options from positional arguments; (None, _) on a dangling flag."""
    positional, only = [], set()
    rest = iter(args)
    for arg in rest:
        if arg == "--only":
            value = next(rest, None)
            if value is None:
                return None, only
            only.add(value)
        else:
            positional.append(arg)
    return positional, only


def main(argv):
    if len(argv) >= 2 and argv[1] == "--child":
        run_child(argv[2], argv[3] if len(argv) > 3 else "")
        return 0
    positional, only = split_only(argv[1:])
    if positional is None or len(positional) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    base_url, secret, user_client_id = positional[0].rstrip("/"), positional[1], positional[2]
    scope = positional[3] if len(positional) == 4 else "https://vault.azure.net/.default"
    results = []
    for protocol in ("appservice2019", "legacy2017", "imds"):
        for identity, client_id in (("system", None), ("user", user_client_id)):
            if only and protocol + ":" + identity not in only:
                continue
            results.append(run_case(protocol, identity, client_id, base_url, secret, scope))
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
