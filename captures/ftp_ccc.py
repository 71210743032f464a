#!/usr/bin/env python3
"""A tiny FTP control channel that goes into TLS and back out (RFC 4217 AUTH TLS, then CCC),
for captures/record-ccc.sh. Both ends are Python's ssl module (OpenSSL) speaking TLS 1.2.

server PORT CERT KEY CA: answers one client. AUTH TLS -> 234 and the TLS handshake, asking for
    a client certificate (CERT_OPTIONAL, so a client without one goes on); USER/PASS/PBSZ/PROT/
    NOOP -> 2xx; CCC -> 200, then both sides close TLS (close_notify each way) and the control
    channel goes on in cleartext; QUIT -> 221.
client PORT CA: logs in over TLS (ftplib.FTP_TLS), sends NOOP, then CCC, NOOP and QUIT in cleartext.
"""
import socket
import ssl
import sys


def server(port, cert, key, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # certificates in the clear, as in the nDPI capture
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ls = socket.create_server(("127.0.0.1", port))
    ls.settimeout(20)
    conn, _ = ls.accept()
    conn.settimeout(20)
    sock = conn
    f = sock.makefile("rb")

    def say(line):
        sock.sendall(line.encode() + b"\r\n")

    say("220 sfdiag CCC lab")
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.decode(errors="replace").strip().split(" ")[0].upper()
        if cmd == "AUTH":
            say("234 Proceed with negotiation.")
            sock = ctx.wrap_socket(conn, server_side=True)
            f = sock.makefile("rb")
        elif cmd == "USER":
            say("331 Password required.")
        elif cmd == "PASS":
            say("230 Logged in.")
        elif cmd in ("PBSZ", "PROT", "NOOP"):
            say("200 OK.")
        elif cmd == "CCC":
            say("200 Clearing control channel.")
            f.close()
            sock = sock.unwrap()  # close_notify each way, then cleartext
            f = sock.makefile("rb")
        elif cmd == "QUIT":
            say("221 Goodbye.")
            break
        else:
            say("502 Not implemented.")
    sock.close()


def client(port, ca):
    import ftplib

    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ftp = ftplib.FTP_TLS(context=ctx, timeout=20)
    ftp.connect("127.0.0.1", port)
    ftp.login("lab", "lab")  # AUTH TLS first
    ftp.voidcmd("NOOP")
    ftp.ccc()
    ftp.voidcmd("NOOP")
    ftp.quit()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), *sys.argv[3:6])
    else:
        client(int(sys.argv[2]), sys.argv[3])
