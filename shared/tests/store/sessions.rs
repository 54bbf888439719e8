//! Login sessions (`SessionStore`): refresh-token rotation, reuse detection
//! that revokes the whole session, expiry, the active-session list, and
//! revocation limited to the session's owner.

use std::sync::Arc;

use chat_shared::model::{SessionId, User};
use chat_shared::store::{RefreshToken, Rotation, Session};
use chat_shared::testing::Backend;
use futures::future::join_all;
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

use crate::Fixture;

conformance!(
    rotation_spends_the_presented_token,
    reusing_a_spent_token_revokes_the_session,
    unknown_and_expired_tokens_are_invalid,
    a_token_is_invalid_as_soon_as_it_expires,
    active_sessions_are_live_and_newest_first,
    only_the_owner_revokes_a_session,
    revoking_all_sessions_but_one_spares_it_and_other_users,
    concurrent_rotations_rotate_once,
);

/// A fresh opaque token's hash, expiring `ttl` from now. Times are kept to
/// the microsecond both databases store, so values read back compare equal.
fn token(ttl: Duration) -> RefreshToken {
    let at = OffsetDateTime::now_utc() + ttl;
    RefreshToken {
        hash: uuid::Uuid::new_v4().as_bytes().to_vec(),
        expires_at: at
            .replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
            .unwrap(),
    }
}

fn month() -> Duration {
    Duration::days(30)
}

async fn login(fx: &Fixture, user: &User, token: &RefreshToken) -> Session {
    fx.create_session(user.id, Some("test-agent/1.0".into()), token.clone())
        .await
        .unwrap()
}

async fn rotation_spends_the_presented_token(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let t1 = token(month());
    let session = login(&fx, &alice, &t1).await;
    assert_eq!(session.user_id, alice.id);
    assert_eq!(session.user_agent.as_deref(), Some("test-agent/1.0"));
    assert_eq!(session.expires_at, t1.expires_at);
    assert_eq!(session.revoked_at, None);
    assert_eq!(fx.session(session.id).await.unwrap(), Some(session.clone()));
    assert_eq!(fx.session(SessionId::new()).await.unwrap(), None);

    let t2 = token(month() + Duration::hours(1));
    let Rotation::Rotated(rotated) = fx.rotate_refresh_token(&t1.hash, t2.clone()).await.unwrap()
    else {
        panic!("a current token must rotate");
    };
    assert_eq!(rotated.id, session.id, "rotation keeps the session");
    assert_eq!(rotated.created_at, session.created_at);
    assert_eq!(
        rotated.expires_at, t2.expires_at,
        "expiry follows the newest token"
    );
    assert!(rotated.last_used_at >= session.last_used_at);
    assert_eq!(rotated.revoked_at, None);
    assert_eq!(fx.session(session.id).await.unwrap(), Some(rotated.clone()));

    // The new token rotates in turn.
    let t3 = token(month());
    let next = fx.rotate_refresh_token(&t2.hash, t3).await.unwrap();
    assert!(matches!(next, Rotation::Rotated(s) if s.id == session.id));
}

async fn reusing_a_spent_token_revokes_the_session(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let t1 = token(month());
    let session = login(&fx, &alice, &t1).await;
    let other = login(&fx, &alice, &token(month())).await;
    let t2 = token(month());
    assert!(matches!(
        fx.rotate_refresh_token(&t1.hash, t2.clone()).await.unwrap(),
        Rotation::Rotated(_)
    ));

    // Someone replays the spent token: the family ends.
    let replay = fx.rotate_refresh_token(&t1.hash, token(month())).await;
    let Rotation::Reused(ended) = replay.unwrap() else {
        panic!("a replayed token is reuse");
    };
    // It names the session it ended, for the gateways to close its sockets.
    assert_eq!((ended.id, ended.user_id), (session.id, alice.id));
    assert!(ended.revoked_at.is_some());
    let revoked = fx.session(session.id).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());

    // Even the legitimate newest token no longer works, nor another replay.
    let newest = fx.rotate_refresh_token(&t2.hash, token(month())).await;
    assert_eq!(newest.unwrap(), Rotation::Invalid);
    let again = fx.rotate_refresh_token(&t1.hash, token(month())).await;
    assert!(
        !matches!(again.unwrap(), Rotation::Rotated(_)),
        "a spent token never rotates"
    );
    assert!(fx
        .session(session.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());

    // Only that session: alice's other login lives on.
    assert_eq!(fx.active_sessions(alice.id).await.unwrap(), vec![other]);
}

async fn unknown_and_expired_tokens_are_invalid(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let unknown = fx
        .rotate_refresh_token(b"no such token", token(month()))
        .await;
    assert_eq!(unknown.unwrap(), Rotation::Invalid);

    let stale = token(-Duration::hours(1));
    let session = login(&fx, &alice, &stale).await;
    let presented = fx.rotate_refresh_token(&stale.hash, token(month())).await;
    assert_eq!(presented.unwrap(), Rotation::Invalid);
    // Expiry is not reuse: presenting it twice does not look like theft.
    let twice = fx.rotate_refresh_token(&stale.hash, token(month())).await;
    assert_eq!(twice.unwrap(), Rotation::Invalid);
    assert_eq!(
        fx.session(session.id).await.unwrap().unwrap().revoked_at,
        None
    );
    assert!(
        fx.active_sessions(alice.id).await.unwrap().is_empty(),
        "an expired session is not active"
    );
}

async fn a_token_is_invalid_as_soon_as_it_expires(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    // Expired at the start of the current second, a fraction of a second
    // ago: still expired. (Timestamps compared as text would disagree.)
    let now = OffsetDateTime::now_utc();
    let just_expired = RefreshToken {
        hash: b"just expired".to_vec(),
        expires_at: now.replace_nanosecond(0).unwrap(),
    };
    login(&fx, &alice, &just_expired).await;
    let presented = fx
        .rotate_refresh_token(&just_expired.hash, token(month()))
        .await;
    assert_eq!(presented.unwrap(), Rotation::Invalid);
    assert!(fx.active_sessions(alice.id).await.unwrap().is_empty());
}

async fn active_sessions_are_live_and_newest_first(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(login(&fx, &alice, &token(month())).await);
    }
    login(&fx, &bob, &token(month())).await;
    login(&fx, &alice, &token(-Duration::minutes(1))).await;
    assert!(fx.revoke_session(alice.id, sessions[2].id).await.unwrap());

    let active = fx.active_sessions(alice.id).await.unwrap();
    let expected: Vec<Session> = sessions
        .iter()
        .enumerate()
        .rev()
        .filter(|(i, _)| *i != 2)
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(active, expected, "live sessions only, newest first");
}

async fn only_the_owner_revokes_a_session(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let t1 = token(month());
    let session = login(&fx, &alice, &t1).await;

    assert!(!fx.revoke_session(bob.id, session.id).await.unwrap());
    assert_eq!(
        fx.session(session.id).await.unwrap().unwrap().revoked_at,
        None
    );
    assert!(!fx.revoke_session(alice.id, SessionId::new()).await.unwrap());

    assert!(fx.revoke_session(alice.id, session.id).await.unwrap());
    assert!(
        !fx.revoke_session(alice.id, session.id).await.unwrap(),
        "already revoked"
    );
    assert!(fx
        .session(session.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    assert!(fx.active_sessions(alice.id).await.unwrap().is_empty());
    // A logged-out session's token no longer refreshes.
    let after = fx.rotate_refresh_token(&t1.hash, token(month())).await;
    assert_eq!(after.unwrap(), Rotation::Invalid);
}

async fn revoking_all_sessions_but_one_spares_it_and_other_users(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let kept = login(&fx, &alice, &token(month())).await;
    let others = [
        login(&fx, &alice, &token(month())).await,
        login(&fx, &alice, &token(month())).await,
    ];
    let already = login(&fx, &alice, &token(month())).await;
    assert!(fx.revoke_session(alice.id, already.id).await.unwrap());
    let bobs = login(&fx, &bob, &token(month())).await;

    let mut ended = fx.revoke_sessions(alice.id, Some(kept.id)).await.unwrap();
    ended.sort_by_key(|s| s.0);
    let mut expected: Vec<SessionId> = others.iter().map(|s| s.id).collect();
    expected.sort_by_key(|s| s.0);
    assert_eq!(ended, expected, "the live ones but the kept one, once");
    let active: Vec<SessionId> = fx
        .active_sessions(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(active, vec![kept.id]);
    assert_eq!(fx.active_sessions(bob.id).await.unwrap()[0].id, bobs.id);

    let ended = fx.revoke_sessions(alice.id, None).await.unwrap();
    assert_eq!(ended, vec![kept.id], "then the last one");
    assert!(fx.active_sessions(alice.id).await.unwrap().is_empty());
    assert!(fx.revoke_sessions(alice.id, None).await.unwrap().is_empty());
}

async fn concurrent_rotations_rotate_once(backend: Backend) {
    const RACERS: usize = 2;
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let t1 = token(month());
    let session = login(&fx, &alice, &t1).await;

    let barrier = Arc::new(Barrier::new(RACERS));
    let racers = (0..RACERS).map(|_| {
        let store = fx.store.clone();
        let barrier = barrier.clone();
        let presented = t1.hash.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .rotate_refresh_token(&presented, token(month()))
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<Rotation> = join_all(racers)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();

    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated(s) if s.id == session.id))
        .count();
    assert_eq!(rotated, 1, "exactly one presentation rotates: {outcomes:?}");
    // The other presented a token that had just been spent: that is reuse.
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Rotation::Reused(s) if s.id == session.id))
            .count(),
        RACERS - 1,
        "{outcomes:?}"
    );
}
