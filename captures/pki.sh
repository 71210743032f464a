#!/usr/bin/env bash
# An sftunnel-shaped lab PKI made with stock openssl, with every validity date chosen:
# v1 InternalCA (serial 0, RSA 2048, sha256), FMC cert (CN=localhost, generationQualifier=sftunnel),
# FTD cert (no CN, generationQualifier=sftunnel_<uuid>), both v3 with 3 extensions.
# Same layout as ../shared/tools/lab-pki.sh (ca.pem ca.key fmc.pem fmc.key ftd.pem ftd.key).
#
# usage: pki.sh DIR [CA_START CA_END [FMC_START FMC_END [FTD_START FTD_END]]]
#   dates as YYYYMMDDHHMMSSZ; leaves default to the CA's dates.
# env: CA_KEY=FILE reuses an existing CA key (to regenerate "the same" CA), ISSUER_DIR=DIR signs the
#   leaves with DIR's CA instead (a CA regenerated but never pushed).
set -euo pipefail
d=${1:?dir}; mkdir -p "$d"; cd "$d"
ca_uuid=cdb123c8-4347-11ef-aca1-f3aa241412a1
ftd_uuid=c8d5d5c6-87c9-11ef-a993-b9831565bc4e
ca_start=${2:-20240101000000Z}; ca_end=${3:-20340101000000Z}
fmc_start=${4:-$ca_start}; fmc_end=${5:-$ca_end}
ftd_start=${6:-$ca_start}; ftd_end=${7:-$ca_end}
org="Cisco Systems, Inc"; ou="Intrusion Management System"

rm -rf db; mkdir db; : > db/index
cat > ca.cnf <<CNF
[ca]
default_ca=d
[d]
database=db/index
new_certs_dir=db
serial=db/serial
default_md=sha256
policy=p
unique_subject=no
email_in_dn=no
[p]
title=optional
organizationalUnitName=optional
commonName=optional
organizationName=optional
generationQualifier=optional
[leaf]
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
CNF
issue() { # serial csr out start end [ca-args...]
  local serial=$1 csr=$2 out=$3 start=$4 end=$5; shift 5
  echo "$serial" > db/serial
  openssl ca -batch -config ca.cnf -notext -preserveDN -in "$csr" -out "$out" \
    -startdate "$start" -enddate "$end" "$@" 2>/dev/null
}

if [ -n "${CA_KEY:-}" ]; then cp "$CA_KEY" ca.key; else openssl genrsa -out ca.key 2048 2>/dev/null; fi
openssl req -new -key ca.key -out ca.csr -subj "/title=InternalCA/OU=$ou/CN=$ca_uuid/O=$org" 2>/dev/null
# no extensions section: openssl ca writes a v1 certificate, as the appliance's InternalCA is
issue 00 ca.csr ca.pem "$ca_start" "$ca_end" -selfsign -keyfile ca.key

signer=.; [ -n "${ISSUER_DIR:-}" ] && signer=$ISSUER_DIR
openssl req -new -newkey rsa:2048 -nodes -keyout fmc.key -out fmc.csr \
  -subj "/CN=localhost/O=$org/OU=$ou/title=$ca_uuid/generationQualifier=sftunnel" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout ftd.key -out ftd.csr \
  -subj "/generationQualifier=sftunnel_$ftd_uuid/title=$ftd_uuid/O=$org/OU=$ou" 2>/dev/null
issue 0E fmc.csr fmc.pem "$fmc_start" "$fmc_end" -cert "$signer/ca.pem" -keyfile "$signer/ca.key" -extensions leaf
issue 0F ftd.csr ftd.pem "$ftd_start" "$ftd_end" -cert "$signer/ca.pem" -keyfile "$signer/ca.key" -extensions leaf
rm -rf db ca.cnf ./*.csr
echo "$d: ca.pem fmc.pem ftd.pem (+keys)"
