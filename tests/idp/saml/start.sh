#!/usr/bin/env bash
# Start a throw-away SimpleSAMLphp SAML 2.0 IdP (Debian's simplesamlphp 1.19)
# on 127.0.0.1 with PHP's built-in web server.
#
# usage: start.sh --workdir DIR --port N --sp-entity-id ID --acs-url URL
#                 [--users FILE] [--idp-entity-id ID] [--slo-url URL]
#                 [--timeout SECONDS]
#
#   --workdir DIR      everything (config, key, cert, sessions, logs) goes here;
#                      created if missing. Nothing is written outside DIR.
#   --port N           TCP port on 127.0.0.1. php -S cannot bind port 0, so
#                      pass a free port, or "--port 0" to make this
#                      script pick one (small race, see README); the port
#                      chosen is in the "listening on" line and DIR/idp.json.
#   --sp-entity-id ID  the SP's entityID (Issuer of its AuthnRequests)
#   --acs-url URL      the SP's AssertionConsumerService URL (HTTP-POST)
#   --users FILE       JSON list of users (see README); default: alice@corp.test
#   --idp-entity-id ID default http://127.0.0.1:PORT/saml2/idp/metadata.php
#   --slo-url URL      optional SP SingleLogoutService URL (HTTP-Redirect)
#   --sp-signing-cert-file FILE
#                      AuthnRequests must be signed (validate.authnrequest) by
#                      the SP certificate (PEM) in FILE, read on every request
#   --sp-encryption-cert-file FILE
#                      assertions are encrypted (assertion.encryption) to the SP
#                      certificate (PEM) in FILE, read on every request
#   --encrypt-nameid   NameIDs are encrypted (nameid.encryption) to that same
#                      certificate: in assertions and in the IdP's LogoutRequests
#                      (needs --sp-encryption-cert-file)
#   --unsigned-response
#                      sign only the assertion, not the Response
#   --timeout S        how long to wait for the server to answer (default 30)
#
# Runs in the foreground: after the config is written the script execs php, so
# the PID of this script IS the server's PID (also written to DIR/server.pid);
# kill it (SIGTERM/SIGINT/SIGKILL) to stop the IdP. Once the IdP answers, a
# background helper prints exactly one line to stdout:
#     listening on http://127.0.0.1:PORT
# and DIR/idp.crt, DIR/idp.json, DIR/idp-metadata.xml are ready.
# On failure it prints "start.sh: ERROR ..." to stderr and the server is killed.
# Server and SimpleSAMLphp logs: DIR/server.log, DIR/log/simplesamlphp.log.
set -euo pipefail

SSP_DIR=${SSP_DIR:-/usr/share/simplesamlphp}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "start.sh: ERROR: $*" >&2; exit 1; }

WORKDIR= PORT= SP_ENTITY_ID= ACS_URL= USERS_FILE= IDP_ENTITY_ID= SLO_URL= SP_SIGNING_CERT_FILE= SP_ENCRYPTION_CERT_FILE= ENCRYPT_NAMEID= UNSIGNED_RESPONSE= TIMEOUT=30
while [ $# -gt 0 ]; do
    case "$1" in
        --workdir) WORKDIR=${2:?}; shift 2 ;;
        --port) PORT=${2:?}; shift 2 ;;
        --sp-entity-id) SP_ENTITY_ID=${2:?}; shift 2 ;;
        --acs-url) ACS_URL=${2:?}; shift 2 ;;
        --users) USERS_FILE=${2:?}; shift 2 ;;
        --idp-entity-id) IDP_ENTITY_ID=${2:?}; shift 2 ;;
        --slo-url) SLO_URL=${2:?}; shift 2 ;;
        --sp-signing-cert-file) SP_SIGNING_CERT_FILE=${2:?}; shift 2 ;;
        --sp-encryption-cert-file) SP_ENCRYPTION_CERT_FILE=${2:?}; shift 2 ;;
        --encrypt-nameid) ENCRYPT_NAMEID=1; shift ;;
        --unsigned-response) UNSIGNED_RESPONSE=1; shift ;;
        --timeout) TIMEOUT=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[ -n "$WORKDIR" ] || die "--workdir is required"
[ -n "$PORT" ] || die "--port is required"
[ -n "$SP_ENTITY_ID" ] || die "--sp-entity-id is required"
[ -n "$ACS_URL" ] || die "--acs-url is required"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
command -v php >/dev/null || die "php not found: run install.sh"
command -v openssl >/dev/null || die "openssl not found: run install.sh"
[ -f "$SSP_DIR/www/saml2/idp/SSOService.php" ] || die "SimpleSAMLphp not found in $SSP_DIR: run install.sh"
php -r 'exit(extension_loaded("dom") ? 0 : 1);' || die "php ext-dom missing (php-xml): run install.sh"
if [ -n "$USERS_FILE" ]; then
    [ -r "$USERS_FILE" ] || die "users file not readable: $USERS_FILE"
    USERS_FILE=$(cd "$(dirname "$USERS_FILE")" && pwd)/$(basename "$USERS_FILE")
fi

if [ "$PORT" = 0 ]; then
    # php -S cannot bind port 0: ask the kernel for a free port, release it, use it.
    PORT=$(php -r '$s=stream_socket_server("tcp://127.0.0.1:0",$e,$m) or exit(1); $n=stream_socket_get_name($s,false); fclose($s); echo substr($n, strrpos($n,":")+1);') \
        || die "could not pick a free port"
fi
[ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "--port out of range"
# Fail early and clearly if the port is taken (php -S would only log it).
php -r '$s=@stream_socket_server("tcp://127.0.0.1:'"$PORT"'",$e,$m); exit($s ? 0 : 1);' \
    || die "port $PORT on 127.0.0.1 is already in use"

mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
BASE_URL="http://127.0.0.1:$PORT"
[ -n "$IDP_ENTITY_ID" ] || IDP_ENTITY_ID="$BASE_URL/saml2/idp/metadata.php"

# Fresh state on every start (a reused workdir keeps nothing stale).
rm -rf "$WORKDIR/metadata" "$WORKDIR/sessions" "$WORKDIR/tmp" "$WORKDIR/data" "$WORKDIR/log"
rm -f "$WORKDIR/idp.json" "$WORKDIR/idp-metadata.xml" "$WORKDIR/server.log" "$WORKDIR/server.pid"
mkdir -p "$WORKDIR/metadata" "$WORKDIR/sessions" "$WORKDIR/tmp" "$WORKDIR/data" "$WORKDIR/log"

# --- IdP signing key + self-signed certificate -----------------------------
umask 077
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 3650 \
    -subj "/CN=SimpleSAMLphp test IdP 127.0.0.1/O=integration tests" \
    -keyout "$WORKDIR/idp.key" -out "$WORKDIR/idp.crt" >/dev/null 2>&1 \
    || die "openssl failed to create the IdP key/certificate"
umask 022
chmod 644 "$WORKDIR/idp.crt"

# --- users -------------------------------------------------------------------
if [ -n "$USERS_FILE" ]; then
    cp "$USERS_FILE" "$WORKDIR/users.json"
else
    cat >"$WORKDIR/users.json" <<'JSON'
[
  {
    "username": "alice@corp.test",
    "password": "alice-pw",
    "attributes": {
      "email": "alice@corp.test",
      "givenName": "Alice",
      "sn": "Liddell",
      "groups": ["engineering", "admins"]
    }
  }
]
JSON
fi

# --- SimpleSAMLphp configuration (values escaped with var_export) ------------
export GEN_WORKDIR="$WORKDIR" GEN_BASE_URL="$BASE_URL" GEN_IDP_ENTITY_ID="$IDP_ENTITY_ID" \
    GEN_SP_ENTITY_ID="$SP_ENTITY_ID" GEN_ACS_URL="$ACS_URL" GEN_SLO_URL="$SLO_URL" GEN_PORT="$PORT" \
    GEN_SP_SIGNING_CERT_FILE="$SP_SIGNING_CERT_FILE" GEN_SP_ENCRYPTION_CERT_FILE="$SP_ENCRYPTION_CERT_FILE" \
    GEN_UNSIGNED_RESPONSE="$UNSIGNED_RESPONSE" GEN_ENCRYPT_NAMEID="$ENCRYPT_NAMEID"
php "$HERE/write-config.php" || die "writing the SimpleSAMLphp configuration failed"

# --- start ---------------------------------------------------------------------
export SIMPLESAMLPHP_CONFIG_DIR="$WORKDIR"
# One process on purpose: with PHP_CLI_SERVER_WORKERS>1 php -S forks workers
# that SURVIVE the death of the master (SIGTERM or SIGKILL) and keep the port.
# A single process dies with its PID; requests are served one at a time, which
# is plenty for a test IdP driven by one client.
unset PHP_CLI_SERVER_WORKERS
export TMPDIR="$WORKDIR/tmp"

echo $$ >"$WORKDIR/server.pid"

# Readiness watcher: runs in the background, keeps this script's stdout, and
# talks once the IdP metadata answers 200. $$ stays valid after the exec below.
(
    server_pid=$$
    deadline=$((SECONDS + TIMEOUT))
    while :; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "start.sh: ERROR: php server exited; see $WORKDIR/server.log:" >&2
            tail -n 20 "$WORKDIR/server.log" >&2 2>/dev/null || true
            exit 1
        fi
        if php -d default_socket_timeout=2 -r '
                $ctx = stream_context_create(["http" => ["timeout" => 2, "ignore_errors" => true]]);
                $b = @file_get_contents($argv[1], false, $ctx);
                if ($b === false || !isset($http_response_header[0])
                    || strpos($http_response_header[0], " 200") === false
                    || strpos($b, "EntityDescriptor") === false) { exit(1); }
                file_put_contents($argv[2], $b);' \
                "$BASE_URL/saml2/idp/metadata.php?output=xml" "$WORKDIR/idp-metadata.xml" 2>/dev/null; then
            break
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "start.sh: ERROR: IdP did not answer within ${TIMEOUT}s; see $WORKDIR/server.log and $WORKDIR/log/" >&2
            tail -n 20 "$WORKDIR/server.log" >&2 2>/dev/null || true
            kill "$server_pid" 2>/dev/null || true
            exit 1
        fi
        sleep 0.1
    done
    php -r '
        $j = [
            "entity_id" => getenv("GEN_IDP_ENTITY_ID"),
            "sso_url" => getenv("GEN_BASE_URL") . "/saml2/idp/SSOService.php",
            "sso_binding" => "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            "slo_url" => getenv("GEN_BASE_URL") . "/saml2/idp/SingleLogoutService.php",
            "metadata_url" => getenv("GEN_BASE_URL") . "/saml2/idp/metadata.php",
            "base_url" => getenv("GEN_BASE_URL"),
            "port" => (int) getenv("GEN_PORT"),
            "certificate_file" => getenv("GEN_WORKDIR") . "/idp.crt",
            "metadata_file" => getenv("GEN_WORKDIR") . "/idp-metadata.xml",
            "login_url" => getenv("GEN_BASE_URL") . "/module.php/core/loginuserpass.php",
            "sp_entity_id" => getenv("GEN_SP_ENTITY_ID"),
            "acs_url" => getenv("GEN_ACS_URL"),
            "pid" => (int) $argv[1],
        ];
        file_put_contents($argv[2] . ".tmp", json_encode($j, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES) . "\n");
        rename($argv[2] . ".tmp", $argv[2]);' "$server_pid" "$WORKDIR/idp.json"
    echo "listening on $BASE_URL"
) &

# Replace this shell with the server (same PID), logs to DIR/server.log.
cd "$WORKDIR"
exec php -S "127.0.0.1:$PORT" -t "$SSP_DIR/www" \
    -d session.save_path="$WORKDIR/sessions" \
    -d sys_temp_dir="$WORKDIR/tmp" \
    -d upload_tmp_dir="$WORKDIR/tmp" \
    -d error_log="$WORKDIR/server.log" \
    -d log_errors=1 -d display_errors=0 \
    -d opcache.lockfile_path="$WORKDIR/tmp" \
    -d date.timezone=UTC \
    </dev/null >>"$WORKDIR/server.log" 2>&1
