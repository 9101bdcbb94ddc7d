//! The one JWT minter: RSA keys generated at test time (never written to disk), their JWKS
//! entries, RS256 (or another RSA algorithm) tokens, and decoding a token's parts for assertions.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// An RSA-2048 signing key generated for one test run.
pub struct TestKey {
    /// The key id in token headers and in the JWK.
    pub kid: String,
    encoding: EncodingKey,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    /// The public key as PKCS#1 DER (what an HS256 forger would use as the "secret").
    pub public_der: Vec<u8>,
}

impl TestKey {
    /// A fresh key named `kid`.
    pub fn generate(kid: &str) -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("generate an RSA key");
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).expect("PKCS#8");
        let pkcs1 = pkcs1_from_pkcs8(pkcs8.as_ref());
        let public = pair.public_key();
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_rsa_der(&pkcs1),
            modulus: public.modulus().big_endian_without_leading_zero().to_vec(),
            exponent: public.exponent().big_endian_without_leading_zero().to_vec(),
            public_der: public.as_ref().to_vec(),
        }
    }

    /// The public key as a JWKS entry.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.modulus),
            "e": URL_SAFE_NO_PAD.encode(&self.exponent),
        })
    }

    /// An RS256 token with `claims`, the header naming this key.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(Algorithm::RS256, claims)
    }

    /// A token signed with `algorithm` (an RSA one) by this key.
    pub fn sign_as(&self, algorithm: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign a token")
    }
}

/// A JWKS document holding `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// A claims object with some fields replaced, and those given as `null` removed.
pub fn with(mut claims: Value, changes: Value) -> Value {
    if let (Some(target), Some(changes)) = (claims.as_object_mut(), changes.as_object()) {
        for (key, value) in changes {
            if value.is_null() {
                target.remove(key);
            } else {
                target.insert(key.clone(), value.clone());
            }
        }
    }
    claims
}

/// The unix time now, in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// base64url without padding, for hand-made tokens.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The payload of a compact JWT, decoded, not verified.
pub fn decode_claims(token: &str) -> Value {
    decode_segment(token.split('.').nth(1).expect("payload segment"))
}

/// The header of a compact JWT, decoded.
pub fn decode_header(token: &str) -> Value {
    decode_segment(token.split('.').next().expect("header segment"))
}

fn decode_segment(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url segment");
    serde_json::from_slice(&bytes).expect("JSON segment")
}

/// One DER element: (tag, content, rest).
fn der_element(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (length, header) = match input[1] {
        short if short < 0x80 => (usize::from(short), 2),
        long => {
            let count = usize::from(long & 0x7f);
            let length = input[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (length, 2 + count)
        }
    };
    (
        tag,
        &input[header..header + length],
        &input[header + length..],
    )
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo: its third element, an OCTET STRING.
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_element(pkcs8);
    let (_, _version, rest) = der_element(info);
    let (_, _algorithm, rest) = der_element(rest);
    let (tag, private_key, _) = der_element(rest);
    assert_eq!(tag, 0x04, "PKCS#8 private key is an OCTET STRING");
    private_key.to_vec()
}
