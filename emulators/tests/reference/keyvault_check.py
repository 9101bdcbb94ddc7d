"""Drive the Key Vault emulator with the official Python client (azure-keyvault-secrets).

Nobody on the project wrote this client, so if it can set, get, get by version and sees
404/403 the way it does against a real vault, the emulator is faithful where it matters.

Usage:
  keyvault_check.py --vault-url https://127.0.0.1:P --ca ca.pem --token JWT
                    --secret-name app-check --forbidden-secret locked-secret
                    [--missing-secret never-there]

Prints one JSON object with one entry per case; the caller (emulators/tests/keyvault_reference.rs)
asserts every case. Never prints the token or a secret value.
"""

import argparse
import json
import secrets
import sys
import time

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

VAULT_SCOPE = "https://vault.azure.net/.default"


class StaticTokenCredential:
    """Hands out the token given on the command line; records (and checks) what it is asked for."""

    def __init__(self, token):
        self._token = token
        self.calls = []

    def get_token(self, *scopes, claims=None, tenant_id=None, enable_cae=False, **kwargs):
        self.calls.append({"scopes": list(scopes), "tenant_id": tenant_id})
        if list(scopes) != [VAULT_SCOPE]:
            raise ValueError(f"asked for scopes {list(scopes)!r}, expected [{VAULT_SCOPE!r}]")
        return AccessToken(self._token, int(time.time()) + 3600)


def run_case(function):
    """Runs one case; an unexpected exception becomes {"ok": false, "error": "<type>: <message>"}."""
    try:
        return function()
    except Exception as error:  # noqa: BLE001 - every failure is reported, not raised
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}


def expect_error(function, error_type):
    """Runs a call that must raise error_type; returns its status and error code."""
    try:
        function()
    except error_type as error:
        code = getattr(getattr(error, "error", None), "code", None)
        return {"ok": True, "exception": type(error).__name__, "status": error.status_code, "code": code}
    return {"ok": False, "error": f"no {error_type.__name__} raised"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vault-url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--secret-name", required=True)
    parser.add_argument("--forbidden-secret", required=True)
    parser.add_argument("--missing-secret", default="never-created-secret")
    args = parser.parse_args()

    credential = StaticTokenCredential(args.token)
    client = SecretClient(
        args.vault_url,
        credential,
        connection_verify=args.ca,
        verify_challenge_resource=False,
    )
    first_value = secrets.token_hex(8)
    second_value = secrets.token_hex(8)
    state = {}

    def set_first():
        stored = client.set_secret(args.secret_name, first_value, content_type="text/plain")
        state["v1"] = stored.properties.version
        return {
            "ok": stored.value == first_value and stored.name == args.secret_name,
            "version_len": len(stored.properties.version or ""),
            "content_type": stored.properties.content_type,
            "enabled": stored.properties.enabled,
            "vault_url": stored.properties.vault_url,
        }

    def set_second_and_get_latest():
        stored = client.set_secret(args.secret_name, second_value)
        latest = client.get_secret(args.secret_name)
        return {
            "ok": latest.value == second_value and latest.properties.version == stored.properties.version,
            "new_version": stored.properties.version != state.get("v1"),
        }

    def get_by_version():
        old = client.get_secret(args.secret_name, version=state["v1"])
        return {"ok": old.value == first_value and old.properties.version == state["v1"]}

    results = {
        "set": run_case(set_first),
        "get": run_case(set_second_and_get_latest),
        "get_version": run_case(get_by_version),
        "not_found": run_case(lambda: expect_error(lambda: client.get_secret(args.missing_secret), ResourceNotFoundError)),
        "forbidden": run_case(lambda: expect_error(lambda: client.get_secret(args.forbidden_secret), HttpResponseError)),
        "credential": {
            "scopes": sorted({scope for call in credential.calls for scope in call["scopes"]}),
            "tenant_ids": sorted({str(call["tenant_id"]) for call in credential.calls}),
            "calls": len(credential.calls),
        },
    }
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
