#!/usr/bin/env python3
"""A TLS 1.3 server that asks for the client's certificate after the handshake (post-handshake
authentication), as an FMC on 7.6+ asks for the device's: python's ssl (OpenSSL) with
post_handshake_auth and verify_client_post_handshake(). One connection, then exit.

usage: pha_server.py PORT CERT KEY CAFILE

It reads one line and answers it (which also sends the KeyUpdate a client may have asked for:
OpenSSL sends one post-handshake message per write), then sends the CertificateRequest with a
line of its own and reads again: the client's Certificate, CertificateVerify and Finished come
before its next line, and a certificate that does not verify ends the read with OpenSSL's error
(and alert). What it saw is printed, one line each, for the capture's .server.log.
"""
import socket
import ssl
import sys

port, cert, key, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(cafile)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.post_handshake_auth = True

with socket.create_server(("127.0.0.1", port)) as srv:
    srv.settimeout(20)
    conn, _ = srv.accept()
    conn.settimeout(10)
    with ctx.wrap_socket(conn, server_side=True) as tls:
        print("handshake done:", tls.version(), tls.cipher()[0], flush=True)
        print("got:", tls.recv(1024), flush=True)
        tls.sendall(b"hello\n")
        tls.verify_client_post_handshake()
        tls.sendall(b"certificate, please\n")
        try:
            print("got:", tls.recv(1024), flush=True)
            peer = tls.getpeercert()
            print("post-handshake peer certificate:", peer and peer["subject"], flush=True)
            tls.sendall(b"ok\n")
            print("got:", tls.recv(1024), flush=True)
            tls.unwrap()  # close_notify
        except (ssl.SSLError, OSError) as e:
            print("post-handshake authentication failed:", e, flush=True)
