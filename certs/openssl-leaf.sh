#!/usr/bin/env bash
# The project's recipe for FMC certificates OpenSSL loads and sends but that are not what
# `pki init` makes, issued by stock `openssl` from a PKI of `certs/openssl-pki.sh`:
#
#   certs/openssl-leaf.sh DIR KIND          DIR holds ca.pem and ca.key (openssl-pki.sh's)
#
# writes DIR/fmc-KIND.pem and DIR/fmc-KIND.key (0600): the FMC's subject and dates as in
# openssl-pki.sh (CN=localhost ... title=<FMC-UUID>, generationQualifier=sftunnel, now + 3650
# days), serial 0x20, signed by the InternalCA with sha256, and
#   ecdsa     an EC P-256 key, the peer extensions of openssl-pki.sh
#   v1        an X.509 v1 certificate (no extensions at all), RSA 2048
#   critical  the peer extensions plus an unknown extension (OID 1.3.6.1.4.1.9.99.1) marked
#             critical, RSA 2048
#   badext    the peer extensions, but keyUsage's value is not a BIT STRING (a NULL), RSA 2048
#   rsa1024   the peer extensions with a 1024-bit RSA key
# Needs only `openssl` (3.x) and bash.
set -euo pipefail

dir=${1:?usage: openssl-leaf.sh DIR ecdsa|v1|critical|badext|rsa1024}
kind=${2:?usage: openssl-leaf.sh DIR ecdsa|v1|critical|badext|rsa1024}
fmc_uuid=cdb123c8-4347-11ef-aca1-f3aa241412a1
subj="/CN=localhost/O=Cisco Systems, Inc/OU=Intrusion Management System/title=$fmc_uuid/generationQualifier=sftunnel"

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quiet() {
  "$@" 2>"$work/stderr" || {
    echo "openssl-leaf.sh: failed: $*" >&2
    cat "$work/stderr" >&2
    exit 1
  }
}

peer='basicConstraints = CA:FALSE
keyUsage         = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth'
case "$kind" in
  ecdsa)
    quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/k"
    printf '%s\n' "$peer" > "$work/ext" ;;
  v1)
    quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/k"
    : > "$work/ext" ;;
  critical)
    quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/k"
    printf '%s\n1.3.6.1.4.1.9.99.1 = critical, DER:0500\n' "$peer" > "$work/ext" ;;
  badext)
    quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/k"
    printf '%s\n%s\n%s\n' 'basicConstraints = CA:FALSE' 'keyUsage = DER:0500' \
      'extendedKeyUsage = serverAuth, clientAuth' > "$work/ext" ;;
  rsa1024)
    quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$work/k"
    printf '%s\n' "$peer" > "$work/ext" ;;
  *)
    echo "openssl-leaf.sh: unknown KIND $kind" >&2
    exit 2 ;;
esac

quiet openssl req -new -key "$work/k" -subj "$subj" -out "$work/csr"
ext=()
if [ -s "$work/ext" ]; then
  ext=(-extfile "$work/ext")
fi
quiet openssl x509 -req -in "$work/csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
  -set_serial 0x20 -days 3650 -sha256 "${ext[@]}" -out "$work/pem"
install -m 0644 "$work/pem" "$dir/fmc-$kind.pem"
install -m 0600 "$work/k" "$dir/fmc-$kind.key"
echo "$dir: fmc-$kind.pem (+ key)"
