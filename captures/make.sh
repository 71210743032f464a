#!/usr/bin/env bash
# Re-records every capture in this folder (root needed: network namespaces + tcpdump).
# Each scenario: a PKI from pki.sh, one handshake recorded by record.sh, the CA both peers trust
# kept as PKI.ca.pem (for `sfdiag analyze --ca`), and what openssl itself said about verification
# kept as CAPTURE.{client,server}.log. Keys stay in the temporary directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
rec() { # file pki [record.sh options]
  local file=$1 pki=$2; shift 2
  "$here/record.sh" "$pki" "$here/$file" "$@" >/dev/null
  chmod 644 "$here/$file"
  cp "$pki/ca.pem" "$here/$pki.ca.pem"
  # keep only what openssl said about verification and alerts
  for side in client server; do
    grep -aE 'depth=|verify error|Verification|Verify return|error:|alert' "$here/$file.$side.txt" \
      > "$here/$file.$side.log" || true
    rm "$here/$file.$side.txt"
  done
}
pki() { "$here/pki.sh" "$@" >/dev/null; }

pki valid
rec sftunnel-valid.pcap valid
rec sftunnel-valid-ipv6.pcap valid --v6
rec sftunnel-valid-any-sll2.pcap valid --any
rec sftunnel-valid.pcapng valid --pcapng
rec sftunnel-no-client-cert.pcap valid --no-client-cert

# InternalCA expired 2024-06-01 (peer certs still within their dates): err 10 at depth 1.
pki ca-expired 20140601000000Z 20240601000000Z 20240101000000Z 20340101000000Z 20240101000000Z 20340101000000Z
rec sftunnel-ca-expired.pcap ca-expired

# The FTD's own certificate expired: the FMC rejects it.
pki ftd-expired 20240101000000Z 20340101000000Z 20240101000000Z 20340101000000Z 20230101000000Z 20250101000000Z
rec sftunnel-ftd-expired.pcap ftd-expired

# The FMC's certificate is not valid before 2030: the FTD rejects it.
pki fmc-not-yet-valid 20240101000000Z 20340101000000Z 20300101000000Z 20340101000000Z
rec sftunnel-fmc-not-yet-valid.pcap fmc-not-yet-valid

# InternalCA regenerated (same DN, new key) but the peers still hold certs from the old one.
pki old-ca
ISSUER_DIR="$tmp/old-ca" "$here/pki.sh" regenerated >/dev/null
rec sftunnel-ca-regenerated.pcap regenerated

# Sessions as they really end: an FTP control channel that goes into TLS 1.2 (AUTH TLS, a client
# certificate asked for and none sent) and back to cleartext (CCC), and a TLS 1.2 session whose
# capture starts mid-session (cut after its handshake: application data, closing alerts, FIN).
pki ccc
"$here/record-ccc.sh" ccc "$here/ftp-ccc.pcap" >/dev/null
"$here/record-cut.sh" ccc "$here/tls-mid-session.pcap" >/dev/null
chmod 644 "$here/ftp-ccc.pcap" "$here/tls-mid-session.pcap"
cp ccc/ca.pem "$here/ccc.ca.pem"
ls -la "$here"/*.pcap*

# sfdiag's own peers (serve + connect --once), with PKIs made by `sfdiag pki init`.
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
bin="$here/../target/release/sfdiag"
recsd() { # file root
  "$here/record-sfdiag.sh" "$bin" "$2" "$here/$1" >/dev/null
  chmod 644 "$here/$1"
  cp "$2/fmc/etc/sf/ca_root/cacert.pem" "$here/$2.ca.pem"
  # the pid/tid and local paths differ run to run; keep the lines as they were logged
}
"$bin" pki init --root sfdiag-valid --devices 1 >/dev/null
recsd sfdiag-valid.pcap sfdiag-valid
# InternalCA 2014-06-01 .. 2024-05-29, peer certs still within their dates: the FTD logs err 10 at depth 1.
"$bin" pki init --root sfdiag-ca-expired --devices 1 --not-before 2014-06-01T00:00:00Z --days 3650 \
  --peer-not-before 2024-01-01T00:00:00Z --peer-days 3650 >/dev/null
recsd sfdiag-ca-expired.pcap sfdiag-ca-expired

# TLS 1.3 (in-handshake and post-handshake client certificates) and TLS 1.2 alert recordings,
# each with the key log its client wrote (README: "Key-log recordings").
"$here/record-keylog.sh" "$here"
