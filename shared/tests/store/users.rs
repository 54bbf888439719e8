//! Accounts (`UserStore`): registration, case-insensitive usernames and
//! login lookup, and a search that matches user text literally.

use chat_shared::model::UserId;
use chat_shared::store::{Error, NewUser};
use chat_shared::testing::Backend;

use crate::Fixture;

conformance!(
    registered_users_can_be_found,
    usernames_are_unique_ignoring_case,
    search_matches_substrings_ignoring_case,
    search_treats_wildcards_literally,
);

async fn registered_users_can_be_found(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx
        .create_user(NewUser {
            username: "Alice".into(),
            display_name: "Alice Liddell".into(),
            password_hash: "$argon2id$hash-of-alice".into(),
        })
        .await
        .unwrap();
    assert_eq!(alice.username, "Alice", "the username keeps its case");
    assert_eq!(alice.display_name, "Alice Liddell");

    assert_eq!(fx.user(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(fx.user(UserId::new()).await.unwrap(), None);

    for login in ["Alice", "alice", "ALICE", "aLiCe"] {
        let found = fx.credentials(login).await.unwrap().expect(login);
        assert_eq!(found.user, alice);
        assert_eq!(found.password_hash, "$argon2id$hash-of-alice");
    }
    assert!(fx.credentials("alic").await.unwrap().is_none());
    assert!(fx.credentials("nobody").await.unwrap().is_none());
}

async fn usernames_are_unique_ignoring_case(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let bob = fx.register("bob").await;
    for taken in ["bob", "Bob", "BOB"] {
        let again = fx
            .create_user(NewUser {
                username: taken.into(),
                display_name: "Another Bob".into(),
                password_hash: "x".into(),
            })
            .await;
        assert!(
            matches!(again, Err(Error::Conflict("username"))),
            "{taken}: {again:?}"
        );
    }
    // The first Bob is untouched and still the one who logs in.
    let found = fx.credentials("BOB").await.unwrap().unwrap();
    assert_eq!(found.user, bob);
    // Display names need not be unique.
    let other = fx
        .create_user(NewUser {
            username: "robert".into(),
            display_name: bob.display_name.clone(),
            password_hash: "x".into(),
        })
        .await
        .unwrap();
    assert_ne!(other.id, bob.id);
}

async fn search_matches_substrings_ignoring_case(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let malice = fx.register("Malice").await;
    let bob = fx
        .create_user(NewUser {
            username: "bob".into(),
            display_name: "Bob Alicante".into(),
            password_hash: "x".into(),
        })
        .await
        .unwrap();
    let carol = fx.register("carol").await;

    let names = |users: Vec<chat_shared::model::User>| {
        users.into_iter().map(|u| u.username).collect::<Vec<_>>()
    };
    // Username or display name, any case, ordered by username.
    assert_eq!(
        names(fx.search_users("LIC", 10).await.unwrap()),
        vec![
            alice.username.clone(),
            bob.username,
            malice.username.clone()
        ]
    );
    assert_eq!(
        names(fx.search_users("aro", 10).await.unwrap()),
        vec![carol.username]
    );
    assert!(fx.search_users("zed", 10).await.unwrap().is_empty());
    // The limit is respected.
    assert_eq!(
        names(fx.search_users("lic", 2).await.unwrap()),
        vec![alice.username, "bob".to_owned()]
    );
}

async fn search_treats_wildcards_literally(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let underscore = fx.register("a_b").await;
    fx.register("axb").await;
    let percent = fx
        .create_user(NewUser {
            username: "percy".into(),
            display_name: "100% real".into(),
            password_hash: "x".into(),
        })
        .await
        .unwrap();
    fx.create_user(NewUser {
        username: "plain".into(),
        display_name: "100 real".into(),
        password_hash: "x".into(),
    })
    .await
    .unwrap();
    let backslash = fx.register("back\\slash").await;

    let ids =
        |users: Vec<chat_shared::model::User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(
        ids(fx.search_users("a_b", 10).await.unwrap()),
        vec![underscore.id]
    );
    assert_eq!(
        ids(fx.search_users("_", 10).await.unwrap()),
        vec![underscore.id]
    );
    assert_eq!(
        ids(fx.search_users("%", 10).await.unwrap()),
        vec![percent.id]
    );
    assert_eq!(
        ids(fx.search_users("0% R", 10).await.unwrap()),
        vec![percent.id]
    );
    assert_eq!(
        ids(fx.search_users("\\", 10).await.unwrap()),
        vec![backslash.id]
    );
}
