#!/usr/bin/env bash
# The project's recipe for an sftunnel-shaped PKI made by stock `openssl` alone (no sfdiag),
# so tests can hold what sfdiag does against certificates that another implementation wrote.
#
#   certs/openssl-pki.sh DIR [CA_NOT_BEFORE CA_NOT_AFTER]     dates as YYYYMMDDHHMMSSZ
#
# DIR gets six files and nothing else:
#   ca.pem  ca.key    the InternalCA: X.509 v1 (no extensions), serial 0, RSA 2048, sha256,
#                     subject /title=InternalCA/OU=Intrusion Management System/CN=<FMC-UUID>/
#                     O=Cisco Systems, Inc; valid CA_NOT_BEFORE..CA_NOT_AFTER (default now + 3650 d)
#   fmc.pem fmc.key   the FMC's sftunnel certificate: v3, serial 14 (0x0e), CN=localhost,
#                     title=<FMC-UUID>, generationQualifier=sftunnel
#   ftd.pem ftd.key   a device's: v3, serial 15 (0x0f), no CN, title=<FTD-UUID>,
#                     generationQualifier=sftunnel_<FTD-UUID>
# Both peer certificates: basicConstraints CA:FALSE, keyUsage digitalSignature+keyEncipherment,
# extendedKeyUsage serverAuth+clientAuth, valid from now for 3650 days whatever the CA's
# window (so an expired CA can sign peers that are still valid: the field case).
# The UUIDs are fixed (the tests compare names with `sfdiag pki init --fmc-uuid ...`).
# Keys are written 0600, certificates 0644. Needs only `openssl` (1.1.1 or 3.x) and bash.
set -euo pipefail

out=${1:?usage: openssl-pki.sh DIR [CA_NOT_BEFORE CA_NOT_AFTER]}
ca_from=${2:-}
ca_to=${3:-}
if [ -n "$ca_from" ] && [ -z "$ca_to" ]; then
  echo "openssl-pki.sh: CA_NOT_BEFORE given without CA_NOT_AFTER" >&2
  exit 2
fi
fmc_uuid=cdb123c8-4347-11ef-aca1-f3aa241412a1
ftd_uuid=c8d5d5c6-87c9-11ef-a993-b9831565bc4e
org="Cisco Systems, Inc"
unit="Intrusion Management System"

mkdir -p "$out"
out=$(cd "$out" && pwd)
# openssl ca keeps a database, a serial file and copies of what it signed: all of that lives
# in a scratch folder so DIR ends up holding the six files only.
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/issued"
: > "$work/index"

# One config for every step. `openssl ca` is used for all three certificates because it is
# the stock way to choose the serial, both dates and the version: with no extension section
# it writes a v1 certificate (the InternalCA); `-extensions peer` gives the v3 peers.
# -preserveDN keeps each subject in the order written below (the policy would reorder it).
cat > "$work/openssl.cnf" <<EOF
[ca]
default_ca = lab

[lab]
database        = $work/index
serial          = $work/serial
new_certs_dir   = $work/issued
default_md      = sha256
policy          = anything
unique_subject  = no
copy_extensions = none

[anything]
title               = optional
organizationalUnitName = optional
commonName          = optional
organizationName    = optional
generationQualifier = optional

[peer]
basicConstraints = CA:FALSE
keyUsage         = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth

[req]
prompt             = no
utf8               = yes
distinguished_name = unused
[unused]
CN = unused
EOF

# quiet CMD...: runs CMD with its chatter kept aside; on failure the chatter goes to stderr.
quiet() {
  "$@" 2>"$work/stderr" || {
    echo "openssl-pki.sh: failed: $*" >&2
    cat "$work/stderr" >&2
    exit 1
  }
}
# key NAME: an RSA 2048 key in NAME.key (PKCS#8 PEM).
key() {
  quiet openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/$1.key"
}
# csr NAME SUBJECT: a request for NAME's key with SUBJECT (/type=value/..., in that order).
csr() {
  quiet openssl req -new -config "$work/openssl.cnf" -key "$work/$1.key" -subj "$2" \
    -out "$work/$1.csr"
}
# sign NAME SERIAL_HEX ARGS...: `openssl ca` on NAME's request, the result in NAME.pem.
sign() {
  local name=$1 serial=$2
  shift 2
  echo "$serial" > "$work/serial"
  quiet openssl ca -batch -notext -preserveDN -config "$work/openssl.cnf" \
    -in "$work/$name.csr" -out "$work/$name.pem" "$@"
}

key ca
csr ca "/title=InternalCA/OU=$unit/CN=$fmc_uuid/O=$org"
if [ -n "$ca_from" ]; then
  window=(-startdate "$ca_from" -enddate "$ca_to")
else
  window=(-days 3650)
fi
sign ca 00 -selfsign -keyfile "$work/ca.key" "${window[@]}"

key fmc
csr fmc "/CN=localhost/O=$org/OU=$unit/title=$fmc_uuid/generationQualifier=sftunnel"
sign fmc 0E -cert "$work/ca.pem" -keyfile "$work/ca.key" -extensions peer -days 3650

key ftd
csr ftd "/generationQualifier=sftunnel_$ftd_uuid/title=$ftd_uuid/O=$org/OU=$unit"
sign ftd 0F -cert "$work/ca.pem" -keyfile "$work/ca.key" -extensions peer -days 3650

for n in ca fmc ftd; do
  install -m 0644 "$work/$n.pem" "$out/$n.pem"
  install -m 0600 "$work/$n.key" "$out/$n.key"
done
echo "$out: ca.pem fmc.pem ftd.pem (+ keys)"
