//! What users change of their own account (`ProfileStore`): the password
//! hash read by id and replaced, and the shown name, each for that user
//! alone and nothing for a user who does not exist.

use chat_shared::model::{EventBody, UserId};
use chat_shared::store::{NewUser, Page, DELETED_USER};
use chat_shared::testing::Backend;

use crate::Fixture;

conformance!(
    a_new_password_hash_replaces_the_old_one,
    a_display_name_change_shows_everywhere_the_user_does,
    room_mates_are_everyone_sharing_a_room_once,
    memberships_include_rooms_no_list_shows,
    an_erased_account_frees_its_name_and_keeps_its_messages,
    an_avatar_version_shows_wherever_the_user_does,
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

async fn memberships_include_rooms_no_list_shows(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    assert!(fx.memberships(alice.id).await.unwrap().is_empty());
    let group = fx.private_room(&alice).await;
    let theirs = fx.private_room(&bob).await;
    // A DM opened but never written in is in nobody's list.
    let (dm, _) = fx.direct_room(alice.id, bob.id).await.unwrap();
    let listed: Vec<_> = fx
        .my_rooms(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.room.id)
        .collect();
    assert!(!listed.contains(&dm.id));

    let mut expected = vec![group.id, dm.id];
    expected.sort();
    assert_eq!(fx.memberships(alice.id).await.unwrap(), expected);
    assert!(!fx.memberships(bob.id).await.unwrap().contains(&group.id));
    assert!(fx.memberships(bob.id).await.unwrap().contains(&theirs.id));
}

async fn an_erased_account_frees_its_name_and_keeps_its_messages(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&bob).await;
    fx.join(room.id, &alice).await;
    let sent = fx.send(room.id, alice.id, "hello").await.event;
    assert!(!fx.is_erased(alice.id).await.unwrap());

    let erased = fx.erase_account(alice.id).await.unwrap().unwrap();
    assert_eq!(erased.id, alice.id);
    assert_eq!(erased.display_name, DELETED_USER);
    assert!(
        erased.username.starts_with("deleted-"),
        "{}",
        erased.username
    );
    assert!(
        erased.username.len() > 32,
        "longer than any registration takes"
    );
    assert!(fx.is_erased(alice.id).await.unwrap());
    assert!(!fx.is_erased(bob.id).await.unwrap());
    // Once only.
    assert!(fx.erase_account(alice.id).await.unwrap().is_none());

    // The name is free, nobody finds the erased account, and nothing
    // verifies against its hash.
    assert!(fx.credentials("alice").await.unwrap().is_none());
    assert!(fx.search_users("deleted", 10).await.unwrap().is_empty());
    assert!(fx.search_users("alice", 10).await.unwrap().is_empty());
    let hash = fx.account_credentials(alice.id).await.unwrap().unwrap();
    assert!(!hash.password_hash.starts_with('$'));
    let again = fx
        .create_user(NewUser {
            username: "Alice".into(),
            display_name: "Another Alice".into(),
            password_hash: "$argon2id$new".into(),
        })
        .await
        .unwrap();
    assert_ne!(again.id, alice.id);
    assert_eq!(fx.search_users("alice", 10).await.unwrap(), vec![again]);

    // What it sent stays, under its id, shown by the erased name.
    let page = Page {
        after: Some(0),
        before: None,
        limit: 100,
    };
    let events = fx.events(room.id, page).await.unwrap();
    let message = events.iter().find(|e| e.seq == sent.seq).unwrap();
    assert_eq!(message.sender, Some(alice.id));
    assert!(matches!(&message.body, EventBody::Message { body, .. } if body == "body of hello"));
    assert_eq!(fx.user(alice.id).await.unwrap(), Some(erased));
}

async fn an_avatar_version_shows_wherever_the_user_does(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let alice = fx.register("alice").await;
    let bob = fx.register("bob").await;
    let room = fx.private_room(&bob).await;
    fx.join(room.id, &alice).await;
    assert_eq!(alice.avatar, None);
    assert_eq!(fx.avatar(alice.id).await.unwrap(), None);

    let with = fx
        .set_avatar(alice.id, Some("v1abc"))
        .await
        .unwrap()
        .unwrap();
    let path = format!("/v1/avatars/{}/v1abc", alice.id);
    assert_eq!(with.avatar.as_deref(), Some(path.as_str()));
    assert_eq!(fx.avatar(alice.id).await.unwrap().as_deref(), Some("v1abc"));
    assert_eq!(fx.user(alice.id).await.unwrap(), Some(with.clone()));
    let members = fx.members(room.id).await.unwrap();
    let shown = members.iter().find(|m| m.user.id == alice.id).unwrap();
    assert_eq!(shown.user.avatar.as_deref(), Some(path.as_str()));
    assert_eq!(fx.search_users("alice", 5).await.unwrap(), vec![with]);
    assert_eq!(fx.user(bob.id).await.unwrap().unwrap().avatar, None);

    let without = fx.set_avatar(alice.id, None).await.unwrap().unwrap();
    assert_eq!(without.avatar, None);
    assert_eq!(fx.avatar(alice.id).await.unwrap(), None);

    // A deleted account has none, and cannot get one.
    fx.set_avatar(alice.id, Some("v2")).await.unwrap();
    let erased = fx.erase_account(alice.id).await.unwrap().unwrap();
    assert_eq!(erased.avatar, None);
    assert!(fx.set_avatar(alice.id, Some("v3")).await.unwrap().is_none());
    assert_eq!(fx.avatar(alice.id).await.unwrap(), None);
    assert!(fx
        .set_avatar(UserId::new(), Some("v1"))
        .await
        .unwrap()
        .is_none());
}
