#!/usr/bin/env bash
# testssl.sh [RINGWAY] - scans a ringway TLS listener with testssl.sh
# (Debian package testssl.sh, command `testssl`) and fails on:
#  - a protocol other than TLS 1.2 and 1.3 offered;
#  - a cipher without forward secrecy offered (each offered cipher, from
#    -E, must have an ECDHE or DHE key exchange, or be TLS 1.3), or a weak
#    cipher category (-s) offered;
#  - any finding of the vulnerability checks (-U) with a severity other than
#    OK or INFO.
# Builds nothing: RINGWAY (default build-dev/ringway) is started on a free
# port of 127.0.0.1 with a generated ECDSA P-256 certificate and no routes.
# Exit: 0 clean, 1 findings or errors, 77 testssl.sh missing (a skip).
# Takes about 2.5-3 minutes on a 2-core machine (-E alone about 90 s), too long
# for the Criterion suite: run it by hand or in a nightly job.
# Env: TESTSSL (the scanner command), KEEP=1 keeps the work directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
rw=${1:-$root/build-dev/ringway}
scanner=${TESTSSL:-$(command -v testssl.sh || command -v testssl || true)}
if [ -z "$scanner" ]; then
    echo "testssl.sh: not installed (apt-get install testssl.sh); skipped" >&2
    exit 77
fi
[ -x "$rw" ] || { echo "testssl.sh: $rw is not an executable" >&2; exit 1; }

work=$(mktemp -d /tmp/rw-testssl.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    [ "${KEEP:-0}" = 1 ] && echo "testssl.sh: work directory kept: $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/tls.key" \
    -out "$work/tls.crt" -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/ringway.yaml" <<EOF
listen:
  - address: "127.0.0.1:$port"
    tls:
      certificates:
        - {cert_file: $work/tls.crt, key_file: $work/tls.key}
EOF
"$rw" -c "$work/ringway.yaml" --workers 1 --no-pin --log-level warn >"$work/ringway.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { echo "testssl.sh: ringway exited:" >&2; cat "$work/ringway.log" >&2; exit 1; }
    sleep 0.1
done

start=$(date +%s)
# testssl.sh's own exit status counts findings in ways we judge below instead.
"$scanner" --quiet --color 0 --warnings off --openssl-timeout 10 --jsonfile "$work/scan.json" \
    -p -s -f -E -U --ip one "127.0.0.1:$port" >"$work/scan.txt" 2>&1 || true
took=$(($(date +%s) - start))
if [ ! -s "$work/scan.json" ]; then
    echo "testssl.sh: no JSON from the scanner:" >&2
    cat "$work/scan.txt" >&2
    exit 1
fi

python3 - "$work/scan.json" "$took" <<'EOF'
import json, sys

findings = json.load(open(sys.argv[1]))
if isinstance(findings, dict):  # --jsonfile-pretty layout
    findings = [f for s in findings.get("scanResult", []) for v in s.values() if isinstance(v, list) for f in v]
protocols = {"SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"}
# -U's checks (testssl 3.0 ids; RC4, BEAST and LUCKY13 as it names them)
vulns = {"heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego", "secure_client_renego", "CRIME_TLS",
         "BREACH", "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "DROWN_hint", "LOGJAM",
         "LOGJAM-common_primes", "BEAST", "BEAST_CBC_TLS1", "BEAST_CBC_SSL3", "LUCKY13", "RC4",
         "winshock", "GREASE"}
# the AEAD category (forward secrecy is judged per cipher below)
fs_ok = {"cipherlist_STRONG", "cipherlist_STRONG_FS", "cipherlist_STRONG_PFS"}
ciphers = []
bad, offered = [], []
for f in findings:
    fid, sev, text = f.get("id", ""), f.get("severity", ""), str(f.get("finding", ""))
    if fid in protocols:
        if text.startswith("offered"):
            offered.append(fid)
            if fid not in ("TLS1_2", "TLS1_3"):
                bad.append(f"protocol {fid} offered")
    elif fid.startswith("cipherlist_") and fid not in fs_ok:
        if text.startswith("offered"):
            bad.append(f"{fid}: {text} (ciphers without forward secrecy or weak)")
    elif fid.startswith("cipher-"):
        # "TLS 1.2   xc02b   ECDHE-ECDSA-AES128-GCM-SHA256   ECDH 253   AESGCM ..."
        tok = text.split()
        ciphers.append(tok[3] if len(tok) > 3 else text)
        if len(tok) < 5 or not (tok[1] == "1.3" or tok[4] in ("ECDH", "DH")):
            bad.append(f"cipher without forward secrecy: {text}")
    elif fid in vulns or fid.startswith("CVE"):
        if sev not in ("OK", "INFO"):
            bad.append(f"{fid} [{sev}]: {text}")
    elif fid == "scanProblem" or sev in ("HIGH", "CRITICAL", "WARN", "FATAL"):
        bad.append(f"{fid} [{sev}]: {text}")
print(f"testssl.sh: {len(findings)} findings in {sys.argv[2]} s; protocols offered: {' '.join(offered) or 'none'}")
print(f"testssl.sh: ciphers offered: {' '.join(ciphers) or 'none'}")
if not offered or not ciphers:
    bad.append("no protocol or cipher found: the scan did not reach ringway")
for b in bad:
    print(f"testssl.sh: FAIL {b}")
sys.exit(1 if bad else 0)
EOF
