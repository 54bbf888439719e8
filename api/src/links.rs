//! The api's own short-lived download links, for attachments whose store
//! of blobs has no URLs of its own (the filesystem). A link names the
//! attachment, which of its blobs (the file or its thumbnail) and when it
//! expires, and carries an HMAC of the three: whoever holds it may fetch
//! that blob until then, as a presigned S3 URL allows, and nothing else.
//! It is minted only after the caller's membership was checked
//! (`routes::attachments`), so the check is the same for both adapters.
//!
//! The key is derived from the token signing key, which every instance of
//! the api already shares, so a link minted by one is honoured by all and
//! no further secret needs configuring.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use chat_shared::model::AttachmentId;

/// Which blob of an attachment a link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The file as uploaded.
    File,
    /// Its thumbnail (images).
    Thumbnail,
}

impl Variant {
    /// The name in links and blob keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Thumbnail => "thumbnail",
        }
    }
}

/// Mints and checks links.
#[derive(Clone)]
pub struct Links {
    key: [u8; 32],
}

impl Links {
    /// Links keyed from the PEM of the token signing key (never the key
    /// itself: a hash of it under a label of this use).
    pub fn from_signing_key(private_pem: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"chat attachment links v1\0");
        hash.update(private_pem.as_bytes());
        Self {
            key: hash.finalize().into(),
        }
    }

    fn mac(&self, id: AttachmentId, variant: Variant, expires: i64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any size");
        mac.update(format!("{id}\n{}\n{expires}", variant.as_str()).as_bytes());
        mac
    }

    /// The path and query of a link to `variant` of `id`, good until
    /// `expires`.
    pub fn mint(&self, id: AttachmentId, variant: Variant, expires: OffsetDateTime) -> String {
        let expires = expires.unix_timestamp();
        let signature =
            URL_SAFE_NO_PAD.encode(self.mac(id, variant, expires).finalize().into_bytes());
        format!(
            "/v1/attachments/{id}/content?variant={}&expires={expires}&signature={signature}",
            variant.as_str()
        )
    }

    /// Whether `signature` is this key's for `id`, `variant` and `expires`
    /// (compared in constant time) and `expires` is still ahead.
    pub fn check(
        &self,
        id: AttachmentId,
        variant: Variant,
        expires: i64,
        signature: &str,
    ) -> Result<(), LinkRefusal> {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return Err(LinkRefusal::Forged);
        };
        self.mac(id, variant, expires)
            .verify_slice(&signature)
            .map_err(|_| LinkRefusal::Forged)?;
        if expires <= OffsetDateTime::now_utc().unix_timestamp() {
            return Err(LinkRefusal::Expired);
        }
        Ok(())
    }
}

/// Why a link is not honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// Not minted by us for these values.
    Forged,
    /// Minted, but its time is over.
    Expired,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(link: &str) -> (i64, String) {
        let (_, query) = link.split_once('?').unwrap();
        let mut expires = 0;
        let mut signature = String::new();
        for pair in query.split('&') {
            match pair.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("signature", v) => signature = v.to_owned(),
                _ => {}
            }
        }
        (expires, signature)
    }

    #[test]
    fn a_link_opens_only_what_it_was_minted_for_until_it_expires() {
        let links = Links::from_signing_key("-----BEGIN PRIVATE KEY-----\nA\n");
        let id = AttachmentId::new();
        let soon = OffsetDateTime::now_utc() + time::Duration::minutes(5);
        let link = links.mint(id, Variant::File, soon);
        assert!(link.starts_with(&format!("/v1/attachments/{id}/content?variant=file&")));
        let (expires, signature) = query(&link);
        assert_eq!(links.check(id, Variant::File, expires, &signature), Ok(()));

        let refused = Err(LinkRefusal::Forged);
        assert_eq!(
            links.check(id, Variant::Thumbnail, expires, &signature),
            refused
        );
        assert_eq!(
            links.check(AttachmentId::new(), Variant::File, expires, &signature),
            refused
        );
        assert_eq!(
            links.check(id, Variant::File, expires + 3600, &signature),
            refused,
            "a later expiry is not the one signed"
        );
        let mut flipped = signature.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(links.check(id, Variant::File, expires, &flipped), refused);
        assert_eq!(links.check(id, Variant::File, expires, "zz"), refused);
        let other = Links::from_signing_key("another key");
        assert_eq!(other.check(id, Variant::File, expires, &signature), refused);

        let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        let (expires, signature) = query(&links.mint(id, Variant::File, past));
        assert_eq!(
            links.check(id, Variant::File, expires, &signature),
            Err(LinkRefusal::Expired)
        );
    }
}
