//! Password hashing with argon2id at OWASP's recommended cost (19 MiB,
//! 2 passes, 1 lane: the `argon2` crate's defaults).
//!
//! Each hash holds a core and 19 MiB for tens of milliseconds. At most
//! `CHAT_MAX_CONCURRENT_HASHES` run at once, on the blocking pool, and each
//! runs in one of as many work areas that are allocated once and reused:
//! hashing memory is bounded by that count × 19 MiB and stays put. (Letting
//! the crate allocate per hash, the allocator kept what each blocking
//! thread had used: a burst of 200 registrations left 800 MB behind.)
//!
//! Callers beyond the running ones wait in a queue of at most
//! `CHAT_MAX_WAITING_HASHES`, for at most [`QUEUE_TIMEOUT`]; past either,
//! they get 503 with `Retry-After` at once, so a storm of logins from many
//! addresses is refused early instead of queueing without end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// How long a login may wait for a hashing slot.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Hashes and verifies passwords, a bounded number at a time, in reused
/// memory.
#[derive(Clone)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    /// Work areas not in use; at most one per slot is ever allocated.
    areas: Arc<Mutex<Vec<WorkArea>>>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// Verified against when the user does not exist, so an unknown
    /// username costs the same time as a wrong password.
    dummy_hash: Arc<str>,
}

/// The memory of one argon2 computation at our parameters.
type WorkArea = Box<[Block]>;

impl Passwords {
    /// A hasher running at most `concurrency` hashes at once, with at most
    /// `max_waiting` callers queued behind them.
    pub fn new(concurrency: usize, max_waiting: usize) -> Self {
        let mut area = new_work_area();
        let dummy = hash_in("not a real password", &mut area).expect("hashing a constant");
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            areas: Arc::new(Mutex::new(vec![area])),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            dummy_hash: dummy.into(),
        }
    }

    /// The PHC string for `password`, with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move |area| hash_in(&password, area)).await?
    }

    /// Whether `password` matches `hash`; with no hash (unknown user), checks
    /// against a dummy and answers false, taking the same time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run(move |area| verify_in(&password, &hash, area))
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = {
            let _queued = Queued::join(&self.waiting, self.max_waiting)?;
            tokio::time::timeout(QUEUE_TIMEOUT, self.slots.clone().acquire_owned())
                .await
                .map_err(|_| ApiError::Unavailable)?
                .map_err(|_| ApiError::Unavailable)?
        };
        let areas = self.areas.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Holding a slot guarantees an area is free or may be made.
            let taken = areas.lock().expect("not poisoned").pop();
            let mut area = taken.unwrap_or_else(new_work_area);
            let result = work(&mut area);
            areas.lock().expect("not poisoned").push(area);
            result
        })
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing task failed: {e}")))
    }
}

/// A place in the queue for a hashing slot, given up on drop.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize, max: usize) -> Result<Self, ApiError> {
        if waiting.fetch_add(1, Ordering::AcqRel) >= max {
            waiting.fetch_sub(1, Ordering::AcqRel);
            chat_shared::metrics::rate_limited(chat_shared::metrics::scope::PASSWORD_HASHES);
            return Err(ApiError::Unavailable);
        }
        Ok(Self(waiting))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn new_work_area() -> WorkArea {
    vec![Block::default(); Params::DEFAULT.block_count()].into_boxed_slice()
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` at our parameters in `area`, as `Argon2::default()`'s
/// `hash_password` would (the same PHC string), without allocating.
fn hash_in(password: &str, area: &mut [Block]) -> Result<String, ApiError> {
    let failed = |e: &dyn std::fmt::Display| ApiError::Internal(format!("hashing a password: {e}"));
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let params = Params::DEFAULT;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon2(params.clone())
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *area)
            .map_err(Into::into)
    })
    .map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `hash`, computed in `area`. A
/// hash made at costlier parameters than ours (an older setting) does not
/// fit the area and is verified the allocating way.
fn verify_in(password: &str, hash: &str, area: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let ours = parsed.algorithm == Algorithm::Argon2id.ident()
        && parsed.version == Some(Version::V0x13.into())
        && params.block_count() <= area.len();
    if !ours {
        return Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let computed = Output::init_with(expected.len(), |out| {
        argon2(params)
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *area)
            .map_err(Into::into)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let passwords = Passwords::new(2, 8);
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(passwords
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify("wrong horse".into(), Some(hash))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn hashes_match_the_crates_own_both_ways() {
        use argon2::password_hash::PasswordHasher as _;
        let passwords = Passwords::new(1, 8);
        let ours = passwords.hash("tr0ub4dor".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"tr0ub4dor", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"tr0ub4dor", &salt)
            .unwrap()
            .to_string();
        assert!(passwords
            .verify("tr0ub4dor".into(), Some(theirs))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_hash_at_other_parameters_still_verifies() {
        use argon2::password_hash::PasswordHasher as _;
        let salt = SaltString::generate(&mut OsRng);
        let costlier = Params::new(32 * 1024, 1, 1, None).unwrap();
        let older = argon2(costlier)
            .hash_password(b"from before", &salt)
            .unwrap()
            .to_string();
        let passwords = Passwords::new(1, 8);
        assert!(passwords
            .verify("from before".into(), Some(older.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify("not it".into(), Some(older))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn callers_past_the_queue_are_refused_at_once() {
        let passwords = Passwords::new(1, 2);
        let started = std::time::Instant::now();
        let attempts = (0..6).map(|i| passwords.hash(format!("password {i}")));
        let results = futures::future::join_all(attempts).await;
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(ApiError::Unavailable)))
            .count();
        // One hashing, two waiting: the other three are refused.
        assert_eq!(refused, 3, "{results:?}");
        assert!(started.elapsed() < QUEUE_TIMEOUT);
        // Work areas: never more than the slots.
        assert_eq!(passwords.areas.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let passwords = Passwords::new(1, 8);
        assert!(!passwords
            .verify("not a real password".into(), None)
            .await
            .unwrap());
    }
}
