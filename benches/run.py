#!/usr/bin/env python3
"""Runs every benchmark against release builds and writes the Markdown report.

Called by scripts/bench after it has built everything (`scripts/bench --smoke` for tiny counts).
Every process it starts is stopped by pid, also on Ctrl-C. Only 127.0.0.1 is ever a target.

Sections (each measured side by side in this one run, rounds interleaved so that the noise of a
shared machine hits every contender alike; the spread is the min-max over rounds):
  1. cold start: exec of `handler` -> first 200 on GET /, with the system's trust roots (as on
     Azure: no SSL_CERT_FILE) and with the test CA alone, against a minimal Node.js server;
  2. invocation overhead: TokenInfo (token cached) in JSON mode and in forwarding mode against a
     bare hyper server; instructions per warm invocation under callgrind;
  3. GetSecret end to end against the Key Vault emulator, secret cache off: handler (JSON mode,
     as the host drives it) against the same function written with the official Node and Python
     SDKs (plain GET); then the secret cache: vault requests for 1,000 concurrent warm reads and
     CPU per cached read;
  4. token economy: identity-endpoint and Key Vault requests for 1,000 concurrent cold requests,
     and over steady traffic with short-lived tokens;
  5. memory (VmRSS) and the deploy zip's size.
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# scripts/bench builds these with scripts/package's target, so they share its dependencies.
RELEASE = ROOT / "target" / "x86_64-unknown-linux-gnu" / "release"
# The binary exactly as it ships: scripts/package builds it against glibc 2.28 (in its own target
# directory) and leaves it at the repository root.
HANDLER = ROOT / "handler"
# Extra environment for every app started (--env), e.g. LD_PRELOAD to try another allocator.
HANDLER_ENV = {}
EMULATORS = RELEASE / "emulators"
LOADGEN = RELEASE / "loadgen"
HYPER_HELLO = RELEASE / "hyper-hello"
COLDSTART = RELEASE / "coldstart"
PEERS = ROOT / "benches" / "peers"
PYTHON = ROOT / ".venv" / "bin" / "python"
SECRET = "demo-secret"
SECRET_VALUE = "hello from the local Key Vault emulator"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Each setting's value in the full run and in the smoke pass (the same sections with tiny counts,
# so that they run in CI and cannot rot), side by side.
SETTINGS = {
    "cold_runs": (60, 3),  # per contender, split over the rounds
    "callgrind_invocations": ((100, 600), (5, 15)),  # two runs; the difference cancels start-up
    "rounds": (3, 1),
    "overhead_concurrency": ([1, 32, 128], [1, 32, 128]),
    # Throughput against bare hyper: many short rounds rather than a few long ones, so that the
    # two contenders of a round meet nearly the same machine, and a burst of load elsewhere moves
    # one round of the median instead of a third of them.
    "overhead_rounds": (7, 1),
    "overhead_seconds": (2.0, 0.3),
    "overhead_warmup_seconds": (0.5, 0.1),
    "warmup_seconds": (1.0, 0.1),
    "getsecret_concurrency": (32, 32),
    "getsecret_seconds": (8.0, 0.5),
    "cold_requests": (1000, 50),
    "memory_invocations": (10_000, 200),
    "short_token_lifetime": (330, 330),  # the shortest the 5-minute expiry margin leaves usable
    "steady_seconds": (75.0, 1.0),
    "steady_pause_ms": (20, 20),
}
FULL = {name: full for name, (full, _) in SETTINGS.items()}
SMOKE = {name: smoke for name, (_, smoke) in SETTINGS.items()}

# --------------------------------------------------------------------------- processes


class Processes:
    """Every process this run started, stopped by pid (SIGTERM, then SIGKILL after 5 s)."""

    def __init__(self):
        self.running = []

    def start(self, name, argv, env, log_dir, cwd=ROOT):
        log = open(log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        proc.log_path = log_dir / f"{name}.log"
        proc.bench_name = name
        log.close()
        self.running.append(proc)
        return proc

    def stop(self, proc):
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self):
        for proc in list(reversed(self.running)):
            try:
                self.stop(proc)
            except ProcessLookupError:
                pass


def ready_line(proc, timeout=60):
    """The JSON ready line a process prints first (emulators, hyper-hello)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            for line in proc.log_path.read_text(errors="replace").splitlines():
                if line.startswith('{"ready"'):
                    return json.loads(line)
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    sys.exit(f"bench: {proc.bench_name} printed no ready line; see {proc.log_path}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(base, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: {proc.bench_name} exited; see {proc.log_path}")
        try:
            with urllib.request.urlopen(base + "/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f"bench: {base} did not answer GET / in {timeout} s; see {proc.log_path}")


def http_json(method, url, body=None):
    request = urllib.request.Request(url, method=method, data=body)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid, field="VmRSS"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- load


def loadgen(url, *, connections, seconds=None, warmup=0.0, requests=None, method="GET",
            body_file=None, headers=(), expect=None, host_ids=False, pause_ms=0, timeout=30):
    argv = [str(LOADGEN), "--url", url, "--method", method, "--connections", str(connections)]
    if seconds is not None:
        argv += ["--duration", str(seconds), "--warmup", str(warmup)]
    else:
        argv += ["--requests", str(requests)]
    if body_file:
        argv += ["--body-file", str(body_file)]
    for header in headers:
        argv += ["--header", header]
    if expect:
        argv += ["--expect", expect]
    if host_ids:
        argv += ["--host-ids", "1"]
    if pause_ms:
        argv += ["--pause-ms", str(pause_ms)]
    argv += ["--timeout", str(timeout)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"bench: loadgen failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def not_good(got):
    """What the answers that were not the expected one were, by kind: `{"503": 288, "errors": 3}`
    (a status other than 200, a 200 without the expected body, or no answer at all)."""
    statuses = got["statuses"]
    out = {status: n for status, n in statuses.items() if status != "200"}
    wrong_200 = statuses.get("200", 0) - got["good"]
    if wrong_200:
        out["200 other"] = wrong_200
    if got["errors"]:
        out["errors"] = got["errors"]
    return out


def fmt_others(others):
    """`; 288 answered 503 (…)` style text for a report cell, empty when every answer was good."""
    words = {"503": "answered 503 (the in-flight limit, MAX_CONCURRENT_INVOCATIONS)",
             "200 other": "answered 200 without the expected body (in JSON mode, a function's or the "
                          "runtime's other status inside the envelope, e.g. the in-flight limit's 503)",
             "errors": "got no answer (connection error or timeout)"}
    return "".join(f"; {n:,} {words.get(kind, f'answered {kind}')}" for kind, n in others.items())


def host_payload(url, params):
    """A JSON-mode invocation as the Functions host sends it.

    See docs/host-contract.md, 'The HTTP trigger in Data'.
    """
    request = {
        "Url": url, "Method": "GET", "Query": {},
        "Headers": {
            "Accept": ["*/*"], "Host": ["localhost:7071"], "User-Agent": ["curl/8.5.0"],
            "Max-Forwards": ["9"], "X-Forwarded-For": ["127.0.0.1:52418"],
        },
        "Params": params,
        "Identities": [{"AuthenticationType": None, "IsAuthenticated": False, "Claims": []}],
    }
    return {"Data": {"req": request},
            "Metadata": {"Query": {}, "Headers": request["Headers"], "sys": {
                "MethodName": "x", "UtcNow": "2024-10-24T17:42:07.5123456Z",
                "RandGuid": "8d0a7a55-6e61-4a4e-9b55-2bd7d0bd6a86"}}}


JSON_MODE_HEADERS = ("Content-Type: application/json; charset=utf-8",)
# What the host adds to a request it forwards (besides the invocation id loadgen sets).
FORWARDED_HEADERS = ("Accept: */*", "User-Agent: curl/8.5.0", "X-Forwarded-For: 127.0.0.1:52418")
OK_OUTPUT = '"statusCode":200'


# --------------------------------------------------------------------------- stack


class Stack:
    """The emulators and the app processes, with the settings each app gets."""

    def __init__(self, procs, state, smoke):
        self.procs = procs
        self.state = state
        self.logs = state / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.smoke = smoke
        self.pki = state / "pki"
        subprocess.run([str(EMULATORS), "pki", "--out", str(self.pki)], check=True,
                       stdout=subprocess.DEVNULL)
        self.ca = self.pki / "ca.pem"
        emu_env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn"}
        self.emu_env = emu_env
        identity_config = json.loads((ROOT / "scripts/local/identity.json").read_text())
        self.tenant = identity_config["tenant_id"]
        self.identity, self.identity_url, self.identity_secret = self.start_identity(
            "identity", ROOT / "scripts/local/identity.json")
        self.keyvault, self.vault_url = self.start_keyvault(
            "keyvault", ROOT / "scripts/local/keyvault.json", self.identity_url)

    def start_identity(self, name, config):
        proc = self.procs.start(name, [str(EMULATORS), "identity", "--config", str(config),
                                       "--port", "0"], self.emu_env, self.logs)
        ready = ready_line(proc)
        return proc, ready["ready"], ready["header_secret"]

    def start_keyvault(self, name, config, identity_url):
        proc = self.procs.start(name, [
            str(EMULATORS), "keyvault", "--config", str(config), "--port", "0",
            "--cert", str(self.pki / "leaf.pem"), "--key", str(self.pki / "leaf.key"),
            "--jwks-url", f"{identity_url}/{self.tenant}/discovery/v2.0/keys"],
            self.emu_env, self.logs)
        return proc, ready_line(proc)["ready"]

    def app_env(self, port, identity_url=None, identity_secret=None, vault_url=None, extra=None):
        """What the Functions host and App Service give every worker, pointed at the emulators."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "FUNCTIONS_CUSTOMHANDLER_PORT": str(port),
            "FUNCTIONS_HTTPWORKER_PORT": str(port),
            "FUNCTIONS_CUSTOMHANDLER_WORKER_ID": "11111111-1111-4111-8111-111111111111",
            "FUNCTIONS_APP_ROOT_PATH": str(ROOT),
            "FUNCTIONS_WORKER_RUNTIME": "custom",
            "IDENTITY_ENDPOINT": f"{identity_url or self.identity_url}/msi/token",
            "IDENTITY_HEADER": identity_secret or self.identity_secret,
            "KEY_VAULT_URL": f"{vault_url or self.vault_url}/",
            "ALLOWED_SECRETS": SECRET,
            "TOKEN_REFRESH_SCHEDULE": "0 */5 * * * *",
            # Trust for the test CA, the way each platform trusts extra roots in production.
            "SSL_CERT_FILE": str(self.ca),
            "NODE_EXTRA_CA_CERTS": str(self.ca),
            "REQUESTS_CA_BUNDLE": str(self.ca),
            "NODE_NO_WARNINGS": "1",
        }
        env.update(extra or {})
        return env

    def start_app(self, kind, name, **env_options):
        """kind: handler | node | python. Returns (process, base URL); waits for GET / = 200."""
        port = free_port()
        env = self.app_env(port, **env_options)
        argv = {
            "handler": [str(HANDLER)],
            "node": ["node", str(PEERS / "node" / "getsecret.js")],
            "python": [str(PYTHON), str(PEERS / "python" / "getsecret.py")],
        }[kind]
        if kind == "handler":
            env.update(HANDLER_ENV)
        proc = self.procs.start(name, argv, env, self.logs)
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(base, proc)
        return proc, base


class App:
    """One contender in the GetSecret comparison and how to call it."""

    def __init__(self, kind, proc, base, payload_file):
        self.kind = kind
        self.proc = proc
        self.base = base
        self.payload_file = payload_file

    def getsecret(self, **options):
        if self.kind == "handler":
            return loadgen(f"{self.base}/GetSecret", method="POST", body_file=self.payload_file,
                           headers=JSON_MODE_HEADERS, host_ids=True, expect=SECRET_VALUE, **options)
        return loadgen(f"{self.base}/api/secrets/{SECRET}", expect=SECRET_VALUE, **options)


def start_contenders(stack, prefix, getsecret_payload, **env_options):
    apps = {}
    for kind in ("handler", "node", "python"):
        proc, base = stack.start_app(kind, f"{prefix}-{kind}", **env_options)
        apps[kind] = App(kind, proc, base, getsecret_payload)
    return apps


# --------------------------------------------------------------------------- sections


def rotated(items, round_index):
    k = round_index % len(items)
    return items[k:] + items[:k]


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "all": values}


def cold_start(stack, cfg):
    env = stack.app_env(0)
    del env["FUNCTIONS_CUSTOMHANDLER_PORT"], env["FUNCTIONS_HTTPWORKER_PORT"]
    # Production: nothing sets SSL_CERT_FILE on Azure, so the TLS clients trust the system store.
    system_roots = {k: v for k, v in env.items() if k != "SSL_CERT_FILE"}
    contenders = {
        "handler": ([str(HANDLER)], system_roots),
        "handler_test_ca": ([str(HANDLER)], env),
        "node": (["node", str(PEERS / "node-minimal.js")], env),
    }
    samples = {name: [] for name in contenders}
    per_round = max(1, cfg["cold_runs"] // cfg["rounds"])
    for r in range(cfg["rounds"]):
        for name in rotated(list(contenders), r):
            program, program_env = contenders[name]
            argv = [str(COLDSTART), "--runs", str(per_round), "--interval-us", "250",
                    "--port-env", "FUNCTIONS_CUSTOMHANDLER_PORT",
                    "--port-env", "FUNCTIONS_HTTPWORKER_PORT", "--", *program]
            done = subprocess.run(argv, env=program_env, cwd=ROOT, capture_output=True, text=True,
                                  timeout=600)
            if done.returncode != 0:
                sys.exit(f"bench: coldstart {name} failed: {done.stderr.strip()}")
            samples[name] += json.loads(done.stdout)["samples_us"]
    out = {}
    for name, values in samples.items():
        values.sort()
        out[name] = {"runs": len(values), "median_us": statistics.median(values),
                     "p95_us": values[min(len(values) - 1, int(0.95 * len(values) + 0.999) - 1)],
                     "min_us": values[0], "max_us": values[-1]}
    out["ratio"] = out["node"]["median_us"] / out["handler"]["median_us"]
    out["system_roots"] = sum(1 for _ in Path("/etc/ssl/certs").glob("*")) if Path("/etc/ssl/certs").is_dir() else 0
    return out


def invocation_overhead(stack, cfg, tokeninfo_payload):
    handler, base = stack.start_app("handler", "overhead-handler")
    hello = stack.procs.start("hyper-hello", [str(HYPER_HELLO), "--port", "0"], stack.emu_env,
                              stack.logs)
    hello_base = ready_line(hello)["ready"]
    # Warm the token: every measured invocation is then served from the cache (no outbound I/O).
    warm = loadgen(f"{base}/TokenInfo", method="POST", body_file=tokeninfo_payload,
                   headers=JSON_MODE_HEADERS, requests=3, connections=1, expect=OK_OUTPUT)
    if warm["good"] != 3:
        sys.exit(f"bench: TokenInfo does not answer 200: {warm}; see {handler.log_path}")
    identity_before = http_json("GET", f"{stack.identity_url}/_emulator/requests")["count"]
    run = dict(seconds=cfg["overhead_seconds"], warmup=cfg["overhead_warmup_seconds"])
    # JSON mode: the host's envelope in, the envelope out. Forwarding mode: the request itself.
    modes = {
        "json": {
            "handler": lambda c: loadgen(f"{base}/TokenInfo", method="POST", body_file=tokeninfo_payload,
                                         headers=JSON_MODE_HEADERS, host_ids=True, expect=OK_OUTPUT,
                                         connections=c, **run),
            "hyper": lambda c: loadgen(f"{hello_base}/TokenInfo", method="POST", body_file=tokeninfo_payload,
                                       headers=JSON_MODE_HEADERS, host_ids=True, expect="Hello",
                                       connections=c, **run),
        },
        "forwarding": {
            "handler": lambda c: loadgen(f"{base}/api/token", headers=FORWARDED_HEADERS, host_ids=True,
                                         expect='"source"', connections=c, **run),
            "hyper": lambda c: loadgen(f"{hello_base}/api/token", headers=FORWARDED_HEADERS, host_ids=True,
                                       expect="Hello", connections=c, **run),
        },
    }
    results = {}
    for mode, calls in modes.items():
        results[mode] = {}
        for c in cfg["overhead_concurrency"]:
            rounds = []
            for r in range(cfg["overhead_rounds"]):
                got = {name: calls[name](c) for name in rotated(list(calls), r)}
                rounds.append(got)
            results[mode][c] = {
                "handler_rps": spread([g["handler"]["rps"] for g in rounds]),
                "hyper_rps": spread([g["hyper"]["rps"] for g in rounds]),
                "share": spread([g["handler"]["rps"] / g["hyper"]["rps"] for g in rounds]),
                "handler_p50": spread([g["handler"]["p50_us"] for g in rounds]),
                "handler_p99": spread([g["handler"]["p99_us"] for g in rounds]),
                "hyper_p50": spread([g["hyper"]["p50_us"] for g in rounds]),
                "hyper_p99": spread([g["hyper"]["p99_us"] for g in rounds]),
                "bad": sum(g["handler"]["bad"] + g["handler"]["errors"] + g["hyper"]["bad"]
                           + g["hyper"]["errors"] for g in rounds),
            }
    identity_after = http_json("GET", f"{stack.identity_url}/_emulator/requests")["count"]
    results["identity_requests_during"] = identity_after - identity_before
    stack.procs.stop(hello)
    stack.procs.stop(handler)
    return results


NO_SECRET_CACHE = {"SECRET_CACHE_SECONDS": "0"}


def getsecret_throughput(stack, cfg, getsecret_payload):
    # The cache off: every call reads the vault, as the peers do (they cache nothing).
    apps = start_contenders(stack, "getsecret", getsecret_payload, extra=NO_SECRET_CACHE)
    rss_idle = {kind: rss_kib(app.proc.pid) for kind, app in apps.items()}
    per_round = {kind: [] for kind in apps}
    c = cfg["getsecret_concurrency"]
    for r in range(cfg["rounds"]):
        for kind in rotated(list(apps), r):
            app = apps[kind]
            # Warm: the token and the challenge are learned, connections to the vault open.
            app.getsecret(connections=c, seconds=cfg["warmup_seconds"])
            before = cpu_seconds(app.proc.pid)
            vault_before = cpu_seconds(stack.keyvault.pid)
            got = app.getsecret(connections=c, seconds=cfg["getsecret_seconds"])
            used = cpu_seconds(app.proc.pid) - before
            vault_used = cpu_seconds(stack.keyvault.pid) - vault_before
            got["cpu_us_per_invocation"] = used * 1e6 / got["good"] if got["good"] else None
            got["vault_cpu_us"] = vault_used * 1e6 / got["good"] if got["good"] else None
            per_round[kind].append(got)
    rss_after = {kind: rss_kib(app.proc.pid) for kind, app in apps.items()}
    out = {}
    for kind, rounds in per_round.items():
        out[kind] = {
            "rps": spread([g["rps"] for g in rounds]),
            "p50": spread([g["p50_us"] for g in rounds]),
            "p99": spread([g["p99_us"] for g in rounds]),
            "cpu": spread([g["cpu_us_per_invocation"] for g in rounds]),
            "vault_cpu": spread([g["vault_cpu_us"] for g in rounds]),
            "bad": sum(g["bad"] + g["errors"] for g in rounds),
            "last_error": next((g["last_error"] for g in rounds if g["last_error"]), None),
            "rss_idle_kib": rss_idle[kind],
            "rss_after_kib": rss_after[kind],
        }
    for peer in ("node", "python"):
        out[f"rps_ratio_{peer}"] = spread([
            h["rps"] / p["rps"] if p["rps"] else None
            for h, p in zip(per_round["handler"], per_round[peer])])
        out[f"cpu_ratio_{peer}"] = spread([
            p["cpu_us_per_invocation"] / h["cpu_us_per_invocation"]
            if h["cpu_us_per_invocation"] and p["cpu_us_per_invocation"] else None
            for h, p in zip(per_round["handler"], per_round[peer])])
    for app in apps.values():
        stack.procs.stop(app.proc)
    return out


def secret_cache(stack, cfg, getsecret_payload):
    """The secret cache as production runs it (SECRET_CACHE_SECONDS unset: 60 s): vault requests
    for a burst of concurrent warm reads, and CPU per read served from memory."""
    proc, base = stack.start_app("handler", "cache-handler")
    app = App("handler", proc, base, getsecret_payload)
    first = app.getsecret(connections=1, requests=1)
    if first["good"] != 1:
        sys.exit(f"bench: GetSecret does not answer 200: {first}; see {proc.log_path}")
    n = cfg["cold_requests"]
    before = vault_admin(stack, "GET")["count"]
    burst = app.getsecret(connections=n, requests=n, timeout=120)
    burst_vault = vault_admin(stack, "GET")["count"] - before
    c = cfg["getsecret_concurrency"]
    rounds = []
    for _ in range(cfg["rounds"]):
        app.getsecret(connections=c, seconds=cfg["warmup_seconds"])
        cpu_before = cpu_seconds(proc.pid)
        vault_before = vault_admin(stack, "GET")["count"]
        got = app.getsecret(connections=c, seconds=cfg["getsecret_seconds"])
        used = cpu_seconds(proc.pid) - cpu_before
        got["cpu_us"] = used * 1e6 / got["good"] if got["good"] else None
        got["vault"] = vault_admin(stack, "GET")["count"] - vault_before
        rounds.append(got)
    stack.procs.stop(proc)
    return {
        "burst": {"requests": n, "good": burst["good"], "vault": burst_vault,
                  "others": not_good(burst)},
        "rps": spread([g["rps"] for g in rounds]),
        "cpu": spread([g["cpu_us"] for g in rounds]),
        "vault_during": sum(g["vault"] for g in rounds),
        "seconds": cfg["getsecret_seconds"] * cfg["rounds"],
        "bad": sum(g["bad"] + g["errors"] for g in rounds),
    }


def callgrind_instructions(stack, cfg, tokeninfo_payload, getsecret_payload):
    """Instructions per warm invocation under callgrind (user space, every thread): JSON-mode
    TokenInfo, forwarded TokenInfo, and JSON-mode GetSecret with the secret cache off (one vault
    round trip over a kept-alive TLS connection per call). Two runs from a fresh start that differ
    only in how many invocations they serve; the difference of their totals over the difference
    of the counts cancels start-up, warm-up and shutdown. Repeatable on a noisy machine, unlike
    timings."""
    if not shutil.which("valgrind"):
        return None
    out = {}
    short, long = cfg["callgrind_invocations"]
    for mode in ("json", "forwarding", "getsecret"):
        totals = []
        for n in (short, long):
            port = free_port()
            env = stack.app_env(port, extra=NO_SECRET_CACHE if mode == "getsecret" else None)
            env.update(HANDLER_ENV)
            dump = stack.state / f"callgrind-{mode}-{n}.out"
            dump.unlink(missing_ok=True)
            proc = stack.procs.start(f"callgrind-{mode}-{n}", [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}", str(HANDLER)],
                env, stack.logs)
            base = f"http://127.0.0.1:{port}"
            wait_http_ok(base, proc, timeout=180)
            if mode == "json":
                call = lambda k: loadgen(f"{base}/TokenInfo", method="POST", body_file=tokeninfo_payload,
                                         headers=JSON_MODE_HEADERS, host_ids=True, expect=OK_OUTPUT,
                                         connections=1, requests=k, timeout=120)
            elif mode == "forwarding":
                call = lambda k: loadgen(f"{base}/api/token", headers=FORWARDED_HEADERS, host_ids=True,
                                         expect='"source"', connections=1, requests=k, timeout=120)
            else:
                call = lambda k: loadgen(f"{base}/GetSecret", method="POST", body_file=getsecret_payload,
                                         headers=JSON_MODE_HEADERS, host_ids=True, expect=SECRET_VALUE,
                                         connections=1, requests=k, timeout=120)
            warm = call(20)
            got = call(n)
            if warm["good"] != 20 or got["good"] != n:
                sys.exit(f"bench: {mode} under callgrind failed: {got}; see {proc.log_path}")
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(120)
            stack.procs.stop(proc)
            totals.append(callgrind_total(dump))
        out[mode] = (totals[1] - totals[0]) / (long - short)
    out["invocations"] = [short, long]
    return out


def callgrind_total(dump):
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    sys.exit(f"bench: no totals in {dump}")


def vault_admin(stack, method):
    """The Key Vault emulator's admin endpoint is on its HTTPS listener."""
    import ssl
    context = ssl.create_default_context(cafile=str(stack.ca))
    request = urllib.request.Request(f"{stack.vault_url}/_emulator/requests", method=method)
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return json.loads(response.read() or b"null")


def identity_admin(stack, method, base=None):
    return http_json(method, f"{base or stack.identity_url}/_emulator/requests")


def token_economy(stack, cfg, tokeninfo_payload, getsecret_payload):
    n = cfg["cold_requests"]
    out = {"concurrent": n}
    # 1. N concurrent cold TokenInfo on a fresh handler: identity-endpoint requests.
    identity_admin(stack, "DELETE")
    handler, base = stack.start_app("handler", "cold-tokeninfo-handler")
    got = loadgen(f"{base}/TokenInfo", method="POST", body_file=tokeninfo_payload,
                  headers=JSON_MODE_HEADERS, host_ids=True, expect=OK_OUTPUT,
                  connections=n, requests=n, timeout=120)
    out["tokeninfo"] = {"good": got["good"], "identity": identity_admin(stack, "GET")["count"],
                        "seconds": got["seconds"], "others": not_good(got)}
    stack.procs.stop(handler)
    # 2. N concurrent cold GetSecret on each fresh app: vault and identity requests.
    out["getsecret"] = {}
    for kind in ("handler", "node", "python"):
        identity_admin(stack, "DELETE")
        vault_admin(stack, "DELETE")
        proc, base = stack.start_app(kind, f"cold-getsecret-{kind}")
        app = App(kind, proc, base, getsecret_payload)
        got = app.getsecret(connections=n, requests=n, timeout=120)
        vault = vault_admin(stack, "GET")
        out["getsecret"][kind] = {
            "good": got["good"], "bad": got["bad"] + got["errors"], "seconds": got["seconds"],
            "vault": vault["count"], "unauthenticated": vault["unauthenticated"],
            "identity": identity_admin(stack, "GET")["count"], "last_error": got["last_error"],
            "others": not_good(got),
        }
        stack.procs.stop(proc)
    # 3. Steady traffic with short-lived tokens: each app as its own user-assigned identity on one
    #    identity emulator, all three at once, counting token requests per client id.
    out["steady"] = steady_traffic(stack, cfg, getsecret_payload)
    return out


def steady_traffic(stack, cfg, getsecret_payload):
    lifetime = cfg["short_token_lifetime"]
    ids = {kind: f"00000000-0000-4000-8000-0000000{i}0c01" for i, kind in
           enumerate(("handler", "node", "python"), start=1)}
    oids = {kind: f"00000000-0000-4000-8000-0000000{i}0c02" for i, kind in
            enumerate(("handler", "node", "python"), start=1)}
    identity_config = json.loads((ROOT / "scripts/local/identity.json").read_text())
    identity_config["token_lifetime_secs"] = lifetime
    for kind in ids:
        identity_config["identities"].append({
            "name": f"bench-{kind}", "client_id": ids[kind], "object_id": oids[kind],
            "resource_id": f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-bench/providers/Microsoft.ManagedIdentity/userAssignedIdentities/bench-{kind}",
            "roles": {}})
    vault_config = json.loads((ROOT / "scripts/local/keyvault.json").read_text())
    for oid in oids.values():
        vault_config["access"][oid] = {"get": [SECRET]}
    identity_path = stack.state / "identity-short.json"
    vault_path = stack.state / "keyvault-short.json"
    identity_path.write_text(json.dumps(identity_config))
    vault_path.write_text(json.dumps(vault_config))
    identity, identity_url, secret = stack.start_identity("identity-short", identity_path)
    keyvault, vault_url = stack.start_keyvault("keyvault-short", vault_path, identity_url)
    apps = {}
    for kind in ids:
        proc, base = stack.start_app(kind, f"steady-{kind}", identity_url=identity_url,
                                     identity_secret=secret, vault_url=vault_url,
                                     extra={"AZURE_CLIENT_ID": ids[kind], **NO_SECRET_CACHE})
        apps[kind] = App(kind, proc, base, getsecret_payload)
    # The peers name their identity in code, as their SDKs document (AZURE_CLIENT_ID is only
    # read by DefaultAzureCredential); getsecret.js/.py read it from AZURE_CLIENT_ID too.
    runners = []
    for kind, app in apps.items():
        if kind == "handler":
            argv = [str(LOADGEN), "--url", f"{app.base}/GetSecret", "--method", "POST",
                    "--body-file", str(getsecret_payload), "--header", JSON_MODE_HEADERS[0],
                    "--host-ids", "1"]
        else:
            argv = [str(LOADGEN), "--url", f"{app.base}/api/secrets/{SECRET}"]
        argv += ["--expect", SECRET_VALUE, "--connections", "2", "--duration",
                 str(cfg["steady_seconds"]), "--pause-ms", str(cfg["steady_pause_ms"])]
        runners.append((kind, subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)))
    loads = {kind: json.loads(p.communicate(timeout=cfg["steady_seconds"] + 120)[0])
             for kind, p in runners}
    requests = identity_admin(stack, "GET", identity_url)["requests"]
    out = {"lifetime": lifetime, "seconds": cfg["steady_seconds"]}
    for kind in ids:
        count = sum(1 for r in requests
                    if ids[kind] in json.dumps(r.get("query", {})))
        out[kind] = {"identity": count, "good": loads[kind]["good"],
                     "bad": loads[kind]["bad"] + loads[kind]["errors"]}
    for app in apps.values():
        stack.procs.stop(app.proc)
    stack.procs.stop(keyvault)
    stack.procs.stop(identity)
    return out


def memory_and_size(stack, cfg, tokeninfo_payload, getsecret_payload):
    handler, base = stack.start_app("handler", "memory-handler")
    time.sleep(0.5)
    idle = rss_kib(handler.pid)
    half = cfg["memory_invocations"] // 2
    a = loadgen(f"{base}/TokenInfo", method="POST", body_file=tokeninfo_payload,
                headers=JSON_MODE_HEADERS, host_ids=True, expect=OK_OUTPUT,
                connections=32, requests=half)
    b = loadgen(f"{base}/GetSecret", method="POST", body_file=getsecret_payload,
                headers=JSON_MODE_HEADERS, host_ids=True, expect=SECRET_VALUE,
                connections=32, requests=cfg["memory_invocations"] - half)
    time.sleep(0.5)
    after = rss_kib(handler.pid)
    peak = rss_kib(handler.pid, "VmHWM")
    stack.procs.stop(handler)
    zip_path = ROOT / "dist" / "app.zip"
    return {
        "idle_kib": idle, "after_kib": after, "peak_kib": peak,
        "invocations": a["good"] + b["good"], "failed": a["bad"] + a["errors"] + b["bad"] + b["errors"],
        "zip_bytes": zip_path.stat().st_size if zip_path.exists() else None,
        "binary_bytes": HANDLER.stat().st_size,
    }


# --------------------------------------------------------------------------- report


def machine():
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, {mem_kib / 1048576:.1f} GiB RAM, Linux {platform.release()}"


def versions():
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return "?"
    node_pkgs = json.loads((PEERS / "node" / "package.json").read_text())["dependencies"]
    return {
        "rustc": out(["rustc", "--version"]),
        "node": out(["node", "--version"]),
        "python": out([str(PYTHON), "--version"]),
        "node_sdks": ", ".join(f"{k}@{v}" for k, v in node_pkgs.items()),
        "python_sdks": ", ".join(line.strip() for line in
                                 (ROOT / "scripts/reference-clients/requirements.txt").read_text().splitlines()
                                 if line.strip() and not line.startswith("#")),
    }


def ms(us):
    return f"{us / 1000:.2f} ms"


def fmt_spread(s, fmt, unit=""):
    if s is None:
        return "n/a"
    if s["min"] == s["max"]:
        return f"{fmt(s['median'])}{unit}"
    return f"{fmt(s['median'])}{unit} ({fmt(s['min'])}–{fmt(s['max'])})"


def verdict(ok):
    return "meets" if ok else "**short**"


def report(results, cfg, smoke, command, started, elapsed):
    cold, ovh, gs, tok, mem = (results[k] for k in ("cold", "overhead", "getsecret", "tokens", "memory"))
    v = results["versions"]
    rounds = cfg["rounds"]
    num = lambda x: f"{x:,.0f}"
    mem_failed = f", {mem['failed']} failed" if mem["failed"] else ""
    lines = [
        "# Benchmarks" + (" (smoke run: tiny counts, numbers meaningless)" if smoke else ""),
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')} (took {elapsed:.0f} s)",
        f"- machine: {results['machine']} (shared and noisy)",
        f"- command: `{command}`",
        f"- toolchain: {v['rustc']}; Node {v['node']} ({v['node_sdks']}); {v['python']} ({v['python_sdks']})",
        f"- every figure: median over {rounds} interleaved round(s) ({cfg['overhead_rounds']} for section 2's throughput), (min–max) across rounds where they differ;"
        " ratios are computed per round, side by side, then summarized the same way.",
        f"- load average (1, 5, 15 min) at the start: {', '.join(f'{x:.2f}' for x in results['load_before'])}; at the end: "
        f"{', '.join(f'{x:.2f}' for x in results['load_after'])} (other work on the same CPUs)",
        "",
        "## Summary against the project's aims",
        "",
        "| aim | measured | |",
        "|---|---|---|",
    ]
    steady = tok["steady"]
    cg, sc = results.get("callgrind"), results["secret_cache"]
    conns = cfg["overhead_concurrency"]
    pct = lambda x: f"{x:.0%}"
    shares = {mode: [ovh[mode][c]["share"]["median"] for c in conns] for mode in ("forwarding", "json")}
    share_text = lambda mode: ", ".join(pct(x) for x in shares[mode])
    cpu_uncached = gs["handler"]["cpu"]["median"] if gs["handler"]["cpu"] else None
    gs_instructions = f" ({cg['getsecret']:,.0f} instructions per call under callgrind)" if cg else ""
    lines += [
        f"| cold start ≤ 5 ms with the system's roots (as on Azure) | handler median {ms(cold['handler']['median_us'])}, p95 {ms(cold['handler']['p95_us'])} "
        f"(test CA only: {ms(cold['handler_test_ca']['median_us'])}) | {verdict(cold['handler']['median_us'] <= 5000)} |",
        f"| cold start ≥ 10× faster than a minimal Node server | {cold['ratio']:.1f}× | {verdict(cold['ratio'] >= 10)} |",
        f"| ≥ 70% of bare hyper, forwarding mode (`GET /api/token`) | at 1/32/128 connections: {share_text('forwarding')} | {verdict(min(shares['forwarding']) >= 0.7)} |",
        f"| ≥ 60% of bare hyper, JSON mode (`POST /TokenInfo`) | at 1/32/128 connections: {share_text('json')} | {verdict(min(shares['json']) >= 0.6)} |",
        (f"| ≤ 60,000 instructions per warm JSON-mode TokenInfo (callgrind) | {cg['json']:,.0f} (forwarding mode: {cg['forwarding']:,.0f}) | {verdict(cg['json'] <= 60000)} |"
         if cg else "| ≤ 60,000 instructions per warm JSON-mode TokenInfo (callgrind) | valgrind not installed | – |"),
        f"| GetSecret ≤ 50 µs CPU per invocation, cache off | {cpu_uncached:.0f} µs{gs_instructions} | {verdict(cpu_uncached <= 50)} |" if cpu_uncached else "| GetSecret ≤ 50 µs CPU, cache off | n/a | – |",
        f"| 0 vault requests for {sc['burst']['requests']:,} concurrent warm reads (secret cache) | {sc['burst']['vault']} | {verdict(sc['burst']['vault'] == 0)} |",
        f"| ≥ 3× the Node peer's GetSecret throughput (cache off) | {gs['rps_ratio_node']['median']:.2f}× | {verdict(gs['rps_ratio_node']['median'] >= 3)} |",
        f"| ≤ 15 MB RSS after 10,000 invocations | {mem['after_kib'] / 1024:.1f} MiB after {mem['invocations']:,} | {verdict(mem['after_kib'] <= 15 * 1024)} |",
        f"| one endpoint request per key per token lifetime | cold burst: {tok['tokeninfo']['identity']} request for {tok['concurrent']:,} concurrent TokenInfo, "
        f"{tok['getsecret']['handler']['identity']} for {tok['concurrent']:,} concurrent GetSecret | {verdict(tok['tokeninfo']['identity'] == 1 and tok['getsecret']['handler']['identity'] == 1)} |",
        "| | steady, 24 h tokens: 2 per token lifetime (refreshed from half-life on, by design; see section 4 below) | **short** (policy) |",
        "",
        "Where the time goes and what limits the short figures: docs/performance.md (profiles with perf and callgrind).",
        "",
        "## 1. Cold start: exec → first 200 on GET /",
        "",
        f"{cold['handler']['runs']} starts each, alternating in {rounds} batch(es); the poller connects every 250 µs. "
        "handler runs with the app root = the repository and the identity and Key Vault settings pointing at the emulators (no network call at start-up). "
        f"**System roots** is the production configuration: no `SSL_CERT_FILE`, so the TLS clients trust the system store ({cold['system_roots']} entries under /etc/ssl/certs here), "
        "read in the background after the listener answers; **test CA** sets `SSL_CERT_FILE` to the local stack's CA alone.",
        "",
        "| process | median | p95 | min | max |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("handler", "`handler` (release), system roots"),
                        ("handler_test_ca", "`handler` (release), test CA (`SSL_CERT_FILE`)"),
                        ("node", "Node.js minimal `node:http` server (benches/peers/node-minimal.js)")):
        c = cold[name]
        lines.append(f"| {label} | {ms(c['median_us'])} | {ms(c['p95_us'])} | {ms(c['min_us'])} | {ms(c['max_us'])} |")
    lines += [
        f"| **Node ÷ handler with system roots (median)** | **{cold['ratio']:.1f}×** | | | |",
        "",
        "## 2. Invocation overhead: TokenInfo (token cached) vs bare hyper",
        "",
        f"`loadgen` (one thread, separate process) sends N keep-alive connections' worth of requests for {cfg['overhead_seconds']:g} s after "
        f"{cfg['overhead_warmup_seconds']:g} s warm-up, in {cfg['overhead_rounds']} rounds that alternate which contender goes first, each with a fresh `X-Azure-Functions-InvocationId`; hyper-hello gets the same requests and answers `Hello, World!`. "
        "**Forwarding mode** (`enableForwardingHttpRequest`): `GET /api/token` as the host forwards it. **JSON mode**: the host-shaped "
        f"`POST /TokenInfo` envelope (~0.6 KB). Identity-endpoint requests during the measured runs: {ovh['identity_requests_during']} (no outbound I/O).",
        "",
        "| mode | connections | handler req/s | hyper req/s | **handler ÷ hyper** | handler p50 / p99 | hyper p50 / p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in ("forwarding", "json"):
        for c in conns:
            r = ovh[mode][c]
            lines.append(
                f"| {mode} | {c} | {fmt_spread(r['handler_rps'], num)} | {fmt_spread(r['hyper_rps'], num)} | **{fmt_spread(r['share'], pct)}** | "
                f"{ms(r['handler_p50']['median'])} / {ms(r['handler_p99']['median'])} | {ms(r['hyper_p50']['median'])} / {ms(r['hyper_p99']['median'])} |")
    if cg:
        lines += [
            "",
            f"**Instructions per warm invocation** (valgrind --tool=callgrind, user space, every thread of the handler; two runs of "
            f"{cg['invocations'][0]} and {cg['invocations'][1]} invocations after 20 warm-up ones, over 1 connection, the difference ÷ "
            f"{cg['invocations'][1] - cg['invocations'][0]}): JSON-mode TokenInfo **{cg['json']:,.0f}**, forwarded `GET /api/token` **{cg['forwarding']:,.0f}**; "
            f"JSON-mode GetSecret with the secret cache off (one vault read over a kept-alive TLS connection) **{cg['getsecret']:,.0f}**.",
        ]
    lines += [
        "",
        f"## 3. GetSecret end to end against the Key Vault emulator ({cfg['getsecret_concurrency']} connections, warm token, secret cache off)",
        "",
        "handler is driven as the host drives it (JSON mode, `POST /GetSecret` with the host's payload) with `SECRET_CACHE_SECONDS=0`, so that "
        "every call reads the vault as the peers do; the peers, plain HTTP "
        f"servers, with `GET /api/secrets/{SECRET}`. All three against the same identity and Key Vault emulators (HTTPS, test CA "
        "trusted through SSL_CERT_FILE / NODE_EXTRA_CA_CERTS / REQUESTS_CA_BUNDLE). CPU = utime+stime of the app process "
        f"over the measured {cfg['getsecret_seconds']:g} s ÷ invocations (10 ms tick resolution).",
        "",
        "| app | req/s | p50 | p99 | CPU per invocation | RSS idle → after | Key Vault emulator CPU per request |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {"handler": "`handler` (Rust SDK)", "node": "Node (@azure/identity + @azure/keyvault-secrets)",
              "python": "Python (azure-identity + azure-keyvault-secrets)"}
    for kind in ("handler", "node", "python"):
        g = gs[kind]
        bad = f" — {g['bad']} failed ({g['last_error']})" if g["bad"] else ""
        lines.append(
            f"| {labels[kind]}{bad} | {fmt_spread(g['rps'], num)} | {fmt_spread(g['p50'], lambda x: f'{x / 1000:.2f}', ' ms')} | "
            f"{fmt_spread(g['p99'], lambda x: f'{x / 1000:.2f}', ' ms')} | {fmt_spread(g['cpu'], lambda x: f'{x:.0f}', ' µs')} | "
            f"{g['rss_idle_kib'] / 1024:.1f} → {g['rss_after_kib'] / 1024:.1f} MiB | {fmt_spread(g['vault_cpu'], lambda x: f'{x:.0f}', ' µs')} |")
    times = lambda x: f"{x:.2f}×"
    sc_bad = f" ({sc['bad']:,} not answered 200)" if sc["bad"] else ""
    lines += [
        f"| **handler ÷ Node** | **{fmt_spread(gs['rps_ratio_node'], times)}** throughput | | | Node uses **{fmt_spread(gs['cpu_ratio_node'], times)}** the CPU | | |",
        f"| **handler ÷ Python** | **{fmt_spread(gs['rps_ratio_python'], times)}** throughput | | | Python uses **{fmt_spread(gs['cpu_ratio_python'], times)}** the CPU | | |",
        "",
        "**The secret cache** (production default, `SECRET_CACHE_SECONDS` unset = 60 s), on a fresh handler after one read:",
        "",
        "| figure | value |",
        "|---|---|",
        f"| vault requests for {sc['burst']['requests']:,} concurrent warm reads over {sc['burst']['requests']:,} connections | **{sc['burst']['vault']}** ({sc['burst']['good']:,} answered 200{fmt_others(sc['burst']['others'])}) |",
        f"| cached GetSecret, {cfg['getsecret_concurrency']} connections | {fmt_spread(sc['rps'], num)} req/s, **{fmt_spread(sc['cpu'], lambda x: f'{x:.0f}', ' µs')}** CPU per invocation{sc_bad} |",
        f"| vault requests during those {sc['seconds']:g} s | {sc['vault_during']} |",
        "",
        "## 4. Token economy",
        "",
        f"{tok['concurrent']:,} requests sent at once over {tok['concurrent']:,} connections to a freshly started app (nothing cached); "
        "requests counted at the emulators' `/_emulator/requests`. handler runs as in production, its secret cache on: concurrent "
        "misses of one secret share one vault read.",
        "",
        "| app | identity-endpoint requests | Key Vault requests (unauthenticated challenge probes) | answered 200 |",
        "|---|---|---|---|",
        f"| `handler`, TokenInfo | {tok['tokeninfo']['identity']} | – | {tok['tokeninfo']['good']:,}{fmt_others(tok['tokeninfo']['others'])} |",
    ]
    for kind in ("handler", "node", "python"):
        g = tok["getsecret"][kind]
        lines.append(f"| {labels[kind]}, GetSecret | {g['identity']} | {g['vault']:,} ({g['unauthenticated']:,}) | {g['good']:,}{fmt_others(g['others'])} |")
    lines += [
        "",
        f"**Steady traffic with short-lived tokens** (measured): identity emulator issuing {steady['lifetime']} s tokens; each app "
        f"as its own user-assigned identity, all three at once, 2 connections each pausing {cfg['steady_pause_ms']} ms between "
        f"GetSecret calls for {steady['seconds']:g} s (handler's secret cache off, so every call needs a token); token requests counted per client id.",
        "",
        "| app | identity-endpoint requests | GetSecret answered |",
        "|---|---|---|",
    ]
    for kind in ("handler", "node", "python"):
        s = steady[kind]
        failed = f" ({s['bad']} failed)" if s["bad"] else ""
        lines.append(f"| {labels[kind]} | {s['identity']} | {s['good']:,}{failed} |")
    lines += [
        "",
        "A simulated day of steady traffic, from the cache policy (crates/managed-identity/src/cache.rs, lifetime.rs `refresh_on`): a token is "
        "never handed out with less than 5 minutes left, so a token living L < 2 h is fetched again every L − 5 min (above: "
        f"{steady['lifetime']} s tokens → one request per {steady['lifetime'] - 300} s, so ⌈{steady['seconds']:g} / {steady['lifetime'] - 300}⌉ = "
        f"{-(-int(steady['seconds']) // (steady['lifetime'] - 300))} expected, as measured); a token living ≥ 2 h (App Service issues "
        "24 h tokens) is refreshed in the background from half its life on while the cached one keeps being served, and single-flight "
        "makes concurrent misses one request. Per identity and resource that is 1 request at the first call and then 1 every 12 h: "
        "**2 per day per key** with 24 h tokens (1 per half-life, i.e. 2 per token lifetime), independent of traffic.",
        "",
        "## 5. Memory and size",
        "",
        "| figure | value |",
        "|---|---|",
        f"| handler VmRSS at idle (started, GET / answered) | {mem['idle_kib'] / 1024:.1f} MiB |",
        f"| handler VmRSS after {mem['invocations']:,} invocations (half TokenInfo, half GetSecret, 32 connections) | {mem['after_kib'] / 1024:.1f} MiB (peak VmHWM {mem['peak_kib'] / 1024:.1f} MiB){mem_failed} |",
        f"| `handler` binary (release, stripped) | {mem['binary_bytes'] / 1048576:.2f} MiB |",
        f"| deploy zip `dist/app.zip` (scripts/package) | {mem['zip_bytes'] / 1048576:.2f} MiB |" if mem["zip_bytes"] else "| deploy zip | not built |",
        "",
    ]
    return "\n".join(lines)


SECTIONS = ("cold", "overhead", "callgrind", "getsecret", "secret_cache", "tokens", "memory")


def main():
    global HANDLER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, a few seconds in all")
    parser.add_argument("--out", help="where to write the Markdown (default BENCHMARKS.md; smoke: .local/bench/BENCHMARKS-smoke.md)")
    parser.add_argument("--command", default="scripts/bench", help="the command line to record")
    parser.add_argument("--only", help=f"comma-separated sections to run ({', '.join(SECTIONS)}); "
                        "prints their raw results as JSON and writes no report (for trying a change)")
    parser.add_argument("--handler", help="the handler binary to measure (default: ./handler, as scripts/package leaves it)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the handler wherever it is measured but the cold start (repeatable), e.g. LD_PRELOAD=<allocator>")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    if not only <= set(SECTIONS):
        parser.error(f"--only takes {', '.join(SECTIONS)}")
    if args.handler:
        HANDLER = Path(args.handler).resolve()
    for pair in args.env:
        name, _, value = pair.partition("=")
        HANDLER_ENV[name] = value
    cfg = SMOKE if args.smoke else FULL
    state = ROOT / ".local" / "bench"
    out = Path(args.out) if args.out else (state / "BENCHMARKS-smoke.md" if args.smoke else ROOT / "BENCHMARKS.md")
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    procs = Processes()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        state.mkdir(parents=True, exist_ok=True)
        tokeninfo_payload = state / "tokeninfo.json"
        getsecret_payload = state / "getsecret.json"
        tokeninfo_payload.write_text(json.dumps(host_payload("http://localhost:7071/api/token", {})))
        getsecret_payload.write_text(json.dumps(host_payload(
            f"http://localhost:7071/api/secrets/{SECRET}", {"name": SECRET})))
        stack = Stack(procs, state, args.smoke)
        results = {"machine": machine(), "versions": versions(), "load_before": os.getloadavg()}
        step = lambda name: print(f"bench: {name} ({time.monotonic() - t0:.0f} s)", flush=True)
        sections = [
            ("cold", "1/5 cold start", lambda: cold_start(stack, cfg)),
            ("overhead", "2/5 invocation overhead", lambda: invocation_overhead(stack, cfg, tokeninfo_payload)),
            ("callgrind", "2/5 instructions per invocation (callgrind)",
             lambda: callgrind_instructions(stack, cfg, tokeninfo_payload, getsecret_payload)),
            ("getsecret", "3/5 GetSecret end to end", lambda: getsecret_throughput(stack, cfg, getsecret_payload)),
            ("secret_cache", "3/5 the secret cache", lambda: secret_cache(stack, cfg, getsecret_payload)),
            ("tokens", "4/5 token economy", lambda: token_economy(stack, cfg, tokeninfo_payload, getsecret_payload)),
            ("memory", "5/5 memory and size", lambda: memory_and_size(stack, cfg, tokeninfo_payload, getsecret_payload)),
        ]
        for key, name, run in sections:
            if key in only:
                step(name)
                results[key] = run()
        results["load_after"] = os.getloadavg()
    finally:
        procs.stop_all()
    elapsed = time.monotonic() - t0
    if args.only:
        print(json.dumps({k: v for k, v in results.items() if k != "versions"}, indent=1, default=str))
        return
    (state / ("results-smoke.json" if args.smoke else "results.json")).write_text(
        json.dumps(results, indent=1, default=str))
    text = report(results, cfg, args.smoke, args.command, started, elapsed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"bench: wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} in {elapsed:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
