//! What users change of their own account (`ProfileStore`): the password
//! hash read by id and replaced, and the shown name, each for that user
//! alone and nothing for a user who does not exist.

use chat_shared::model::UserId;
use chat_shared::testing::Backend;

use crate::Fixture;

conformance!(
    a_new_password_hash_replaces_the_old_one,
    a_display_name_change_shows_everywhere_the_user_does,
    room_mates_are_everyone_sharing_a_room_once,
);

async fn a_new_password_hash_replaces_the_old_one(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;

    let before = fx.account_credentials(alice.id).await.unwrap().unwrap();
    assert_eq!(before.user, alice);
    assert!(
        before.password_hash.ends_with("$alice"),
        "{}",
        before.password_hash
    );

    assert!(fx
        .set_password_hash(alice.id, "$argon2id$new")
        .await
        .unwrap());
    let after = fx.account_credentials(alice.id).await.unwrap().unwrap();
    assert_eq!(after.password_hash, "$argon2id$new");
    // Login reads the same hash.
    let login = fx.credentials("ALICE").await.unwrap().unwrap();
    assert_eq!(login.password_hash, "$argon2id$new");
    // Bob's is untouched.
    let theirs = fx.credentials("bob").await.unwrap().unwrap();
    assert_eq!(theirs.user, bob);
    assert!(theirs.password_hash.ends_with("$bob"));

    let nobody = UserId::new();
    assert!(!fx.set_password_hash(nobody, "$argon2id$x").await.unwrap());
    assert!(fx.account_credentials(nobody).await.unwrap().is_none());
}

async fn a_display_name_change_shows_everywhere_the_user_does(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&alice).await;
    fx.join(room.id, &bob).await;

    let renamed = fx
        .set_display_name(alice.id, "Queen of Hearts")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.display_name, "Queen of Hearts");
    assert_eq!(renamed.username, "alice", "the login name stays");
    assert_eq!(renamed.id, alice.id);

    assert_eq!(fx.user(alice.id).await.unwrap(), Some(renamed.clone()));
    let members = fx.members(room.id).await.unwrap();
    let shown = members.iter().find(|m| m.user.id == alice.id).unwrap();
    assert_eq!(shown.user.display_name, "Queen of Hearts");
    let found = fx.search_users("queen", 10).await.unwrap();
    assert_eq!(found, vec![renamed]);
    assert_eq!(fx.user(bob.id).await.unwrap(), Some(bob));

    assert!(fx
        .set_display_name(UserId::new(), "Nobody")
        .await
        .unwrap()
        .is_none());
}

async fn room_mates_are_everyone_sharing_a_room_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let carol = fx.register("carol").await;
    let dave = fx.register("dave").await;
    assert!(fx.room_mates(alice.id).await.unwrap().is_empty());

    // Bob shares two rooms with Alice, Carol one; Dave none.
    let first = fx.private_room(&alice).await;
    let second = fx.private_room(&bob).await;
    fx.join(first.id, &bob).await;
    fx.join(first.id, &carol).await;
    fx.join(second.id, &alice).await;
    let apart = fx.private_room(&dave).await;
    fx.join(apart.id, &carol).await;

    let mut mates = fx.room_mates(alice.id).await.unwrap();
    mates.sort();
    let mut expected = vec![alice.id, bob.id, carol.id];
    expected.sort();
    assert_eq!(mates, expected);
    let mut theirs = fx.room_mates(dave.id).await.unwrap();
    theirs.sort();
    let mut expected = vec![carol.id, dave.id];
    expected.sort();
    assert_eq!(theirs, expected);
}
