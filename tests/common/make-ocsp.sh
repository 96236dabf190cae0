#!/bin/sh
# Makes OCSP responses for the test PKI with openssl ocsp, signed by the test
# CA (CERTDIR from make-certs.sh) for server-ecdsa.pem's leaf, into OUTDIR:
#   good.der      status good, nextUpdate in 7 days
#   revoked.der   status revoked (a day ago), nextUpdate in 7 days
#   expired.der   status good, nextUpdate 3 days ago (made 10 days back with
#                 faketime; left out when faketime is missing)
#   other.der     status good for server-rsa.pem's leaf (a mismatch for ECDSA)
#   untrusted.der status good, signed by the untrusted CA
set -eu
out=${1:?usage: make-ocsp.sh OUTDIR CERTDIR}
certs=${2:?usage: make-ocsp.sh OUTDIR CERTDIR}
mkdir -p "$out"
cd "$out"

serial() {   # the leaf's serial as openssl's index wants it (no leading 00)
    openssl x509 -in "$1" -noout -serial | sed 's/^serial=//; s/^\(00\)*//'
}

when() { date -u -d "$1" +%y%m%d%H%M%SZ; }

# respond LEAF INDEX-LINE-STATUS SIGNER OUT [faketime-offset]
respond() {
    leaf=$1 status=$2 signer=$3 resp=$4 back=${5:-}
    openssl x509 -in "$certs/$leaf" -out leaf.pem
    s=$(serial leaf.pem)
    if [ "$status" = R ]; then
        printf 'R\t%s\t%s\t%s\tunknown\t/CN=localhost\n' "$(when '+1 year')" "$(when '-1 day')" "$s" > index.txt
    else
        printf 'V\t%s\t\t%s\tunknown\t/CN=localhost\n' "$(when '+1 year')" "$s" > index.txt
    fi
    openssl ocsp -issuer "$certs/ca.pem" -cert leaf.pem -reqout req.der -no_nonce >/dev/null 2>&1
    set -- openssl ocsp -index index.txt -rsigner "$certs/$signer.pem" -rkey "$certs/$signer-key.pem" \
        -CA "$certs/ca.pem" -reqin req.der -respout "$resp" -ndays 7
    if [ -n "$back" ]; then
        set -- faketime -f "$back" "$@"
    fi
    "$@" >/dev/null 2>&1
    rm -f leaf.pem req.der index.txt index.txt.attr
}

respond server-ecdsa.pem V ca good.der
respond server-ecdsa.pem R ca revoked.der
respond server-rsa.pem V ca other.der
respond server-ecdsa.pem V untrusted-ca untrusted.der
if command -v faketime >/dev/null 2>&1; then
    respond server-ecdsa.pem V ca expired.der -10d
else
    rm -f expired.der
fi
