//! Captures of sfdiag's own peers (`serve` + `connect --once`, recorded by
//! `captures/record-sfdiag.sh`) analyzed like a customer's: the FTD side that rejected an expired
//! InternalCA must show up on the wire as OpenSSL would have it (alert 45 after the server's
//! Certificate, err 10 at depth 1 on the CA's own record), and a valid tunnel as established
//! with both chains fine.

use serde_json::Value;

use crate::common::{project_captures, sfdiag};

fn analyze(capture: &str, ca: &str) -> (i32, Vec<Value>) {
    let dir = project_captures();
    let out = sfdiag()
        .args(["analyze", "--format", "jsonl", "--ca"])
        .arg(dir.join(ca))
        .arg(dir.join(capture))
        .output()
        .expect("run sfdiag analyze");
    let records = String::from_utf8(out.stdout)
        .expect("utf-8 report")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    (out.status.code().expect("exit code"), records)
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == t).collect()
}

#[test]
fn sfdiag_peers_with_an_expired_internal_ca_fail_like_openssl_on_the_wire() {
    let (code, records) = analyze("sfdiag-ca-expired.pcap", "sfdiag-ca-expired.ca.pem");
    assert_eq!(code, 1, "findings exit 1");

    let certs = of_type(&records, "certificate");
    // Like OpenSSL, our FMC sends its cert followed by the InternalCA; the FTD never got to send its own.
    assert_eq!(certs.len(), 2, "{certs:#?}");
    assert!(certs.iter().all(|c| c["role"] == "server"));
    let (leaf, ca) = (certs[0], certs[1]);
    assert_eq!(
        leaf["verdict"]["code"], 0,
        "the FMC cert itself is within its dates"
    );
    assert_eq!(ca["version"], 1);
    assert_eq!(ca["serial"], "0");
    assert!(ca["subject"].as_str().unwrap().contains("title=InternalCA"));
    assert_eq!(ca["verdict"]["code"], 10);
    assert_eq!(ca["verdict"]["depth"], 1);

    let alerts = of_type(&records, "alert");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["code"], 45);
    assert_eq!(alerts[0]["description"], "certificate_expired");
    assert_eq!(alerts[0]["level"], "fatal");

    let sessions = of_type(&records, "session");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["outcome"], "failed");
    assert_eq!(sessions[0]["server_chain_verdict"]["code"], 10);
    assert_eq!(sessions[0]["client_cert"], false);
}

#[test]
fn sfdiag_peers_with_a_valid_pki_establish_mutual_tls() {
    let (code, records) = analyze("sfdiag-valid.pcap", "sfdiag-valid.ca.pem");
    assert_eq!(code, 0, "nothing wrong: exit 0");

    let certs = of_type(&records, "certificate");
    let roles: Vec<_> = certs.iter().map(|c| c["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["server", "server", "client", "client"]);
    assert!(
        certs.iter().all(|c| c["verdict"]["code"] == 0),
        "{certs:#?}"
    );
    // The device cert carries its identity in title/generationQualifier, not a CN.
    let device = certs[2]["subject"].as_str().unwrap();
    assert!(device.contains("generationQualifier=sftunnel_"), "{device}");
    assert!(!device.contains("CN="), "{device}");

    let sessions = of_type(&records, "session");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["outcome"], "established");
    assert_eq!(sessions[0]["version"], "TLSv1.2");
    assert_eq!(sessions[0]["client_cert"], true);
    assert!(
        of_type(&records, "alert")
            .iter()
            .all(|a| a["level"] != "fatal"),
        "only the closing alerts"
    );
}
