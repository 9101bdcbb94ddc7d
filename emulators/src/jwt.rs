//! RSA signing keys, RS256 JWT minting and the JWKS document.
//!
//! Tokens are signed directly with aws-lc-rs (RSASSA-PKCS1-v1_5 with SHA-256), so the emulator
//! needs no PEM round trip. A [`KeyRing`] holds the current signing key plus older keys that stay
//! published in the JWKS after a rotation, the way Entra ID keeps retired keys listed for a while.

use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// Failures of key generation or signing (no key material in the messages).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The RSA key could not be generated.
    #[error("RSA key generation failed")]
    KeyGeneration,
    /// The signature could not be computed.
    #[error("RS256 signing failed")]
    Signing,
}

/// Encodes bytes as unpadded base64url, the encoding JWTs and JWKs use.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One RSA-2048 signing key with its key id (the RFC 7638 thumbprint of its public JWK).
pub struct SigningKey {
    kid: String,
    pair: KeyPair,
    modulus: String,
    exponent: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key.
    pub fn generate() -> Result<Self, JwtError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| JwtError::KeyGeneration)?;
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let modulus = b64url(&components.n);
        let exponent = b64url(&components.e);
        let kid = rsa_thumbprint(&modulus, &exponent);
        Ok(Self {
            kid,
            pair,
            modulus,
            exponent,
        })
    }

    /// The key id put in token headers and in the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK: `{kty, use, kid, n, e, alg}`.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": self.modulus,
            "e": self.exponent,
            "alg": "RS256",
        })
    }

    /// Signs `claims` as a compact RS256 JWT whose header carries `header_kid`
    /// (normally [`SigningKey::kid`]; tests may ask for another one).
    pub fn sign(&self, header_kid: &str, claims: &Value) -> Result<String, JwtError> {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": header_kid});
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| JwtError::Signing)?;
        Ok(format!("{signing_input}.{}", b64url(&signature)))
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA public key.
fn rsa_thumbprint(modulus: &str, exponent: &str) -> String {
    let canonical = format!(r#"{{"e":"{exponent}","kty":"RSA","n":"{modulus}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    b64url(digest.as_ref())
}

/// The published signing keys; the last one is current and signs new tokens.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring with one freshly generated key.
    pub fn generate() -> Result<Self, JwtError> {
        Ok(Self {
            keys: vec![SigningKey::generate()?],
        })
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> &SigningKey {
        // The ring is never empty: it starts with one key and rotation only adds before dropping.
        &self.keys[self.keys.len() - 1]
    }

    /// Makes a new key current. Older keys stay published unless `drop_old`. Returns the new kid.
    pub fn rotate(&mut self, drop_old: bool) -> Result<String, JwtError> {
        let fresh = SigningKey::generate()?;
        if drop_old {
            self.keys.clear();
        }
        self.keys.push(fresh);
        Ok(self.current().kid().to_string())
    }

    /// Signs `claims` with the current key and its own kid.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let key = self.current();
        key.sign(key.kid(), claims)
    }

    /// The JWKS document `{"keys":[...]}`, current key first.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.keys.iter().rev().map(SigningKey::public_jwk).collect();
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_segment(segment: &str) -> Value {
        let bytes = URL_SAFE_NO_PAD.decode(segment).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn signed_token_verifies_against_its_jwk() {
        let ring = KeyRing::generate().unwrap();
        let token = ring.sign(&json!({"aud": "x"})).unwrap();
        let jwk = &ring.jwks()["keys"][0];
        let key = jsonwebtoken::DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&["x"]);
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims["aud"], "x");
        let header = decode_segment(token.split('.').next().unwrap());
        assert_eq!(header["kid"], ring.current().kid());
    }

    #[test]
    fn rotation_keeps_or_drops_old_keys() {
        let mut ring = KeyRing::generate().unwrap();
        let first = ring.current().kid().to_string();
        let second = ring.rotate(false).unwrap();
        assert_ne!(first, second);
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 2);
        assert_eq!(ring.jwks()["keys"][0]["kid"], second.as_str());
        ring.rotate(true).unwrap();
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 1);
    }
}
