//! What the fuzz targets (`fuzz/`, run by `scripts/fuzz`) check, kept here so the regression
//! inputs under `actors/fuzz-regressions/<target>/` run through the same code in every test
//! run. Each function must not panic for any input.

use super::error::ClientError;
use super::protocol::{encode, parse, ServerMsg};
use super::session::SessionSigner;
use super::token::{JwtAlgorithm, TokenRules, TokenVerifier};

/// A text frame (lossily decoded, as the server only ever sees UTF-8): parsed, and a refusal
/// encoded as the error frame the client would get.
pub fn frame(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err((id, err)) = parse(&text, 128) {
        let frame = encode(&ServerMsg::error(&err), id.as_ref());
        assert!(frame.starts_with("{\"type\":\"error\""));
    }
}

/// A session token checked against a fixed key: no input passes, none panics.
pub fn session(data: &[u8]) {
    let signer = SessionSigner::new(b"fuzz-session-key");
    let token = String::from_utf8_lossy(data);
    assert!(
        signer.verify(&token).is_err(),
        "an unsigned token passed: {token:?}"
    );
}

/// A player token checked against a fixed HS256 secret: no input passes, none panics.
pub fn token(data: &[u8]) {
    let verifier = TokenVerifier::new(
        JwtAlgorithm::HS256,
        b"fuzz-secret-0123456789",
        &TokenRules::default(),
    )
    .expect("an HS256 verifier");
    let token = String::from_utf8_lossy(data);
    match verifier.verify(&token) {
        Err(ClientError::Unauthorized(_)) => {}
        other => panic!("{token:?} gave {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every input a fuzz run turned up (and the seeds) still runs cleanly.
    #[test]
    fn fuzz_regressions_stay_fixed() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-regressions");
        type Check = fn(&[u8]);
        let targets: [(&str, Check); 3] = [
            ("frame", super::frame),
            ("session", super::session),
            ("token", super::token),
        ];
        let mut ran = 0;
        for (target, check) in targets {
            for entry in std::fs::read_dir(root.join(target)).unwrap() {
                check(&std::fs::read(entry.unwrap().path()).unwrap());
                ran += 1;
            }
        }
        assert!(ran >= 3, "the seeds are there");
    }
}
