#!/bin/sh
# Makes the test PKI into OUTDIR with certtool (names: tests/common/tf_test.h).
#   ca.pem, ca-key.pem                 test CA
#   server-rsa.pem/-key.pem            RSA 2048 leaf + CA (a chain file servers can use)
#   server-ecdsa.pem/-key.pem          P-256 leaf + CA
#   expired.pem/-key.pem               signed by the CA, validity ended in 2021
#   wronghost.pem/-key.pem             signed by the CA, SAN DNS:wrong.example only
#   untrusted-ca.pem, untrusted.pem/-key.pem   another CA and a leaf it signed
#   client.pem/-key.pem                client-auth leaf signed by the CA
#   alpha-rsa.pem, alpha-ecdsa.pem (+ -key.pem)   DNS:alpha.test, RSA and P-256 (SNI)
#   beta.pem/-key.pem                  DNS:beta.test, P-256 (SNI)
#   untrusted-client.pem/-key.pem      client-auth leaf signed by the untrusted CA
# Idempotent: does nothing when OUTDIR already holds a set made by this script
# version that is still valid for a day.
set -eu

out=${1:?usage: make-certs.sh OUTDIR}
mkdir -p "$out"
stamp="$out/.stamp"
self="$0"

if [ -f "$stamp" ] && [ "$stamp" -nt "$self" ] &&
   certtool --certificate-info --infile "$out/server-rsa.pem" 2>/dev/null | grep -q 'Not After' &&
   openssl x509 -checkend 86400 -noout -in "$out/server-rsa.pem" >/dev/null 2>&1; then
    exit 0
fi

command -v certtool >/dev/null || { echo "make-certs.sh: certtool not found" >&2; exit 1; }

tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

key() {  # key FILE rsa|ecdsa
    if [ "$2" = rsa ]; then
        certtool --no-text --generate-privkey --key-type rsa --bits 2048 --outfile "$1" 2>/dev/null
    else
        certtool --no-text --generate-privkey --key-type ecdsa --curve secp256r1 --outfile "$1" 2>/dev/null
    fi
}

ca() {  # ca NAME CN
    key "$1-key.pem" ecdsa
    cat > "$1.tmpl" <<T
cn = "$2"
organization = "tlsflow tests"
serial = $(date +%s%N | cut -c1-15)
expiration_days = 3650
ca
cert_signing_key
crl_signing_key
T
    certtool --generate-self-signed --load-privkey "$1-key.pem" \
        --template "$1.tmpl" --outfile "$1.pem" 2>/dev/null
}

leaf() {  # leaf NAME KEYTYPE CA EXTRA-TEMPLATE-LINES
    key "$1-key.pem" "$2"
    printf 'organization = "tlsflow tests"\nserial = %s\n%s\n' \
        "$(date +%s%N | cut -c1-15)" "$4" > "$1.tmpl"
    certtool --generate-certificate --load-privkey "$1-key.pem" \
        --load-ca-certificate "$3.pem" --load-ca-privkey "$3-key.pem" \
        --template "$1.tmpl" --outfile "$1.leaf" 2>/dev/null
    cat "$1.leaf" "$3.pem" > "$1.pem"
}

server='cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
ip_address = "::1"
tls_www_server
signing_key
encryption_key
expiration_days = 825'

ca ca "tlsflow test CA"
ca untrusted-ca "tlsflow untrusted CA"
leaf server-rsa rsa ca "$server"
leaf server-ecdsa ecdsa ca "$server"
leaf expired ecdsa ca 'cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
tls_www_server
signing_key
activation_date = "2020-01-01 00:00:00 UTC"
expiration_date = "2021-01-01 00:00:00 UTC"'
leaf wronghost ecdsa ca 'cn = "wrong.example"
dns_name = "wrong.example"
tls_www_server
signing_key
expiration_days = 825'
leaf untrusted ecdsa untrusted-ca "$server"
leaf client ecdsa ca 'cn = "tlsflow test client"
tls_www_client
signing_key
expiration_days = 825'

sni() {  # sni NAME KEYTYPE DNSNAME
    leaf "$1" "$2" ca "cn = \"$3\"
dns_name = \"$3\"
tls_www_server
signing_key
encryption_key
expiration_days = 825"
}
sni alpha-rsa rsa alpha.test
sni alpha-ecdsa ecdsa alpha.test
sni beta ecdsa beta.test
leaf untrusted-client ecdsa untrusted-ca 'cn = "tlsflow untrusted client"
tls_www_client
signing_key
expiration_days = 825'

for f in ca ca-key untrusted-ca untrusted-ca-key \
         server-rsa server-rsa-key server-ecdsa server-ecdsa-key expired expired-key \
         wronghost wronghost-key untrusted untrusted-key client client-key \
         alpha-rsa alpha-rsa-key alpha-ecdsa alpha-ecdsa-key beta beta-key \
         untrusted-client untrusted-client-key; do
    mv -f "$f.pem" "$out/$f.pem"
done
touch "$stamp"
