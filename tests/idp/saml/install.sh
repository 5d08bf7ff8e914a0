#!/usr/bin/env bash
# Install the Debian packages the test SAML IdP (SimpleSAMLphp) needs.
#
# Idempotent: if everything is already installed it returns at once without
# touching apt. Non-interactive. Needs root (or sudo) and Debian bookworm's
# package archive.
#
#   simplesamlphp  1.19.x from bookworm (code in /usr/share/simplesamlphp)
#   php-cli        the php binary; start.sh uses its built-in web server
#   php-xml        ext-dom / ext-xml: SAML XML and XML signatures (REQUIRED,
#                  the simplesamlphp package does not depend on it)
#   php-mbstring   ext-mbstring (SimpleSAMLphp ships a polyfill, but the
#                  native extension is what upstream requires)
#   openssl        generating the IdP key and self-signed certificate
#
# The simplesamlphp package Depends on "apache2 | httpd"; apt satisfies that
# with apache2. start.sh never uses Apache. In a container with the usual
# /usr/sbin/policy-rc.d (exit 101) Apache is installed but never started;
# where there is no policy-rc.d this script puts a temporary one in place for
# the duration of the install so that no system web server is started, and
# removes it afterwards.
set -euo pipefail

PKGS=(simplesamlphp php-cli php-xml php-mbstring openssl)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
        missing+=("$p")
    fi
done
# Also verify the PHP extensions really load (catches a half-configured php).
if [ ${#missing[@]} -eq 0 ] && command -v php >/dev/null 2>&1 \
    && php -r 'exit(extension_loaded("dom") && extension_loaded("openssl") && extension_loaded("mbstring") ? 0 : 1);' \
    && [ -f /usr/share/simplesamlphp/www/saml2/idp/SSOService.php ]; then
    echo "install.sh: already installed: ${PKGS[*]}"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo -n)
fi

export DEBIAN_FRONTEND=noninteractive

# Keep apt from starting any service (apache2) while installing.
own_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
fi
cleanup() {
    if [ "$own_policy" = 1 ]; then
        "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    fi
}
trap cleanup EXIT

apt_install() {
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" "${PKGS[@]}"
}

"${SUDO[@]}" apt-get update -q
if ! apt_install; then
    # Known flake on this workplace: "dpkg-deb: failed to read archive" from a
    # broken file in the default archive cache. Retry with a private cache.
    echo "install.sh: apt-get install failed; retrying with a fresh archive cache" >&2
    cache=$(mktemp -d /tmp/aptc.XXXXXX)
    mkdir -p "$cache/partial"
    apt_install -o Dir::Cache::archives="$cache/"
    rm -rf "$cache"
fi

php -r 'exit(extension_loaded("dom") && extension_loaded("openssl") ? 0 : 1);' || {
    echo "install.sh: php is missing ext-dom or ext-openssl after install" >&2
    exit 1
}
echo "install.sh: installed: $(dpkg-query -W -f='${Package} ${Version}  ' "${PKGS[@]}")"
